//! Recovery of interrupted builds (issue #12 §5): only a build whose owning process is gone
//! may be marked `interrupted`. A build between its row's insert and its lock's `flock` holds
//! no lock yet; a concurrent `drover builds` (which recovers) must leave it alone.

use drover::build::recover_interrupted;
use drover::paths::Paths;
use drover::store::builds::BuildStatus;
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
    let store = Store::open(&paths.database()).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let id = store.create_build("hello", dead_pid).unwrap();
    std::fs::create_dir_all(paths.builds().join(id.to_string())).unwrap();

    let marked = recover_interrupted(&paths, &store).unwrap();

    assert_eq!(marked, vec![id]);
    assert_eq!(
        store.build(id).unwrap().unwrap().status,
        BuildStatus::Interrupted
    );
    assert!(!paths.builds().join(id.to_string()).exists());
}
