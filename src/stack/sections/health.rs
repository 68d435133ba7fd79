//! The `[health]` table: the health check (HTTP `path`, a `command`, or a TCP connect) and
//! its durations.

use std::time::Duration;

use super::super::toml_check::{Checker, Tbl};
use super::super::{Health, Protocol};

const HEALTH_KEYS: &[&str] = &[
    "path",
    "command",
    "interval",
    "timeout",
    "healthy_threshold",
    "unhealthy_threshold",
];

pub(in crate::stack) fn validate_duration(
    chk: &mut Checker<'_>,
    t: &Tbl<'_, '_>,
    key: &str,
    default: Duration,
) -> Duration {
    validate_duration_in(chk, t, "[health]", key, default)
}

/// A positive duration (`humantime`: "500ms", "2m 30s") at `key` of the table `table`
/// (named in messages); `default` when absent or invalid (the error is recorded).
pub(in crate::stack) fn validate_duration_in(
    chk: &mut Checker<'_>,
    t: &Tbl<'_, '_>,
    table: &str,
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
                format!("`{key}` in {table} must be greater than zero"),
                hint,
            );
            default
        }
        Ok(d) => d,
        Err(e) => {
            chk.error(
                &span,
                format!("invalid duration `{s}` for `{key}` in {table}: {e}"),
                hint,
            );
            default
        }
    }
}

pub(in crate::stack) fn validate_health(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
    protocol: Protocol,
) -> Health {
    let mut health = Health::default();
    let Some((t, _)) = chk.table(root, "health", "[health]", "[health]").present() else {
        return health;
    };
    chk.check_keys(&t, HEALTH_KEYS);
    let command_example = "command = \"pg_isready -q -h 127.0.0.1 -p \\\"$PORT\\\"\"";
    if let Some((c, span)) = chk.string(&t, "command", command_example).present() {
        if c.trim().is_empty() {
            chk.error(
                &span,
                "`command` in [health] is empty",
                format!(
                    "give a shell command that exits 0 when the instance is ready, e.g. \
                     `{command_example}`, or remove the key"
                ),
            );
        } else if c.contains('\0') {
            chk.error(&span, "`command` in [health] holds a NUL byte", "remove it");
        } else {
            health.command = Some(c);
        }
    }
    if let Some((p, span)) = chk.string(&t, "path", "path = \"/up\"").present() {
        if protocol == Protocol::Tcp {
            chk.error(
                &span,
                "`path` in [health] is an HTTP path, and this stack's protocol is \"tcp\"",
                format!(
                    "remove `path`: a tcp stack is checked by `command` (e.g. `{command_example}`) \
                     or, without one, by a TCP connect"
                ),
            );
        } else if health.command.is_some() {
            chk.error(
                &span,
                "[health] has both `path` and `command`",
                "keep one: `path` probes HTTP, `command` runs a check inside the instance",
            );
        } else if p.starts_with('/') {
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
