//! Stack-file parsing and validation: the demo stack, valid variants, and one fixture per
//! kind of error, each checked for its exact `LINE:COL` and message.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use drover::stack::parse::parse_stack;
use drover::stack::{
    load_all, load_file, load_named, App, AppSource, AptSource, Data, Diagnostic, Distro, Health,
};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    manifest_dir().join("tests/fixtures/stacks")
}

fn invalid_dir() -> PathBuf {
    fixtures().join("invalid")
}

fn valid_dir() -> PathBuf {
    fixtures().join("valid")
}

fn src(mirror: &str, suite: &str, components: &[&str]) -> AptSource {
    AptSource {
        mirror: mirror.to_string(),
        suite: suite.to_string(),
        components: components.iter().map(|c| c.to_string()).collect(),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn load_valid(name: &str) -> drover::stack::Stack {
    let dir = valid_dir();
    let path = dir.join("stacks").join(format!("{name}.toml"));
    load_file(&path, &dir).unwrap_or_else(|d| panic!("{name} should be valid: {d:#?}"))
}

/// Diagnostics of `invalid/NAME.toml`, loaded with `invalid/` as the config dir.
fn invalid(name: &str) -> Vec<Diagnostic> {
    let dir = invalid_dir();
    let path = dir.join(format!("{name}.toml"));
    match load_file(&path, &dir) {
        Ok(s) => panic!("{name} should be invalid, parsed as {s:#?}"),
        Err(d) => {
            assert!(!d.is_empty(), "{name}: Err without diagnostics");
            for diag in &d {
                assert_eq!(diag.file, path, "{name}: diagnostic names the wrong file");
                let hint = diag.hint.as_deref().unwrap_or("");
                assert!(!hint.is_empty(), "{name}: diagnostic without hint: {diag}");
            }
            d
        }
    }
}

/// Exactly one diagnostic, at `line:col`, with exactly `message`.
fn assert_single(name: &str, line: usize, col: usize, message: &str) {
    let d = invalid(name);
    assert_eq!(d.len(), 1, "{name}: expected one diagnostic, got {d:#?}");
    assert_eq!(
        (d[0].line, d[0].col, d[0].message.as_str()),
        (line, col, message),
        "{name}: {}",
        d[0]
    );
}

/// Exactly one diagnostic, at `line:col`, whose message contains `needle`.
fn assert_single_contains(name: &str, line: usize, col: usize, needle: &str) {
    let d = invalid(name);
    assert_eq!(d.len(), 1, "{name}: expected one diagnostic, got {d:#?}");
    assert_eq!((d[0].line, d[0].col), (line, col), "{name}: {}", d[0]);
    assert!(
        d[0].message.contains(needle),
        "{name}: `{}` lacks `{needle}`",
        d[0].message
    );
}

// ---------------------------------------------------------------------------------------------
// The demo stack.
// ---------------------------------------------------------------------------------------------

#[test]
fn demo_stack_parses() {
    let config = manifest_dir().join("config");
    let path = config.join("stacks/hello.toml");
    let s = load_file(&path, &config).unwrap_or_else(|d| panic!("hello.toml: {d:#?}"));

    assert_eq!(s.name, "hello");
    assert_eq!(s.description, "Demo greeting service on python3-minimal");
    assert_eq!(
        s.packages,
        strings(&["python3-minimal", "libpython3-stdlib", "ca-certificates"])
    );
    assert_eq!(s.port, Some(8080));
    assert_eq!(s.secrets, strings(&["HELLO_TOKEN"]));
    assert_eq!(s.file, path);

    assert_eq!(s.base.distro, Distro::Debian);
    assert_eq!(s.base.suite, "bookworm");
    assert_eq!(s.base.mirror, "http://deb.debian.org/debian");
    assert_eq!(s.base.components, strings(&["main"]));
    assert_eq!(s.base.variant, "apt");
    assert!(s.base.extra_suites.is_empty());
    assert_eq!(
        s.base.sources(),
        vec![src("http://deb.debian.org/debian", "bookworm", &["main"])]
    );

    let app_dir = fs::canonicalize(manifest_dir().join("assets/demo/hello")).expect("demo app");
    assert_eq!(
        s.app,
        Some(App {
            source: AppSource::Dir(app_dir),
            dest: "/opt/app".into()
        })
    );

    let build = s.scripts.build.as_deref().expect("build script");
    assert!(
        build.contains("python3 -m py_compile /opt/app/server.py"),
        "{build}"
    );
    let boot = s.scripts.boot.as_deref().expect("boot script");
    assert!(boot.contains("mkdir -p /var/lib/hello"), "{boot}");
    assert_eq!(
        s.scripts.run.as_deref(),
        Some("exec python3 /opt/app/server.py")
    );
    assert!(s.scripts.test.as_deref().unwrap().contains("TARGET_URL"));

    let env: BTreeMap<String, String> = [("GREETING".to_string(), "hello".to_string())].into();
    assert_eq!(s.env, env);
    assert_eq!(
        s.health,
        Health {
            path: "/up".into(),
            command: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            healthy_threshold: 1,
            unhealthy_threshold: 3,
        }
    );
    assert_eq!(
        s.data,
        Some(Data {
            path: "/var/lib/hello".into(),
            shared: true
        })
    );
    assert_eq!(
        s.track.apt,
        vec![
            src(
                "http://deb.debian.org/debian-security",
                "bookworm-security",
                &["main"]
            ),
            src(
                "http://deb.debian.org/debian",
                "bookworm-updates",
                &["main"]
            ),
        ]
    );
    assert!(s.track.registries.is_empty());
    assert_eq!(s.track.auto_rebuild, drover::stack::AutoRebuild::Off);
}

#[test]
fn demo_stack_by_name() {
    let config = manifest_dir().join("config");
    let s = load_named(&config, "hello").unwrap_or_else(|d| panic!("hello: {d:#?}"));
    assert_eq!(s.name, "hello");

    let d = load_named(&config, "nope").expect_err("unknown stack");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].message, "unknown stack `nope`");
    let hint = d[0].hint.as_deref().unwrap_or("");
    assert!(
        hint.starts_with("available stacks: ") && hint.contains("hello"),
        "{hint}"
    );
}

// ---------------------------------------------------------------------------------------------
// Valid variants.
// ---------------------------------------------------------------------------------------------

#[test]
fn minimal_stack_gets_defaults() {
    let s = load_valid("minimal");
    assert_eq!(s.name, "minimal");
    assert_eq!(s.description, "");
    assert!(s.packages.is_empty());
    assert_eq!(s.port, None);
    assert!(s.secrets.is_empty());
    // Trailing slash stripped, default components and variant.
    assert_eq!(s.base.mirror, "http://deb.debian.org/debian");
    assert_eq!(s.base.components, strings(&["main"]));
    assert_eq!(s.base.variant, "apt");
    assert!(s.base.extra_suites.is_empty());
    assert_eq!(s.app, None);
    assert_eq!(s.scripts, Default::default());
    assert!(s.env.is_empty());
    assert_eq!(s.health, Health::default());
    assert_eq!(s.health.path, "/up");
    assert_eq!(s.health.interval, Duration::from_secs(1));
    assert_eq!(s.health.timeout, Duration::from_secs(5));
    assert_eq!(s.data, None);
    // Default tracking: SUITE-security on debian-security, SUITE-updates on the base mirror.
    assert_eq!(
        s.track.apt,
        vec![
            src(
                "http://deb.debian.org/debian-security",
                "trixie-security",
                &["main"]
            ),
            src("http://deb.debian.org/debian", "trixie-updates", &["main"]),
        ]
    );
    assert!(s.track.registries.is_empty());
    assert_eq!(s.track.auto_rebuild, drover::stack::AutoRebuild::Off);
}

