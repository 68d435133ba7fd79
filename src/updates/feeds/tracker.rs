//! The Debian Security Tracker JSON (<https://security-tracker.debian.org/tracker/data/json>):
//! `{SOURCE: {CVE: {"releases": {CODENAME: {"status", "fixed_version", "urgency", "nodsa"}}}}}`.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use serde::Deserialize;

use super::{json_error, FeedEntry, FeedStatus};

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum TrackerStatus {
    Resolved,
    Open,
    Undetermined,
}

#[derive(Deserialize)]
struct TrackerRelease {
    status: TrackerStatus,
    #[serde(default)]
    fixed_version: Option<String>,
    #[serde(default)]
    urgency: Option<String>,
    /// Text in the tracker's data; any other JSON value is taken as "set, no reason".
    #[serde(default)]
    nodsa: Option<serde_json::Value>,
    #[serde(default)]
    nodsa_reason: Option<String>,
}

#[derive(Deserialize)]
struct TrackerCve {
    #[serde(default)]
    releases: HashMap<String, TrackerRelease>,
}

/// Parse the Security Tracker JSON `data` (named `name` in errors), keeping the statements
/// about `codename` for the source packages in `sources` (all when `None`).
///
/// Errors: invalid JSON or an unexpected shape, as `NAME:LINE:COLUMN: what`.
pub fn parse_tracker(
    name: &str,
    data: &[u8],
    codename: &str,
    sources: Option<&HashSet<&str>>,
) -> Result<Vec<FeedEntry>> {
    let doc: HashMap<String, HashMap<String, TrackerCve>> =
        serde_json::from_slice(data).map_err(|e| json_error(name, &e))?;
    let mut out = Vec::new();
    for (source, cves) in doc {
        if sources.is_some_and(|s| !s.contains(source.as_str())) {
            continue;
        }
        for (cve, entry) in cves {
            let Some(rel) = entry.releases.get(codename) else {
                continue;
            };
            let status = match rel.status {
                TrackerStatus::Resolved => match rel.fixed_version.as_deref() {
                    Some("0") => FeedStatus::NotAffected,
                    Some(v) if !v.is_empty() => FeedStatus::Fixed(v.to_string()),
                    // Resolved without a version: nothing to compare, nothing to report.
                    _ => FeedStatus::NotAffected,
                },
                TrackerStatus::Open => FeedStatus::Open {
                    undetermined: false,
                },
                TrackerStatus::Undetermined => FeedStatus::Open { undetermined: true },
            };
            let nodsa = match &rel.nodsa {
                None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => None,
                Some(serde_json::Value::String(n)) if !n.is_empty() => Some(n.clone()),
                Some(_) => Some(rel.nodsa_reason.clone().unwrap_or_default()),
            };
            out.push(FeedEntry {
                source: source.clone(),
                cve,
                status,
                urgency: rel.urgency.clone().filter(|u| !u.is_empty()),
                nodsa,
                feed: "security-tracker",
            });
        }
    }
    out.sort_by(|a, b| (&a.source, &a.cve).cmp(&(&b.source, &b.cve)));
    Ok(out)
}
