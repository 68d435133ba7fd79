//! The `[app]` table: a directory or a downloaded artifact with its SHA-256 and size cap
//! (`max_size`), and its `dest`.

use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::DeValue;

use super::super::parse::resolve;
use super::super::toml_check::{Checker, Field, Tbl};
use super::super::{App, AppSource, DEFAULT_APP_MAX_SIZE};
use super::base::check_url;
use crate::text::{format_size, parse_size};

const APP_KEYS: &[&str] = &["path", "url", "sha256", "dest", "max_size"];

const DEFAULT_APP_DEST: &str = "/opt/app";

pub(in crate::stack) fn validate_app(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
    config_dir: &Path,
) -> Option<App> {
    let (t, _) = chk.table(root, "app", "[app]", "[app]").present()?;
    chk.check_keys(&t, APP_KEYS);

    let path = chk.string(&t, "path", "path = \"../apps/web\"");
    let url = chk.string(&t, "url", "url = \"https://example.org/app.tar.gz\"");
    let sha = chk.string(&t, "sha256", "sha256 = \"<64 hex digits from sha256sum>\"");
    let dest = match chk.string(&t, "dest", "dest = \"/opt/app\"") {
        Field::Absent => Some(DEFAULT_APP_DEST.to_string()),
        Field::Invalid => None,
        Field::Present(d, span) => {
            if let Some(why) = d
                .starts_with('/')
                .then(|| super::image_path::refuse_image_dir(&d))
                .flatten()
            {
                chk.error(
                    &span,
                    format!("app dest `{d}` {why}"),
                    "give the app a directory of its own, e.g. `dest = \"/opt/app\"` \
                     (the default)",
                );
                None
            } else if d.starts_with('/') {
                Some(super::image_path::normalized(&d))
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

    let max_size = max_size(chk, &t);
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
            if let Field::Present(_, size_span) = &max_size {
                chk.error(
                    size_span,
                    "`max_size` without `url` in [app]",
                    "`max_size` caps a downloaded `url`; remove it when using a local `path`",
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
            let max_size = match max_size {
                Field::Absent => Some(DEFAULT_APP_MAX_SIZE),
                Field::Invalid => None,
                Field::Present(n, _) => Some(n),
            };
            Some(AppSource::Url {
                url: url?,
                sha256: sha256?,
                max_size: max_size?,
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

/// `max_size`: a byte count (integer) or a size string (`"500MiB"`, `"2GiB"`), above zero.
fn max_size(chk: &mut Checker<'_>, t: &Tbl<'_, '_>) -> Field<u64> {
    let example = "max_size = \"4GiB\"";
    let hint = format!(
        "give the largest download allowed as bytes or with a unit, e.g. `{example}` \
         (default {})",
        format_size(DEFAULT_APP_MAX_SIZE)
    );
    size_field(chk, t, ("[app]", "max_size"), example, &hint)
}

/// The size `key` of the table `label` (e.g. `("[vm]", "size")`): a byte count (integer)
/// or a size string ([`parse_size`]: `"500MiB"`, `"2GiB"`), above zero; `hint` says what
/// to write when it is not.
pub(in crate::stack) fn size_field(
    chk: &mut Checker<'_>,
    t: &Tbl<'_, '_>,
    (label, key): (&str, &str),
    example: &str,
    hint: &str,
) -> Field<u64> {
    let Some(v) = t.get(key) else {
        return Field::Absent;
    };
    let parsed = match v.get_ref() {
        DeValue::Integer(_) => match chk.integer(t, key, example) {
            Field::Present(n, _) => u64::try_from(n).map_err(|_| format!("{n} is negative")),
            _ => return Field::Invalid,
        },
        DeValue::String(s) => parse_size(s),
        _ => {
            chk.wrong_type(
                &format!("`{key}` in {label}"),
                v,
                "a size string or an integer",
                example,
            );
            return Field::Invalid;
        }
    };
    match parsed {
        Ok(0) => {
            chk.error(
                &v.span(),
                format!("`{key}` in {label} must be greater than zero"),
                hint,
            );
            Field::Invalid
        }
        Ok(n) => Field::Present(n, v.span()),
        Err(why) => {
            chk.error(
                &v.span(),
                format!("invalid `{key}` in {label}: {why}"),
                hint,
            );
            Field::Invalid
        }
    }
}

pub(in crate::stack) fn app_dir(
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
            Ok(c) if fs::canonicalize(config_dir).is_ok_and(|cfg| cfg.starts_with(&c)) => {
                chk.error(
                    span,
                    format!(
                        "app path `{p}` is the config directory or holds it (resolved to \
                         {}): its secrets/ and every stack file would be copied into the image",
                        c.display()
                    ),
                    "point `path` at the app's own directory, e.g. `path = \"../apps/NAME\"`",
                );
                None
            }
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

pub(in crate::stack) fn check_sha256(
    chk: &mut Checker<'_>,
    s: &str,
    span: &Range<usize>,
) -> Option<String> {
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
