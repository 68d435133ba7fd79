//! The state directory is private to its owner (issue #12 §4): created 0700 with the
//! database 0600, tightened when it was readable by others, refused when others can write
//! to it.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn drover(state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_drover"))
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config"))
        .arg("--state")
        .arg(state)
        .args(["builds", "hello"])
        .output()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_new_state_directory_and_its_database_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let out = drover(&state);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&state), 0o700);
    for d in ["bases", "images", "tmp", "builds"] {
        assert_eq!(mode(&state.join(d)), 0o700, "{d}");
    }
    for f in ["drover.db", "drover.db-wal", "drover.db-shm"] {
        let p = state.join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
}

#[test]
fn a_readable_state_directory_is_tightened_and_a_writable_one_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(drover(&state).status.success());
    assert_eq!(mode(&state), 0o700);
    std::fs::set_permissions(
        state.join("drover.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    assert!(drover(&state).status.success());
    assert_eq!(mode(&state.join("drover.db")), 0o600);

    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = drover(&state);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("world-writable") && err.contains("chmod 700"),
        "{err}"
    );
    assert_eq!(mode(&state), 0o777, "left as found for the operator to fix");
}
