//! A Debian changelog (`debian/changelog`, deb-changelog(5)): `debian::changelog::parse`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = drover::debian::changelog::parse(text);
    }
});
