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
    /// The entry's text (its change lines, without the header and trailer), kept only for
    /// an entry of urgency `high` or above that names no CVE, where it is the only word on
    /// what the update fixes; at most [`TEXT_MAX_LINES`] lines of [`TEXT_MAX_CHARS`]
    /// characters in all. Empty otherwise, and in changelogs cached before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
}

/// The most lines of an entry's [`Entry::text`] that are kept.
pub const TEXT_MAX_LINES: usize = 20;
/// The most characters of an entry's [`Entry::text`] that are kept.
pub const TEXT_MAX_CHARS: usize = 2000;

/// The kept text of an entry's body: blank lines at either end dropped, the lines'
/// common indent removed, bounded by [`TEXT_MAX_LINES`] and [`TEXT_MAX_CHARS`] (a cut
/// text ends with `…`).
fn entry_text(body: &str) -> String {
    let lines: Vec<&str> = body.lines().map(str::trim_end).collect();
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |i| i + 1);
    let lines = &lines[start..end];
    let indent = lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    let mut cut = lines.len() > TEXT_MAX_LINES;
    for l in lines.iter().take(TEXT_MAX_LINES) {
        let l = l.get(indent..).unwrap_or(l.trim_start());
        let room = TEXT_MAX_CHARS.saturating_sub(out.chars().count() + 1);
        if l.chars().count() > room {
            out.extend(l.chars().take(room));
            cut = true;
            break;
        }
        out.push_str(l);
        out.push('\n');
    }
    let mut out = out.trim_end().to_string();
    if cut {
        out.push_str(" …");
    }
    out
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
        if e.cves.is_empty() && crate::updates::urgency_rank(Some(&e.urgency)) >= 3 {
            e.text = entry_text(body);
        }
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
                text: String::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
tzdata (2025b-0+deb12u1) bookworm-security; urgency=high

  * New upstream release: Paraguay moves to permanent -03.
    - the zone Asia/Tomsk changes its offset.

 -- Maint <m@example.org>  Mon, 01 Sep 2025 10:00:00 +0000

tzdata (2025a-0+deb12u1) bookworm; urgency=high

  * Fix CVE-2025-1234 (DLA-4000-1).

 -- Maint <m@example.org>  Sun, 31 Aug 2025 10:00:00 +0000

tzdata (2024b-0+deb12u1) bookworm; urgency=medium

  * A medium change.

 -- Maint <m@example.org>  Sat, 30 Aug 2025 10:00:00 +0000
";

    #[test]
    fn a_high_urgency_entry_without_a_cve_keeps_its_text_only_that_one() {
        let e = parse(LOG);
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0].text,
            "* New upstream release: Paraguay moves to permanent -03.\n  \
             - the zone Asia/Tomsk changes its offset."
        );
        assert_eq!(e[0].date, "Mon, 01 Sep 2025 10:00:00 +0000");
        assert_eq!(e[1].cves, ["CVE-2025-1234"]);
        assert_eq!(e[1].advisories, ["DLA-4000-1"]);
        assert_eq!(e[1].text, "", "it names a CVE");
        assert_eq!(e[2].text, "", "medium urgency");
    }

    #[test]
    fn the_kept_text_is_bounded_and_old_cache_entries_still_read() {
        let mut long = String::from("x (1) bookworm; urgency=critical\n\n");
        for i in 0..50 {
            long.push_str(&format!("  * change {i}\n"));
        }
        let e = parse(&long);
        assert_eq!(e[0].text.lines().count(), TEXT_MAX_LINES);
        assert!(e[0].text.ends_with("change 19 …"), "{}", e[0].text);
        let wide = format!("x (1) b; urgency=high\n\n  {}\n", "y".repeat(5000));
        let t = parse(&wide)[0].text.clone();
        assert_eq!(
            t.chars().count(),
            TEXT_MAX_CHARS + 1,
            "cut at the bound, then …"
        );
        assert!(t.ends_with("y …"));
        // A changelog cached before the text was kept has no `text` key.
        let old = r#"[{"version":"1","distributions":"b","urgency":"high","date":"","cves":[],"advisories":[]}]"#;
        let e: Vec<Entry> = serde_json::from_str(old).unwrap();
        assert_eq!(e[0].text, "");
        // An entry without text is written without the key.
        assert!(!serde_json::to_string(&e).unwrap().contains("text"));
    }
}