#[test]
fn url_app_stack() {
    let s = load_valid("url-app");
    assert_eq!(s.description, "App downloaded from a URL");
    assert_eq!(s.packages, strings(&["nodejs", "libstdc++6", "g++"]));
    assert_eq!(s.port, Some(3000));
    assert_eq!(s.secrets, strings(&["DB_PASSWORD", "_INTERNAL"]));
    assert_eq!(s.base.mirror, "https://deb.debian.org/debian");
    assert_eq!(s.base.components, strings(&["main", "contrib"]));
    assert_eq!(s.base.variant, "minbase");
    assert_eq!(
        s.base.extra_suites,
        vec![src(
            "http://deb.debian.org/debian",
            "bookworm-backports",
            &["main"]
        )]
    );
    assert_eq!(s.base.sources().len(), 2);
    assert_eq!(
        s.app,
        Some(App {
            source: AppSource::Url {
                url: "https://example.org/releases/app-1.2.3.tar.gz".into(),
                // Normalised to lowercase.
                sha256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
                max_size: drover::stack::DEFAULT_APP_MAX_SIZE,
            },
            dest: "/srv/app".into(),
        })
    );
    assert_eq!(
        s.env.get("NODE_ENV").map(String::as_str),
        Some("production")
    );
    assert_eq!(s.health.path, "/healthz");
    assert_eq!(s.health.interval, Duration::from_millis(500));
    assert_eq!(s.health.timeout, Duration::from_secs(150));
    assert_eq!(s.track.registries, strings(&["npm", "pypi"]));
    assert_eq!(s.track.auto_rebuild, drover::stack::AutoRebuild::Security);
    // [track] present without `apt`: the default apt tracking, on the https mirror.
    assert_eq!(
        s.track.apt,
        vec![
            src(
                "https://deb.debian.org/debian-security",
                "bookworm-security",
                &["main", "contrib"]
            ),
            src(
                "https://deb.debian.org/debian",
                "bookworm-updates",
                &["main", "contrib"]
            ),
        ]
    );
}

#[test]
fn scripts_from_files_and_app_dir() {
    let s = load_valid("script-file");
    let app_dir = fs::canonicalize(valid_dir().join("app")).expect("fixture app dir");
    assert_eq!(
        s.app,
        Some(App {
            source: AppSource::Dir(app_dir),
            dest: "/opt/app".into()
        })
    );
    assert_eq!(s.scripts.build.as_deref(), Some("set -eu\necho building\n"));
    assert_eq!(s.scripts.boot.as_deref(), Some("mkdir -p /var/lib/web"));
    assert_eq!(
        s.scripts.run.as_deref(),
        Some("exec python3 -m http.server 8000\n")
    );
    assert_eq!(
        s.data,
        Some(Data {
            path: "/var/lib/web".into(),
            shared: false
        })
    );
    assert_eq!(s.base.mirror, "https://mirror.example.org/debian-archive");
    // The base mirror does not end in /debian: security comes from deb.debian.org.
    assert_eq!(
        s.track.apt,
        vec![
            src(
                "http://deb.debian.org/debian-security",
                "bookworm-security",
                &["main"]
            ),
            src(
                "https://mirror.example.org/debian-archive",
                "bookworm-updates",
                &["main"]
            ),
        ]
    );
}

#[test]
fn explicit_empty_apt_tracking() {
    let s = load_valid("no-tracking");
    assert!(s.track.apt.is_empty());
}

#[test]
fn load_all_sorted() {
    let (stacks, diags) = load_all(&valid_dir());
    assert!(diags.is_empty(), "{diags:#?}");
    let names: Vec<&str> = stacks.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["minimal", "no-tracking", "script-file", "url-app"]);
}

#[test]
fn load_all_reports_invalid_and_skips_others() {
    let dir = fixtures().join("mixed");
    let (stacks, diags) = load_all(&dir);
    let names: Vec<&str> = stacks.iter().map(|s| s.name.as_str()).collect();
    // README.md and the hidden .editor-backup.toml are not loaded.
    assert_eq!(names, ["alpha", "zeta"]);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert_eq!(diags[0].file, dir.join("stacks/broken.toml"));
    assert_eq!((diags[0].line, diags[0].col), (2, 8));
    assert_eq!(diags[0].message, "port 0 is out of range (1-65535)");
}

#[test]
fn load_all_without_stacks_dir() {
    let (stacks, diags) = load_all(&fixtures().join("no-such-config-dir"));
    assert!(stacks.is_empty());
    assert!(diags.is_empty());
}

#[test]
fn load_named_variants() {
    let dir = valid_dir();
    assert_eq!(
        load_named(&dir, "url-app").map(|s| s.name),
        Ok("url-app".to_string())
    );

    let d = load_named(&dir, "nope").expect_err("unknown");
    assert_eq!(d.len(), 1);
    // No position and no made-up file: the stacks directory is named.
    assert_eq!((d[0].line, d[0].col), (0, 0));
    assert_eq!(d[0].file, dir.join("stacks"));
    assert_eq!(d[0].message, "unknown stack `nope`");
    assert_eq!(
        d[0].hint.as_deref(),
        Some(
            format!(
                "available stacks: minimal, no-tracking, script-file, url-app; or create {} to define it",
                dir.join("stacks/nope.toml").display()
            )
            .as_str()
        )
    );
    assert!(
        !d[0].to_string().contains(":1:1"),
        "no position for a missing file: {}",
        d[0]
    );

    // Not a stack name: never used as a path.
    let d = load_named(&dir, "../valid/stacks/minimal").expect_err("not a name");
    assert_eq!(d[0].message, "unknown stack `../valid/stacks/minimal`");

    let d = load_named(&fixtures().join("no-such-config-dir"), "web").expect_err("no stacks");
    let hint = d[0].hint.as_deref().unwrap_or("");
    assert!(hint.starts_with("no stacks are defined yet"), "{hint}");

    // Errors of the named file are passed through.
    let d = load_named(&fixtures().join("mixed"), "broken").expect_err("invalid");
    assert_eq!(d[0].message, "port 0 is out of range (1-65535)");
}

#[test]
fn unreadable_file() {
    let dir = invalid_dir();
    let path = dir.join("does-not-exist.toml");
    let d = load_file(&path, &dir).expect_err("missing file");
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].line, d[0].col), (1, 1));
    assert!(
        d[0].message.starts_with("cannot read stack file: "),
        "{}",
        d[0].message
    );
    assert_eq!(d[0].file, path);
}

