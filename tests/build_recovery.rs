//! Recovery of interrupted builds (issue #12 §5): only a build whose owning process is gone
//! may be marked `interrupted`. A build between its row's insert and its lock's `flock` holds
//! no lock yet; a concurrent `drover builds` (which recovers) must leave it alone.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use drover::build::recover_interrupted;
use drover::paths::Paths;
use drover::store::builds::{BuildStatus, LogLine};
use drover::store::Store;

fn state() -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths {
        config: dir.path().join("config"),
        state: dir.path().join("state"),
    };
    paths.ensure_state().unwrap();
    (dir, paths)
}

#[test]
fn a_running_build_without_its_lock_yet_is_not_recovered_while_its_process_lives() {
    let (_dir, paths) = state();
    let store = Store::open(&paths.database()).unwrap();
    // This test process owns the build; its work dir and lock do not exist yet, as in the
    // window before `flock` (widened with strace in the attack trial).
    let id = store.create_build("hello", std::process::id()).unwrap();
    let work = paths.builds().join(id.to_string());
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("marker"), "work in progress").unwrap();

    let marked = recover_interrupted(&paths, &store).unwrap();

    assert!(marked.is_empty(), "marked {marked:?}");
    let b = store.build(id).unwrap().unwrap();
    assert_eq!(b.status, BuildStatus::Running);
    assert!(
        work.join("marker").is_file(),
        "the live build's work was deleted"
    );
}

#[test]
fn a_build_whose_process_is_gone_is_recovered() {
    let (_dir, paths) = state();
    let mut store = Store::open(&paths.database()).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let id = store.create_build("hello", dead_pid).unwrap();
    std::fs::create_dir_all(paths.builds().join(id.to_string())).unwrap();
    let logged = [
        ("drover", "== base: OS and packages"),
        ("drover", "== app: files and build script"),
        ("stdout", "compiling"),
    ];
    let lines: Vec<LogLine> = logged
        .iter()
        .enumerate()
        .map(|(i, (stream, line))| LogLine {
            seq: i as i64,
            ts: format!("2026-01-01T12:00:0{i}.000Z"),
            stream: stream.to_string(),
            line: line.to_string(),
        })
        .collect();
    store.append_logs(id, &lines).unwrap();
    // A temporary keyring mmdebstrap left in STATE/tmp when it was killed.
    let gpghome = paths.tmp().join("mmdebstrap.gpghome.XyZ");
    std::fs::create_dir_all(&gpghome).unwrap();

    let marked = recover_interrupted(&paths, &store).unwrap();

    assert_eq!(marked, vec![id]);
    let b = store.build(id).unwrap().unwrap();
    assert_eq!(b.status, BuildStatus::Interrupted);
    // Issue #12 §6: the step it was in and the time it was killed (its last log line),
    // not the time the death was noticed.
    assert_eq!(b.failed_step.as_deref(), Some("app"));
    assert_eq!(b.finished_at.as_deref(), Some("2026-01-01T12:00:02.000Z"));
    assert!(!paths.builds().join(id.to_string()).exists());
    assert!(!gpghome.exists(), "mmdebstrap's keyring left behind");
}

#[test]
fn a_base_moved_aside_by_a_killed_refresh_is_put_back() {
    let (_dir, paths) = state();
    let store = Store::open(&paths.database()).unwrap();
    // An older drover moved the cached base aside, then was killed before the second rename.
    let old = paths.bases().join(".old-abc123-4242");
    std::fs::create_dir_all(old.join("rootfs")).unwrap();
    std::fs::write(old.join("base.json"), "{}").unwrap();

    recover_interrupted(&paths, &store).unwrap();

    assert!(paths.bases().join("abc123/base.json").is_file());
    assert!(!old.exists());
}
