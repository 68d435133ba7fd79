//! A Packages index (deb822 paragraphs): `PackageIndex::add_packages` on text, and
//! `add_compressed` (gzip/xz by name) when the first byte picks a compression.
#![no_main]
use drover::debian::packages::{IndexOrigin, PackageIndex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let from = IndexOrigin {
        mirror: "http://deb.debian.org/debian",
        suite: "bookworm",
        family: "Debian",
    };
    let mut index = PackageIndex::new();
    match data.first() {
        Some(b'\x1f') => {
            let _ = index.add_compressed("Packages.gz", data, &from);
        }
        Some(b'\xfd') => {
            let _ = index.add_compressed("Packages.xz", data, &from);
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(data) {
                let _ = index.add_packages(text, &from);
                for line in text.lines().take(8) {
                    let _ = drover::debian::packages::parse_version(line);
                }
            }
        }
    }
    let _ = index.candidates("libc6", "amd64");
});
