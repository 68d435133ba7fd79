//! Parsing and validation of stack files (TOML) with `FILE:LINE:COL` diagnostics.
//!
//! The document is parsed with [`toml::de::DeTable`], which keeps the byte span of every key
//! and value, and then walked by hand so that *every* semantic problem in a file is reported
//! (not just the first one) and each report points at the exact key or value at fault.
//! A TOML syntax error stops the walk: only that error is reported.
//!
//! This module holds the entry point ([`parse_stack`]), the top-level walk and the name rules;
//! each table's validator is in `stack/sections/`, and reading files from disk in `stack/load.rs`.

use std::fs;
use std::path::{Component, Path, PathBuf};

use super::diag::Diagnostic;
use super::sections::app::validate_app;
use super::sections::base::validate_base;
use super::sections::data::validate_data;
use super::sections::deploy::validate_deploy;
use super::sections::deps::validate_deps;
use super::sections::health::validate_health;
use super::sections::links::validate_links;
use super::sections::risks::warn_risks;
use super::sections::scripts::validate_scripts;
use super::sections::top::{
    validate_env, validate_packages, validate_port, validate_protocol, validate_secrets,
    validate_user,
};
use super::sections::track::validate_track;
use super::sections::vm::validate_vm;
use super::toml_check::{Checker, Tbl};
use super::Stack;

/// Distributions accepted in `[base] distro`.
pub const SUPPORTED_DISTROS: &[&str] = &["debian"];

/// mmdebstrap variants accepted in `[base] variant` (see `mmdebstrap(1)`, `--variant`).
pub const VARIANTS: &[&str] = &[
    "extract",
    "custom",
    "essential",
    "apt",
    "required",
    "minbase",
    "buildd",
    "important",
    "debootstrap",
    "standard",
];

/// Language registries accepted in `[track] registries`.
pub const REGISTRIES: &[&str] = &["pypi", "npm", "crates"];

/// Longest accepted stack name, in characters (a DNS label).
pub const MAX_STACK_NAME_LEN: usize = 63;

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "packages",
    "port",
    "protocol",
    "user",
    "secrets",
    "base",
    "app",
    "scripts",
    "env",
    "health",
    "data",
    "track",
    "deploy",
    "links",
    "deps",
    "vm",
];

/// Whether `s` is a valid stack name: `[a-z0-9][a-z0-9-]*`, at most
/// [`MAX_STACK_NAME_LEN`] characters.
pub fn is_valid_stack_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.len() <= MAX_STACK_NAME_LEN
}

/// Whether `s` is a valid Debian package name (Debian Policy §5.6.1): only lowercase
/// letters, digits, `+`, `-` and `.`; at least two characters; starting with an
/// alphanumeric character.
pub fn is_valid_package_name(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.')
        })
}

/// Whether `s` is a valid environment variable name as drover accepts it: `[A-Z_][A-Z0-9_]*`.
pub fn is_valid_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Lexically normalise an absolute path (drop `.`, resolve `..`) for messages.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `config_dir/rel` as an absolute, lexically normalised path (symlinks are not resolved).
pub(super) fn resolve(config_dir: &Path, rel: &str) -> PathBuf {
    let base = fs::canonicalize(config_dir)
        .or_else(|_| std::path::absolute(config_dir))
        .unwrap_or_else(|_| config_dir.to_path_buf());
    normalize(&base.join(rel))
}

/// Validate the TOML text `src` of the stack file `file` (used for messages and for the
/// name-equals-file-stem check; it is not read). `config_dir` resolves relative app and
/// script paths, which are checked on disk.
///
/// Errors: every problem found, sorted by position. A TOML syntax error is reported alone.
/// Warnings are dropped; [`check_stack`] returns them too.
pub fn parse_stack(file: &Path, src: &str, config_dir: &Path) -> Result<Stack, Vec<Diagnostic>> {
    check_stack(file, src, config_dir).0
}

/// [`parse_stack`], plus the warnings (legitimate but risky values, each a [`Diagnostic`]
/// of [`Severity::Warning`](super::Severity::Warning), sorted by position), which are
/// found whether or not the file has errors.
pub fn check_stack(
    file: &Path,
    src: &str,
    config_dir: &Path,
) -> (Result<Stack, Vec<Diagnostic>>, Vec<Diagnostic>) {
    let mut chk = Checker::new(file, src);
    let Some(doc) = chk.parse() else {
        return (Err(chk.into_diagnostics()), Vec::new());
    };
    let root = chk.root(&doc);
    let stack = validate_stack(&mut chk, &root, file, config_dir);
    let warnings = chk.take_warnings();
    let result = match stack {
        Some(s) if !chk.has_errors() => Ok(s),
        _ => {
            if !chk.has_errors() {
                chk.error(
                    &(0..0),
                    "invalid stack file",
                    "this is a drover bug: the stack was rejected without a reason",
                );
            }
            Err(chk.into_diagnostics())
        }
    };
    (result, warnings)
}

fn validate_stack(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
    file: &Path,
    config_dir: &Path,
) -> Option<Stack> {
    chk.check_keys(root, TOP_KEYS);

    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let name_example = format!("name = \"{}\"", if stem.is_empty() { "web" } else { stem });
    let name = chk.string(root, "name", &name_example);
    let name = chk
        .required(root, "name", name, &name_example)
        .map(|(name, span)| {
            if !is_valid_stack_name(&name) {
                chk.error(
                    &span,
                    format!("invalid stack name `{name}`"),
                    format!(
                        "use lowercase letters, digits and '-', starting with a letter or digit, \
                     at most {MAX_STACK_NAME_LEN} characters (e.g. `web-api`)"
                    ),
                );
            } else if name != stem {
                chk.error(
                    &span,
                    format!(
                        "stack name `{name}` does not match the file name `{}`",
                        file.file_name()
                            .map(|f| f.to_string_lossy())
                            .unwrap_or_default()
                    ),
                    format!("rename the file to `{name}.toml`, or set `name = \"{stem}\"`"),
                );
            }
            name
        });

    let description = chk
        .string(
            root,
            "description",
            "description = \"What this stack does\"",
        )
        .present()
        .map(|(d, _)| d)
        .unwrap_or_default();

    let packages = validate_packages(chk, root);
    let port = validate_port(chk, root);
    let protocol = validate_protocol(chk, root);
    let user = validate_user(chk, root);
    let secrets = validate_secrets(chk, root);
    let base = validate_base(chk, root);
    let app = validate_app(chk, root, config_dir);
    let scripts = validate_scripts(chk, root, config_dir);
    let env = validate_env(chk, root, &secrets);
    let health = validate_health(chk, root, protocol);
    let data = validate_data(chk, root, app.as_ref());
    let deploy = validate_deploy(chk, root, data.as_ref(), protocol);
    warn_risks(chk, root, protocol, &deploy);
    let track = validate_track(chk, root, base.as_ref(), config_dir);
    let own_vars: Vec<String> = env.keys().cloned().chain(secrets.iter().cloned()).collect();
    let links = validate_links(chk, root, name.as_deref(), config_dir, &own_vars);
    let deps = validate_deps(chk, root, app.as_ref(), &scripts);
    let vm = validate_vm(chk, root);

    let (Some(name), Some(base), Some(track)) = (name, base, track) else {
        return None;
    };
    Some(Stack {
        name,
        description,
        base,
        packages,
        app,
        scripts,
        env,
        secrets,
        port,
        protocol,
        user,
        health,
        data,
        deploy,
        track,
        links,
        deps,
        vm,
        file: file.to_path_buf(),
    })
}
