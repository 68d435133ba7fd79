//! Parsing and validation of stack files (TOML) with `FILE:LINE:COL` diagnostics.
//!
//! The document is parsed with [`toml::de::DeTable`], which keeps the byte span of every key
//! and value, and then walked by hand so that *every* semantic problem in a file is reported
//! (not just the first one) and each report points at the exact key or value at fault.
//! A TOML syntax error stops the walk: only that error is reported.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::de::DeValue;

use super::diag::Diagnostic;
use super::toml_check::{Checker, Field, Tbl};
use super::{
    App, AppSource, AptSource, AutoRebuild, Base, Data, Deploy, Distro, Health, RepoTrust, Scripts,
    Stack, Track,
};

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
    "secrets",
    "base",
    "app",
    "scripts",
    "env",
    "health",
    "data",
    "track",
    "deploy",
];
const BASE_KEYS: &[&str] = &[
    "distro",
    "suite",
    "mirror",
    "components",
    "variant",
    "extra_suites",
];
const SOURCE_KEYS: &[&str] = &["mirror", "suite", "components"];
const TRACK_SOURCE_KEYS: &[&str] = &["mirror", "suite", "components", "trusted", "signed_by"];
const APP_KEYS: &[&str] = &["path", "url", "sha256", "dest"];
const SCRIPT_KEYS: &[&str] = &["build", "boot", "run", "test"];
const SCRIPT_FILE_KEYS: &[&str] = &["file"];
const HEALTH_KEYS: &[&str] = &[
    "path",
    "interval",
    "timeout",
    "healthy_threshold",
    "unhealthy_threshold",
];
const DATA_KEYS: &[&str] = &["path"];
const DEPLOY_KEYS: &[&str] = &["keep_warm"];
const TRACK_KEYS: &[&str] = &["apt", "registries", "auto_rebuild"];

const DEFAULT_APP_DEST: &str = "/opt/app";
const DEFAULT_SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";

const PACKAGE_RULE: &str = "Debian Policy §5.6.1: lowercase letters, digits, '+', '-', '.'; \
                            at least 2 characters; starting with a letter or digit";

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
fn resolve(config_dir: &Path, rel: &str) -> PathBuf {
    let base = fs::canonicalize(config_dir)
        .or_else(|_| std::path::absolute(config_dir))
        .unwrap_or_else(|_| config_dir.to_path_buf());
    normalize(&base.join(rel))
}

// ---------------------------------------------------------------------------------------------
// Stack files.
// ---------------------------------------------------------------------------------------------

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

/// Validate the TOML text `src` of the stack file `file` (used for messages and for the
/// name-equals-file-stem check; it is not read). `config_dir` resolves relative app and
/// script paths, which are checked on disk.
///
/// Errors: every problem found, sorted by position. A TOML syntax error is reported alone.
pub fn parse_stack(file: &Path, src: &str, config_dir: &Path) -> Result<Stack, Vec<Diagnostic>> {
    let mut chk = Checker::new(file, src);
    let Some(doc) = chk.parse() else {
        return Err(chk.into_diagnostics());
    };
    let root = chk.root(&doc);
    let stack = validate_stack(&mut chk, &root, file, config_dir);
    match stack {
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
    }
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
    let secrets = validate_secrets(chk, root);
    let base = validate_base(chk, root);
    let app = validate_app(chk, root, config_dir);
    let scripts = validate_scripts(chk, root, config_dir);
    let env = validate_env(chk, root, &secrets);
    let health = validate_health(chk, root);
    let data = validate_data(chk, root);
    let deploy = validate_deploy(chk, root);
    let track = validate_track(chk, root, base.as_ref(), config_dir);

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
        health,
        data,
        deploy,
        track,
        file: file.to_path_buf(),
    })
}

