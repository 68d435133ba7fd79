//! Loading stacks from disk: one file, every `stacks/*.toml` of a config directory, or one
//! stack by name (with the available names when it is unknown).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::diag::{Diagnostic, Diagnostics};
use super::parse::{is_valid_stack_name, parse_stack};
use super::Stack;

/// Load and validate one stack file. `config_dir` resolves relative app and script paths.
///
/// Errors: every problem found, each with its location (not just the first); a file that
/// cannot be read (missing, unreadable, not UTF-8) gives one diagnostic at 1:1.
pub fn load_file(path: &Path, config_dir: &Path) -> Result<Stack, Vec<Diagnostic>> {
    match fs::read_to_string(path) {
        Ok(src) => parse_stack(path, &src, config_dir),
        Err(e) => Err(vec![Diagnostic::whole_file(
            path,
            format!("cannot read stack file: {e}"),
            "check that the file exists, is readable and is UTF-8 text",
        )]),
    }
}

/// [`load_file`], plus the file's warnings (see [`check_stack`](super::parse::check_stack)).
pub fn lint_file(
    path: &Path,
    config_dir: &Path,
) -> (Result<Stack, Vec<Diagnostic>>, Vec<Diagnostic>) {
    match fs::read_to_string(path) {
        Ok(src) => super::parse::check_stack(path, &src, config_dir),
        Err(_) => (load_file(path, config_dir), Vec::new()),
    }
}

/// `*.toml` files directly in `dir`, sorted by file name (hidden files skipped).
/// A missing directory gives an empty list.
fn stack_files(dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Diagnostic::whole_file(
                dir,
                format!("cannot list the stacks directory: {e}"),
                "check that the directory exists and is readable",
            ))
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            Diagnostic::whole_file(
                dir,
                format!("cannot list the stacks directory: {e}"),
                "check that the directory is readable",
            )
        })?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Load every `stacks/*.toml` under `config_dir`, sorted by name (hidden files are skipped).
/// Returns the valid stacks and the diagnostics of the invalid ones; a missing `stacks`
/// directory gives no stacks and no diagnostics.
pub fn load_all(config_dir: &Path) -> (Vec<Stack>, Vec<Diagnostic>) {
    let files = match stack_files(&config_dir.join("stacks")) {
        Ok(f) => f,
        Err(d) => return (Vec::new(), vec![d]),
    };
    let mut stacks = Vec::new();
    let mut diags = Vec::new();
    for f in files {
        match load_file(&f, config_dir) {
            Ok(s) => stacks.push(s),
            Err(d) => diags.extend(d),
        }
    }
    stacks.sort_by(|a, b| a.name.cmp(&b.name));
    (stacks, diags)
}

/// Load the stack `name` from `config_dir/stacks/NAME.toml`.
///
/// Errors: the diagnostics of that file; or, when `name` is not a valid stack name or
/// there is no such file, one diagnostic (at 1:1 of the expected file) saying the stack is
/// unknown, whose hint lists the available stack names.
pub fn load_named(config_dir: &Path, name: &str) -> Result<Stack, Vec<Diagnostic>> {
    let dir = config_dir.join("stacks");
    let path = dir.join(format!("{name}.toml"));
    if is_valid_stack_name(name) && path.exists() {
        return load_file(&path, config_dir);
    }
    let available: Vec<String> = stack_files(&dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    let hint = match (available.is_empty(), is_valid_stack_name(name)) {
        (true, true) => format!("no stacks are defined yet; create {}", path.display()),
        (true, false) => format!("no stacks are defined yet in {}", dir.display()),
        (false, true) => format!(
            "available stacks: {}; or create {} to define it",
            available.join(", "),
            path.display()
        ),
        (false, false) => format!("available stacks: {}", available.join(", ")),
    };
    // The stacks directory, without a position: the named file does not exist.
    Err(vec![Diagnostic {
        file: dir,
        line: 0,
        col: 0,
        message: format!("unknown stack `{name}`"),
        hint: Some(hint),
        severity: Default::default(),
    }])
}

/// Load the stack `name` from `config_dir/stacks/NAME.toml` for an operation on it (build,
/// export, update check, deploy): the one call both front ends make.
///
/// Errors: the same diagnostics as [`load_named`], as [`Diagnostics`] so that each front end
/// prints them with one call (`to_string()` in the CLI, [`Diagnostics::one_line`] in the
/// console's status line).
pub fn load_stack(config_dir: &Path, name: &str) -> Result<Stack, Diagnostics> {
    load_named(config_dir, name).map_err(Diagnostics::from)
}
