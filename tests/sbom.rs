//! SBOM export (`manifest --format cyclonedx|spdx`), validated by the official validators:
//! cyclonedx-python-lib's `JsonStrictValidator` (schema 1.6) and spdx-tools' `pyspdxtools`.
//! Both are installed by `.ci/run` with pip; a missing validator fails the test with an
//! install hint.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use drover::manifest::Component;
use drover::store::builds::Success;
use drover::store::Store;
use drover::updates::PendingUpdate;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_drover");
const HINT: &str = "install the SBOM validators: pip install \"cyclonedx-python-lib[json-validation]\" spdx-tools (see .ci/run)";

fn comp(name: &str, version: &str, arch: &str, source: &str) -> Component {
    Component {
        name: name.into(),
        version: version.into(),
        arch: arch.into(),
        source: source.into(),
        source_version: version.into(),
        suite: "bookworm".into(),
        origin: "http://deb.debian.org/debian".into(),
        installed_size_kib: Some(100),
    }
}

/// A state directory with one succeeded `hello` build and one update check.
fn state(dir: &Path) {
    let mut store = Store::open(&dir.join("drover.db")).unwrap();
    let id = store.create_build("hello", std::process::id()).unwrap();
    let comps = vec![
        comp("libc6", "2.36-9+deb12u7", "amd64", "glibc"),
        comp("libssl3", "3.0.20-1~deb12u2", "amd64", "openssl"),
        comp("libstdc++6", "12.2.0-14", "amd64", "gcc-12"),
        comp("perl-modules-5.36", "5.36.0-7+deb12u3", "all", "perl"),
        comp("tzdata", "1:2024a-0+deb12u1", "all", "tzdata"),
    ];
    store
        .finish_build_success(
            id,
            &Success {
                image_digest:
                    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                image_path: "/nonexistent/1.oci.tar",
                components: &comps,
            },
        )
        .unwrap();
    let update = PendingUpdate {
        package: "libssl3".into(),
        arch: "amd64".into(),
        installed: "3.0.20-1~deb12u2".into(),
        candidate: "3.0.22-1~deb12u2".into(),
        suite: "bookworm-security".into(),
        source: "openssl".into(),
        source_installed: "3.0.20-1~deb12u2".into(),
        source_candidate: "3.0.22-1~deb12u2".into(),
        cves: vec!["CVE-2026-0001".into(), "CVE-2026-0002".into()],
        urgency: Some("high".into()),
        checked_at: "2026-11-29T00:00:00.000Z".into(),
        advisories: vec![],
        dates: vec![],
        deb: None,
        // A CVE the update fixes that only a feed names.
        feed_cves: vec![drover::updates::FeedCve {
            id: "CVE-2026-0003".into(),
            source: "openssl".into(),
            urgency: Some("medium".into()),
            fixed_version: Some("3.0.21-1~deb12u1".into()),
            status: "fixed".into(),
            note: None,
            feed: "security-tracker".into(),
        }],
        open_cves: vec![],
    };
    let lang = |eco: &str, name: &str, version: &str, location: &str| {
        drover::manifest::lang::LangPackage {
            ecosystem: eco.into(),
            name: name.into(),
            version: version.into(),
            location: location.into(),
        }
    };
    store
        .put_language_packages(
            id,
            &[
                lang("pypi", "Flask_Login", "0.6.3", "/opt/app/venv/lib/python3.11/site-packages/Flask_Login-0.6.3.dist-info/METADATA"),
                lang("npm", "@types/node", "20.1.0", "/opt/app/node_modules/@types/node/package.json"),
                lang("cargo", "serde", "1.0.200", "/opt/app/Cargo.lock"),
            ],
        )
        .unwrap();
    store
        .record_update_check("hello", id, "2026-11-29T00:00:00.000Z", &[update], &[], &[])
        .unwrap();
}