// ---------------------------------------------------------------------------------------------
// Invalid files: one fixture per error.
// ---------------------------------------------------------------------------------------------

const PACKAGE_RULE: &str = "(Debian Policy §5.6.1: lowercase letters, digits, '+', '-', '.'; \
                            at least 2 characters; starting with a letter or digit)";

macro_rules! invalid_exact {
    ($test:ident, $file:literal, $line:literal, $col:literal, $message:expr) => {
        #[test]
        fn $test() {
            assert_single($file, $line, $col, &$message);
        }
    };
}

macro_rules! invalid_contains {
    ($test:ident, $file:literal, $line:literal, $col:literal, $needle:expr) => {
        #[test]
        fn $test() {
            assert_single_contains($file, $line, $col, &$needle);
        }
    };
}

invalid_exact!(
    unknown_top_level_key,
    "unknown-top-key",
    2,
    1,
    "unknown top-level key `colour`"
);
invalid_exact!(
    unknown_base_key,
    "unknown-base-key",
    7,
    1,
    "unknown key `codename` in [base]"
);
invalid_exact!(
    port_wrong_type,
    "port-string",
    2,
    8,
    "`port` must be an integer, got string"
);
invalid_exact!(
    port_out_of_range,
    "port-range",
    2,
    8,
    "port 70000 is out of range (1-65535)"
);
invalid_exact!(missing_base, "missing-base", 1, 1, "missing table [base]");
invalid_exact!(
    missing_suite,
    "missing-suite",
    3,
    1,
    "missing field `suite` in [base]"
);
invalid_exact!(missing_name, "missing-name", 1, 1, "missing field `name`");
invalid_exact!(
    unknown_distro,
    "unknown-distro",
    4,
    10,
    "unknown distro `ubuntu`"
);
invalid_exact!(
    package_uppercase,
    "package-uppercase",
    2,
    21,
    format!("invalid Debian package name `Python3` {PACKAGE_RULE}")
);
invalid_exact!(
    package_one_char,
    "package-one-char",
    2,
    13,
    format!("invalid Debian package name `x` {PACKAGE_RULE}")
);
invalid_exact!(
    package_duplicate,
    "package-duplicate",
    2,
    27,
    "duplicate package `curl` (already listed at 2:13)"
);
invalid_exact!(
    sha256_wrong_length,
    "sha256-length",
    10,
    10,
    "sha256 must be 64 hexadecimal characters, got 12"
);
invalid_exact!(
    sha256_not_hex,
    "sha256-nonhex",
    10,
    10,
    "sha256 contains the non-hexadecimal character `z`"
);
invalid_exact!(
    url_without_sha256,
    "url-without-sha256",
    9,
    7,
    "`url` in [app] needs a `sha256` checksum"
);
invalid_exact!(
    sha256_without_url,
    "sha256-without-url",
    10,
    10,
    "`sha256` without `url` in [app]"
);
invalid_exact!(
    path_and_url,
    "path-and-url",
    10,
    7,
    "`path` and `url` are mutually exclusive in [app]"
);
invalid_exact!(
    app_dest_relative,
    "app-dest-relative",
    10,
    8,
    "app dest `opt/app` must be an absolute path"
);
invalid_exact!(
    name_mismatch,
    "name-mismatch",
    1,
    8,
    "stack name `something-else` does not match the file name `name-mismatch.toml`"
);
invalid_exact!(
    bad_stack_name,
    "bad_name",
    1,
    8,
    "invalid stack name `bad_name`"
);
invalid_contains!(
    bad_health_duration,
    "health-duration",
    10,
    12,
    "invalid duration `fast` for `interval` in [health]: "
);
invalid_exact!(
    health_path_relative,
    "health-path-relative",
    9,
    8,
    "health path `up` must start with '/'"
);
invalid_exact!(
    env_key_is_secret,
    "env-secret",
    11,
    1,
    "`API_TOKEN` is listed in `secrets` and must not have a value in [env]"
);
invalid_exact!(
    env_bad_key,
    "env-bad-key",
    9,
    1,
    "invalid environment variable name `greeting` in [env]"
);
invalid_exact!(
    env_wrong_type,
    "env-wrong-type",
    9,
    11,
    "`WORKERS` in [env] must be a string, got integer"
);
invalid_exact!(
    secret_bad_name,
    "secret-bad-name",
    2,
    12,
    "invalid secret name `api-token`"
);
invalid_exact!(
    data_relative,
    "data-relative",
    9,
    8,
    "data path `var/lib/data` must be an absolute path"
);
invalid_exact!(
    toml_syntax_error,
    "syntax-error",
    3,
    6,
    "TOML syntax error: unclosed table, expected `]`"
);
invalid_exact!(
    unknown_variant,
    "unknown-variant",
    7,
    11,
    "unknown mmdebstrap variant `tiny`"
);
invalid_exact!(
    unknown_registry,
    "unknown-registry",
    9,
    23,
    "unknown registry `cpan`"
);
invalid_exact!(
    auto_rebuild_unknown,
    "auto-rebuild-unknown",
    9,
    16,
    "unknown auto_rebuild policy `always` in [track]"
);
invalid_exact!(
    mirror_not_url,
    "mirror-not-url",
    6,
    10,
    "mirror `deb.debian.org/debian` is not an http:// or https:// URL"
);
invalid_exact!(
    extra_suite_missing_suite,
    "extra-suite-missing-suite",
    7,
    17,
    "missing field `suite` in base.extra_suites[0]"
);
invalid_exact!(
    base_not_table,
    "base-not-table",
    2,
    8,
    "`base` must be a table, got string"
);
invalid_contains!(
    script_file_missing,
    "script-file-missing",
    9,
    16,
    "script file `scripts/missing.sh` cannot be read: "
);
invalid_exact!(
    script_wrong_type,
    "script-wrong-type",
    9,
    7,
    "`run` in [scripts] must be a string (the script) or a table `{ file = \"...\" }`, got integer"
);
invalid_exact!(
    track_apt_unknown_key,
    "track-apt-unknown-key",
    9,
    79,
    "unknown key `component` in track.apt[0]"
);

#[test]
fn app_path_missing() {
    let resolved = fs::canonicalize(fixtures()).expect("fixtures").join("nope");
    let message = format!(
        "app path `../nope` does not exist (resolved to {})",
        resolved.display()
    );
    assert_single("app-path-missing", 9, 8, &message);
}

#[test]
fn app_path_not_a_directory() {
    let resolved = fs::canonicalize(invalid_dir().join("files/not-a-dir.txt")).expect("fixture");
    let message = format!(
        "app path `files/not-a-dir.txt` is not a directory (resolved to {})",
        resolved.display()
    );
    assert_single("app-path-not-dir", 9, 8, &message);
}

#[test]
fn unknown_key_hints() {
    let d = invalid("unknown-base-key");
    assert_eq!(
        d[0].hint.as_deref(),
        Some("expected one of: distro, suite, mirror, components, variant, extra_suites")
    );
    let d = invalid("track-apt-unknown-key");
    assert_eq!(
        d[0].hint.as_deref(),
        Some(
            "did you mean `components`? expected one of: mirror, suite, components, trusted, \
             signed_by"
        )
    );
    let d = invalid("unknown-distro");
    assert_eq!(d[0].hint.as_deref(), Some("supported distros: debian"));
}

