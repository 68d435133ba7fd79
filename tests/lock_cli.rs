//! Issue #11, the lock's bad-input contracts that need no mirror: a hand-edited lock is
//! refused at FILE:LINE:COL before any build is recorded, `--locked` refuses a missing or
//! stale lock, a lock that cannot be written is an error naming its path before any work,
//! `--update NAME` refuses a name the lock does not hold, `--reproduce` of an unknown build.
//! All exit 2 (bad input).

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_drover");

const STACK: &str = "name = \"tiny\"\npackages = [\"less\"]\n[base]\ndistro = \"debian\"\n\
                     suite = \"bookworm\"\nmirror = \"http://deb.debian.org/debian\"\n";

/// A config dir with one stack `tiny`, and a state dir.
struct Dirs {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    state: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config");
    std::fs::create_dir_all(config.join("stacks")).unwrap();
    std::fs::write(config.join("stacks/tiny.toml"), STACK).unwrap();
    let state = tmp.path().join("state");
    Dirs {
        _tmp: tmp,
        config,
        state,
    }
}

fn drover(d: &Dirs, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(&d.config)
        .arg("--state")
        .arg(&d.state)
        .args(args)
        .output()
        .unwrap()
}

fn host_arch() -> String {
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A valid lock for `tiny` (its inputs hash is whatever `inputs` says).
fn lock_text(inputs: &str) -> String {
    let sha = "a".repeat(64);
    format!(
        "version = 1\nstack = \"tiny\"\narch = \"{arch}\"\nvariant = \"apt\"\ninputs = \"{inputs}\"\n\
         include = [\"less\"]\nrepository = [\n  {{ mirror = \"http://deb.debian.org/debian\", \
         suite = \"bookworm\", components = [\"main\"], date = \"\" }},\n]\npackage = [\n  \
         {{ name = \"less\", arch = \"{arch}\", version = \"590-2.1~deb12u2\", source = \"less\", \
         source_version = \"590-2.1~deb12u2\", mirror = \"http://deb.debian.org/debian\", \
         suite = \"bookworm\", sha256 = \"{sha}\", size = 10 }},\n]\n",
        arch = host_arch()
    )
}

fn assert_input_error(out: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
    err
}

fn no_builds(d: &Dirs) {
    let out = drover(d, &["builds", "tiny", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        v.as_array().is_none_or(|a| a.is_empty()),
        "a build was recorded: {v}"
    );
}

#[test]
fn a_hand_edited_lock_is_refused_at_its_line_and_column_before_any_build() {
    let d = dirs();
    let lock = d.config.join("stacks/tiny.lock");
    let text = lock_text("x").replace(&"a".repeat(64), "0123");
    std::fs::write(&lock, &text).unwrap();
    let line = text.lines().position(|l| l.contains("\"0123\"")).unwrap() + 1;
    for args in [
        &["build", "tiny"][..],
        &["lock", "tiny"],
        &["build", "tiny", "--locked"],
    ] {
        let out = drover(&d, args);
        assert_input_error(
            &out,
            &[
                &format!("{}:{line}:3:", lock.display()),
                "less",
                "64 hex digits",
                "hint:",
            ],
        );
    }
    no_builds(&d);
    // Nothing rewrote it.
    assert!(std::fs::read_to_string(&lock).unwrap().contains("\"0123\""));
}

#[test]
fn locked_refuses_a_missing_or_stale_lock() {
    let d = dirs();
    let out = drover(&d, &["build", "tiny", "--locked"]);
    assert_input_error(
        &out,
        &["tiny.lock does not exist", "--locked", "drover lock tiny"],
    );
    // A lock resolved for other inputs (here: before `less` was added) is stale.
    let stale = lock_text("0".repeat(64).as_str()).replace("include = [\"less\"]", "include = []");
    std::fs::write(d.config.join("stacks/tiny.lock"), &stale).unwrap();
    let out = drover(&d, &["build", "tiny", "--locked"]);
    assert_input_error(&out, &["out of date", "packages +less", "drover lock tiny"]);
    no_builds(&d);
    assert_eq!(
        std::fs::read_to_string(d.config.join("stacks/tiny.lock")).unwrap(),
        stale
    );
}

#[test]
fn update_refuses_a_package_the_lock_does_not_hold() {
    let d = dirs();
    std::fs::write(d.config.join("stacks/tiny.lock"), lock_text("x")).unwrap();
    let out = drover(&d, &["lock", "tiny", "--update", "lesss"]);
    assert_input_error(
        &out,
        &[
            "`lesss` is not a source or binary package",
            "drover manifest tiny",
        ],
    );
    // --security-only needs a check to know what is a security update.
    let out = drover(&d, &["lock", "tiny", "--update", "--security-only"]);
    assert_input_error(&out, &["never checked", "drover updates tiny"]);
}

#[test]
fn reproduce_of_an_unknown_build_is_bad_input() {
    let d = dirs();
    let out = drover(&d, &["build", "tiny", "--reproduce", "41"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("41"), "{err}");
    let out = drover(&d, &["build", "tiny", "--reproduce", "1", "--locked"]);
    assert_eq!(out.status.code(), Some(2), "conflicting flags");
}

/// A read-only config directory (a read-only bind mount in a private mount namespace: root
/// ignores mode bits) makes `build` fail before any work, naming the lock's path.
#[test]
fn an_unwritable_lock_is_an_error_naming_its_path_before_any_work() {
    if unsafe_euid() != 0 {
        eprintln!("skipped: needs root for a read-only bind mount");
        return;
    }
    let d = dirs();
    let stacks = d.config.join("stacks");
    let script = format!(
        "mount --bind {0} {0} && mount -o remount,bind,ro {0} && exec \"$@\"",
        shell(&stacks)
    );
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
            BIN,
        ])
        .arg("--config")
        .arg(&d.config)
        .arg("--state")
        .arg(&d.state)
        .args(["build", "tiny"])
        .output()
        .unwrap();
    let err = assert_input_error(
        &out,
        &["cannot write the lock", "tiny.lock", "not writable"],
    );
    assert!(!err.contains("mmdebstrap"), "{err}");
    no_builds(&d);
}

fn shell(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

fn unsafe_euid() -> u32 {
    // The effective uid from procfs (no libc dependency in tests).
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|s| s.parse().unwrap()))
        .unwrap()
}
