//! A binary package (deb(5)): `debian::deb::control_from_deb` and `changelog_from_deb`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = drover::debian::deb::control_from_deb(data, "fuzz.deb");
    let _ = drover::debian::deb::changelog_from_deb(data, "hello", "amd64", "fuzz.deb");
});
