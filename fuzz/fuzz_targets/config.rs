//! `drover.toml` as text: `config::parse`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = drover::config::parse(Path::new("/nonexistent/drover.toml"), text);
    }
});
