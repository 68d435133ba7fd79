//! `drover diff` on a fixture state: two builds with real OCI archives (written by drover's
//! own image writer), the older one live, a stored changelog and feed CVEs. The OpenVEX
//! output is validated against the OpenVEX v0.2.0 JSON schema (`tests/schemas/`) by
//! python-jsonschema (installed by `.ci/setup`).

// Tests may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use drover::build::oci;
use drover::debian::changelog::Entry;
use drover::manifest::Component;
use drover::store::builds::Success;
use drover::store::Store;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_drover");

fn comp(name: &str, version: &str, source: &str) -> Component {
    Component {
        name: name.into(),
        version: version.into(),
        arch: "amd64".into(),
        source: source.into(),
        source_version: version.into(),
        suite: "bookworm-security".into(),
        origin: "http://deb.debian.org/debian-security".into(),
        installed_size_kib: Some(10),
    }
}

/// An image archive with a base layer and an app layer holding `server` = `body`.
fn image(dir: &Path, name: &str, body: &str, port: &str) -> (String, String) {
    let base = dir.join(format!("{name}-base"));
    std::fs::create_dir_all(base.join("etc")).unwrap();
    std::fs::write(base.join("etc/debian_version"), "12.8").unwrap();
    let app = dir.join(format!("{name}-app/srv/app"));
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("server"), body).unwrap();
    let l0 = oci::write_layer(
        &base,
        oci::LayerMode::Full,
        &[],
        &dir.join(format!("{name}.0")),
    )
    .unwrap();
    let l1 = oci::write_layer(
        &dir.join(format!("{name}-app")),
        oci::LayerMode::Full,
        &[],
        &dir.join(format!("{name}.1")),
    )
    .unwrap();
    let spec = oci::ImageSpec {
        entrypoint: vec!["/etc/drover/entrypoint".into()],
        env: vec![format!("PORT={port}")],
        ref_name: "drover/hello:test".into(),
        architecture: "amd64".into(),
        created: "2026-12-02T00:00:00Z".into(),
        ..Default::default()
    };
    let out = dir.join(format!("{name}.oci.tar"));
    let info = oci::write_archive(&[l0, l1], &spec, &out).unwrap();
    (info.digest, out.display().to_string())
}

/// State: build A (live, release 1) with expat 2.5.0-1+deb12u1 and build B with +deb12u5
/// and a new package; B's app file and PORT differ. Returns (A, B).
fn state(root: &Path) -> (i64, i64) {
    let state = root.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut s = Store::open(&state.join("drover.db")).unwrap();
    let mut build = |name: &str, comps: &[Component], body: &str, port: &str| {
        let (digest, path) = image(root, name, body, port);
        let id = s.create_build("hello", std::process::id()).unwrap();
        s.finish_build_success(
            id,
            &Success {
                image_digest: &digest,
                image_path: &path,
                components: comps,
            },
        )
        .unwrap();
        id
    };
    let a = build(
        "a",
        &[
            comp("libexpat1", "2.5.0-1+deb12u1", "expat"),
            comp("zlib1g", "1:1.2.13.dfsg-1", "zlib"),
        ],
        "v1",
        "8080",
    );
    let b = build(
        "b",
        &[
            comp("libexpat1", "2.5.0-1+deb12u5", "expat"),
            comp("zlib1g", "1:1.2.13.dfsg-1", "zlib"),
            comp("curl", "7.88.1-10+deb12u8", "curl"),
        ],
        "v2",
        "9090",
    );
    let entry = |v: &str, cves: &[&str]| Entry {
        version: v.into(),
        distributions: "bookworm-security".into(),
        urgency: "high".into(),
        date: String::new(),
        cves: cves.iter().map(|c| c.to_string()).collect(),
        advisories: Vec::new(),
        text: String::new(),
    };
    s.put_changelog(
        "expat",
        "2.5.0-1+deb12u5",
        &[
            entry("2.5.0-1+deb12u5", &["CVE-2025-3"]),
            entry("2.5.0-1+deb12u2", &["CVE-2025-1", "CVE-2025-2"]),
            entry("2.5.0-1+deb12u1", &["CVE-2024-9"]),
        ],
    )
    .unwrap();
    let digest = s.build(a).unwrap().unwrap().image_digest.unwrap();
    let r = s
        .create_release("hello", a, &digest, 1, "op", None)
        .unwrap();
    s.mark_release_live("hello", r).unwrap();
    (a, b)
}

