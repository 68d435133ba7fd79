//! OSV records of the Debian ecosystem (<https://ossf.github.io/osv-schema/>): `affected[]`
//! entries with `ecosystem` `Debian:N` and `ECOSYSTEM` ranges of `introduced`/`fixed` events.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::Deserialize;

use super::{json_error, FeedEntry, FeedStatus};
use crate::debian::packages::parse_version;

#[derive(Deserialize)]
struct OsvPackage {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct OsvRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct OsvAffected {
    package: OsvPackage,
    #[serde(default)]
    ranges: Vec<OsvRange>,
    #[serde(default)]
    ecosystem_specific: Option<serde_json::Value>,
    #[serde(default)]
    database_specific: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct OsvRecord {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    upstream: Vec<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    affected: Vec<OsvAffected>,
}

fn urgency_of(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref()?
        .get("urgency")?
        .as_str()
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

/// Parse OSV JSON `data` (one record or an array of records, named `name` in errors),
/// keeping the `Debian:N` statements for release `number`.
///
/// Errors: invalid JSON or an unexpected shape, as `NAME:LINE:COLUMN: what`.
pub fn parse_osv(name: &str, data: &[u8], number: u32) -> Result<Vec<FeedEntry>> {
    // Syntax errors carry a line and column; shape errors name the record.
    let value: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| json_error(name, &e))?;
    let records = match value {
        serde_json::Value::Array(items) => items,
        v @ serde_json::Value::Object(_) => vec![v],
        other => bail!(
            "{name}:1:1: expected an OSV record (object) or an array of records, got {}",
            match other {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                _ => "a string",
            }
        ),
    };
    let ecosystem = format!("Debian:{number}");
    let mut out = Vec::new();
    for (i, v) in records.into_iter().enumerate() {
        let rec: OsvRecord = serde_json::from_value(v)
            .map_err(|e| anyhow::anyhow!("{name}: record {i}: not an OSV record: {e}"))?;
        if rec.withdrawn.is_some() {
            continue;
        }
        let mut ids: Vec<String> = if rec.id.starts_with("CVE-") {
            vec![rec.id.clone()]
        } else if let Some(c) = rec.id.strip_prefix("DEBIAN-") {
            vec![c.to_string()]
        } else {
            rec.aliases
                .iter()
                .chain(&rec.upstream)
                .filter(|a| a.starts_with("CVE-"))
                .cloned()
                .collect()
        };
        if ids.is_empty() {
            ids.push(rec.id.clone());
        }
        ids.sort();
        ids.dedup();
        for a in &rec.affected {
            if a.package.ecosystem != ecosystem {
                continue;
            }
            let mut fixed: Option<String> = None;
            let mut any_range = false;
            for r in a.ranges.iter().filter(|r| r.kind == "ECOSYSTEM") {
                any_range = true;
                for ev in &r.events {
                    if let Some(f) = ev.get("fixed") {
                        let newer = match (&fixed, parse_version(f)) {
                            (None, _) => true,
                            (Some(old), Some(fv)) => parse_version(old).is_none_or(|o| fv > o),
                            (Some(_), None) => false,
                        };
                        if newer {
                            fixed = Some(f.clone());
                        }
                    }
                }
            }
            if !any_range {
                continue;
            }
            let status = match fixed {
                Some(f) if f == "0" => FeedStatus::NotAffected,
                Some(f) => FeedStatus::Fixed(f),
                None => FeedStatus::Open {
                    undetermined: false,
                },
            };
            let urgency = urgency_of(&a.ecosystem_specific).or(urgency_of(&a.database_specific));
            for id in &ids {
                out.push(FeedEntry {
                    source: a.package.name.clone(),
                    cve: id.clone(),
                    status: status.clone(),
                    urgency: urgency.clone(),
                    nodsa: None,
                    feed: "osv",
                });
            }
        }
    }
    Ok(out)
}
