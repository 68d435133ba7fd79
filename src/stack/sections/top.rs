//! Top-level keys of a stack file: `packages`, `port`, `secrets` and the `[env]` table.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use toml::de::DeValue;

use super::super::parse::{is_valid_env_name, is_valid_package_name};
use super::super::toml_check::{Checker, Tbl};

const PACKAGE_RULE: &str = "Debian Policy §5.6.1: lowercase letters, digits, '+', '-', '.'; \
                            at least 2 characters; starting with a letter or digit";

pub(in crate::stack) fn validate_packages(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
) -> Vec<String> {
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

pub(in crate::stack) fn validate_port(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Option<u16> {
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

pub(in crate::stack) fn validate_secrets(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Vec<String> {
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

pub(in crate::stack) fn validate_env(
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
            DeValue::String(s) if s.contains('\0') => chk.error(
                &v.span(),
                format!("`{key}` in [env] holds a NUL character"),
                "no process can receive it in its environment: remove the \\u0000",
            ),
            DeValue::String(s) => {
                if !s.is_empty() && super::risks::looks_like_secret(key) {
                    chk.warn(
                        &v.span(),
                        format!("`{key}` in [env] looks like a credential, and [env] values are baked into the image"),
                        format!(
                            "anyone who pulls the image reads it: list `{key}` in `secrets` and put \
                             its value in the stack's secrets file (CONFIG/secrets/NAME.env)"
                        ),
                    );
                }
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

pub(in crate::stack) fn validate_protocol(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
) -> crate::stack::Protocol {
    use crate::stack::Protocol;
    let Some((p, span)) = chk.string(root, "protocol", "protocol = \"tcp\"").present() else {
        return Protocol::Http;
    };
    match p.as_str() {
        "http" => Protocol::Http,
        "tcp" => Protocol::Tcp,
        _ => {
            chk.error(
                &span,
                format!("unknown protocol `{p}`"),
                "use \"http\" (the default: web services) or \"tcp\" (databases and other \
                 services the router pipes byte for byte)",
            );
            Protocol::Http
        }
    }
}

/// Longest user name `useradd` accepts by default (shadow-utils, `LOGIN_NAME_MAX`-1).
const MAX_USER_LEN: usize = 32;

/// Whether `s` is a user name as Debian's `adduser` accepts it by default
/// (`^[a-z][-a-z0-9_]*$`, `NAME_REGEX` of adduser.conf(5)), or a numeric uid.
pub(in crate::stack) fn is_valid_user(s: &str) -> bool {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u32>().is_ok_and(|u| u < u32::MAX);
    }
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase() || c == b'_')
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        && s.len() <= MAX_USER_LEN
}

pub(in crate::stack) fn validate_user(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Option<String> {
    let (u, span) = chk.string(root, "user", "user = \"postgres\"").present()?;
    if !is_valid_user(&u) {
        chk.error(
            &span,
            format!("invalid user `{u}`"),
            "give a user name of the image's /etc/passwd (lowercase letters, digits, '-' \
             and '_', starting with a letter, e.g. `user = \"postgres\"`) or a numeric uid",
        );
        return None;
    }
    if u == "root" || u == "0" {
        // Root is what runs without the key; saying so is harmless.
        return None;
    }
    Some(u)
}
