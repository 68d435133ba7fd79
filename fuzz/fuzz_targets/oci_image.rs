//! A whole OCI image-layout tar (`*.oci.tar`: index.json, manifest, config, layers) as a
//! deploy reads it: `deploy::unpack::check_image` on a temporary file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir =
        tempfile::tempdir_in(std::env::var_os("FUZZ_TMP").unwrap_or_else(|| "/dev/shm".into()))
            .expect("a temporary directory");
    let archive = dir.path().join("image.oci.tar");
    std::fs::write(&archive, data).unwrap();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let _ = drover::deploy::unpack::check_image(&archive, &scratch);
});
