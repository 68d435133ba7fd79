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

/// Run `prog` as nobody (uid and gid 65534, no supplementary groups). Through a shell:
/// setpriv's own exec of `prog` still passes directories a plain nobody cannot search.
fn as_nobody(prog: &Path) -> std::io::Result<Output> {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["/bin/sh", "-c", "exec \"$0\""])
        .arg(prog)
        .output()
}

/// A setuid-root copy of `id` at `dir/usr/bin/id-suid` (as an unpacked base holds `su`).
fn setuid_binary(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("usr/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let p = bin.join("id-suid");
    std::fs::copy("/usr/bin/id", &p).unwrap();
    std::os::unix::fs::chown(&p, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4755)).unwrap();
    p
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn nobody_cannot_run_the_setuid_binaries_of_unpacked_trees() {
    let tmp = tempfile::tempdir().unwrap();
    chmod(tmp.path(), 0o755);

    // A state directory drover created: the trees lie under a 0700 parent.
    let state = tmp.path().join("fresh");
    assert!(drover(&state).status.success());
    let base = setuid_binary(&state.join("bases/key/rootfs"));
    let out = as_nobody(&base).unwrap();
    assert!(!out.status.success(), "{out:?}");

    // A state directory that belongs to another user and is open (0755), with `bases` and
    // `rootfs` left 0755 by an older drover (root runs on someone's --state): drover makes
    // the directories holding the trees private even though it may not tighten the state
    // directory itself.
    let state = tmp.path().join("theirs");
    for d in ["bases/key/rootfs", "rootfs/0123/rootfs"] {
        std::fs::create_dir_all(state.join(d)).unwrap();
    }
    let base = setuid_binary(&state.join("bases/key/rootfs"));
    let unpacked = setuid_binary(&state.join("rootfs/0123/rootfs"));
    for d in ["", "bases", "rootfs"] {
        chmod(&state.join(d), 0o755);
    }
    std::os::unix::fs::chown(&state, Some(1234), Some(1234)).unwrap();
    // The hole this closes: before drover runs, nobody gets euid 0 from them.
    for p in [&base, &unpacked] {
        let out = as_nobody(p).unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("euid=0"),
            "precondition: {out:?}"
        );
    }
    let out = drover(&state);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&state), 0o755, "not ours: left as it is");
    for d in [
        "bases", "rootfs", "images", "builds", "tmp", "data", "repos", "logs",
    ] {
        assert_eq!(mode(&state.join(d)), 0o700, "{d}");
    }
    for p in [&base, &unpacked] {
        let out = as_nobody(p).unwrap();
        assert!(!out.status.success(), "nobody ran {}: {out:?}", p.display());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{out:?}"
        );
        assert_eq!(mode(p), 0o4755, "the image's own setuid bits are kept");
    }

    // A tree directory open to others that is not ours to tighten is refused.
    std::os::unix::fs::chown(state.join("rootfs"), Some(1234), Some(1234)).unwrap();
    chmod(&state.join("rootfs"), 0o755);
    let out = drover(&state);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("open to other users") && err.contains("chmod 700"),
        "{err}"
    );
}
