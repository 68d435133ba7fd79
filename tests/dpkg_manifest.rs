//! The dpkg database reader and the origin mapping, on fixtures (no network).

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use drover::manifest::dpkg::{parse_status, read_db, split_source};
use drover::manifest::origin::{uri_to_filename, OriginIndex};
use drover::manifest::rootfs::RootView;
use drover::stack::AptSource;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

fn status_text() -> String {
    std::fs::read_to_string(fixture("dpkg/status")).unwrap()
}

#[test]
fn multi_arch_twins_are_two_entries() {
    let pkgs = parse_status(&status_text(), "status").unwrap();
    let libc: Vec<_> = pkgs.iter().filter(|p| p.name == "libc6").collect();
    assert_eq!(libc.len(), 2);
    assert_eq!(libc[0].arch, "amd64");
    assert_eq!(libc[1].arch, "i386");
    assert_eq!(libc[0].installed_size_kib, Some(12988));
    assert_eq!(libc[1].installed_size_kib, Some(12340));
}

#[test]
fn source_with_version_is_split() {
    let pkgs = parse_status(&status_text(), "status").unwrap();
    let ssl = pkgs.iter().find(|p| p.name == "libssl3").unwrap();
    assert_eq!(ssl.source, "openssl");
    assert_eq!(ssl.source_version, "3.0.15-1~deb12u1");
    // Source version differs from the binary version (epoch on the binary).
    let gcc = pkgs.iter().find(|p| p.name == "libgcc-s1").unwrap();
    assert_eq!(gcc.version, "1:12.2.0-14+deb12u1");
    assert_eq!(gcc.source, "gcc-12");
    assert_eq!(gcc.source_version, "12.2.0-14+deb12u1");
}

#[test]
fn source_without_version_takes_the_binary_version() {
    let pkgs = parse_status(&status_text(), "status").unwrap();
    let libc = pkgs.iter().find(|p| p.name == "libc6").unwrap();
    assert_eq!(libc.source, "glibc");
    assert_eq!(libc.source_version, "2.36-9+deb12u14");
}

#[test]
fn missing_source_defaults_to_the_binary() {
    let pkgs = parse_status(&status_text(), "status").unwrap();
    let bf = pkgs.iter().find(|p| p.name == "base-files").unwrap();
    assert_eq!(
        (bf.source.as_str(), bf.source_version.as_str()),
        ("base-files", "12.4+deb12u13")
    );
    let tz = pkgs.iter().find(|p| p.name == "tzdata").unwrap();
    assert_eq!(tz.arch, "all");
}

#[test]
fn only_installed_packages_are_listed() {
    let pkgs = parse_status(&status_text(), "status").unwrap();
    let names: Vec<_> = pkgs
        .iter()
        .map(|p| format!("{}:{}", p.name, p.arch))
        .collect();
    assert_eq!(
        names,
        [
            "libc6:amd64",
            "libc6:i386",
            "libssl3:amd64",
            "python3.11-minimal:amd64",
            "libgcc-s1:amd64",
            "base-files:amd64",
            "tzdata:all"
        ]
    );
}

#[test]
fn split_source_edge_cases() {
    assert_eq!(split_source(None, "a", "1"), ("a".into(), "1".into()));
    assert_eq!(split_source(Some("  "), "a", "1"), ("a".into(), "1".into()));
    assert_eq!(
        split_source(Some("b (2:3-4)"), "a", "1"),
        ("b".into(), "2:3-4".into())
    );
    assert_eq!(split_source(Some("b"), "a", "1"), ("b".into(), "1".into()));
}

#[test]
fn a_paragraph_without_version_is_an_error_naming_the_package() {
    let text = "Package: broken\nStatus: install ok installed\nArchitecture: amd64\n";
    let err = parse_status(text, "var/lib/dpkg/status")
        .unwrap_err()
        .to_string();
    assert!(err.contains("var/lib/dpkg/status"), "{err}");
    assert!(err.contains("package broken"), "{err}");
    assert!(err.contains("no Version field"), "{err}");
}

#[test]
fn status_d_layout_is_read_and_md5sums_skipped() {
    let view = RootView::Dir(fixture("dpkg/distroless"));
    let pkgs = read_db(&view).unwrap();
    let names: Vec<_> = pkgs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["libssl3", "tzdata"]);
    assert_eq!(pkgs[0].source, "openssl");
}

#[test]
fn no_dpkg_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = read_db(&RootView::Dir(dir.path().to_path_buf()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no dpkg database"), "{err}");
}

fn mknod_whiteout(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) };
    assert_eq!(
        rc,
        0,
        "mknod {} failed (these tests run as root)",
        p.display()
    );
}