fn validate_packages(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Vec<String> {
    let example = "packages = [\"python3-minimal\", \"ca-certificates\"]";
    let Some((items, _)) = chk.strings(root, "packages", example).present() else {
        return Vec::new();
    };
    let mut seen: HashMap<String, Range<usize>> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (pkg, span) in items {
        if !is_valid_package_name(&pkg) {
            let hint = if is_valid_package_name(&pkg.to_ascii_lowercase()) {
                format!(
                    "package names are lowercase: write `{}`",
                    pkg.to_ascii_lowercase()
                )
            } else {
                "use the exact binary package name as shown by `apt-cache search` \
                 (no versions, architectures or spaces)"
                    .to_string()
            };
            chk.error(
                &span,
                format!("invalid Debian package name `{pkg}` ({PACKAGE_RULE})"),
                hint,
            );
        } else if let Some(first) = seen.get(&pkg) {
            let (line, col) = chk.position(first.start);
            chk.error(
                &span,
                format!("duplicate package `{pkg}` (already listed at {line}:{col})"),
                "list each package only once",
            );
        } else {
            seen.insert(pkg.clone(), span);
            out.push(pkg);
        }
    }
    out
}

fn validate_port(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Option<u16> {
    let (port, span) = chk.integer(root, "port", "port = 8080").present()?;
    match u16::try_from(port) {
        Ok(p) if p >= 1 => Some(p),
        _ => {
            chk.error(
                &span,
                format!("port {port} is out of range (1-65535)"),
                "use a TCP port between 1 and 65535, e.g. `port = 8080`",
            );
            None
        }
    }
}

fn validate_secrets(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Vec<String> {
    let Some((items, _)) = chk
        .strings(root, "secrets", "secrets = [\"API_TOKEN\"]")
        .present()
    else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (name, span) in items {
        if !is_valid_env_name(&name) {
            chk.error(
                &span,
                format!("invalid secret name `{name}`"),
                "secrets are environment variables: use uppercase letters, digits and '_', \
                 not starting with a digit (e.g. `API_TOKEN`)",
            );
        } else if out.contains(&name) {
            chk.error(
                &span,
                format!("duplicate secret `{name}`"),
                "list each secret only once",
            );
        } else {
            out.push(name);
        }
    }
    out
}

/// Checks an apt mirror / download URL: `http://` or `https://`, a host, no whitespace.
/// Returns it without trailing slashes.
fn check_url(s: &str) -> Result<String, &'static str> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or("is not an http:// or https:// URL")?;
    if rest.split(['/', '?', '#']).next().unwrap_or("").is_empty() {
        return Err("has no host");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace");
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// Suites and components appear verbatim in `deb` lines.
fn is_valid_apt_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | '+'))
}

fn validate_mirror(chk: &mut Checker<'_>, t: &Tbl<'_, '_>) -> Option<String> {
    let example = "mirror = \"http://deb.debian.org/debian\"";
    let field = chk.string(t, "mirror", example);
    let (mirror, span) = chk.required(t, "mirror", field, example)?;
    match check_url(&mirror) {
        Ok(m) => Some(m),
        Err(why) => {
            chk.error(
                &span,
                format!("mirror `{mirror}` {why}"),
                format!("use a Debian mirror URL, e.g. `{example}`"),
            );
            None
        }
    }
}

fn validate_suite(chk: &mut Checker<'_>, t: &Tbl<'_, '_>, example: &str) -> Option<String> {
    let field = chk.string(t, "suite", example);
    let (suite, span) = chk.required(t, "suite", field, example)?;
    if is_valid_apt_word(&suite) {
        Some(suite)
    } else {
        chk.error(
            &span,
            format!("invalid suite `{suite}`"),
            "a suite is a codename or alias such as `bookworm`, `stable` or `bookworm-updates`",
        );
        None
    }
}

fn validate_components(chk: &mut Checker<'_>, t: &Tbl<'_, '_>) -> Option<Vec<String>> {
    let example = "components = [\"main\", \"contrib\"]";
    let (items, span) = match chk.strings(t, "components", example) {
        Field::Absent => return Some(vec!["main".to_string()]),
        Field::Invalid => return None,
        Field::Present(items, span) => (items, span),
    };
    if items.is_empty() {
        chk.error(
            &span,
            format!("`components`{} must not be empty", t.in_()),
            "list at least one component, e.g. `components = [\"main\"]` (or remove the key)",
        );
        return None;
    }
    let mut ok = true;
    let mut out = Vec::with_capacity(items.len());
    for (c, span) in items {
        if is_valid_apt_word(&c) {
            out.push(c);
        } else {
            ok = false;
            chk.error(
                &span,
                format!("invalid component `{c}`"),
                "components are words such as `main`, `contrib`, `non-free`, `non-free-firmware`",
            );
        }
    }
    ok.then_some(out)
}

/// `{ mirror, suite, components }`.
fn validate_source(
    chk: &mut Checker<'_>,
    t: &Tbl<'_, '_>,
    suite_example: &str,
) -> Option<AptSource> {
    chk.check_keys(t, SOURCE_KEYS);
    validate_source_fields(chk, t, suite_example)
}

/// The `mirror`, `suite` and `components` of a source table (keys already checked).
fn validate_source_fields(
    chk: &mut Checker<'_>,
    t: &Tbl<'_, '_>,
    suite_example: &str,
) -> Option<AptSource> {
    let mirror = validate_mirror(chk, t);
    let suite = validate_suite(chk, t, suite_example);
    let components = validate_components(chk, t);
    Some(AptSource {
        mirror: mirror?,
        suite: suite?,
        components: components?,
    })
}

fn validate_base(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Option<Base> {
    let t = match chk.table(root, "base", "[base]", "[base]") {
        Field::Present(t, _) => t,
        Field::Invalid => return None,
        Field::Absent => {
            chk.error(
                &(0..0),
                "missing table [base]",
                "add a [base] table: `[base]` with `distro = \"debian\"`, `suite = \"bookworm\"` \
                 and `mirror = \"http://deb.debian.org/debian\"`",
            );
            return None;
        }
    };
    chk.check_keys(&t, BASE_KEYS);

    let distro_example = "distro = \"debian\"";
    let distro = chk.string(&t, "distro", distro_example);
    let distro = chk
        .required(&t, "distro", distro, distro_example)
        .and_then(|(d, span)| {
            if d == "debian" {
                Some(Distro::Debian)
            } else {
                chk.error(
                    &span,
                    format!("unknown distro `{d}`"),
                    format!("supported distros: {}", SUPPORTED_DISTROS.join(", ")),
                );
                None
            }
        });
    let suite = validate_suite(chk, &t, "suite = \"bookworm\"");
    let mirror = validate_mirror(chk, &t);
    let components = validate_components(chk, &t);

    let variant = match chk.string(&t, "variant", "variant = \"apt\"") {
        Field::Absent => Some("apt".to_string()),
        Field::Invalid => None,
        Field::Present(v, span) => {
            if VARIANTS.contains(&v.as_str()) {
                Some(v)
            } else {
                chk.error(
                    &span,
                    format!("unknown mmdebstrap variant `{v}`"),
                    format!("supported variants: {}", VARIANTS.join(", ")),
                );
                None
            }
        }
    };

    let example = "extra_suites = [{ mirror = \"http://deb.debian.org/debian\", \
                   suite = \"bookworm-updates\" }]";
    let extra_suites = match chk.tables(&t, "extra_suites", "base.extra_suites", example) {
        Field::Absent => Some(Vec::new()),
        Field::Invalid => None,
        Field::Present(tables, _) => {
            let sources: Vec<_> = tables
                .iter()
                .map(|s| validate_source(chk, s, "suite = \"bookworm-updates\""))
                .collect();
            sources.into_iter().collect::<Option<Vec<_>>>()
        }
    };

    Some(Base {
        distro: distro?,
        suite: suite?,
        mirror: mirror?,
        components: components?,
        variant: variant?,
        extra_suites: extra_suites?,
    })
}

fn validate_app(chk: &mut Checker<'_>, root: &Tbl<'_, '_>, config_dir: &Path) -> Option<App> {
    let (t, _) = chk.table(root, "app", "[app]", "[app]").present()?;
    chk.check_keys(&t, APP_KEYS);

    let path = chk.string(&t, "path", "path = \"../apps/web\"");
    let url = chk.string(&t, "url", "url = \"https://example.org/app.tar.gz\"");
    let sha = chk.string(&t, "sha256", "sha256 = \"<64 hex digits from sha256sum>\"");
    let dest = match chk.string(&t, "dest", "dest = \"/opt/app\"") {
        Field::Absent => Some(DEFAULT_APP_DEST.to_string()),
        Field::Invalid => None,
        Field::Present(d, span) => {
            if d.starts_with('/') {
                Some(d)
            } else {
                chk.error(
                    &span,
                    format!("app dest `{d}` must be an absolute path"),
                    format!(
                        "start it with '/', e.g. `dest = \"/{}\"`",
                        d.trim_start_matches("./")
                    ),
                );
                None
            }
        }
    };

    if path.is_invalid() || url.is_invalid() || sha.is_invalid() {
        return None;
    }
    let source = match (path.present(), url.present(), sha.present()) {
        (Some(_), Some((_, url_span)), _) => {
            chk.error(
                &url_span,
                "`path` and `url` are mutually exclusive in [app]",
                "keep either `path` (a local directory) or `url` + `sha256` (a downloaded file)",
            );
            None
        }
        (Some((p, span)), None, sha) => {
            if let Some((_, sha_span)) = sha {
                chk.error(
                    &sha_span,
                    "`sha256` without `url` in [app]",
                    "`sha256` checks a downloaded `url`; remove it when using a local `path`",
                );
            }
            app_dir(chk, &p, &span, config_dir).map(AppSource::Dir)
        }
        (None, Some((u, url_span)), sha) => {
            let url = match check_url(&u) {
                Ok(_) => Some(u),
                Err(why) => {
                    chk.error(
                        &url_span,
                        format!("app url `{u}` {why}"),
                        "use an http:// or https:// URL, e.g. `url = \"https://example.org/app.tar.gz\"`",
                    );
                    None
                }
            };
            let sha256 = match sha {
                None => {
                    chk.error(
                        &url_span,
                        "`url` in [app] needs a `sha256` checksum",
                        "add `sha256 = \"...\"` with the digest printed by `sha256sum FILE`",
                    );
                    None
                }
                Some((s, sha_span)) => check_sha256(chk, &s, &sha_span),
            };
            Some(AppSource::Url {
                url: url?,
                sha256: sha256?,
            })
        }
        (None, None, Some((_, sha_span))) => {
            chk.error(
                &sha_span,
                "`sha256` without `url` in [app]",
                "add the `url` the checksum belongs to, or remove `sha256`",
            );
            None
        }
        (None, None, None) => {
            chk.error(
                &(t.start..t.start),
                "[app] needs either `path` or `url`",
                "add `path = \"DIR\"` (relative to the config directory) or `url` + `sha256`, \
                 or remove the [app] table",
            );
            None
        }
    };
    Some(App {
        source: source?,
        dest: dest?,
    })
}

fn app_dir(
    chk: &mut Checker<'_>,
    p: &str,
    span: &Range<usize>,
    config_dir: &Path,
) -> Option<PathBuf> {
    let resolved = resolve(config_dir, p);
    let shown = resolved.display();
    let hint = format!(
        "app paths are relative to the config directory ({}); create the directory or fix the path",
        config_dir.display()
    );
    match fs::metadata(&resolved) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            chk.error(
                span,
                format!("app path `{p}` does not exist (resolved to {shown})"),
                hint,
            );
            None
        }
        Err(e) => {
            chk.error(
                span,
                format!("app path `{p}` cannot be accessed: {e} (resolved to {shown})"),
                hint,
            );
            None
        }
        Ok(m) if !m.is_dir() => {
            chk.error(
                span,
                format!("app path `{p}` is not a directory (resolved to {shown})"),
                "point `path` at the directory holding the app files, or use `url` + `sha256` for a single file",
            );
            None
        }
        Ok(_) => match fs::canonicalize(&resolved) {
            Ok(c) => Some(c),
            Err(e) => {
                chk.error(
                    span,
                    format!("app path `{p}` cannot be resolved: {e} (resolved to {shown})"),
                    hint,
                );
                None
            }
        },
    }
}

