//! The `[base]` table and the apt-source fields (`mirror`, `suite`, `components`) it shares
//! with `[[track.apt]]`.

use super::super::parse::{SUPPORTED_DISTROS, VARIANTS};
use super::super::toml_check::{Checker, Field, Tbl};
use super::super::{AptSource, Base, Distro};

const BASE_KEYS: &[&str] = &[
    "distro",
    "suite",
    "mirror",
    "components",
    "variant",
    "extra_suites",
];
const SOURCE_KEYS: &[&str] = &["mirror", "suite", "components"];

/// Checks an apt mirror / download URL: `http://` or `https://`, a host, no whitespace.
/// Returns it without trailing slashes.
pub(in crate::stack) fn check_url(s: &str) -> Result<String, &'static str> {
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
pub(in crate::stack) fn is_valid_apt_word(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/' | '+'))
}

pub(in crate::stack) fn validate_mirror(chk: &mut Checker<'_>, t: &Tbl<'_, '_>) -> Option<String> {
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

pub(in crate::stack) fn validate_suite(
    chk: &mut Checker<'_>,
    t: &Tbl<'_, '_>,
    example: &str,
) -> Option<String> {
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

pub(in crate::stack) fn validate_components(
    chk: &mut Checker<'_>,
    t: &Tbl<'_, '_>,
) -> Option<Vec<String>> {
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
pub(in crate::stack) fn validate_source(
    chk: &mut Checker<'_>,
    t: &Tbl<'_, '_>,
    suite_example: &str,
) -> Option<AptSource> {
    chk.check_keys(t, SOURCE_KEYS);
    validate_source_fields(chk, t, suite_example)
}

/// The `mirror`, `suite` and `components` of a source table (keys already checked).
pub(in crate::stack) fn validate_source_fields(
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

pub(in crate::stack) fn validate_base(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Option<Base> {
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
    if let (Some(s), Some(v)) = (&suite, t.get("suite")) {
        if super::risks::is_moving_suite(s) {
            chk.warn(
                &v.span(),
                format!(
                    "suite `{s}` is an alias that moves to the next Debian release when it is made"
                ),
                "write the codename (e.g. `suite = \"bookworm\"`): the lock pins packages, but a \
                 re-lock after a release would jump a whole Debian release at once",
            );
        }
    }
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
