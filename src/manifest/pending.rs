//! The pending-update rows shared by the store, the SBOM exporters and the update check
//! (the update check computes them): kept here, below all three, so that the lower layers
//! need not import `updates`.

use serde::{Deserialize, Serialize};

/// One pending update of a binary package (the `updates --json` shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingUpdate {
    /// Binary package name.
    pub package: String,
    /// Architecture (`amd64`, `all`, …).
    pub arch: String,
    /// Installed version.
    pub installed: String,
    /// Candidate version (strictly newer than `installed`).
    pub candidate: String,
    /// Suite the candidate comes from (e.g. `bookworm-security`).
    pub suite: String,
    /// Source package; binaries of one source are fixed by one update.
    pub source: String,
    /// Installed source version.
    pub source_installed: String,
    /// Candidate source version.
    pub source_candidate: String,
    /// CVE ids the changelog entries between the two source versions name, sorted.
    pub cves: Vec<String>,
    /// Highest urgency of those entries (`low`, `medium`, `high`, `emergency`, `critical`),
    /// null when the changelog was not read.
    pub urgency: Option<String>,
    /// RFC 3339 UTC time of the check.
    pub checked_at: String,
    /// DSA/DLA advisories named by those entries (table output; not in the JSON contract).
    #[serde(skip)]
    pub advisories: Vec<String>,
    /// Dates of those entries, newest first (not in the JSON contract).
    #[serde(skip)]
    pub dates: Vec<String>,
    /// Where the candidate .deb is (not part of the JSON contract).
    #[serde(skip)]
    pub deb: Option<DebRef>,
    /// CVEs this update fixes that its changelog does not name, from the `[feeds]` of
    /// `drover.toml` (added to the original contract; empty without feeds).
    #[serde(default)]
    pub feed_cves: Vec<FeedCve>,
    /// CVEs of this source package that stay open after the update, from the feeds (no fix
    /// yet, no fix planned, or a fix outside the tracked suites).
    #[serde(default)]
    pub open_cves: Vec<FeedCve>,
}

/// Location of a candidate .deb in its repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebRef {
    /// Mirror URL.
    pub mirror: String,
    /// `Filename:` path under the mirror.
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// A CVE a feed knows about, as stored and shown (`feed_cves`, `open_cves` in the JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCve {
    /// CVE id (or the tracker's `TEMP-…` / an OSV id without a CVE alias).
    pub id: String,
    /// Source package it concerns.
    pub source: String,
    /// The feed's urgency or severity as written there (`low`, `medium`, `high`,
    /// `unimportant`, `not yet assigned`), if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub urgency: Option<String>,
    /// The first fixed source version in the stack's release, if a fix exists.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fixed_version: Option<String>,
    /// For open CVEs: `open`, `undetermined`, `no fix planned` (tracker `nodsa`) or
    /// `fix not in tracked suites`; for CVEs an update fixes: `fixed`.
    pub status: String,
    /// The tracker's `nodsa` reason, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
    /// `security-tracker` or `osv`.
    pub feed: String,
}

/// Copy each open CVE onto the pending updates of its source package (`open_cves`).
pub fn attach_open(updates: &mut [PendingUpdate], open: &[FeedCve]) {
    for u in updates.iter_mut() {
        u.open_cves = open
            .iter()
            .filter(|c| c.source == u.source)
            .cloned()
            .collect();
    }
}
