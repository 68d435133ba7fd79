//! `[track].apt` entries accept `trusted` (waive the signature check, loudly) and
//! `signed_by` (the repository's keyring, relative to the config dir).

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use drover::stack::parse::parse_stack;
use drover::stack::RepoTrust;

const HEAD: &str = r#"name = "t"
packages = ["curl"]
[base]
distro = "debian"
suite = "bookworm"
mirror = "http://deb.debian.org/debian"
"#;

#[test]
fn trusted_and_signed_by_are_read() {
    let cfg = tempfile::tempdir().unwrap();
    let src = format!(
        "{HEAD}[track]\napt = [\n  {{ mirror = \"http://deb.debian.org/debian-security\", suite = \"bookworm-security\" }},\n  {{ mirror = \"http://vendor.example/apt\", suite = \"stable\", trusted = true }},\n  {{ mirror = \"http://other.example/apt\", suite = \"stable\", signed_by = \"keys/other.gpg\" }},\n]\n"
    );
    let s = parse_stack(Path::new("stacks/t.toml"), &src, cfg.path()).expect("valid");
    assert_eq!(s.track.apt.len(), 3);
    assert_eq!(s.track.trust.len(), 3);
    assert_eq!(s.track.trust[0], RepoTrust::default());
    assert!(s.track.trust[1].trusted);
    assert!(s.track.trust[1].signed_by.is_none());
    let key = s.track.trust[2].signed_by.as_ref().unwrap();
    assert!(
        key.is_absolute() && key.ends_with("keys/other.gpg"),
        "{key:?}"
    );
    assert!(!s.track.trust[2].trusted);
}

#[test]
fn default_tracking_is_verified() {
    let s = parse_stack(Path::new("stacks/t.toml"), HEAD, Path::new("/tmp")).expect("valid");
    assert_eq!(s.track.apt.len(), 2);
    assert!(s
        .track
        .trust
        .iter()
        .all(|t| !t.trusted && t.signed_by.is_none()));
}

#[test]
fn trusted_must_be_a_boolean() {
    let src = format!(
        "{HEAD}[track]\napt = [{{ mirror = \"http://vendor.example/apt\", suite = \"stable\", trusted = \"yes\" }}]\n"
    );
    let d = parse_stack(Path::new("stacks/t.toml"), &src, Path::new("/tmp")).unwrap_err();
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].line, 8);
    assert!(
        d[0].message.contains("`trusted`") && d[0].message.contains("a boolean"),
        "{}",
        d[0]
    );
    assert!(d[0].hint.as_deref().unwrap().contains("trusted = true"));
}
