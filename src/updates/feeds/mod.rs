//! Optional vulnerability feeds layered on the changelog CVEs ([`super::cves`]): the Debian
//! Security Tracker JSON and OSV records of the Debian ecosystem. They add
//!
//! - CVEs a pending update fixes that its changelog does not name (`feed_cves`), and
//! - CVEs of installed source packages with no fix in the tracked suites (`open_cves`):
//!   `open`/`undetermined` in the tracker, OSV ranges without a `fixed` event, a fix newer
//!   than every tracked candidate, and `nodsa` entries ("no fix planned").
//!
//! Formats:
//! - Security Tracker (<https://security-tracker.debian.org/tracker/data/json>):
//!   `{SOURCE: {CVE: {"releases": {CODENAME: {"status": "resolved"|"open"|"undetermined",
//!   "fixed_version": V, "urgency": U, "nodsa": TEXT}}}}}`. A `resolved` entry with
//!   `fixed_version` `0` means the release was never affected.
//! - OSV (<https://ossf.github.io/osv-schema/>): records whose `affected[].package` has
//!   `ecosystem` `Debian:N` (N the release number, 12 for bookworm) and `ECOSYSTEM` ranges
//!   of `introduced`/`fixed` events; the CVE ids are the record id, `DEBIAN-CVE-…` ids, or
//!   the `aliases`/`upstream` that are CVE ids. Withdrawn records are skipped.
//!
//! Versions are compared in Debian order (the `debversion` crate). A feed that cannot be read
//! or parsed is reported (location, line:column, what) and skipped: the changelog results
//! always stand.
//!
//! `fetch` reads a feed's bytes, [`tracker`] and [`osv`] parse the two formats into
//! [`FeedEntry`]s; this module loads the configured feeds and layers them on a check.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{FeedCve, PendingUpdate};
use crate::config::Feeds;
pub use crate::debian::codename::release_number;
use crate::debian::packages::parse_version;
use crate::manifest::Component;

mod fetch;
pub mod osv;
pub mod tracker;

use fetch::read_feed;
pub use osv::parse_osv;
pub use tracker::parse_tracker;

/// The repository family (Release `Origin`) whose packages the feeds describe; installed
/// packages from other repositories get nothing from them.
pub const DEBIAN_FAMILY: &str = "Debian";

/// What a feed says about one (source package, CVE) in the stack's release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedStatus {
    /// Never affected (tracker `resolved` with `fixed_version` `0`).
    NotAffected,
    /// Fixed in this source version.
    Fixed(String),
    /// No fix yet (`open`), or not yet triaged (`undetermined`).
    Open {
        /// `true` for the tracker's `undetermined`.
        undetermined: bool,
    },
}

/// One (source package, CVE) statement of a feed, normalised across feed formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// Source package.
    pub source: String,
    /// CVE id.
    pub cve: String,
    /// Status in the stack's release.
    pub status: FeedStatus,
    /// Urgency or severity as the feed writes it.
    pub urgency: Option<String>,
    /// The tracker's `nodsa` text ("no fix planned"), if set.
    pub nodsa: Option<String>,
    /// `security-tracker` or `osv`.
    pub feed: &'static str,
}

/// The release codename feeds are keyed by, from a stack's base suite: `bookworm`,
/// `bookworm-security`, `bookworm-updates` → `bookworm`.
pub fn feed_codename(suite: &str) -> &str {
    for suffix in ["-security", "-proposed-updates", "-updates", "-backports"] {
        if let Some(c) = suite.strip_suffix(suffix) {
            return c;
        }
    }
    suite
}

/// `NAME:LINE:COL: what` for a JSON error.
fn json_error(name: &str, e: &serde_json::Error) -> anyhow::Error {
    let text = e.to_string();
    let what = text
        .rsplit_once(" at line ")
        .map(|(w, _)| w)
        .unwrap_or(&text);
    anyhow::anyhow!("{name}:{}:{}: {what}", e.line(), e.column())
}