#[test]
fn overlay_view_honours_whiteouts_and_opaque_dirs() {
    let t = tempfile::tempdir().unwrap();
    let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
    for d in ["a", "gone", "opaque"] {
        std::fs::create_dir_all(lower.join(d)).unwrap();
    }
    std::fs::write(lower.join("a/keep"), "lower").unwrap();
    std::fs::write(lower.join("a/deleted"), "x").unwrap();
    std::fs::write(lower.join("a/changed"), "old").unwrap();
    std::fs::write(lower.join("gone/file"), "x").unwrap();
    std::fs::write(lower.join("opaque/old"), "x").unwrap();
    std::fs::create_dir_all(upper.join("a")).unwrap();
    std::fs::create_dir_all(upper.join("opaque")).unwrap();
    std::fs::write(upper.join("a/changed"), "new").unwrap();
    std::fs::write(upper.join("a/added"), "new").unwrap();
    std::fs::write(upper.join("opaque/new"), "x").unwrap();
    mknod_whiteout(&upper.join("a/deleted"));
    mknod_whiteout(&upper.join("gone"));
    xattr::set(upper.join("opaque"), "trusted.overlay.opaque", b"y").unwrap();
    let v = RootView::stacked(lower.clone(), [upper.clone()]);
    assert_eq!(v.list("a"), ["added", "changed", "keep"]);
    assert_eq!(v.read("a/changed").unwrap().unwrap(), b"new");
    assert_eq!(v.read("a/keep").unwrap().unwrap(), b"lower");
    assert!(v.resolve("a/deleted").is_none());
    assert!(v.resolve("gone/file").is_none());
    assert!(v.list("gone").is_empty());
    assert_eq!(v.list("opaque"), ["new"]);
    assert!(v.resolve("opaque/old").is_none());

    // A third layer on top (base, deps, app): what the middle layer deleted stays deleted
    // unless the top one brings it back; the top's whiteouts hide both layers below.
    let top = t.path().join("top");
    std::fs::create_dir_all(top.join("a")).unwrap();
    std::fs::write(top.join("a/deleted"), "back").unwrap();
    mknod_whiteout(&top.join("a/added"));
    let v3 = RootView::stacked(lower, [upper, top]);
    assert_eq!(v3.list("a"), ["changed", "deleted", "keep"]);
    assert_eq!(v3.read("a/deleted").unwrap().unwrap(), b"back");
    assert_eq!(v3.read("a/keep").unwrap().unwrap(), b"lower");
    assert!(v3.resolve("a/added").is_none());
    assert!(v3.resolve("gone/file").is_none());
    assert_eq!(v3.list("opaque"), ["new"]);
}

#[test]
fn uri_to_filename_matches_apt() {
    assert_eq!(
        uri_to_filename("http://deb.debian.org/debian/dists/bookworm/"),
        "deb.debian.org_debian_dists_bookworm_"
    );
    assert_eq!(
        uri_to_filename("https://user:pw@example.com/my_repo/dists/x/"),
        "example.com_my%5frepo_dists_x_"
    );
}

#[test]
fn origins_come_from_the_first_source_holding_the_version() {
    let t = tempfile::tempdir().unwrap();
    let lists = t.path().join("var/lib/apt/lists");
    std::fs::create_dir_all(&lists).unwrap();
    std::fs::create_dir_all(t.path().join("var/lib/dpkg")).unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(t.path().join("var/lib/dpkg/status"), status_text()).unwrap();
    std::fs::write(
        lists.join("deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages"),
        "Package: libc6\nVersion: 2.36-9+deb12u14\nArchitecture: amd64\n\n\
         Package: libssl3\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\n\n\
         Package: tzdata\nVersion: 2025b-0+deb12u2\nArchitecture: all\n",
    )
    .unwrap();
    std::fs::write(
        lists.join(
            "deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages",
        ),
        "Package: libssl3\nVersion: 3.0.15-1~deb12u1\nArchitecture: amd64\n\n\
         Package: libc6\nVersion: 2.36-9+deb12u14\nArchitecture: amd64\n",
    )
    .unwrap();
    std::fs::write(
        lists.join("packages.example.com_vendor_dists_stable_main_binary-amd64_Packages"),
        "Package: base-files\nVersion: 12.4+deb12u13\nArchitecture: amd64\n",
    )
    .unwrap();
    let sources = vec![
        AptSource {
            mirror: "http://deb.debian.org/debian".into(),
            suite: "bookworm".into(),
            components: vec!["main".into()],
        },
        AptSource {
            mirror: "http://deb.debian.org/debian-security".into(),
            suite: "bookworm-security".into(),
            components: vec!["main".into()],
        },
    ];
    let view = RootView::Dir(t.path().to_path_buf());
    let comps = drover::manifest::capture(&view, &sources).unwrap();
    let get = |n: &str, a: &str| comps.iter().find(|c| c.name == n && c.arch == a).unwrap();
    // In both suites: the first configured source wins.
    assert_eq!(get("libc6", "amd64").suite, "bookworm");
    // Only the security suite has this version.
    assert_eq!(get("libssl3", "amd64").suite, "bookworm-security");
    assert_eq!(
        get("libssl3", "amd64").origin,
        "http://deb.debian.org/debian-security"
    );
    assert_eq!(get("tzdata", "all").suite, "bookworm");
    // A repository the stack does not configure (added by a build script).
    assert_eq!(
        get("base-files", "amd64").origin,
        "http://packages.example.com/vendor"
    );
    assert_eq!(get("base-files", "amd64").suite, "stable");
    // No list has the i386 twin: it is local.
    assert_eq!(get("libc6", "i386").origin, "local");
    assert_eq!(get("libc6", "i386").suite, "");
    let idx = OriginIndex::from_lists(&view, &sources, &read_db(&view).unwrap()).unwrap();
    assert!(idx
        .lookup("python3.11-minimal", "3.11.2-6+deb12u6", "amd64")
        .is_none());
}
