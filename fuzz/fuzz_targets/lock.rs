//! A lock file (`config/stacks/NAME.lock`) as text: `lock::Lock::parse`; a lock that
//! parses must survive `to_toml` and parse again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let file = Path::new("/nonexistent/fuzz.lock");
        if let Ok(lock) = drover::lock::Lock::parse(text, file) {
            let again = lock.to_toml();
            drover::lock::Lock::parse(&again, file).expect("a written lock parses again");
        }
    }
});
