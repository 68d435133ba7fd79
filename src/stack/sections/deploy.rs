//! The `[deploy]` table: how releases of the stack are deployed.

use std::time::Duration;

use super::super::toml_check::{Checker, Tbl};
use super::super::{Data, Deploy, Protocol, Strategy, Watch};
use super::health::validate_duration_in;

const DEPLOY_KEYS: &[&str] = &[
    "keep_warm",
    "listen",
    "outbound",
    "watch",
    "max_error_rate",
    "max_p99",
    "strategy",
    "stop_signal",
    "stop_timeout",
];

/// Shortest and longest watch window.
const WATCH_RANGE: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(3600));

pub(in crate::stack) fn validate_deploy(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
    data: Option<&Data>,
    protocol: Protocol,
) -> Deploy {
    let mut deploy = Deploy::default();
    let Some((t, _)) = chk.table(root, "deploy", "[deploy]", "[deploy]").present() else {
        return deploy;
    };
    chk.check_keys(&t, DEPLOY_KEYS);
    let keep_warm_at = chk.boolean(&t, "keep_warm", "keep_warm = true").present();
    if let Some((b, _)) = &keep_warm_at {
        deploy.keep_warm = *b;
    }
    if let Some((b, _)) = chk.boolean(&t, "outbound", "outbound = false").present() {
        deploy.outbound = Some(b);
    }
    if let Some((s, span)) = chk.string(&t, "listen", "listen = \"127.0.0.1\"").present() {
        match s.parse::<std::net::IpAddr>() {
            Ok(ip) => deploy.listen = ip,
            Err(_) => {
                // "127.0.0.1:8080", "[::1]:8080", "localhost": say what is wrong with each.
                let hint = if s.parse::<std::net::SocketAddr>().is_ok() {
                    "give the address without a port (the route's port is the stack's \
                     `port`), e.g. `listen = \"127.0.0.1\"`"
                } else {
                    "write an IPv4 or IPv6 address, not a host name: `listen = \"127.0.0.1\"` \
                     (this machine only), `\"0.0.0.0\"` (every IPv4 address, the default) \
                     or `\"::\"` (every address)"
                };
                chk.error(
                    &span,
                    format!("`listen` in [deploy] is not an IP address: {s:?}"),
                    hint,
                );
            }
        }
    }
    deploy.watch = validate_watch(chk, &t);
    if let (Some(_), Protocol::Tcp, Some(v)) = (&deploy.watch, protocol, t.get("watch")) {
        chk.error(
            &v.span(),
            "`watch` in [deploy] judges a release by its HTTP route metrics, and this \
             stack's protocol is \"tcp\" (a TCP route records none)",
            "remove `watch` (and its limits); a TCP stack is judged by its health check, \
             which fails a deploy that does not become healthy",
        );
        deploy.watch = None;
    }
    if let Some((s, span)) = chk
        .string(&t, "strategy", "strategy = \"recreate\"")
        .present()
    {
        match s.as_str() {
            "blue-green" if data.is_some_and(|d| !d.shared) => chk.error(
                &span,
                "`strategy = \"blue-green\"` in [deploy] would run two releases on the \
                 [data] volume at once, and it is not `shared`"
                    .to_string(),
                "remove `strategy` (a stack with data deploys by \"recreate\"), or set \
                 `shared = true` in [data] if the app allows two writers",
            ),
            "blue-green" => deploy.strategy = Some(Strategy::BlueGreen),
            "recreate" => deploy.strategy = Some(Strategy::Recreate),
            _ => chk.error(
                &span,
                format!("unknown strategy `{s}` in [deploy]"),
                "use \"blue-green\" (new release beside the old, no downtime) or \
                 \"recreate\" (stop the old first: for data only one writer may use)",
            ),
        }
    }
    if let Some((s, span)) = chk
        .string(&t, "stop_signal", "stop_signal = \"SIGINT\"")
        .present()
    {
        let upper = s.to_ascii_uppercase();
        let want = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        match Deploy::STOP_SIGNALS.iter().find(|(n, _)| *n == want) {
            Some((n, _)) => deploy.stop_signal = n,
            None => chk.error(
                &span,
                format!("unknown stop signal `{s}` in [deploy]"),
                format!(
                    "use one of {} (SIGKILL follows by itself after `stop_timeout`)",
                    Deploy::STOP_SIGNALS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
    let stop_timeout =
        validate_duration_in(chk, &t, "[deploy]", "stop_timeout", deploy.stop_timeout);
    if stop_timeout > Duration::from_secs(300) {
        chk.error(
            &t.get("stop_timeout").map(|v| v.span()).unwrap_or(0..0),
            "`stop_timeout` in [deploy] is over 5 minutes",
            "an instance that does not stop in minutes is killed anyway: use at most \"5m\"",
        );
    } else {
        deploy.stop_timeout = stop_timeout;
    }
    let recreate = match (deploy.strategy, data) {
        (Some(s), _) => s == Strategy::Recreate,
        (None, Some(d)) => !d.shared,
        (None, None) => false,
    };
    if let (Some((true, span)), true) = (&keep_warm_at, recreate) {
        chk.error(
            span,
            "`keep_warm = true` in [deploy] would keep the replaced release running on the \
             [data] volume beside the new one, and the stack deploys by \"recreate\""
                .to_string(),
            "remove `keep_warm`, or set `shared = true` in [data] if the app allows two \
             writers (the stack then deploys blue-green)",
        );
    }
    deploy
}

/// `watch`, `max_error_rate`, `max_p99`: the limits need the window.
fn validate_watch(chk: &mut Checker<'_>, t: &Tbl<'_, '_>) -> Option<Watch> {
    let window_at = t.get("watch").map(|v| v.span());
    let window = validate_duration_in(chk, t, "[deploy]", "watch", WATCH_RANGE.0);
    let mut watch = Watch {
        window,
        max_error_rate: Watch::DEFAULT_MAX_ERROR_RATE,
        max_p99: None,
    };
    if let Some(span) = &window_at {
        if !(WATCH_RANGE.0..=WATCH_RANGE.1).contains(&window) {
            chk.error(
                span,
                format!(
                    "`watch` in [deploy] must be between 5s and 1h, got {}",
                    humantime::format_duration(window)
                ),
                "watch long enough for the route to see traffic, e.g. `watch = \"2m\"`",
            );
        }
    }
    if let Some((rate, span)) = chk
        .number(t, "max_error_rate", "max_error_rate = 0.05")
        .present()
    {
        if (0.0..=1.0).contains(&rate) {
            watch.max_error_rate = rate;
        } else {
            chk.error(
                &span,
                format!("`max_error_rate` in [deploy] must be between 0 and 1, got {rate}"),
                "give the share of 5xx responses, e.g. `max_error_rate = 0.05` for 5 %",
            );
        }
    }
    if t.get("max_p99").is_some() {
        watch.max_p99 = Some(validate_duration_in(
            chk,
            t,
            "[deploy]",
            "max_p99",
            Duration::from_millis(500),
        ));
    }
    if window_at.is_none() {
        for key in ["max_error_rate", "max_p99"] {
            if let Some(v) = t.get(key) {
                chk.error(
                    &v.span(),
                    format!("`{key}` in [deploy] has no effect without `watch`"),
                    "add the watch window it applies to, e.g. `watch = \"2m\"`, or remove it",
                );
            }
        }
        return None;
    }
    Some(watch)
}