fn check_sha256(chk: &mut Checker<'_>, s: &str, span: &Range<usize>) -> Option<String> {
    let hint = "use the full SHA-256 digest printed by `sha256sum FILE` (64 characters 0-9, a-f)";
    let n = s.chars().count();
    if n != 64 {
        chk.error(
            span,
            format!("sha256 must be 64 hexadecimal characters, got {n}"),
            hint,
        );
        return None;
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii_hexdigit()) {
        chk.error(
            span,
            format!("sha256 contains the non-hexadecimal character `{c}`"),
            hint,
        );
        return None;
    }
    Some(s.to_ascii_lowercase())
}

fn validate_scripts(chk: &mut Checker<'_>, root: &Tbl<'_, '_>, config_dir: &Path) -> Scripts {
    let mut scripts = Scripts::default();
    let Some((t, _)) = chk
        .table(root, "scripts", "[scripts]", "[scripts]")
        .present()
    else {
        return scripts;
    };
    chk.check_keys(&t, SCRIPT_KEYS);
    for key in SCRIPT_KEYS {
        let Some(v) = t.get(key) else { continue };
        let text = match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            DeValue::Table(inner) => {
                let ft = Tbl {
                    label: format!("scripts.{key}"),
                    start: v.span().start,
                    table: inner,
                };
                chk.check_keys(&ft, SCRIPT_FILE_KEYS);
                let example = format!("file = \"scripts/{key}.sh\"");
                let file = chk.string(&ft, "file", &example);
                chk.required(&ft, "file", file, &example)
                    .and_then(|(f, span)| {
                        let resolved = resolve(config_dir, &f);
                        match fs::read_to_string(&resolved) {
                            Ok(text) => Some(text),
                            Err(e) => {
                                chk.error(
                                    &span,
                                    format!(
                                        "script file `{f}` cannot be read: {e} (resolved to {})",
                                        resolved.display()
                                    ),
                                    format!(
                                        "script files are relative to the config directory ({}) \
                                     and must be UTF-8 text",
                                        config_dir.display()
                                    ),
                                );
                                None
                            }
                        }
                    })
            }
            _ => {
                chk.error(
                    &v.span(),
                    format!(
                        "`{key}` in [scripts] must be a string (the script) or a table \
                         `{{ file = \"...\" }}`, got {}",
                        v.get_ref().type_str()
                    ),
                    format!("write e.g. `{key} = \"exec ./server\"` or `{key} = {{ file = \"scripts/{key}.sh\" }}`"),
                );
                None
            }
        };
        match *key {
            "build" => scripts.build = text,
            "boot" => scripts.boot = text,
            "test" => scripts.test = text,
            _ => scripts.run = text,
        }
    }
    scripts
}

