//! A Release file (the verified text of InRelease): `debian::release::Release::parse`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(r) = drover::debian::release::Release::parse(text) {
            let _ = r.family();
            let _ = r.packages_index("main", "amd64");
        }
    }
});
