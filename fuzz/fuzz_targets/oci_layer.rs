//! One image layer tar as a deploy unpacks it (whiteouts, symlinks, traversal checks):
//! `deploy::unpack::apply_layer_tar` into a fresh temporary tree. The first byte picks
//! gzip or plain.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let dir =
        tempfile::tempdir_in(std::env::var_os("FUZZ_TMP").unwrap_or_else(|| "/dev/shm".into()))
            .expect("a temporary directory");
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let _ = drover::deploy::unpack::apply_layer_tar(bytes, mode & 1 == 1, &tree);
    // Nothing may land outside the tree.
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside,
        vec![std::ffi::OsString::from("tree")],
        "an entry escaped the tree"
    );
});