fn drover(root: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
        .arg("--state")
        .arg(root.join("state"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn diff_of_the_live_release_and_the_newest_build() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = state(tmp.path());

    // Default: live release -> newest build.
    let o = drover(tmp.path(), &["diff", "hello"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains(&format!(
            "build #{a} (release 1) -> build #{b}: 2 packages change, fixes 3 CVEs, undoes 0, \
             1 app file, image config"
        )),
        "{t}"
    );
    assert!(
        t.contains("expat") && t.contains("upgraded") && t.contains("CVE-2025-1"),
        "{t}"
    );
    assert!(t.contains("curl") && t.contains("added"), "{t}");
    assert!(t.contains("PORT: 8080 -> 9090"), "{t}");
    assert!(t.contains("/srv/app/server"), "{t}");

    let o = drover(
        tmp.path(),
        &["--json", "diff", "hello", "r1", &b.to_string()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let d: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["a"]["build"], a);
    assert_eq!(d["a"]["release"], 1);
    assert_eq!(d["b"]["build"], b);
    assert_eq!(
        d["cves_fixed"],
        serde_json::json!(["CVE-2025-1", "CVE-2025-2", "CVE-2025-3"])
    );
    let expat = d["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["source"] == "expat")
        .unwrap();
    assert_eq!(expat["change"], "upgraded");
    assert_eq!(expat["packages"][0]["old"], "2.5.0-1+deb12u1");
    assert_eq!(d["image"]["files"][0]["path"], "srv/app/server");
    assert_eq!(d["image"]["files"][0]["change"], "changed");

    // Backwards: a downgrade that undoes the fixes.
    let o = drover(
        tmp.path(),
        &["diff", "hello", &b.to_string(), &a.to_string()],
    );
    let t = text(&o);
    assert!(
        t.contains("fixes 0 CVEs, undoes 3") && t.contains("DOWNGRADED"),
        "{t}"
    );
}

#[test]
fn openvex_output_is_valid_against_the_openvex_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = state(tmp.path());
    let o = drover(tmp.path(), &["diff", "hello", "--format", "openvex"]);
    assert!(o.status.success(), "{}", text(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let file = tmp.path().join("vex.json");
    std::fs::write(&file, &o.stdout).unwrap();
    let schema =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/openvex_json_schema_0.2.0.json");
    let script = r#"
import json, sys
try:
    from jsonschema import Draft202012Validator
except ImportError:
    print("python-jsonschema is missing: pip install jsonschema (see .ci/setup)"); sys.exit(3)
schema = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
Draft202012Validator.check_schema(schema)
errors = list(Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).iter_errors(doc))
for e in errors:
    print(list(e.absolute_path), e.message)
sys.exit(1 if errors else 0)
"#;
    let run = |f: &Path| {
        Command::new("python3")
            .args(["-c", script])
            .arg(&schema)
            .arg(f)
            .output()
            .expect("python3")
    };
    let v = run(&file);
    assert_ne!(v.status.code(), Some(3), "{}", text(&v));
    assert!(v.status.success(), "invalid OpenVEX: {}\n{doc:#}", text(&v));
    // The validator is not a rubber stamp: a statement without a status fails it.
    let mut broken = doc.clone();
    broken["statements"][0]
        .as_object_mut()
        .unwrap()
        .remove("status");
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&broken).unwrap()).unwrap();
    assert_eq!(run(&bad).status.code(), Some(1));

    let st = doc["statements"].as_array().unwrap();
    let cves: Vec<&str> = st
        .iter()
        .map(|s| s["vulnerability"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(cves, ["CVE-2025-1", "CVE-2025-2", "CVE-2025-3"]);
    assert!(st.iter().all(|s| s["status"] == "fixed"));
    assert!(st[0]["status_notes"]
        .as_str()
        .unwrap()
        .contains(&format!("build {a} to build {b}")));

    // Nothing fixed the other way round: no empty document, a clear error.
    let o = drover(
        tmp.path(),
        &[
            "diff",
            "hello",
            &b.to_string(),
            &a.to_string(),
            "--format",
            "openvex",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("fixes no CVE relative to build"),
        "{}",
        text(&o)
    );
}

#[test]
fn sides_that_do_not_exist_are_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    state(tmp.path());
    for (args, want) in [
        (vec!["diff", "hello", "r9"], "has no release 9"),
        (vec!["diff", "hello", "x7"], "names no build or release"),
        (
            vec!["diff", "hello", "live", "999999"],
            "there is no build 999999",
        ),
        (vec!["diff", "nosuch"], "nosuch"),
    ] {
        let o = drover(tmp.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
}

/// Issue #13 polish: `drover builds` marks the build that runs now (table LIVE column,
/// JSON `live_release`).
#[test]
fn builds_mark_the_live_build() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = state(tmp.path());
    let o = drover(tmp.path(), &["--json", "builds", "hello"]);
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let live_of = |id: i64| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["live_release"]
            .clone()
    };
    assert_eq!(live_of(a), 1);
    assert_eq!(live_of(b), Value::Null);
    let t = text(&drover(tmp.path(), &["builds", "hello"]));
    let line = t.lines().find(|l| l.starts_with(&a.to_string())).unwrap();
    assert!(line.contains(" #1 "), "{t}");
    assert!(t.lines().next().unwrap().contains("LIVE"), "{t}");
}

/// Issue #13 polish: `drover builds` marks the builds that applied updates (their recorded
/// lock moved packages against the build before: table UPDATES `applied N`, JSON
/// `applied_updates`).
#[test]
fn builds_mark_the_builds_that_applied_updates() {
    use drover::lock::{Lock, LockedPackage, LockedRepo};
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = state(tmp.path());
    let lock = |expat: &str| {
        Lock {
            version: drover::lock::LOCK_VERSION,
            stack: "hello".into(),
            arch: "amd64".into(),
            variant: "apt".into(),
            inputs: "ab".repeat(32),
            include: vec![],
            repositories: vec![LockedRepo {
                mirror: "http://deb.debian.org/debian".into(),
                suite: "bookworm".into(),
                components: vec!["main".into()],
                date: String::new(),
            }],
            packages: vec![LockedPackage {
                name: "libexpat1".into(),
                arch: "amd64".into(),
                version: expat.into(),
                source: "expat".into(),
                source_version: expat.into(),
                mirror: "http://deb.debian.org/debian".into(),
                suite: "bookworm".into(),
                sha256: "0".repeat(64),
                size: 1000,
            }],
        }
        .to_toml()
    };
    let s = Store::open(&tmp.path().join("state/drover.db")).unwrap();
    s.set_build_lock(a, &lock("2.5.0-1+deb12u1")).unwrap();
    s.set_build_lock(b, &lock("2.5.0-1+deb12u2")).unwrap();
    drop(s);
    let o = drover(tmp.path(), &["--json", "builds", "hello"]);
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let applied_of = |id: i64| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["applied_updates"]
            .clone()
    };
    assert_eq!(applied_of(b), 1);
    assert_eq!(applied_of(a), Value::Null);
    let t = text(&drover(tmp.path(), &["builds", "hello"]));
    assert!(t.lines().next().unwrap().contains("UPDATES"), "{t}");
    let line = |id: i64| t.lines().find(|l| l.starts_with(&id.to_string())).unwrap();
    assert!(line(b).contains("applied 1"), "{t}");
    assert!(!line(a).contains("applied"), "{t}");
}

/// Issue #13: `drover releases STACK --release N` prints one release in detail; a release
/// that does not exist is bad input.
#[test]
fn release_detail() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = state(tmp.path());
    let o = drover(tmp.path(), &["releases", "hello", "--release", "1"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("release     #1 of hello: live"), "{t}");
    assert!(t.contains(&format!("build       #{a}")), "{t}");
    assert!(t.contains("by          op"), "{t}");
    let o = drover(
        tmp.path(),
        &["--json", "releases", "hello", "--release", "1"],
    );
    let d: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["release"]["build_id"], a);
    assert!(d["events"].as_array().unwrap().is_empty());
    let o = drover(tmp.path(), &["releases", "hello", "--release", "7"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("has no release 7"));
}
