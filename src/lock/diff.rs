//! What moves between two locks: per binary package, the old and the new version.

use std::cmp::Ordering;

use serde::Serialize;

use super::Lock;
use crate::debian::packages::parse_version;

/// How a package moved between two locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only in the new lock.
    Added,
    /// Only in the old lock.
    Removed,
    /// A higher version (Debian Policy §5.6.12 order).
    Upgraded,
    /// A lower version: fixes may be undone.
    Downgraded,
    /// The same version from another .deb or repository.
    Changed,
}

impl ChangeKind {
    /// The lowercase word, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Upgraded => "upgraded",
            ChangeKind::Downgraded => "downgraded",
            ChangeKind::Changed => "changed",
        }
    }
}

/// One package that differs between two locks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockChange {
    /// How it moved.
    pub kind: ChangeKind,
    /// Binary package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Source package (of the new version, else the old).
    pub source: String,
    /// Version before; `None` when the package is new.
    pub old: Option<String>,
    /// Version after; `None` when the package is dropped.
    pub new: Option<String>,
    /// Suite of the new version (empty when dropped).
    pub suite: String,
    /// CVEs the new version fixes, from the newest update check (changelog and feeds);
    /// filled in by the caller that has the store, empty otherwise.
    pub cves: Vec<String>,
}

impl LockChange {
    fn kind_of(old: Option<&str>, new: Option<&str>) -> ChangeKind {
        match (old, new) {
            (None, _) => ChangeKind::Added,
            (_, None) => ChangeKind::Removed,
            (Some(o), Some(n)) => match (parse_version(o), parse_version(n)) {
                (Some(o), Some(n)) => match n.cmp(&o) {
                    Ordering::Greater => ChangeKind::Upgraded,
                    Ordering::Less => ChangeKind::Downgraded,
                    Ordering::Equal => ChangeKind::Changed,
                },
                _ => ChangeKind::Changed,
            },
        }
    }

    /// `name old -> new` as the CLI prints it.
    pub fn line(&self) -> String {
        format!(
            "{} {} -> {}",
            self.name,
            self.old.as_deref().unwrap_or("(new)"),
            self.new.as_deref().unwrap_or("(removed)")
        )
    }
}

/// Every package that differs between `old` and `new` (version, .deb hash or repository),
/// sorted by (name, arch).
pub fn diff(old: &Lock, new: &Lock) -> Vec<LockChange> {
    let mut out = Vec::new();
    for n in &new.packages {
        match old.get(&n.name, &n.arch) {
            Some(o) if o.version == n.version && o.sha256 == n.sha256 && o.suite == n.suite => {}
            o => out.push(LockChange {
                kind: LockChange::kind_of(o.map(|o| o.version.as_str()), Some(&n.version)),
                name: n.name.clone(),
                arch: n.arch.clone(),
                source: n.source.clone(),
                old: o.map(|o| o.version.clone()),
                new: Some(n.version.clone()),
                suite: n.suite.clone(),
                cves: Vec::new(),
            }),
        }
    }
    for o in &old.packages {
        if new.get(&o.name, &o.arch).is_none() {
            out.push(LockChange {
                kind: ChangeKind::Removed,
                name: o.name.clone(),
                arch: o.arch.clone(),
                source: o.source.clone(),
                old: Some(o.version.clone()),
                new: None,
                suite: String::new(),
                cves: Vec::new(),
            });
        }
    }
    out.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    out
}

/// The (name, arch, version) triples where `got` differs from `want`: what a base made
/// from a lock installed that the lock does not say (`+`), and what it lacks (`-`).
pub fn mismatches(want: &Lock, got: &Lock) -> Vec<String> {
    let (w, g) = (want.versions(), got.versions());
    let mut out = Vec::new();
    for ((name, arch), v) in &w {
        match g.get(&(*name, *arch)) {
            Some(gv) if gv == v => {}
            Some(gv) => out.push(format!("{name}:{arch} {v} locked, {gv} installed")),
            None => out.push(format!("{name}:{arch} {v} locked, not installed")),
        }
    }
    for ((name, arch), v) in &g {
        if !w.contains_key(&(*name, *arch)) {
            out.push(format!("{name}:{arch} {v} installed, not in the lock"));
        }
    }
    out
}