/// Read and parse the configured feeds for release `codename`, keeping what concerns
/// `sources`. Each feed that cannot be used adds one message to `errors` (naming the feed
/// and where it failed) and is skipped.
pub fn load(
    feeds: &Feeds,
    codename: &str,
    sources: &HashSet<&str>,
    errors: &mut Vec<String>,
) -> Vec<FeedEntry> {
    let mut out = Vec::new();
    if ["stable", "oldstable", "oldoldstable", "testing", "unstable"].contains(&codename) {
        errors.push(format!(
            "feeds skipped: they name releases by codename, and the base suite is the alias \
             `{codename}`; set `suite` in [base] of the stack to its codename (e.g. `bookworm`)"
        ));
        return out;
    }
    if let Some(loc) = &feeds.security_tracker {
        let parsed = read_feed(loc).and_then(|files| {
            let mut v = Vec::new();
            for (name, data) in files {
                v.extend(parse_tracker(&name, &data, codename, Some(sources))?);
            }
            Ok(v)
        });
        match parsed {
            Ok(v) => out.extend(v),
            Err(e) => errors.push(format!(
                "feed security_tracker ({loc}) skipped: {e:#}; fix or remove it in [feeds] of drover.toml"
            )),
        }
    }
    if let Some(loc) = &feeds.osv {
        let parsed = match release_number(codename) {
            None => Err(anyhow::anyhow!(
                "the base suite `{codename}` is not a known Debian codename (OSV names releases by number)"
            )),
            Some(n) => read_feed(loc).and_then(|files| {
                let mut v = Vec::new();
                for (name, data) in files {
                    v.extend(
                        parse_osv(&name, &data, n)?
                            .into_iter()
                            .filter(|e| sources.contains(e.source.as_str())),
                    );
                }
                Ok(v)
            }),
        };
        match parsed {
            Ok(v) => out.extend(v),
            Err(e) => errors.push(format!(
                "feed osv ({loc}) skipped: {e:#}; fix or remove it in [feeds] of drover.toml"
            )),
        }
    }
    out
}

