//! Parsing and validation of stack files (TOML) with `FILE:LINE:COL` diagnostics.

use std::fmt;
use std::path::{Path, PathBuf};

use super::Stack;

/// One problem found in a stack file, located by 1-based line and column (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Load and validate one stack file. `config_dir` resolves relative app paths.
///
/// Errors: every problem found, each with its location (not just the first).
pub fn load_file(path: &Path, config_dir: &Path) -> Result<Stack, Vec<Diagnostic>> {
    let _ = (path, config_dir);
    todo!("stack parsing")
}

/// Load every `stacks/*.toml` under `config_dir`, sorted by name.
/// Returns the valid stacks and the diagnostics of the invalid ones.
pub fn load_all(config_dir: &Path) -> (Vec<Stack>, Vec<Diagnostic>) {
    let _ = config_dir;
    todo!("stack parsing")
}
