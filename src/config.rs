//! Global settings: `CONFIG/drover.toml` (optional; every key has a default).
//!
//! ```toml
//! [images]
//! keep = 3   # images kept per stack by `drover prune`, >= 1
//!
//! [updates]
//! check_interval = "6h"   # scheduled checks (agent, console); humantime syntax, >= 1m
//!
//! [feeds]   # optional vulnerability feeds, a path (relative to this file) or http(s) URL
//! security_tracker = "feeds/tracker.json"   # https://security-tracker.debian.org/tracker/data/json
//! osv = "feeds/osv-debian"                  # OSV Debian records: a directory or a JSON array
//!
//! [notify]  # new security updates, once per (stack, source, candidate)
//! command = ["/usr/local/bin/page-oncall", "--drover"]   # gets the JSON on stdin
//! webhook = "https://hooks.example.com/drover"           # POSTed the same JSON
//!
//! [registries]  # language registries asked for newer versions (mirrors, proxies)
//! pypi = "https://pypi.org"
//! npm = "https://registry.npmjs.org"
//! crates = "https://index.crates.io"     # a sparse index
//!
//! [logs]
//! runtime_max_lines = 200000   # runtime log lines kept per stack (oldest deleted), >= 1000
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::stack::toml_check::{Checker, Field, Tbl};
use crate::stack::Diagnostic;

/// Parsed `drover.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How many images `drover prune` keeps per stack (default 3).
    pub keep_images: usize,
    /// How often the agent and the console check each stack for updates (`[updates]
    /// check_interval`); `None` (the default) means no scheduled checks.
    pub check_interval: Option<Duration>,
    /// Vulnerability feeds (`[feeds]`).
    pub feeds: Feeds,
    /// Where new security updates are announced (`[notify]`).
    pub notify: Notify,
    /// Language registries asked for newer versions (`[registries]`).
    pub registries: Registries,
    /// Runtime log lines kept per stack (`[logs] runtime_max_lines`, default
    /// [`DEFAULT_RUNTIME_MAX_LINES`]); the agent deletes the oldest beyond it.
    pub runtime_max_lines: u64,
}

/// Default of `[logs] runtime_max_lines`: about 20-40 MB of SQLite per stack.
pub const DEFAULT_RUNTIME_MAX_LINES: u64 = 200_000;
/// Smallest accepted `[logs] runtime_max_lines`.
pub const MIN_RUNTIME_MAX_LINES: u64 = 1_000;

impl Default for Config {
    fn default() -> Self {
        Config {
            keep_images: 3,
            check_interval: None,
            feeds: Feeds::default(),
            notify: Notify::default(),
            registries: Default::default(),
            runtime_max_lines: DEFAULT_RUNTIME_MAX_LINES,
        }
    }
}

/// Where a feed is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedLocation {
    /// A local file or directory (absolute; relative paths are resolved against the
    /// directory of `drover.toml`).
    Path(PathBuf),
    /// An `http://` or `https://` URL, fetched at each check.
    Url(String),
}

impl std::fmt::Display for FeedLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedLocation::Path(p) => write!(f, "{}", p.display()),
            FeedLocation::Url(u) => f.write_str(u),
        }
    }
}

/// The `[feeds]` table: optional vulnerability feeds layered on the changelog CVEs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Feeds {
    /// The Debian Security Tracker JSON (`security_tracker`), the document served at
    /// <https://security-tracker.debian.org/tracker/data/json>.
    pub security_tracker: Option<FeedLocation>,
    /// OSV records of the Debian ecosystem (`osv`): a directory of `*.json` records, or one
    /// JSON file holding a record or an array of records (<https://ossf.github.io/osv-schema/>).
    pub osv: Option<FeedLocation>,
}

/// The `[notify]` table. Both channels are optional; each is tried independently.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notify {
    /// Program and arguments (no shell), run with the notification JSON on stdin; exit 0
    /// means delivered.
    pub command: Option<Vec<String>>,
    /// `http(s)://` URL the notification JSON is POSTed to; a 2xx answer means delivered.
    pub webhook: Option<String>,
}