/// Layer feed `entries` on a check (`manifest`: the installed packages that came from
/// Debian): CVEs fixed by a pending update that its changelog does
/// not name go to that update's `feed_cves`; CVEs of an installed source package that no
/// pending update fixes are returned as open CVEs (sorted by source, then id). The first
/// feed to mention a (source, CVE) wins (the tracker is loaded before OSV).
pub fn apply(
    entries: &[FeedEntry],
    manifest: &[Component],
    updates: &mut [PendingUpdate],
) -> Vec<FeedCve> {
    // Installed source versions (one per source; the manifest's binaries agree).
    let mut installed: BTreeMap<&str, &str> = BTreeMap::new();
    for c in manifest {
        installed
            .entry(c.source.as_str())
            .or_insert(c.source_version.as_str());
    }
    // The candidate source version of each pending source update of those packages.
    let ours: HashSet<(&str, &str)> = manifest
        .iter()
        .map(|c| (c.name.as_str(), c.arch.as_str()))
        .collect();
    let is_ours = |u: &PendingUpdate| ours.contains(&(u.package.as_str(), u.arch.as_str()));
    let mut candidates: HashMap<String, String> = HashMap::new();
    for u in updates.iter().filter(|u| is_ours(u)) {
        candidates.insert(u.source.clone(), u.source_candidate.clone());
    }
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    let mut open = Vec::new();
    for e in entries {
        let Some(inst) = installed.get(e.source.as_str()) else {
            continue;
        };
        if !seen.insert((e.source.as_str(), e.cve.as_str())) {
            continue;
        }
        let Some(inst_v) = parse_version(inst) else {
            continue;
        };
        let cve = |status: &str, fixed: Option<&str>| FeedCve {
            id: e.cve.clone(),
            source: e.source.clone(),
            urgency: e.urgency.clone(),
            fixed_version: fixed.map(str::to_string),
            status: status.to_string(),
            note: e.nodsa.clone().filter(|n| !n.is_empty()),
            feed: e.feed.to_string(),
        };
        match &e.status {
            FeedStatus::NotAffected => {}
            FeedStatus::Fixed(fv) => {
                let Some(fixed) = parse_version(fv) else {
                    continue;
                };
                if fixed <= inst_v {
                    continue; // already installed
                }
                let by_update = candidates
                    .get(&e.source)
                    .and_then(|c| parse_version(c))
                    .is_some_and(|c| fixed <= c);
                if by_update {
                    for u in updates
                        .iter_mut()
                        .filter(|u| u.source == e.source && is_ours(u))
                    {
                        if !u.cves.contains(&e.cve) && !u.feed_cves.iter().any(|f| f.id == e.cve) {
                            u.feed_cves.push(cve("fixed", Some(fv)));
                        }
                    }
                } else {
                    open.push(cve("fix not in tracked suites", Some(fv)));
                }
            }
            FeedStatus::Open { undetermined } => {
                let status = if e.nodsa.is_some() {
                    "no fix planned"
                } else if *undetermined {
                    "undetermined"
                } else {
                    "open"
                };
                open.push(cve(status, None));
            }
        }
    }
    for u in updates.iter_mut() {
        u.feed_cves.sort_by(|a, b| a.id.cmp(&b.id));
    }
    open.sort_by(|a, b| (&a.source, &a.id).cmp(&(&b.source, &b.id)));
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FeedLocation;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/feeds")
    }

    use crate::manifest::test_component as comp;

    fn foo_update() -> PendingUpdate {
        let mut u =
            crate::updates::test_update("foo", "foo", "bookworm-security", &["CVE-2026-0001"]);
        u.installed = "1.0-1".into();
        u.source_installed = "1.0-1".into();
        u.candidate = "1.0-3".into();
        u.source_candidate = "1.0-3".into();
        u
    }

    fn both() -> Feeds {
        Feeds {
            security_tracker: Some(FeedLocation::Path(fixtures().join("tracker.json"))),
            osv: Some(FeedLocation::Path(fixtures().join("osv"))),
        }
    }

    #[test]
    fn tracker_and_osv_add_fixed_and_open_cves() {
        let manifest = vec![comp("foo", "1.0-1"), comp("qux", "2.0-1")];
        let sources: HashSet<&str> = manifest.iter().map(|c| c.source.as_str()).collect();
        let mut errors = Vec::new();
        let entries = load(&both(), "bookworm", &sources, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(entries.iter().all(|e| e.source != "notinstalled"));
        let mut updates = vec![foo_update()];
        let open = apply(&entries, &manifest, &mut updates);

        let fixed: Vec<(&str, &str, Option<&str>)> = updates[0]
            .feed_cves
            .iter()
            .map(|c| (c.id.as_str(), c.feed.as_str(), c.urgency.as_deref()))
            .collect();
        // 0001 is named by the changelog; 0100 comes from the tracker first, OSV's copy is
        // a duplicate; 0400/0401 are the CVE aliases of an OSV DSA record.
        assert_eq!(
            fixed,
            vec![
                ("CVE-2026-0100", "security-tracker", Some("medium")),
                ("CVE-2026-0400", "osv", Some("high")),
                ("CVE-2026-0401", "osv", Some("high")),
            ]
        );
        assert!(updates[0].feed_cves.iter().all(|c| c.status == "fixed"));

        let open: Vec<(&str, &str, &str)> = open
            .iter()
            .map(|c| (c.source.as_str(), c.id.as_str(), c.status.as_str()))
            .collect();
        // Not listed: fixed long ago (0.9-1), not affected ("0"), withdrawn OSV record,
        // the bullseye entry, a package that is not installed.
        assert_eq!(
            open,
            vec![
                ("foo", "CVE-2026-0101", "fix not in tracked suites"),
                ("foo", "CVE-2026-0103", "no fix planned"),
                ("qux", "CVE-2026-0200", "open"),
                ("qux", "CVE-2026-0500", "open"),
                ("qux", "TEMP-0000001-ABCDEF", "undetermined"),
            ]
        );
    }

    #[test]
    fn without_a_pending_update_a_fix_is_open() {
        let manifest = vec![comp("foo", "1.0-1")];
        let sources: HashSet<&str> = ["foo"].into();
        let mut errors = Vec::new();
        let feeds = Feeds {
            security_tracker: both().security_tracker,
            osv: None,
        };
        let entries = load(&feeds, "bookworm", &sources, &mut errors);
        let open = apply(&entries, &manifest, &mut []);
        let ids: Vec<&str> = open.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "CVE-2026-0001",
                "CVE-2026-0100",
                "CVE-2026-0101",
                "CVE-2026-0103"
            ]
        );
        // Installed at the fixed version: nothing is open but the no-fix one.
        let manifest = vec![comp("foo", "1.0-9")];
        let open = apply(&entries, &manifest, &mut []);
        let ids: Vec<&str> = open.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, vec!["CVE-2026-0103"]);
    }

    #[test]
    fn broken_feeds_are_reported_with_their_position() {
        let sources: HashSet<&str> = ["foo"].into();
        let mut errors = Vec::new();
        let feeds = Feeds {
            security_tracker: Some(FeedLocation::Path(fixtures().join("tracker-broken.json"))),
            osv: Some(FeedLocation::Path(
                fixtures().join("tracker-truncated.json"),
            )),
        };
        let entries = load(&feeds, "bookworm", &sources, &mut errors);
        assert!(entries.is_empty());
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("tracker-broken.json:5:")
                && errors[0].contains("unknown variant `fixed`")
                && errors[0].starts_with("feed security_tracker"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].contains("tracker-truncated.json:4:") && errors[1].starts_with("feed osv"),
            "{}",
            errors[1]
        );
        let missing = Feeds {
            security_tracker: Some(FeedLocation::Path(fixtures().join("nope.json"))),
            osv: None,
        };
        let mut errors = Vec::new();
        load(&missing, "bookworm", &sources, &mut errors);
        assert!(
            errors[0].contains("nope.json") && errors[0].contains("[feeds]"),
            "{errors:?}"
        );
        let mut errors = Vec::new();
        load(&both(), "stable", &sources, &mut errors);
        assert!(
            errors.len() == 1 && errors[0].contains("the alias `stable`"),
            "{errors:?}"
        );
        let mut errors = Vec::new();
        load(&both(), "sid", &sources, &mut errors);
        assert!(
            errors.len() == 1 && errors[0].contains("`sid` is not a known Debian codename"),
            "{errors:?}"
        );
    }

    #[test]
    fn codenames() {
        assert_eq!(feed_codename("bookworm-security"), "bookworm");
        assert_eq!(feed_codename("bookworm-updates"), "bookworm");
        assert_eq!(feed_codename("trixie"), "trixie");
        assert_eq!(release_number("bookworm"), Some(12));
        assert_eq!(release_number("stable"), None);
    }

    #[test]
    fn osv_single_record_and_bad_shapes() {
        let one = br#"{"id": "CVE-2026-1", "affected": [{"package": {"ecosystem": "Debian:12", "name": "x"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2"}]}]}]}"#;
        let e = parse_osv("one.json", one, 12).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].status, FeedStatus::Fixed("2".into()));
        let err = parse_osv("n.json", b"42", 12).unwrap_err().to_string();
        assert!(
            err.starts_with("n.json:1:1: expected an OSV record"),
            "{err}"
        );
        let err = parse_osv("r.json", br#"[{"id": 1}]"#, 12)
            .unwrap_err()
            .to_string();
        assert!(err.contains("r.json: record 0: not an OSV record"), "{err}");
    }
}
