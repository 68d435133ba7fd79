//! Debian changelogs (Debian Policy §4.4, `debian/changelog`): entries with their version,
//! urgency, date, and the CVE ids and DSA/DLA advisories their text names.
//!
//! The format is line-oriented and only the header (`package (version) dists;
//! urgency=U`) and trailer (` -- Name <email>  DATE`) lines matter here, so it is read
//! directly rather than with a lossless editing parser.

use serde::{Deserialize, Serialize};

/// One changelog entry, reduced to what update risk needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Source version of the entry.
    pub version: String,
    /// Distributions (e.g. `bookworm-security`).
    pub distributions: String,
    /// `urgency=` value, lowercased (`low`, `medium`, `high`, `emergency`, `critical`).
    pub urgency: String,
    /// Date from the trailer line (RFC 2822 as written), empty when missing.
    pub date: String,
    /// CVE ids named in the entry, sorted and unique.
    pub cves: Vec<String>,
    /// Debian security advisories named (`DSA-1234-1`, `DLA-1234-1`).
    pub advisories: Vec<String>,
}

/// Collect tokens `PREFIX-digits-digits…` (e.g. `CVE-2024-1234`, `DSA-5678-1`) in `text`.
fn ids(text: &str, prefix: &str, min_tail: usize) -> Vec<String> {
    let mut out = Vec::new();
    let upper = text.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    let mut from = 0;
    while let Some(pos) = upper[from..].find(prefix) {
        let start = from + pos;
        from = start + prefix.len();
        if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        let mut i = start + prefix.len();
        let sep = |b: u8| b == b'-' || b == b' ';
        if i >= bytes.len() || !sep(bytes[i]) {
            continue;
        }
        i += 1;
        let a = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == a || i >= bytes.len() || bytes[i] != b'-' {
            continue;
        }
        i += 1;
        let b = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i - b < min_tail {
            continue;
        }
        out.push(format!("{prefix}-{}-{}", &upper[a..b - 1], &upper[b..i]));
    }
    out
}

/// Parse a changelog into its entries (newest first, as written). Lines before the first
/// header and unparsable headers are skipped.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut body = String::new();
    let finish = |e: &mut Entry, body: &str| {
        let mut c = ids(body, "CVE", 4);
        c.sort();
        c.dedup();
        e.cves = c;
        let mut a = ids(body, "DSA", 1);
        a.extend(ids(body, "DLA", 1));
        a.sort();
        a.dedup();
        e.advisories = a;
    };
    for line in text.lines() {
        let is_header = !line.is_empty()
            && !line.starts_with(char::is_whitespace)
            && line.contains(" (")
            && line.contains(')');
        if is_header {
            if let Some(last) = entries.last_mut() {
                finish(last, &body);
            }
            body.clear();
            let Some((_, rest)) = line.split_once(" (") else {
                continue;
            };
            let Some((version, rest)) = rest.split_once(')') else {
                continue;
            };
            let (dists, attrs) = rest.split_once(';').unwrap_or((rest, ""));
            let urgency = attrs
                .split(',')
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("urgency"))
                .map(|(_, v)| v.trim().to_ascii_lowercase())
                .unwrap_or_else(|| "low".into());
            entries.push(Entry {
                version: version.trim().to_string(),
                distributions: dists.trim().to_string(),
                urgency,
                date: String::new(),
                cves: Vec::new(),
                advisories: Vec::new(),
            });
        } else if let Some(trailer) = line.strip_prefix(" -- ") {
            if let (Some(last), Some((_, date))) = (entries.last_mut(), trailer.split_once(">  ")) {
                last.date = date.trim().to_string();
            }
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some(last) = entries.last_mut() {
        finish(last, &body);
    }
    entries
}
