//! Warnings: values that are legitimate but risky, reported by `validate` and every build
//! without refusing the file. Each names the key, what could go wrong, and how to avoid it.
//! Warnings within one section are raised by that section's validator; this module holds
//! the ones that need several sections at once, and the name rule for secret-like values.

use std::net::IpAddr;

use super::super::toml_check::{Checker, Tbl};
use super::super::{Deploy, Protocol};

/// Words that mark an environment variable name as holding a credential (`DB_PASSWORD`,
/// `API_TOKEN`, `AWS_SECRET_ACCESS_KEY`, `STRIPE_API_KEY`, `SSH_PRIVATE_KEY`).
const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "CREDENTIAL",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "ACCESS_KEY",
];

/// Whether an `[env]` name looks like it holds a credential (see [`SECRET_WORDS`]).
pub(in crate::stack) fn looks_like_secret(name: &str) -> bool {
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

/// Debian's suite aliases, which move to another release when Debian makes one
/// (`stable` became trixie in 2025): a lock pins the packages, but the next re-lock then
/// jumps a whole release. Release names: <https://wiki.debian.org/DebianReleases>.
const MOVING_SUITES: &[&str] = &[
    "stable",
    "oldstable",
    "oldoldstable",
    "testing",
    "unstable",
    "sid",
    "experimental",
];

/// Whether a suite (`stable`, `stable-updates`, `testing-security`) is a moving alias.
pub(in crate::stack) fn is_moving_suite(suite: &str) -> bool {
    let head = suite.split('-').next().unwrap_or(suite);
    MOVING_SUITES.contains(&head)
}

/// Cross-section warnings of one stack file: a TCP route on every interface. (A `shared`
/// data volume under blue-green is not warned about: `shared = true` is the operator
/// saying two writers are fine.)
pub(in crate::stack) fn warn_risks(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
    protocol: Protocol,
    deploy: &Deploy,
) {
    let listen_at =
        key_span(root, "deploy", "listen").or_else(|| root.get("protocol").map(|v| v.span()));
    if protocol == Protocol::Tcp && is_wildcard(deploy.listen) {
        if let Some(span) = listen_at {
            chk.warn(
                &span,
                format!(
                    "this TCP route listens on {} (every interface): a database or cache is \
                     then reachable from any host that can reach this machine",
                    deploy.listen
                ),
                "set `listen = \"127.0.0.1\"` in [deploy]: linked stacks still reach it \
                 (their instances are piped to the route on the loopback)",
            );
        }
    }
}

fn is_wildcard(ip: IpAddr) -> bool {
    ip.is_unspecified()
}

/// The span of `key` inside the table `table` of `root`, when both are present.
fn key_span(root: &Tbl<'_, '_>, table: &str, key: &str) -> Option<std::ops::Range<usize>> {
    match root.get(table)?.get_ref() {
        toml::de::DeValue::Table(t) => t
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v.span()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_like_names_and_moving_suites() {
        for n in [
            "DB_PASSWORD",
            "API_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "STRIPE_API_KEY",
        ] {
            assert!(looks_like_secret(n), "{n}");
        }
        for n in [
            "GREETING",
            "SORT_KEY",
            "PGDATA",
            "DB_USER",
            "TOKENIZER_MODEL",
        ] {
            // TOKENIZER_MODEL contains TOKEN: the rule is deliberately broad; a warning
            // costs a glance, a baked credential costs a rotation.
            assert_eq!(looks_like_secret(n), n.contains("TOKEN"), "{n}");
        }
        for s in ["stable", "testing-security", "sid", "unstable"] {
            assert!(is_moving_suite(s), "{s}");
        }
        for s in ["bookworm", "bookworm-security", "trixie-updates"] {
            assert!(!is_moving_suite(s), "{s}");
        }
    }
}