fn validate_env(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
    secrets: &[String],
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let Some((t, _)) = chk.table(root, "env", "[env]", "[env]").present() else {
        return env;
    };
    for (k, v) in t.table.iter() {
        let key: &str = k.get_ref().as_ref();
        if !is_valid_env_name(key) {
            chk.error(
                &k.span(),
                format!("invalid environment variable name `{key}` in [env]"),
                "use uppercase letters, digits and '_', not starting with a digit (e.g. `GREETING`)",
            );
            continue;
        }
        if secrets.iter().any(|s| s == key) {
            chk.error(
                &k.span(),
                format!("`{key}` is listed in `secrets` and must not have a value in [env]"),
                "remove it from [env]: secret values are supplied at deploy time and never baked into the image",
            );
            continue;
        }
        match v.get_ref() {
            DeValue::String(s) => {
                env.insert(key.to_string(), s.to_string());
            }
            _ => chk.wrong_type(
                &format!("`{key}` in [env]"),
                v,
                "a string",
                &format!("{key} = \"value\""),
            ),
        }
    }
    env
}

fn validate_duration(
    chk: &mut Checker<'_>,
    t: &Tbl<'_, '_>,
    key: &str,
    default: Duration,
) -> Duration {
    let example = format!("{key} = \"{}\"", humantime::format_duration(default));
    let Some((s, span)) = chk.string(t, key, &example).present() else {
        return default;
    };
    let hint = "use a duration such as \"500ms\", \"1s\" or \"2m 30s\"";
    match humantime::parse_duration(&s) {
        Ok(d) if d.is_zero() => {
            chk.error(
                &span,
                format!("`{key}` in [health] must be greater than zero"),
                hint,
            );
            default
        }
        Ok(d) => d,
        Err(e) => {
            chk.error(
                &span,
                format!("invalid duration `{s}` for `{key}` in [health]: {e}"),
                hint,
            );
            default
        }
    }
}

