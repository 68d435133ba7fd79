//! A stack file (`config/stacks/NAME.toml`) as text: `stack::parse::parse_stack`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = drover::stack::parse::parse_stack(
            Path::new("/nonexistent/stacks/fuzz.toml"),
            text,
            Path::new("/nonexistent"),
        );
    }
});
