//! `drover metrics STACK [--release N] [--since 1h]`: what the route saw per release and
//! minute (see [`crate::deploy::metrics`]), then one total per release whose percentiles
//! come from the merged histograms (not averages of minutes). The agent flushes every
//! [`crate::deploy::metrics::FLUSH_INTERVAL`], so the newest seconds may be missing.

use serde::Serialize;

use super::output::{print_json, table};
use super::{CliError, CliResult};
use crate::paths::Paths;
use crate::store::metrics::{Figures, MinuteRow};

/// One release's total over the span (`drover metrics --json`, `releases[]`).
#[derive(Debug, Serialize)]
struct ReleaseTotal {
    release: i64,
    #[serde(flatten)]
    figures: Figures,
    /// Share of 5xx responses, 0.0 to 1.0.
    error_rate: f64,
}

/// The `--json` document.
#[derive(Debug, Serialize)]
struct MetricsReport {
    stack: String,
    /// RFC 3339 start of the span (the minute `--since` falls in).
    since: String,
    minutes: Vec<MinuteRow>,
    releases: Vec<ReleaseTotal>,
}

fn ms(v: Option<f64>) -> String {
    v.map(|m| format!("{m:.1}")).unwrap_or_else(|| "-".into())
}

/// Run `drover metrics`.
pub fn metrics(
    paths: &Paths,
    stack: &str,
    release: Option<i64>,
    since: &str,
    json: bool,
) -> CliResult {
    let cutoff = crate::text::since_cutoff(since, chrono::Utc::now()).map_err(CliError::input)?;
    let from = chrono::DateTime::parse_from_rfc3339(&cutoff)
        .map(|t| t.timestamp())
        .map_err(|e| CliError::failed(format!("cannot read the time {cutoff}: {e}")))?;
    let from = from - from.rem_euclid(60);
    let store = super::query::open_store(paths)?;
    super::query::known_stack(paths, &store, stack)?;
    let minutes = store.route_metrics(stack, release, from)?;
    let mut releases: Vec<i64> = minutes.iter().map(|m| m.release).collect();
    releases.sort_unstable();
    releases.dedup();
    let mut totals = Vec::new();
    for r in releases {
        let b = store.route_metrics_total(stack, r, from, i64::MAX)?;
        totals.push(ReleaseTotal {
            release: r,
            figures: (&b).into(),
            error_rate: b.error_rate(),
        });
    }
    if json {
        return print_json(&MetricsReport {
            stack: stack.to_string(),
            since: chrono::DateTime::from_timestamp(from, 0)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default(),
            minutes,
            releases: totals,
        });
    }
    if minutes.is_empty() {
        println!(
            "no requests through the route of {stack}{} since {since} ago (the agent records \
             them while it serves the route)",
            release
                .map(|r| format!(" for release {r}"))
                .unwrap_or_default()
        );
        return Ok(());
    }
    const HEADER: [&str; 11] = [
        "MINUTE", "RELEASE", "REQUESTS", "2XX", "3XX", "4XX", "5XX", "UPSTREAM", "P50 MS",
        "P95 MS", "P99 MS",
    ];
    let cells: Vec<Vec<String>> = minutes
        .iter()
        .map(|row| {
            let m = &row.figures;
            vec![
                row.minute
                    .replace('T', " ")
                    .trim_end_matches(":00Z")
                    .to_string(),
                row.release.to_string(),
                m.requests.to_string(),
                m.status_2xx.to_string(),
                m.status_3xx.to_string(),
                m.status_4xx.to_string(),
                m.status_5xx.to_string(),
                m.upstream_errors.to_string(),
                ms(m.p50_ms),
                ms(m.p95_ms),
                ms(m.p99_ms),
            ]
        })
        .collect();
    print!("{}", table(&HEADER, &cells));
    println!();
    const TOTAL: [&str; 7] = [
        "RELEASE", "REQUESTS", "5XX", "5XX RATE", "P50 MS", "P95 MS", "P99 MS",
    ];
    let cells: Vec<Vec<String>> = totals
        .iter()
        .map(|t| {
            let f = &t.figures;
            vec![
                t.release.to_string(),
                f.requests.to_string(),
                f.status_5xx.to_string(),
                format!("{:.1}%", t.error_rate * 100.0),
                ms(f.p50_ms),
                ms(f.p95_ms),
                ms(f.p99_ms),
            ]
        })
        .collect();
    print!("{}", table(&TOTAL, &cells));
    Ok(())
}