/// The `[registries]` table: base URLs of the language registries asked for newer
/// versions (no trailing slash needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registries {
    /// PyPI (default `https://pypi.org`).
    pub pypi: String,
    /// npm registry (default `https://registry.npmjs.org`).
    pub npm: String,
    /// crates.io sparse index (default `https://index.crates.io`).
    pub crates: String,
}

impl Default for Registries {
    fn default() -> Self {
        Registries {
            pypi: "https://pypi.org".into(),
            npm: "https://registry.npmjs.org".into(),
            crates: "https://index.crates.io".into(),
        }
    }
}

/// Shortest accepted `check_interval`.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(60);

const TOP_KEYS: &[&str] = &["images", "updates", "feeds", "notify", "registries", "logs"];
const LOGS_KEYS: &[&str] = &["runtime_max_lines"];
const REGISTRIES_KEYS: &[&str] = &["pypi", "npm", "crates"];
const IMAGES_KEYS: &[&str] = &["keep"];
const UPDATES_KEYS: &[&str] = &["check_interval"];
const FEEDS_KEYS: &[&str] = &["security_tracker", "osv"];
const NOTIFY_KEYS: &[&str] = &["command", "webhook"];

/// Load `drover.toml`; a missing file gives the defaults.
///
/// Errors: a file that exists but cannot be read gives one diagnostic at 1:1; otherwise
/// see [`parse`].
pub fn load(path: &Path) -> Result<Config, Vec<Diagnostic>> {
    match fs::read_to_string(path) {
        Ok(src) => parse(path, &src),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(vec![Diagnostic::whole_file(
            path,
            format!("cannot read config file: {e}"),
            "check that the file is readable UTF-8 text, or remove it",
        )]),
    }
}

/// [`load`], plus the checks that need the file system (for `drover validate`): a feed
/// given by path must exist. A missing `drover.toml` is fine (defaults).
///
/// Errors: the diagnostics of [`load`], or one per missing feed path, located at its key.
pub fn lint(path: &Path) -> Result<Config, Vec<Diagnostic>> {
    let config = load(path)?;
    let src = fs::read_to_string(path).unwrap_or_default();
    let mut diags = Vec::new();
    for (key, loc) in [
        ("security_tracker", &config.feeds.security_tracker),
        ("osv", &config.feeds.osv),
    ] {
        let Some(FeedLocation::Path(p)) = loc else {
            continue;
        };
        if p.exists() {
            continue;
        }
        // The key's line in [feeds] (parse checked it is there).
        let (line, col) = src
            .lines()
            .enumerate()
            .find(|(_, l)| {
                let t = l.trim_start();
                t.starts_with(key) && t[key.len()..].trim_start().starts_with('=')
            })
            .map(|(i, l)| {
                // 1-based column of the value after `=`.
                let eq = l.find('=').unwrap_or(0);
                let value = eq + 1 + (l[eq + 1..].len() - l[eq + 1..].trim_start().len());
                (i + 1, value + 1)
            })
            .unwrap_or((1, 1));
        diags.push(Diagnostic {
            file: path.to_path_buf(),
            line,
            col,
            message: format!("`{key}` in [feeds]: {} does not exist", p.display()),
            hint: Some(
                "download the feed there, fix the path (relative to drover.toml), or remove the key"
                    .into(),
            ),
            severity: Default::default(),
        });
    }
    if diags.is_empty() {
        Ok(config)
    } else {
        Err(diags)
    }
}