fn validate_health(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Health {
    let mut health = Health::default();
    let Some((t, _)) = chk.table(root, "health", "[health]", "[health]").present() else {
        return health;
    };
    chk.check_keys(&t, HEALTH_KEYS);
    if let Some((p, span)) = chk.string(&t, "path", "path = \"/up\"").present() {
        if p.starts_with('/') {
            health.path = p;
        } else {
            chk.error(
                &span,
                format!("health path `{p}` must start with '/'"),
                format!("write the HTTP path from the root, e.g. `path = \"/{p}\"`"),
            );
        }
    }
    health.interval = validate_duration(chk, &t, "interval", health.interval);
    health.timeout = validate_duration(chk, &t, "timeout", health.timeout);
    for key in ["healthy_threshold", "unhealthy_threshold"] {
        let example = format!("{key} = 3");
        if let Some((n, span)) = chk.integer(&t, key, &example).present() {
            match u32::try_from(n) {
                Ok(n) if (1..=100).contains(&n) => {
                    if key == "healthy_threshold" {
                        health.healthy_threshold = n;
                    } else {
                        health.unhealthy_threshold = n;
                    }
                }
                _ => chk.error(
                    &span,
                    format!("{key} {n} is out of range (1-100)"),
                    format!("count consecutive health checks, e.g. `{example}`"),
                ),
            }
        }
    }
    health
}

fn validate_deploy(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Deploy {
    let mut deploy = Deploy::default();
    let Some((t, _)) = chk.table(root, "deploy", "[deploy]", "[deploy]").present() else {
        return deploy;
    };
    chk.check_keys(&t, DEPLOY_KEYS);
    if let Some((b, _)) = chk.boolean(&t, "keep_warm", "keep_warm = true").present() {
        deploy.keep_warm = b;
    }
    deploy
}

fn validate_data(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Option<Data> {
    let (t, _) = chk.table(root, "data", "[data]", "[data]").present()?;
    chk.check_keys(&t, DATA_KEYS);
    let example = "path = \"/var/lib/app\"";
    let field = chk.string(&t, "path", example);
    let (p, span) = chk.required(&t, "path", field, example)?;
    if p.starts_with('/') {
        Some(Data { path: p })
    } else {
        chk.error(
            &span,
            format!("data path `{p}` must be an absolute path"),
            format!(
                "start it with '/', e.g. `path = \"/{}\"`",
                p.trim_start_matches("./")
            ),
        );
        None
    }
}

/// The default apt tracking for a base: `SUITE-security` on the security mirror and
/// `SUITE-updates` on the base mirror, both with the base components.
fn default_track_apt(base: &Base) -> Vec<AptSource> {
    let security_mirror = match base.mirror.strip_suffix("/debian") {
        Some(prefix) => format!("{prefix}/debian-security"),
        None => DEFAULT_SECURITY_MIRROR.to_string(),
    };
    vec![
        AptSource {
            mirror: security_mirror,
            suite: format!("{}-security", base.suite),
            components: base.components.clone(),
        },
        AptSource {
            mirror: base.mirror.clone(),
            suite: format!("{}-updates", base.suite),
            components: base.components.clone(),
        },
    ]
}

/// One `[track].apt` entry: a source plus the optional `trusted` (waive the signature check)
/// and `signed_by` (keyring file, relative to the config dir; default: the Debian archive
/// keyring) keys, like apt's `Trusted` and `Signed-By` options.
fn validate_tracked_source(
    chk: &mut Checker<'_>,
    t: &Tbl<'_, '_>,
    config_dir: &Path,
) -> Option<(AptSource, RepoTrust)> {
    chk.check_keys(t, TRACK_SOURCE_KEYS);
    let source = validate_source_fields(chk, t, "suite = \"bookworm-security\"");
    let trusted = match chk.boolean(t, "trusted", "trusted = true") {
        Field::Present(b, _) => b,
        Field::Absent => false,
        Field::Invalid => return None,
    };
    let signed_by = match chk.string(t, "signed_by", "signed_by = \"keys/vendor.gpg\"") {
        Field::Present(p, span) if p.trim().is_empty() => {
            chk.error(
                &span,
                "`signed_by` is empty",
                "give a keyring file (binary or ASCII-armoured OpenPGP keys), relative to the config directory",
            );
            return None;
        }
        Field::Present(p, _) => Some(resolve(config_dir, &p)),
        Field::Absent => None,
        Field::Invalid => return None,
    };
    Some((source?, RepoTrust { trusted, signed_by }))
}

fn validate_track(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
    base: Option<&Base>,
    config_dir: &Path,
) -> Option<Track> {
    let t = match chk.table(root, "track", "[track]", "[track]") {
        Field::Present(t, _) => Some(t),
        Field::Absent => None,
        Field::Invalid => return None,
    };
    let mut registries = Vec::new();
    let mut apt = None;
    let mut auto_rebuild = AutoRebuild::Off;
    if let Some(t) = &t {
        chk.check_keys(t, TRACK_KEYS);
        let example = "auto_rebuild = \"security\"";
        if let Some((s, span)) = chk.string(t, "auto_rebuild", example).present() {
            match AutoRebuild::parse(&s) {
                Some(p) => auto_rebuild = p,
                None => chk.error(
                    &span,
                    format!("unknown auto_rebuild policy `{s}` in [track]"),
                    format!(
                        "use one of {}: `security` rebuilds for new security updates, \
                         `all` for any new update (a rebuild never deploys)",
                        AutoRebuild::NAMES
                            .iter()
                            .map(|n| format!("\"{n}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
        let example =
            "apt = [{ mirror = \"http://deb.debian.org/debian\", suite = \"bookworm-updates\" }]";
        apt = match chk.tables(t, "apt", "track.apt", example) {
            Field::Absent => None,
            Field::Invalid => return None,
            Field::Present(tables, _) => {
                let sources: Vec<_> = tables
                    .iter()
                    .map(|s| validate_tracked_source(chk, s, config_dir))
                    .collect();
                Some(sources.into_iter().collect::<Option<Vec<_>>>()?)
            }
        };
        if let Some((items, _)) = chk
            .strings(t, "registries", "registries = [\"pypi\"]")
            .present()
        {
            for (r, span) in items {
                if !REGISTRIES.contains(&r.as_str()) {
                    chk.error(
                        &span,
                        format!("unknown registry `{r}`"),
                        format!("supported registries: {}", REGISTRIES.join(", ")),
                    );
                } else if registries.contains(&r) {
                    chk.error(
                        &span,
                        format!("duplicate registry `{r}`"),
                        "list each registry only once",
                    );
                } else {
                    registries.push(r);
                }
            }
        }
    }
    let (apt, trust) = match apt {
        Some(apt) => apt.into_iter().unzip(),
        None => {
            let apt = default_track_apt(base?);
            let trust = vec![RepoTrust::default(); apt.len()];
            (apt, trust)
        }
    };
    Some(Track {
        apt,
        trust,
        registries,
        auto_rebuild,
    })
}

// ---------------------------------------------------------------------------------------------
// Directories of stacks.
// ---------------------------------------------------------------------------------------------

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
    }])
}
