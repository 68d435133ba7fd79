//! Diagnostics: one problem in a stack (or `drover.toml`) file, located by line and column,
//! and a collection of them that prints itself the way both front ends show it.

use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Severity {
    /// The file is refused: nothing loads it.
    #[default]
    Error,
    /// Legitimate but risky: the file loads, and `validate` and every build say so.
    Warning,
}

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
    /// Refused, or only warned about.
    pub severity: Severity,
}

impl Diagnostic {
    /// A diagnostic about a whole file (or a file that could not be read), located at 1:1.
    pub(crate) fn whole_file(
        file: &Path,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line: 1,
            col: 1,
            message: message.into(),
            hint: Some(hint.into()),
            severity: Severity::Error,
        }
    }
}

/// `FILE:LINE:COL: MESSAGE` (or `FILE: MESSAGE` when `line` is 0, i.e. no position), then
/// `\n  hint: HINT` when there is a hint; a warning's message starts with `warning: `, as
/// compilers print them.
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = match self.severity {
            Severity::Error => self.message.clone(),
            Severity::Warning => format!("warning: {}", self.message),
        };
        if self.line == 0 {
            // No position: the problem is the file's (or directory's) absence, not its text.
            write!(f, "{}: {message}", self.file.display())?;
        } else {
            write!(
                f,
                "{}:{}:{}: {message}",
                self.file.display(),
                self.line,
                self.col,
            )?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found while loading one or more files, in the order found (each file's
/// diagnostics sorted by position).
///
/// `Display` prints them one after another separated by newlines, as the CLI does;
/// [`Diagnostics::one_line`] joins them with `"; "` for a single status line, as the
/// console's jobs do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The diagnostics joined by `"; "` (each still carries its `\n  hint:` line).
    pub fn one_line(&self) -> String {
        self.joined("; ")
    }

    /// Each diagnostic's `Display` text, in order.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(|d| d.to_string()).collect()
    }

    fn joined(&self, sep: &str) -> String {
        self.lines().join(sep)
    }

    /// The diagnostics themselves.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }
}

impl From<Vec<Diagnostic>> for Diagnostics {
    fn from(v: Vec<Diagnostic>) -> Self {
        Diagnostics(v)
    }
}

impl From<&[Diagnostic]> for Diagnostics {
    fn from(v: &[Diagnostic]) -> Self {
        Diagnostics(v.to_vec())
    }
}

impl Deref for Diagnostics {
    type Target = [Diagnostic];
    fn deref(&self) -> &[Diagnostic] {
        &self.0
    }
}

/// The diagnostics separated by newlines: the text `drover build`/`validate` print.
impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.joined("\n"))
    }
}