/// [`load`], with the diagnostics joined into one text (one per line).
pub fn load_text(path: &Path) -> Result<Config, String> {
    load(path).map_err(|d| {
        d.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// Parse the text of `drover.toml` (`file` is only used in diagnostics).
///
/// Errors: TOML syntax errors, unknown keys, wrong types and `images.keep < 1`, each
/// located at the offending key or value; every problem is reported, sorted by position.
pub fn parse(file: &Path, src: &str) -> Result<Config, Vec<Diagnostic>> {
    let mut chk = Checker::new(file, src);
    let Some(doc) = chk.parse() else {
        return Err(chk.into_diagnostics());
    };
    let root = chk.root(&doc);
    chk.check_keys(&root, TOP_KEYS);

    let mut config = Config::default();
    if let Some((images, _)) = chk.table(&root, "images", "[images]", "[images]").present() {
        chk.check_keys(&images, IMAGES_KEYS);
        if let Field::Present(keep, span) = chk.integer(&images, "keep", "keep = 3") {
            match usize::try_from(keep) {
                Ok(k) if k >= 1 => config.keep_images = k,
                _ => chk.error(
                    &span,
                    format!("`keep` in [images] must be at least 1, got {keep}"),
                    "keep at least the current image, e.g. `keep = 3`",
                ),
            }
        }
    }

    if let Some((t, _)) = chk
        .table(&root, "updates", "[updates]", "[updates]")
        .present()
    {
        chk.check_keys(&t, UPDATES_KEYS);
        let example = "check_interval = \"6h\"";
        if let Some((s, span)) = chk.string(&t, "check_interval", example).present() {
            let hint = "use a duration such as \"30m\", \"6h\" or \"1day\" (at least 1m)";
            match humantime::parse_duration(&s) {
                Ok(d) if d >= MIN_CHECK_INTERVAL => config.check_interval = Some(d),
                Ok(_) => chk.error(
                    &span,
                    format!("`check_interval` in [updates] must be at least 1m, got `{s}`"),
                    hint,
                ),
                Err(e) => chk.error(
                    &span,
                    format!("invalid duration `{s}` for `check_interval` in [updates]: {e}"),
                    hint,
                ),
            }
        }
    }

    let base_dir = file.parent().unwrap_or(Path::new("."));
    if let Some((t, _)) = chk.table(&root, "feeds", "[feeds]", "[feeds]").present() {
        chk.check_keys(&t, FEEDS_KEYS);
        config.feeds.security_tracker = feed(
            &mut chk,
            &t,
            "security_tracker",
            "security_tracker = \"feeds/tracker.json\"",
            base_dir,
        );
        config.feeds.osv = feed(&mut chk, &t, "osv", "osv = \"feeds/osv-debian\"", base_dir);
    }

    if let Some((t, _)) = chk.table(&root, "notify", "[notify]", "[notify]").present() {
        chk.check_keys(&t, NOTIFY_KEYS);
        let example = "command = [\"/usr/local/bin/notify\", \"--drover\"]";
        if let Field::Present(items, span) = chk.strings(&t, "command", example) {
            if items.is_empty() || items[0].0.trim().is_empty() {
                chk.error(
                    &span,
                    "`command` in [notify] needs at least the program",
                    format!("name the program and its arguments, e.g. `{example}`"),
                );
            } else if items[0].0.contains('/') && !items[0].0.starts_with('/') {
                // Resolved against wherever drover happens to run: the console, the agent
                // and a cron job would each run another program, or none.
                chk.error(
                    &items[0].1,
                    format!(
                        "the program `{}` in [notify] command is a relative path",
                        items[0].0
                    ),
                    "give an absolute path (e.g. `/usr/local/bin/notify`) or a bare name \
                     found on PATH (e.g. `notify-send`)",
                );
            } else {
                config.notify.command = Some(items.into_iter().map(|(s, _)| s).collect());
            }
        }
        let example = "webhook = \"https://hooks.example.com/drover\"";
        if let Some((url, span)) = chk.string(&t, "webhook", example).present() {
            if is_http_url(&url) {
                config.notify.webhook = Some(url);
            } else {
                chk.error(
                    &span,
                    format!(
                        "`webhook` in [notify] must be an http:// or https:// URL, got `{url}`"
                    ),
                    format!("e.g. `{example}`"),
                );
            }
        }
    }

    if let Some((t, _)) = chk
        .table(&root, "registries", "[registries]", "[registries]")
        .present()
    {
        chk.check_keys(&t, REGISTRIES_KEYS);
        let r = &mut config.registries;
        for (key, slot) in [
            ("pypi", &mut r.pypi),
            ("npm", &mut r.npm),
            ("crates", &mut r.crates),
        ] {
            let example = format!("{key} = \"{slot}\"");
            if let Some((url, span)) = chk.string(&t, key, &example).present() {
                if is_http_url(&url) {
                    *slot = url;
                } else {
                    chk.error(
                        &span,
                        format!("`{key}` in [registries] must be an http:// or https:// URL, got `{url}`"),
                        format!("e.g. `{example}` (the default), or remove the key"),
                    );
                }
            }
        }
    }

    if let Some((t, _)) = chk.table(&root, "logs", "[logs]", "[logs]").present() {
        chk.check_keys(&t, LOGS_KEYS);
        let example = "runtime_max_lines = 200000";
        if let Field::Present(n, span) = chk.integer(&t, "runtime_max_lines", example) {
            match u64::try_from(n) {
                Ok(n) if n >= MIN_RUNTIME_MAX_LINES => config.runtime_max_lines = n,
                _ => chk.error(
                    &span,
                    format!(
                        "`runtime_max_lines` in [logs] must be at least {MIN_RUNTIME_MAX_LINES}, got {n}"
                    ),
                    format!("e.g. `{example}` (the default)"),
                ),
            }
        }
    }

    if chk.has_errors() {
        Err(chk.into_diagnostics())
    } else {
        Ok(config)
    }
}

fn is_http_url(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://"))
        && s.split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty())
}

/// A feed location: an http(s) URL, or a path resolved against `base_dir`.
fn feed(
    chk: &mut Checker<'_>,
    t: &Tbl<'_, '_>,
    key: &str,
    example: &str,
    base_dir: &Path,
) -> Option<FeedLocation> {
    let (s, span) = chk.string(t, key, example).present()?;
    if s.contains("://") {
        if is_http_url(&s) {
            return Some(FeedLocation::Url(s));
        }
        chk.error(
            &span,
            format!("`{key}` in [feeds] must be a path or an http(s) URL, got `{s}`"),
            format!("e.g. `{example}`"),
        );
        return None;
    }
    if s.trim().is_empty() {
        chk.error(
            &span,
            format!("`{key}` in [feeds] is empty"),
            format!("give a path or URL, e.g. `{example}`, or remove the key"),
        );
        return None;
    }
    Some(FeedLocation::Path(base_dir.join(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(src: &str) -> Result<Config, Vec<Diagnostic>> {
        parse(Path::new("drover.toml"), src)
    }

    #[test]
    fn missing_file_gives_defaults() {
        let cfg = load(Path::new("/nonexistent/drover/drover.toml")).expect("defaults");
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.keep_images, 3);
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse_str("").expect("defaults"), Config::default());
        assert_eq!(
            parse_str("[images]\n").expect("defaults"),
            Config::default()
        );
    }

    #[test]
    fn logs_runtime_max_lines() {
        assert_eq!(
            parse_str("").unwrap().runtime_max_lines,
            DEFAULT_RUNTIME_MAX_LINES
        );
        let cfg = parse_str("[logs]\nruntime_max_lines = 5000\n").unwrap();
        assert_eq!(cfg.runtime_max_lines, 5000);
        let e = parse_str("[logs]\nruntime_max_lines = 10\n").unwrap_err();
        assert!(e[0].to_string().contains("at least 1000"), "{}", e[0]);
        assert!(e[0].to_string().contains("drover.toml:2:"), "{}", e[0]);
    }

    #[test]
    fn registries_override_and_bad_urls() {
        let cfg =
            parse_str("[registries]\npypi = \"https://devpi.example/root/pypi\"\n").expect("valid");
        assert_eq!(cfg.registries.pypi, "https://devpi.example/root/pypi");
        assert_eq!(cfg.registries.npm, "https://registry.npmjs.org");
        let errs = parse_str("[registries]\nnpm = \"registry.npmjs.org\"\nrubygems = \"x\"\n")
            .expect_err("bad");
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs
            .iter()
            .any(|d| d.line == 2 && d.message.contains("`npm` in [registries]")));
        assert!(errs
            .iter()
            .any(|d| d.line == 3 && d.message.contains("rubygems")));
    }

    #[test]
    fn valid_keep() {
        let cfg = parse_str("[images]\nkeep = 5\n").expect("valid");
        assert_eq!(cfg.keep_images, 5);
    }

    #[test]
    fn shipped_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/drover.toml");
        assert_eq!(load(&path).expect("valid").keep_images, 3);
    }

    #[test]
    fn unknown_keys() {
        let errs = parse_str("colour = 1\n[images]\nkepe = 2\n").expect_err("invalid");
        assert_eq!(errs.len(), 2);
        assert_eq!((errs[0].line, errs[0].col), (1, 1));
        assert_eq!(errs[0].message, "unknown top-level key `colour`");
        assert_eq!((errs[1].line, errs[1].col), (3, 1));
        assert_eq!(errs[1].message, "unknown key `kepe` in [images]");
        assert!(errs[1]
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("did you mean `keep`?"));
    }

    #[test]
    fn keep_zero_and_wrong_type() {
        let errs = parse_str("[images]\nkeep = 0\n").expect_err("invalid");
        assert_eq!((errs[0].line, errs[0].col), (2, 8));
        assert_eq!(
            errs[0].message,
            "`keep` in [images] must be at least 1, got 0"
        );

        let errs = parse_str("[images]\nkeep = \"3\"\n").expect_err("invalid");
        assert_eq!((errs[0].line, errs[0].col), (2, 8));
        assert_eq!(
            errs[0].message,
            "`keep` in [images] must be an integer, got string"
        );
    }

    #[test]
    fn syntax_error() {
        let errs = parse_str("[images\nkeep = 3\n").expect_err("invalid");
        assert_eq!(errs.len(), 1);
        assert_eq!((errs[0].line, errs[0].col), (1, 8));
        assert!(
            errs[0].message.starts_with("TOML syntax error:"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn updates_feeds_and_notify() {
        let cfg = parse(
            Path::new("/etc/drover/drover.toml"),
            "[updates]\ncheck_interval = \"6h\"\n[feeds]\nsecurity_tracker = \"feeds/t.json\"\n\
             osv = \"https://osv.example/debian.json\"\n[notify]\ncommand = [\"notify-send\", \"-u\"]\n\
             webhook = \"http://127.0.0.1:9/hook\"\n",
        )
        .expect("valid");
        assert_eq!(cfg.check_interval, Some(Duration::from_secs(6 * 3600)));
        assert_eq!(
            cfg.feeds.security_tracker,
            Some(FeedLocation::Path(PathBuf::from(
                "/etc/drover/feeds/t.json"
            )))
        );
        assert_eq!(
            cfg.feeds.osv,
            Some(FeedLocation::Url("https://osv.example/debian.json".into()))
        );
        assert_eq!(
            cfg.notify.command,
            Some(vec!["notify-send".to_string(), "-u".to_string()])
        );
        assert_eq!(
            cfg.notify.webhook.as_deref(),
            Some("http://127.0.0.1:9/hook")
        );
    }

    #[test]
    fn a_relative_notify_program_is_refused() {
        let errs =
            parse_str("[notify]\ncommand = [\"bin/notify\", \"-x\"]\n").expect_err("invalid");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].line, errs[0].col), (2, 12));
        assert!(errs[0].message.contains("relative path"), "{}", errs[0]);
        assert!(parse_str("[notify]\ncommand = [\"notify-send\"]\n").is_ok());
    }

    #[test]
    fn bad_updates_feeds_and_notify() {
        let errs = parse_str(
            "[updates]\ncheck_interval = \"10s\"\n[feeds]\nosv = \"ftp://x/y\"\n\
             [notify]\ncommand = []\nwebhook = \"hooks.example.com\"\n",
        )
        .expect_err("invalid");
        let got: Vec<(usize, usize, &str)> = errs
            .iter()
            .map(|d| (d.line, d.col, d.message.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, 18, "`check_interval` in [updates] must be at least 1m, got `10s`"),
                (4, 7, "`osv` in [feeds] must be a path or an http(s) URL, got `ftp://x/y`"),
                (6, 11, "`command` in [notify] needs at least the program"),
                (
                    7,
                    11,
                    "`webhook` in [notify] must be an http:// or https:// URL, got `hooks.example.com`"
                ),
            ]
        );
        let errs = parse_str("[updates]\ncheck_interval = \"often\"\n").expect_err("invalid");
        assert!(
            errs[0].message.starts_with("invalid duration `often`"),
            "{}",
            errs[0].message
        );
    }
}