#[test]
fn multiple_errors_are_all_reported() {
    let d = invalid("multiple-errors");
    let got: Vec<(usize, usize, &str)> = d
        .iter()
        .map(|d| (d.line, d.col, d.message.as_str()))
        .collect();
    let curl = format!("invalid Debian package name `Curl` {PACKAGE_RULE}");
    let x = format!("invalid Debian package name `x` {PACKAGE_RULE}");
    assert_eq!(got.len(), 6, "{d:#?}");
    assert_eq!(got[0], (2, 13, curl.as_str()));
    assert_eq!(got[1], (2, 21, x.as_str()));
    assert_eq!(got[2], (3, 8, "port 0 is out of range (1-65535)"));
    assert_eq!(got[3], (5, 1, "missing field `suite` in [base]"));
    assert_eq!(got[4], (6, 10, "unknown distro `ubuntu`"));
    assert_eq!((got[5].0, got[5].1), (10, 11));
    assert!(got[5]
        .2
        .starts_with("invalid duration `soon` for `timeout` in [health]"));
}

#[test]
fn every_invalid_fixture_is_rejected_with_hints() {
    let mut count = 0;
    for entry in fs::read_dir(invalid_dir()).expect("fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("utf-8 name");
            invalid(stem);
            count += 1;
        }
    }
    assert!(count >= 18, "only {count} invalid fixtures");
}