fn export(state_dir: &Path, format: &str) -> (String, Value) {
    export_args(state_dir, &["manifest", "hello", "--format", format])
}

fn export_args(state_dir: &Path, args: &[&str]) -> (String, Value) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
        .arg("--state")
        .arg(state_dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v = serde_json::from_str(&text).unwrap();
    (text, v)
}

/// Write `text` to `file` and check it with cyclonedx-python-lib's strict 1.6 validator.
fn validate_cyclonedx(file: &Path, text: &str) {
    std::fs::write(file, text).unwrap();
    let script = "import sys\n\
        try:\n    from cyclonedx.validation.json import JsonStrictValidator\n    from cyclonedx.schema import SchemaVersion\n\
        except ImportError as e:\n    print('MISSING', e); sys.exit(3)\n\
        err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
        print(err if err else 'VALID'); sys.exit(1 if err else 0)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("python3 not found ({e}); {HINT}"));
    let said = String::from_utf8_lossy(&out.stdout);
    assert_ne!(
        out.status.code(),
        Some(3),
        "validator missing: {said}; {HINT}"
    );
    assert!(out.status.success(), "CycloneDX invalid: {said}\n{text}");
}

/// Write `text` to `file` and check it with pyspdxtools.
fn validate_spdx(file: &Path, text: &str) {
    std::fs::write(file, text).unwrap();
    let out = Command::new("pyspdxtools")
        .arg("-i")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("pyspdxtools not found ({e}); {HINT}"));
    assert!(
        out.status.success(),
        "SPDX invalid: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cyclonedx_passes_the_strict_validator() {
    let tmp = tempfile::tempdir().unwrap();
    state(tmp.path());
    let (text, bom) = export(tmp.path(), "cyclonedx");
    validate_cyclonedx(&tmp.path().join("bom.cdx.json"), &text);

    assert_eq!(bom["specVersion"], "1.6");
    let comps = bom["components"].as_array().unwrap();
    assert_eq!(comps.len(), 9, "OS + 5 Debian + 3 language packages");
    assert!(comps
        .iter()
        .any(|c| c["type"] == "operating-system" && c["name"] == "debian" && c["version"] == "12"));
    let purls: Vec<&str> = comps.iter().filter_map(|c| c["purl"].as_str()).collect();
    assert!(
        purls.contains(
            &"pkg:deb/debian/libssl3@3.0.20-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl"
        ),
        "{purls:?}"
    );
    assert!(purls.contains(&"pkg:deb/debian/tzdata@1%3A2024a-0%2Bdeb12u1?arch=all&distro=debian-12&upstream=tzdata"), "{purls:?}");
    assert!(
        purls.contains(
            &"pkg:deb/debian/libstdc%2B%2B6@12.2.0-14?arch=amd64&distro=debian-12&upstream=gcc-12"
        ),
        "{purls:?}"
    );
    assert!(purls.contains(&"pkg:pypi/flask-login@0.6.3"), "{purls:?}");
    assert!(purls.contains(&"pkg:npm/%40types/node@20.1.0"), "{purls:?}");
    assert!(purls.contains(&"pkg:cargo/serde@1.0.200"), "{purls:?}");
    let vulns = bom["vulnerabilities"].as_array().unwrap();
    let ids: Vec<&str> = vulns.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["CVE-2026-0001", "CVE-2026-0002", "CVE-2026-0003"]);
    assert_eq!(
        vulns[0]["affects"][0]["ref"],
        "pkg:deb/debian/libssl3@3.0.20-1~deb12u2?arch=amd64&distro=debian-12&upstream=openssl"
    );
    assert_eq!(vulns[0]["ratings"][0]["severity"], "high");
}