#[test]
fn display_format() {
    let d = invalid("port-range");
    let path = invalid_dir().join("port-range.toml");
    let text = d[0].to_string();
    assert_eq!(
        text,
        format!(
            "{}:2:8: port 70000 is out of range (1-65535)\n  hint: use a TCP port between 1 and 65535, e.g. `port = 8080`",
            path.display()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// In-memory inputs.
// ---------------------------------------------------------------------------------------------

fn parse_mem(name: &str, text: &str) -> Result<drover::stack::Stack, Vec<Diagnostic>> {
    parse_stack(
        &PathBuf::from(format!("{name}.toml")),
        text,
        Path::new("/nonexistent"),
    )
}

const BASE: &str = "[base]\ndistro = \"debian\"\nsuite = \"bookworm\"\n\
                    mirror = \"http://deb.debian.org/debian\"\n";

#[test]
fn columns_count_characters_not_bytes() {
    let text = format!("name = \"u\"\nhealth = {{ path = \"/é\", interval = \"nope\" }}\n{BASE}");
    let d = parse_mem("u", &text).expect_err("bad duration");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!((d[0].line, d[0].col), (2, 36));
}

#[test]
fn wrong_types_everywhere() {
    let text =
        format!("name = 1\npackages = \"curl\"\nsecrets = [1]\nenv = []\n{BASE}components = []\n");
    let d = parse_mem("w", &text).expect_err("wrong types");
    let got: Vec<(usize, usize, &str)> = d
        .iter()
        .map(|d| (d.line, d.col, d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 8, "`name` must be a string, got integer"),
            (2, 12, "`packages` must be an array, got string"),
            (3, 12, "`secrets[0]` must be a string, got integer"),
            (4, 7, "`env` must be a table, got array"),
            (9, 14, "`components` in [base] must not be empty"),
        ]
    );
}

#[test]
fn no_panic_on_truncated_or_odd_input() {
    let hello = fs::read_to_string(manifest_dir().join("config/stacks/hello.toml")).expect("demo");
    let config = manifest_dir().join("config");
    let file = PathBuf::from("hello.toml");
    for (i, _) in hello.char_indices() {
        let _ = parse_stack(&file, &hello[..i], &config);
    }
    for odd in [
        "",
        "\u{feff}",
        "[[base]]\n",
        "base = { distro = \"debian\", suite = 1, mirror = [] }",
        "port = 0x10000\n",
        "port = -1\n",
        "port = 1.5\n",
        "port = 9223372036854775807\n",
        "packages = [[\"a\"]]\n",
        "[app]\nsha256 = \"é\"\n",
        "[track]\napt = [1, { suite = \"x\" }]\nregistries = \"npm\"\n",
        "[scripts]\nrun = { path = 1 }\n",
        "health.interval = \"\"\n",
    ] {
        let d = parse_stack(&file, odd, &config).expect_err(odd);
        assert!(!d.is_empty());
        for diag in d {
            assert!(diag.line >= 1 && diag.col >= 1, "{diag}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// drover.toml.
// ---------------------------------------------------------------------------------------------

#[test]
fn config_default_valid_and_unknown_key() {
    use drover::config::{load, parse, Config};

    assert_eq!(
        load(&fixtures().join("no-such-drover.toml")),
        Ok(Config::default())
    );
    assert_eq!(
        load(&manifest_dir().join("config/drover.toml")),
        Ok(Config {
            keep_images: 3,
            ..Config::default()
        })
    );
    assert_eq!(
        parse(Path::new("d.toml"), "[images]\nkeep = 7\n"),
        Ok(Config {
            keep_images: 7,
            ..Config::default()
        })
    );

    let d = parse(Path::new("d.toml"), "[images]\nkeep = 2\nmax = 9\n").expect_err("unknown key");
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].line, d[0].col), (3, 1));
    assert_eq!(d[0].message, "unknown key `max` in [images]");
    assert_eq!(d[0].hint.as_deref(), Some("expected one of: keep"));
}

#[test]
fn health_thresholds_and_test_script() {
    let text = format!(
        "name = \"h\"\nhealth = {{ healthy_threshold = 2, unhealthy_threshold = 5 }}\n\
         scripts = {{ test = \"exit 0\" }}\n{BASE}"
    );
    let s = parse_mem("h", &text).expect("valid");
    assert_eq!(
        (s.health.healthy_threshold, s.health.unhealthy_threshold),
        (2, 5)
    );
    assert_eq!(s.scripts.test.as_deref(), Some("exit 0"));
    let text = format!("name = \"h\"\nhealth = {{ unhealthy_threshold = 0 }}\n{BASE}");
    let d = parse_mem("h", &text).expect_err("out of range");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(
        d[0].message
            .contains("unhealthy_threshold 0 is out of range (1-100)"),
        "{d:#?}"
    );
    assert_eq!(d[0].line, 2);
}

#[test]
fn deploy_listen_defaults_to_every_ipv4_address_and_is_checked() {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let s = parse_mem("w", &format!("name = \"w\"\n{BASE}")).expect("valid");
    assert_eq!(s.deploy.listen, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    for (text, want) in [
        ("127.0.0.1", IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ("::", IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        ("::1", IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ] {
        let s = parse_mem(
            "w",
            &format!("name = \"w\"\n{BASE}[deploy]\nlisten = \"{text}\"\n"),
        )
        .expect("valid");
        assert_eq!(s.deploy.listen, want, "{text}");
    }
    // A host name, an address with a port, a number: each located at the value.
    for (value, message, hint) in [
        (
            "\"localhost\"",
            "`listen` in [deploy] is not an IP address: \"localhost\"",
            "not a host name",
        ),
        (
            "\"127.0.0.1:8080\"",
            "`listen` in [deploy] is not an IP address: \"127.0.0.1:8080\"",
            "without a port",
        ),
        (
            "8080",
            "`listen` in [deploy] must be a string, got integer",
            "listen = \"127.0.0.1\"",
        ),
    ] {
        let text = format!("name = \"w\"\n{BASE}[deploy]\nlisten = {value}\n");
        let d = parse_mem("w", &text).expect_err(value);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!((d[0].line, d[0].col), (7, 10), "{}", d[0]);
        assert_eq!(d[0].message, message);
        assert!(d[0].hint.as_deref().unwrap().contains(hint), "{}", d[0]);
    }
}

#[test]
fn deploy_keep_warm_defaults_off_and_is_checked() {
    let s = parse_mem("w", &format!("name = \"w\"\n{BASE}")).expect("valid");
    assert!(!s.deploy.keep_warm, "keep_warm defaults to false");
    let s = parse_mem(
        "w",
        &format!("name = \"w\"\n{BASE}[deploy]\nkeep_warm = true\n"),
    )
    .expect("valid");
    assert!(s.deploy.keep_warm);
    // Not a boolean: located at the value, with an example.
    let text = format!("name = \"w\"\n{BASE}[deploy]\nkeep_warm = \"yes\"\n");
    let d = parse_mem("w", &text).expect_err("string keep_warm");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!((d[0].line, d[0].col), (7, 13), "{}", d[0]);
    assert_eq!(
        d[0].message,
        "`keep_warm` in [deploy] must be a boolean, got string"
    );
    assert!(d[0].hint.as_deref().unwrap().contains("keep_warm = true"));
    // A misspelt key gets a suggestion.
    let text = format!("name = \"w\"\n{BASE}[deploy]\nkeep_worm = true\n");
    let d = parse_mem("w", &text).expect_err("unknown key");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!((d[0].line, d[0].col), (7, 1));
    assert_eq!(d[0].message, "unknown key `keep_worm` in [deploy]");
    assert!(d[0]
        .hint
        .as_deref()
        .unwrap()
        .contains("did you mean `keep_warm`?"));
}

#[test]
fn deploy_outbound_is_unset_by_default_and_checked() {
    let s = parse_mem("w", &format!("name = \"w\"\n{BASE}")).expect("valid");
    assert_eq!(s.deploy.outbound, None, "unset: on when pasta is installed");
    for (v, want) in [("true", Some(true)), ("false", Some(false))] {
        let text = format!("name = \"w\"\n{BASE}[deploy]\noutbound = {v}\n");
        assert_eq!(parse_mem("w", &text).expect("valid").deploy.outbound, want);
    }
    let text = format!("name = \"w\"\n{BASE}[deploy]\noutbound = \"no\"\n");
    let d = parse_mem("w", &text).expect_err("string outbound");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!((d[0].line, d[0].col), (7, 12), "{}", d[0]);
    assert_eq!(
        d[0].message,
        "`outbound` in [deploy] must be a boolean, got string"
    );
    assert!(d[0].hint.as_deref().unwrap().contains("outbound = false"));
}

#[test]
fn deploy_watch_window_and_its_limits_are_checked() {
    let s = parse_mem("w", &format!("name = \"w\"\n{BASE}")).expect("valid");
    assert_eq!(s.deploy.watch, None, "no watch by default");
    let text = format!(
        "name = \"w\"\n{BASE}[deploy]\nwatch = \"2m\"\nmax_error_rate = 0.1\nmax_p99 = \"250ms\"\n"
    );
    let w = parse_mem("w", &text).expect("valid").deploy.watch.unwrap();
    assert_eq!(w.window, std::time::Duration::from_secs(120));
    assert_eq!(w.max_error_rate, 0.1);
    assert_eq!(w.max_p99, Some(std::time::Duration::from_millis(250)));
    // Only the window: the default error limit, no latency limit.
    let text = format!("name = \"w\"\n{BASE}[deploy]\nwatch = \"30s\"\n");
    let w = parse_mem("w", &text).expect("valid").deploy.watch.unwrap();
    assert_eq!((w.max_error_rate, w.max_p99), (0.05, None));
    // An integer rate is a number too.
    let text = format!("name = \"w\"\n{BASE}[deploy]\nwatch = \"30s\"\nmax_error_rate = 1\n");
    assert_eq!(
        parse_mem("w", &text)
            .expect("valid")
            .deploy
            .watch
            .unwrap()
            .max_error_rate,
        1.0
    );
    let cases = [
        (
            "watch = \"2s\"\n",
            (7, 9),
            "`watch` in [deploy] must be between 5s and 1h, got 2s",
            "watch = \"2m\"",
        ),
        (
            "watch = \"soon\"\n",
            (7, 9),
            "invalid duration `soon` for `watch` in [deploy]: expected number at 0",
            "2m 30s",
        ),
        (
            "watch = \"1m\"\nmax_error_rate = 5\n",
            (8, 18),
            "`max_error_rate` in [deploy] must be between 0 and 1, got 5",
            "0.05",
        ),
        (
            "watch = \"1m\"\nmax_error_rate = \"5%\"\n",
            (8, 18),
            "`max_error_rate` in [deploy] must be a number, got string",
            "max_error_rate = 0.05",
        ),
        (
            "max_p99 = \"1s\"\n",
            (7, 11),
            "`max_p99` in [deploy] has no effect without `watch`",
            "watch = \"2m\"",
        ),
    ];
    for (table, (line, col), message, hint) in cases {
        let text = format!("name = \"w\"\n{BASE}[deploy]\n{table}");
        let d = parse_mem("w", &text).expect_err(table);
        assert_eq!(d.len(), 1, "{table}: {d:#?}");
        assert_eq!((d[0].line, d[0].col), (line, col), "{}", d[0]);
        assert_eq!(d[0].message, message, "{table}");
        assert!(d[0].hint.as_deref().unwrap().contains(hint), "{}", d[0]);
    }
}

#[test]
fn deploy_strategy_defaults_to_recreate_for_data_that_is_not_shared() {
    use drover::stack::Strategy;
    let stack = |extra: &str| format!("name = \"w\"\n{BASE}{extra}");
    let strategy = |extra: &str| parse_mem("w", &stack(extra)).expect("valid").strategy();
    assert_eq!(strategy(""), Strategy::BlueGreen, "no data");
    assert_eq!(strategy("[data]\npath = \"/d\"\n"), Strategy::Recreate);
    assert_eq!(
        strategy("[data]\npath = \"/d\"\nshared = true\n"),
        Strategy::BlueGreen
    );
    assert_eq!(
        strategy("[data]\npath = \"/d\"\nshared = true\n[deploy]\nstrategy = \"recreate\"\n"),
        Strategy::Recreate
    );
    assert_eq!(
        strategy("[deploy]\nstrategy = \"recreate\"\n"),
        Strategy::Recreate
    );
    for (extra, (line, col), message, hint) in [
        (
            "[data]\npath = \"/d\"\n[deploy]\nstrategy = \"blue-green\"\n",
            (9, 12),
            "would run two releases on the [data] volume at once, and it is not `shared`",
            "shared = true",
        ),
        (
            "[data]\npath = \"/d\"\n[deploy]\nkeep_warm = true\n",
            (9, 13),
            "`keep_warm = true` in [deploy] would keep the replaced release running",
            "remove `keep_warm`",
        ),
        (
            "[deploy]\nstrategy = \"rolling\"\n",
            (7, 12),
            "unknown strategy `rolling` in [deploy]",
            "\"recreate\"",
        ),
        (
            "[data]\npath = \"/d\"\nshared = \"yes\"\n",
            (8, 10),
            "`shared` in [data] must be a boolean, got string",
            "shared = true",
        ),
    ] {
        let d = parse_mem("w", &stack(extra)).expect_err(extra);
        assert_eq!(d.len(), 1, "{extra}: {d:#?}");
        assert_eq!((d[0].line, d[0].col), (line, col), "{}", d[0]);
        assert!(d[0].message.contains(message), "{}", d[0]);
        assert!(d[0].hint.as_deref().unwrap().contains(hint), "{}", d[0]);
    }
}

#[test]
fn app_max_size_takes_units_or_bytes_and_is_checked() {
    let app = |extra: &str| {
        format!(
            "name = \"m\"\n{BASE}[app]\nurl = \"https://example.org/a.tar.gz\"\n\
             sha256 = \"{}\"\n{extra}",
            "a".repeat(64)
        )
    };
    let cap = |extra: &str| match parse_mem("m", &app(extra)).expect("valid").app {
        Some(App {
            source: AppSource::Url { max_size, .. },
            ..
        }) => max_size,
        other => panic!("{other:?}"),
    };
    assert_eq!(cap(""), 2 << 30, "default 2 GiB");
    assert_eq!(cap("max_size = \"500MiB\"\n"), 500 << 20);
    assert_eq!(cap("max_size = \"2GiB\"\n"), 2 << 30);
    assert_eq!(cap("max_size = 1048576\n"), 1 << 20);
    for (extra, message) in [
        (
            "max_size = \"5 parsecs\"\n",
            "invalid `max_size` in [app]: unknown unit `parsecs` in `5 parsecs` \
             (use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB)",
        ),
        (
            "max_size = 0\n",
            "`max_size` in [app] must be greater than zero",
        ),
        (
            "max_size = -3\n",
            "invalid `max_size` in [app]: -3 is negative",
        ),
        (
            "max_size = true\n",
            "`max_size` in [app] must be a size string or an integer, got boolean",
        ),
    ] {
        let d = parse_mem("m", &app(extra)).expect_err(extra);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!((d[0].line, d[0].col), (9, 12), "{}", d[0]);
        assert_eq!(d[0].message, message);
        assert!(d[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("max_size = \"4GiB\""));
    }
    // With a local `path` it means nothing: refused where it stands.
    let text = format!("name = \"m\"\n{BASE}[app]\npath = \"apps\"\nmax_size = \"1GiB\"\n");
    let d = parse_mem("m", &text).expect_err("max_size with path");
    assert!(
        d.iter()
            .any(|d| d.message == "`max_size` without `url` in [app]" && d.line == 8),
        "{d:#?}"
    );
}

#[test]
fn tcp_stacks_users_health_commands_and_stop_signals() {
    use drover::stack::Protocol;
    let stack = |top: &str, tables: &str| format!("name = \"w\"\n{top}{BASE}{tables}");
    let s = parse_mem(
        "w",
        &stack(
            "protocol = \"tcp\"\nuser = \"postgres\"\n",
            "[health]\ncommand = 'pg_isready -p \"$PORT\"'\n[deploy]\nstop_signal = \"int\"\nstop_timeout = \"30s\"\n",
        ),
    )
    .expect("valid");
    assert_eq!(s.protocol, Protocol::Tcp);
    assert_eq!(s.user.as_deref(), Some("postgres"));
    assert_eq!(s.health.command.as_deref(), Some("pg_isready -p \"$PORT\""));
    assert_eq!(s.deploy.stop_signal, "SIGINT");
    assert_eq!(s.deploy.stop_signal_number(), 2); // SIGINT, signal(7)
    assert_eq!(s.deploy.stop_timeout, Duration::from_secs(30));
    // Root is what runs without the key.
    let s = parse_mem("w", &stack("user = \"root\"\n", "")).expect("valid");
    assert_eq!((s.user, s.protocol), (None, Protocol::Http));
    assert_eq!(s.deploy.stop_signal, "SIGTERM");

    for (top, tables, (line, col), message, hint) in [
        (
            "protocol = \"udp\"\n",
            "",
            (2, 12),
            "unknown protocol `udp`",
            "\"tcp\"",
        ),
        (
            "user = \"Post gres\"\n",
            "",
            (2, 8),
            "invalid user `Post gres`",
            "numeric uid",
        ),
        (
            "protocol = \"tcp\"\n",
            "[health]\npath = \"/up\"\n",
            (8, 8),
            "`path` in [health] is an HTTP path, and this stack's protocol is \"tcp\"",
            "TCP connect",
        ),
        (
            "",
            "[health]\npath = \"/up\"\ncommand = \"true\"\n",
            (7, 8),
            "[health] has both `path` and `command`",
            "keep one",
        ),
        (
            "",
            "[health]\ncommand = \" \"\n",
            (7, 11),
            "`command` in [health] is empty",
            "exits 0",
        ),
        (
            "",
            "[deploy]\nstop_signal = \"SIGKILL\"\n",
            (7, 15),
            "unknown stop signal `SIGKILL` in [deploy]",
            "SIGTERM, SIGINT",
        ),
        (
            "",
            "[deploy]\nstop_timeout = \"1h\"\n",
            (7, 16),
            "`stop_timeout` in [deploy] is over 5 minutes",
            "5m",
        ),
        (
            "protocol = \"tcp\"\n",
            "[deploy]\nwatch = \"2m\"\n",
            (8, 9),
            "`watch` in [deploy] judges a release by its HTTP route metrics, and this stack's \
             protocol is \"tcp\" (a TCP route records none)",
            "health check",
        ),
        (
            "",
            "[links]\nDB = \"pg\"\n",
            (7, 1),
            "invalid link name `DB` in [links]",
            "DB_HOST",
        ),
        (
            "",
            "[links]\ndb = \"w\"\n",
            (7, 6),
            "`db` in [links] links the stack to itself",
            "another stack",
        ),
        (
            "",
            "[links]\ndb = \"Pg Server\"\n",
            (7, 6),
            "`db` in [links] names `Pg Server`, which is not a stack name",
            "file stem",
        ),
        (
            "",
            "[env]\nDB_HOST = \"x\"\n[links]\ndb = \"pg\"\n",
            (9, 1),
            "the link `db` sets DB_HOST, which this stack also sets itself",
            "remove DB_HOST",
        ),
    ] {
        let d = parse_mem("w", &stack(top, tables)).expect_err(tables);
        assert_eq!(d.len(), 1, "{top}{tables}: {d:#?}");
        assert_eq!((d[0].line, d[0].col), (line, col), "{}", d[0]);
        assert_eq!(d[0].message, message, "{}", d[0]);
        assert!(d[0].hint.as_deref().unwrap().contains(hint), "{}", d[0]);
    }
}

#[test]
fn deps_files_are_relative_regular_files_of_the_app_and_need_a_deps_script() {
    let cfg = tempfile::tempdir().unwrap();
    let app = cfg.path().join("apps/w");
    fs::create_dir_all(app.join("sub")).unwrap();
    fs::write(app.join("requirements.txt"), "six==1.16.0\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", app.join("link")).unwrap();
    let parse = |tables: &str, with_app: bool| {
        let app_table = if with_app {
            "[app]\npath = \"apps/w\"\n"
        } else {
            "[app]\nurl = \"https://example.org/w.tar\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n"
        };
        parse_stack(
            Path::new("w.toml"),
            &format!("name = \"w\"\n{BASE}{app_table}{tables}"),
            cfg.path(),
        )
    };
    let s = parse(
        "[deps]\nfiles = [\"requirements.txt\"]\n[scripts]\ndeps = \"pip install\"\n",
        true,
    )
    .expect("valid");
    assert_eq!(s.deps, strings(&["requirements.txt"]));
    assert_eq!(s.scripts.deps.as_deref(), Some("pip install"));
    // A deps script alone (dependencies pinned in it) is a layer keyed by the script.
    let s = parse("[scripts]\ndeps = \"pip install six==1.16.0\"\n", true).expect("valid");
    assert!(s.deps.is_empty() && s.scripts.deps.is_some());

    let script = "[scripts]\ndeps = \"x\"\n";
    for (tables, with_app, (line, col), message, hint) in [
        (
            format!("[deps]\nfiles = [\"../x\"]\n{script}"),
            true,
            (9, 10),
            "`../x` in [deps] files leaves the app directory (`..`)".to_string(),
            "relative to the app directory",
        ),
        (
            format!("[deps]\nfiles = [\"/etc/passwd\"]\n{script}"),
            true,
            (9, 10),
            "`/etc/passwd` in [deps] files is an absolute path".to_string(),
            "relative to the app directory",
        ),
        (
            format!("[deps]\nfiles = [\"missing.txt\"]\n{script}"),
            true,
            (9, 10),
            format!(
                "`missing.txt` in [deps] files cannot be read: No such file or directory \
                 (os error 2) ({})",
                app.join("missing.txt").display()
            ),
            "create the file",
        ),
        (
            format!("[deps]\nfiles = [\"sub\"]\n{script}"),
            true,
            (9, 10),
            format!(
                "`sub` in [deps] files is a directory ({}), not a regular file",
                app.join("sub").display()
            ),
            "dependency manifest",
        ),
        (
            format!("[deps]\nfiles = [\"link\"]\n{script}"),
            true,
            (9, 10),
            format!(
                "`link` in [deps] files is a symbolic link ({}), not a regular file",
                app.join("link").display()
            ),
            "outside the app",
        ),
        (
            format!("[deps]\nfiles = [\"requirements.txt\", \"requirements.txt\"]\n{script}"),
            true,
            (9, 30),
            "`requirements.txt` is listed twice in [deps] files".to_string(),
            "once",
        ),
        (
            format!("[deps]\nfiles = []\n{script}"),
            true,
            (9, 9),
            "`files` in [deps] is empty".to_string(),
            "or remove [deps]",
        ),
        (
            "[deps]\nfiles = [\"requirements.txt\"]\n".to_string(),
            true,
            (9, 9),
            "[deps] lists files, but nothing installs them: [scripts] has no `deps`".to_string(),
            "deps = ",
        ),
        (
            format!("[deps]\nfiles = [\"requirements.txt\"]\n{script}"),
            false,
            (9, 1),
            "[deps] needs the app as a local `path`, but [app] is a `url`".to_string(),
            "use `[app] path`",
        ),
    ] {
        let d = parse(&tables, with_app).expect_err(&tables);
        assert_eq!(d.len(), 1, "{tables}: {d:#?}");
        assert_eq!((d[0].line, d[0].col), (line, col), "{}", d[0]);
        assert_eq!(d[0].message, message, "{}", d[0]);
        assert!(d[0].hint.as_deref().unwrap().contains(hint), "{}", d[0]);
    }
}

/// Issue #14's sweep: image paths that resolve onto the root, a run-time mount, a system
/// directory or drover's own; a volume over the app; empty scripts; a NUL in `[env]`; an
/// app directory that holds the config directory (its secrets).
#[test]
fn dangerous_paths_empty_scripts_and_the_config_dir_as_app_are_refused() {
    let cfg = tempfile::tempdir().unwrap();
    fs::create_dir_all(cfg.path().join("app")).unwrap();
    let parse = |tables: &str| {
        parse_stack(
            Path::new("w.toml"),
            &format!("name = \"w\"\n{BASE}{tables}"),
            cfg.path(),
        )
    };
    let s =
        parse("[app]\npath = \"app\"\ndest = \"/opt/app/\"\n[data]\npath = \"/opt/app/data\"\n")
            .expect("a volume below the app is fine");
    assert_eq!(s.app.unwrap().dest, "/opt/app", "normalised");
    assert_eq!(s.data.unwrap().path, "/opt/app/data");

    let app = "[app]\npath = \"app\"\n";
    for (tables, (line, col), message, hint) in [
        (
            format!("{app}dest = \"/\"\n"),
            (8, 8),
            "app dest `/` is the image's root `/`",
            "/opt/app",
        ),
        (
            format!("{app}dest = \"/opt/../etc\"\n"),
            (8, 8),
            "app dest `/opt/../etc` has `.` or `..` in it; write the directory it means",
            "/opt/app",
        ),
        (
            format!("{app}dest = \"/usr\"\n"),
            (8, 8),
            "app dest `/usr` is the system directory /usr itself (the image's own files live there)",
            "/opt/app",
        ),
        (
            format!("{app}dest = \"/etc/drover/app\"\n"),
            (8, 8),
            "app dest `/etc/drover/app` is inside /etc/drover, drover's own directory (the \
             entrypoint and the lifecycle scripts)",
            "/opt/app",
        ),
        (
            "[data]\npath = \"/tmp/db\"\n".to_string(),
            (7, 8),
            "data path `/tmp/db` is under /tmp, which every instance gets fresh at run time \
             (whatever is there is hidden)",
            "/var/lib/NAME",
        ),
        (
            "[data]\npath = \"/var\"\n".to_string(),
            (7, 8),
            "data path `/var` is the system directory /var itself (the image's own files live there)",
            "/var/lib/NAME",
        ),
        (
            format!("{app}[data]\npath = \"/opt\"\n"),
            (9, 8),
            "data path `/opt` would hide the app: the volume is mounted over [app] dest `/opt/app`",
            "beside the app",
        ),
        (
            "[scripts]\nrun = \"  \"\n".to_string(),
            (7, 7),
            "`run` in [scripts] is empty",
            "remove the key",
        ),
        (
            "[env]\nA = \"x\\u0000y\"\n".to_string(),
            (7, 5),
            "`A` in [env] holds a NUL character",
            "remove",
        ),
    ] {
        let d = parse(&tables).expect_err(&tables);
        assert_eq!(d.len(), 1, "{tables}: {d:#?}");
        assert_eq!((d[0].line, d[0].col), (line, col), "{}", d[0]);
        assert_eq!(d[0].message, message, "{}", d[0]);
        assert!(d[0].hint.as_deref().unwrap().contains(hint), "{}", d[0]);
    }
    // The config directory itself as the app would copy secrets/ into the image.
    let d = parse("[app]\npath = \".\"\n").expect_err("config dir");
    assert_eq!((d[0].line, d[0].col), (7, 8), "{}", d[0]);
    assert!(
        d[0].message
            .starts_with("app path `.` is the config directory or holds it"),
        "{}",
        d[0]
    );
    assert!(d[0].message.contains("secrets/"), "{}", d[0]);
}

#[test]
fn risky_values_are_warned_about_and_still_load() {
    use drover::stack::parse::check_stack;
    use drover::stack::Severity;
    let check = |top: &str, base: &str, tables: &str| {
        let text = format!("name = \"w\"\n{top}{base}{tables}");
        let (res, warnings) = check_stack(Path::new("w.toml"), &text, Path::new("/nonexistent"));
        res.unwrap_or_else(|d| panic!("{text}\nshould load: {d:#?}"));
        warnings
    };
    assert!(
        check("", BASE, "").is_empty(),
        "the plain stack has no warnings"
    );
    assert!(
        check("", BASE, "[env]\nGREETING = \"hi\"\nDB_PASSWORD = \"\"\n").is_empty(),
        "plain values and empty credentials are not warned about"
    );
    let moving = BASE.replace("bookworm", "stable");
    let tcp_local = "[deploy]\nlisten = \"127.0.0.1\"\n";
    for (top, base, tables, (line, col), message, hint) in [
        (
            "",
            BASE,
            "[env]\nAPI_TOKEN = \"abc123\"\n",
            (7, 13),
            "`API_TOKEN` in [env] looks like a credential, and [env] values are baked into the image",
            "list `API_TOKEN` in `secrets`",
        ),
        (
            "",
            moving.as_str(),
            "",
            (4, 9),
            "suite `stable` is an alias that moves to the next Debian release when it is made",
            "write the codename",
        ),
        (
            "protocol = \"tcp\"\n",
            BASE,
            "",
            (2, 12),
            "this TCP route listens on 0.0.0.0 (every interface): a database or cache is then \
             reachable from any host that can reach this machine",
            "listen = \"127.0.0.1\"",
        ),
        (
            "protocol = \"tcp\"\n",
            BASE,
            "[deploy]\nlisten = \"::\"\n",
            (8, 10),
            "this TCP route listens on :: (every interface): a database or cache is then \
             reachable from any host that can reach this machine",
            "listen = \"127.0.0.1\"",
        ),
        (
            "",
            BASE,
            "[track]\napt = []\n",
            (7, 7),
            "`apt = []` in [track]: no repository is tracked, so `drover updates` never lists \
             a security fix for this stack",
            "remove `apt`",
        ),
        (
            "",
            BASE,
            "[track]\napt = [{ mirror = \"http://deb.debian.org/debian-security\", suite = \
             \"bookworm-security\", trusted = true }]\n",
            (7, 99),
            "`trusted = true`: this repository's packages are accepted without a valid \
             signature, so anyone on the network path can replace them",
            "signed_by",
        ),
    ] {
        let w = check(top, base, tables);
        let what = format!("{top}{base}{tables}");
        assert_eq!(w.len(), 1, "{what}: {w:#?}");
        assert_eq!(w[0].severity, Severity::Warning);
        assert_eq!((w[0].line, w[0].col), (line, col), "{what}: {}", w[0]);
        assert_eq!(w[0].message, message, "{}", w[0]);
        assert!(w[0].hint.as_deref().unwrap().contains(hint), "{}", w[0]);
        assert!(
            w[0].to_string().starts_with(&format!("w.toml:{line}:{col}: warning: ")),
            "{}",
            w[0]
        );
    }
    // Loopback TCP, and a volume shared on purpose: nothing to warn about.
    assert!(check("protocol = \"tcp\"\n", BASE, tcp_local).is_empty());
    assert!(check("", BASE, "[data]\npath = \"/var/lib/w\"\nshared = true\n").is_empty());
    // Warnings come with errors too, so a broken file shows every risk at once.
    let (res, w) = check_stack(
        Path::new("w.toml"),
        &format!("name = \"w\"\nport = 0\n{BASE}[env]\nX_SECRET = \"s\"\n"),
        Path::new("/nonexistent"),
    );
    assert!(res.is_err());
    assert_eq!(w.len(), 1, "{w:#?}");
}

#[test]
fn vm_table_defaults_off_and_its_keys_are_checked() {
    use drover::stack::VmFormat;
    let parse = |tables: &str| parse_mem("w", &format!("name = \"w\"\n{BASE}{tables}"));
    let s = parse("").unwrap();
    assert!(!s.vm.enabled);
    assert_eq!(
        (s.vm.size, s.vm.format, s.vm.kernel),
        (None, VmFormat::Qcow2, None)
    );
    let s = parse(
        "[vm]\nenabled = true\nsize = \"3GiB\"\nformat = \"raw\"\nkernel = \"linux-image-amd64\"\n",
    )
    .unwrap();
    assert!(s.vm.enabled);
    assert_eq!(s.vm.size, Some(3 << 30));
    assert_eq!(s.vm.format, VmFormat::Raw);
    assert_eq!(s.vm.kernel.as_deref(), Some("linux-image-amd64"));
    for (tables, (line, col), message, hint) in [
        (
            "[vm]\nsize = 2\n",
            (7, 8),
            "`size` in [vm] is 2 B, below the 256 MiB a Debian system with a kernel needs",
            "write a unit",
        ),
        (
            "[vm]\nsize = \"2 parsecs\"\n",
            (7, 8),
            "invalid `size` in [vm]",
            "size = \"2GiB\"",
        ),
        (
            "[vm]\nformat = \"vmdk\"\n",
            (7, 10),
            "unknown disk format `vmdk` in [vm]",
            "\"qcow2\"",
        ),
        (
            "[vm]\nkernel = \"Linux Image\"\n",
            (7, 10),
            "invalid kernel package name `Linux Image` in [vm]",
            "linux-image-cloud-amd64",
        ),
        (
            "[vm]\nsizes = \"2GiB\"\n",
            (7, 1),
            "unknown key `sizes` in [vm]",
            "size",
        ),
    ] {
        let d = parse(tables).expect_err(tables);
        assert_eq!(d.len(), 1, "{tables}: {d:#?}");
        assert_eq!((d[0].line, d[0].col), (line, col), "{}", d[0]);
        assert!(d[0].message.starts_with(message), "{}", d[0]);
        assert!(d[0].hint.as_deref().unwrap().contains(hint), "{}", d[0]);
    }
}