#[test]
fn spdx_passes_pyspdxtools() {
    let tmp = tempfile::tempdir().unwrap();
    state(tmp.path());
    let (text, doc) = export(tmp.path(), "spdx");
    validate_spdx(&tmp.path().join("bom.spdx.json"), &text);
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let pkgs = doc["packages"].as_array().unwrap();
    assert_eq!(
        pkgs.len(),
        10,
        "image + OS + 5 Debian + 3 language packages"
    );
    assert!(pkgs
        .iter()
        .any(|p| p["primaryPackagePurpose"] == "OPERATING-SYSTEM"));
    assert_eq!(doc["relationships"].as_array().unwrap().len(), 10);

    // The validator really rejects a broken document (so the check above can fail).
    let broken = tmp.path().join("broken.spdx.json");
    std::fs::write(&broken, text.replace("\"SPDX-2.3\"", "\"SPDX-9\"")).unwrap();
    let out = Command::new("pyspdxtools")
        .arg("-i")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// `manifest --vm --format cyclonedx|spdx`: the VM disk image's SBOM holds the OCI
/// image's packages and the boot layer's (a boot package that replaced an image package
/// once, at its own version), and both validators accept it.
#[test]
fn the_vm_image_sbom_adds_the_boot_packages_and_validates() {
    let tmp = tempfile::tempdir().unwrap();
    state(tmp.path());
    let store = Store::open(&tmp.path().join("drover.db")).unwrap();
    let id = store.latest_succeeded("hello").unwrap().unwrap().id;
    let boot = vec![
        comp(
            "linux-image-6.1.0-40-cloud-amd64",
            "6.1.153-1",
            "amd64",
            "linux-signed-amd64",
        ),
        comp("systemd", "252.39-1~deb12u1", "amd64", "systemd"),
        // A newer libc6 that a boot package needed: listed once, at this version.
        comp("libc6", "2.36-9+deb12u13", "amd64", "glibc"),
    ];
    let digest = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    let vm = serde_json::json!({
        "path": "/nonexistent/1.qcow2", "format": "qcow2", "digest": digest,
        "size": 1, "disk_size": 2, "kernel": "linux-image-cloud-amd64 6.1.153-1",
        "boot_packages": boot.iter().map(|c| format!("{} {}", c.name, c.version)).collect::<Vec<_>>(),
        "boot_components": boot, "boot_key": "k", "boot_cached": true, "seconds": 1.0,
    });
    store.set_build_vm(id, &vm.to_string()).unwrap();
    let vm_export = |format: &str| {
        export_args(
            tmp.path(),
            &["manifest", "hello", "--vm", "--format", format],
        )
        .0
    };
    let text = vm_export("cyclonedx");
    let bom: Value = serde_json::from_str(&text).unwrap();
    validate_cyclonedx(&tmp.path().join("vm.cdx.json"), &text);
    assert_eq!(bom["metadata"]["component"]["type"], "file", "{bom}");
    assert_eq!(bom["metadata"]["component"]["version"], digest);
    let purls: Vec<&str> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["purl"].as_str())
        .collect();
    assert!(
        purls
            .iter()
            .any(|p| p.starts_with("pkg:deb/debian/linux-image-6.1.0-40-cloud-amd64@6.1.153-1?")),
        "{purls:?}"
    );
    assert!(
        purls
            .iter()
            .any(|p| p.starts_with("pkg:deb/debian/libc6@2.36-9%2Bdeb12u13?")),
        "{purls:?}"
    );
    assert!(
        !purls
            .iter()
            .any(|p| p.starts_with("pkg:deb/debian/libc6@2.36-9%2Bdeb12u7?")),
        "{purls:?}"
    );
    assert!(
        purls
            .iter()
            .any(|p| p.starts_with("pkg:deb/debian/libssl3@")),
        "{purls:?}"
    );

    let text = vm_export("spdx");
    validate_spdx(&tmp.path().join("vm.spdx.json"), &text);
    assert!(
        text.contains("\"primaryPackagePurpose\": \"FILE\""),
        "{text}"
    );
    assert!(text.contains("linux-image-6.1.0-40-cloud-amd64"), "{text}");
}
