//! What changes between two builds of a stack (`drover diff`, the console's diff view and
//! the summary line of every deploy and rollback confirmation).
//!
//! Packages are compared by source package (Debian Policy §3.2, §5.6.12 version order):
//! added, removed, upgraded, downgraded, or changed (same source version, other binaries).
//! The CVEs an upgrade fixes come from what drover already stored, never from the network:
//! the cached changelog of the newer source version (the entries after the older one) and
//! the security feeds' fixed versions held by the older build's update check; a downgrade
//! *undoes* the same set read the other way. Language packages are compared by ecosystem and
//! name, the image config field by field, and the app files (the layers above the base) by
//! path and SHA-256 ([`image`]).

pub mod image;
pub mod text;
pub mod vex;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde::Serialize;

use crate::debian::packages::parse_version;
use crate::manifest::Component;
use crate::store::Store;

/// One side of a diff as the operator names it: `N` (build N), `rN` (release N), `live`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ref {
    /// A build id.
    Build(i64),
    /// A release number of the stack.
    Release(i64),
    /// The stack's live release.
    Live,
    /// The stack's newest succeeded build.
    Newest,
}

impl std::str::FromStr for Ref {
    type Err = String;

    /// `12` or `#12` (build), `r3` (release), `live`, `newest`.
    fn from_str(s: &str) -> Result<Ref, String> {
        let t = s.trim();
        let num = |d: &str| d.parse::<i64>().ok().filter(|n| *n > 0);
        match t {
            "live" => return Ok(Ref::Live),
            "newest" | "latest" => return Ok(Ref::Newest),
            _ => {}
        }
        if let Some(n) = t.strip_prefix(['r', 'R']).and_then(num) {
            return Ok(Ref::Release(n));
        }
        if let Some(n) = num(t.strip_prefix('#').unwrap_or(t)) {
            return Ok(Ref::Build(n));
        }
        Err(format!(
            "{s:?} names no build or release: give a build id (`12`), a release (`r3`), \
             `live` or `newest`"
        ))
    }
}

/// Why a side of a diff could not be found.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A release number the stack does not have.
    #[error("{stack} has no release {release}; `drover releases {stack}` lists them")]
    NoRelease {
        /// The stack.
        stack: String,
        /// The release asked for.
        release: i64,
    },
    /// `live` (or the default) with nothing live.
    #[error("nothing of {stack} is live; name both sides, e.g. `drover diff {stack} 3 5`")]
    NothingLive {
        /// The stack.
        stack: String,
    },
    /// The build cannot be compared (no such build, not succeeded, …).
    #[error(transparent)]
    Pick(#[from] crate::build::select::PickError),
    /// The store or an image archive could not be read.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl DiffError {
    /// True when the operator named something that is not there (CLI exit 2).
    pub fn is_bad_input(&self) -> bool {
        match self {
            DiffError::NoRelease { .. } | DiffError::NothingLive { .. } => true,
            DiffError::Pick(p) => p.is_bad_input(),
            DiffError::Failed(_) => false,
        }
    }
}

/// One side, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Side {
    /// The build.
    pub build: i64,
    /// The release when the side was named as one (or is the live release).
    pub release: Option<i64>,
    /// The build's image digest.
    pub image_digest: Option<String>,
}

/// How a package (or source package) changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in B.
    Added,
    /// Only in A.
    Removed,
    /// Newer in B.
    Upgraded,
    /// Older in B.
    Downgraded,
    /// Same source version, other binary packages or versions.
    Changed,
}

/// One binary package that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    /// Binary package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Version in A (`None`: added).
    pub old: Option<String>,
    /// Version in B (`None`: removed).
    pub new: Option<String>,
}

/// One source package whose binaries differ, with the CVE fixes that brings or undoes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceChange {
    /// Source package name.
    pub source: String,
    /// How it changed.
    pub change: Change,
    /// Source version in A.
    pub old: Option<String>,
    /// Source version in B.
    pub new: Option<String>,
    /// Its binary packages that differ.
    pub packages: Vec<PackageChange>,
    /// CVEs fixed by going from A to B (upgrades).
    pub fixes: Vec<String>,
    /// CVE fixes of A that B does not have (downgrades).
    pub undoes: Vec<String>,
    /// Whether a changelog of the newer version was stored (without one, no CVE list is
    /// complete: `fixes`/`undoes` then hold only what the feeds said).
    pub changelog_known: bool,
}

/// One language package (PyPI, npm, crates.io) that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LangChange {
    /// `pypi`, `npm`, `cargo`.
    pub ecosystem: String,
    /// Package name.
    pub name: String,
    /// How it changed (versions compared as strings of their own ecosystem are not
    /// ordered here: `changed` for any other version).
    pub change: Change,
    /// Version in A.
    pub old: Option<String>,
    /// Version in B.
    pub new: Option<String>,
}

/// Everything that differs from A to B.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// The stack.
    pub stack: String,
    /// The side compared from.
    pub a: Side,
    /// The side compared to.
    pub b: Side,
    /// Source packages that differ, by name.
    pub packages: Vec<SourceChange>,
    /// Language packages that differ, by ecosystem and name.
    pub language: Vec<LangChange>,
    /// CVEs fixed from A to B, sorted.
    pub cves_fixed: Vec<String>,
    /// CVE fixes undone from A to B, sorted.
    pub cves_undone: Vec<String>,
    /// Image config and app files (`None` when not read: the confirmation summary).
    pub image: Option<image::ImageDiff>,
}

impl Diff {
    /// Binary packages that differ (added, removed or another version).
    pub fn package_count(&self) -> usize {
        self.packages.iter().map(|s| s.packages.len()).sum()
    }

    /// `"12 packages change, fixes 27 CVEs, undoes 0"`: what the confirmations and the
    /// diff's first line say.
    pub fn summary(&self) -> String {
        let n = self.package_count();
        let mut s = format!(
            "{n} package{} change{}, fixes {} CVE{}, undoes {}",
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" },
            self.cves_fixed.len(),
            if self.cves_fixed.len() == 1 { "" } else { "s" },
            self.cves_undone.len(),
        );
        if let Some(img) = &self.image {
            let f = img.files.len();
            if f > 0 {
                s.push_str(&format!(", {f} app file{}", if f == 1 { "" } else { "s" }));
            }
            if !img.config.is_empty() {
                s.push_str(", image config");
            }
        }
        s
    }
}

/// Resolve `r` of `stack` to a build that has a manifest.
///
/// Errors: see [`DiffError`].
pub fn resolve(store: &Store, stack: &str, r: Ref) -> Result<Side, DiffError> {
    use crate::build::select::{pick_build, Need};
    let releases = store.releases(stack)?;
    let (id, release) = match r {
        Ref::Build(n) => (Some(n), None),
        Ref::Newest => (None, None),
        Ref::Release(n) => {
            let rel =
                releases
                    .iter()
                    .find(|x| x.release == n)
                    .ok_or_else(|| DiffError::NoRelease {
                        stack: stack.into(),
                        release: n,
                    })?;
            (Some(rel.build_id), Some(n))
        }
        Ref::Live => {
            let live = crate::deploy::plan::Current::from_releases(&releases).ok_or_else(|| {
                DiffError::NothingLive {
                    stack: stack.into(),
                }
            })?;
            (Some(live.build_id), Some(live.release))
        }
    };
    let b = pick_build(store, stack, id, Need::Manifest)?;
    Ok(Side {
        build: b.id,
        release,
        image_digest: b.image_digest,
    })
}

/// Compare builds `a` and `b` of `stack` from the store: packages, language packages and
/// the CVEs fixed and undone. `with_image` also reads both image archives for the config
/// and app files ([`image::diff`]); a missing archive (pruned) leaves `image` `None`.
///
/// Errors: the store cannot be read, or an archive on disk is not a readable image.
pub fn diff(store: &Store, stack: &str, a: Side, b: Side, with_image: bool) -> Result<Diff> {
    let (ra, rb) = (
        read_side(store, stack, a.build)?,
        read_side(store, stack, b.build)?,
    );
    diff_read(store, stack, (a, &ra), (b, &rb), with_image)
}

/// What the store holds of one side of a diff: its manifest, the pending updates of its
/// newest update check (for the feed CVEs) and its language packages.
#[derive(Debug, Clone)]
pub struct StoredSide {
    manifest: Vec<Component>,
    check: Option<Vec<crate::manifest::pending::PendingUpdate>>,
    lang: Vec<crate::manifest::lang::LangPackage>,
}

/// Read build `build`'s [`StoredSide`] (three queries), so a caller comparing one build
/// with many (the console's candidates against the live release) reads it once.
///
/// Errors: the store cannot be read.
pub fn read_side(store: &Store, stack: &str, build: i64) -> Result<StoredSide> {
    Ok(StoredSide {
        manifest: store.manifest(build)?,
        check: store.update_check_of_build(stack, build)?.map(|c| c.1),
        lang: store.language_packages(build)?,
    })
}

/// [`diff`] of two sides already read with [`read_side`].
///
/// Errors: as [`diff`].
pub fn diff_read(
    store: &Store,
    stack: &str,
    (a, ra): (Side, &StoredSide),
    (b, rb): (Side, &StoredSide),
    with_image: bool,
) -> Result<Diff> {
    let mut packages = compare(&ra.manifest, &rb.manifest);
    let checks = [ra.check.as_deref(), rb.check.as_deref()];
    let (mut fixed, mut undone) = (BTreeSet::new(), BTreeSet::new());
    for s in &mut packages {
        let (Some(o), Some(n)) = (s.old.clone(), s.new.clone()) else {
            continue;
        };
        match s.change {
            Change::Upgraded => {
                let (cves, known) = fixes_between(store, checks[0], &s.source, &o, &n)?;
                s.changelog_known = known;
                fixed.extend(cves.iter().cloned());
                s.fixes = cves;
            }
            Change::Downgraded => {
                let (cves, known) = fixes_between(store, checks[1], &s.source, &n, &o)?;
                s.changelog_known = known;
                undone.extend(cves.iter().cloned());
                s.undoes = cves;
            }
            _ => {}
        }
    }
    let language = compare_lang(&ra.lang, &rb.lang);
    let image = if with_image {
        let path =
            |id: i64| -> Result<Option<String>> { Ok(store.build(id)?.and_then(|r| r.image_path)) };
        match (path(a.build)?, path(b.build)?) {
            (Some(pa), Some(pb))
                if std::path::Path::new(&pa).exists() && std::path::Path::new(&pb).exists() =>
            {
                Some(image::diff(
                    &image::read(std::path::Path::new(&pa))?,
                    &image::read(std::path::Path::new(&pb))?,
                ))
            }
            _ => None,
        }
    } else {
        None
    };
    Ok(Diff {
        stack: stack.into(),
        a,
        b,
        packages,
        language,
        cves_fixed: fixed.into_iter().collect(),
        cves_undone: undone.into_iter().collect(),
        image,
    })
}

/// The CVEs fixed by going from source version `from` to `to` (`from < to`) of `source`:
/// the entries of `to`'s stored changelog after `from`, and the feed CVEs of `check`'s
/// pending updates of `source` whose fixed version lies in `(from, to]`. The flag says
/// whether a changelog of `to` was stored.
///
/// Errors: the store cannot be read.
pub fn fixes_between(
    store: &Store,
    check: Option<&[crate::manifest::pending::PendingUpdate]>,
    source: &str,
    from: &str,
    to: &str,
) -> Result<(Vec<String>, bool)> {
    let mut cves = BTreeSet::new();
    let entries = store.cached_changelog(source, to)?;
    let known = entries.is_some();
    if let Some(entries) = entries {
        for e in crate::updates::cves::entries_between(&entries, from, to) {
            cves.extend(e.cves.iter().cloned());
        }
    }
    let (Some(lo), Some(hi)) = (parse_version(from), parse_version(to)) else {
        return Ok((cves.into_iter().collect(), known));
    };
    for p in check
        .unwrap_or_default()
        .iter()
        .filter(|p| p.source == source)
    {
        for f in &p.feed_cves {
            let fixed = f.fixed_version.as_deref().and_then(parse_version);
            if fixed.is_some_and(|v| v > lo && v <= hi) {
                cves.insert(f.id.clone());
            }
        }
    }
    Ok((cves.into_iter().collect(), known))
}

/// The source packages whose binaries differ between manifests `old` and `new`.
pub fn compare(old: &[Component], new: &[Component]) -> Vec<SourceChange> {
    let (o, n) = (by_source(old), by_source(new));
    let sources: BTreeSet<&str> = o.keys().chain(n.keys()).copied().collect();
    let newest = |cs: &[&Component]| -> Option<String> {
        cs.iter()
            .map(|c| c.source_version.as_str())
            .max_by(|a, b| parse_version(a).cmp(&parse_version(b)))
            .map(str::to_string)
    };
    let mut out = Vec::new();
    for s in sources {
        let (os, ns) = (
            o.get(s).map(Vec::as_slice).unwrap_or_default(),
            n.get(s).map(Vec::as_slice).unwrap_or_default(),
        );
        let mut bins: BTreeMap<(&str, &str), VersionPair<'_>> = BTreeMap::new();
        for c in os {
            bins.entry((&c.name, &c.arch)).or_default().0 = Some(&c.version);
        }
        for c in ns {
            bins.entry((&c.name, &c.arch)).or_default().1 = Some(&c.version);
        }
        let packages: Vec<PackageChange> = bins
            .into_iter()
            .filter(|(_, (a, b))| a != b)
            .map(|((name, arch), (a, b))| PackageChange {
                name: name.into(),
                arch: arch.into(),
                old: a.map(str::to_string),
                new: b.map(str::to_string),
            })
            .collect();
        if packages.is_empty() {
            continue;
        }
        let (ov, nv) = (newest(os), newest(ns));
        let change = match (&ov, &nv) {
            (None, _) => Change::Added,
            (_, None) => Change::Removed,
            (Some(a), Some(b)) => match parse_version(b).cmp(&parse_version(a)) {
                std::cmp::Ordering::Greater => Change::Upgraded,
                std::cmp::Ordering::Less => Change::Downgraded,
                std::cmp::Ordering::Equal => Change::Changed,
            },
        };
        out.push(SourceChange {
            source: s.into(),
            change,
            old: ov,
            new: nv,
            packages,
            fixes: Vec::new(),
            undoes: Vec::new(),
            changelog_known: false,
        });
    }
    out
}

/// A package's version in A and in B.
type VersionPair<'c> = (Option<&'c str>, Option<&'c str>);

fn by_source(m: &[Component]) -> BTreeMap<&str, Vec<&Component>> {
    let mut g: BTreeMap<&str, Vec<&Component>> = BTreeMap::new();
    for c in m {
        g.entry(c.source.as_str()).or_default().push(c);
    }
    g
}

fn compare_lang(
    old: &[crate::manifest::lang::LangPackage],
    new: &[crate::manifest::lang::LangPackage],
) -> Vec<LangChange> {
    let key = |l: &crate::manifest::lang::LangPackage| (l.ecosystem.clone(), l.name.clone());
    let mut m: BTreeMap<(String, String), (Option<String>, Option<String>)> = BTreeMap::new();
    for l in old {
        m.entry(key(l)).or_default().0 = Some(l.version.clone());
    }
    for l in new {
        m.entry(key(l)).or_default().1 = Some(l.version.clone());
    }
    m.into_iter()
        .filter(|(_, (a, b))| a != b)
        .map(|((ecosystem, name), (old, new))| LangChange {
            change: match (&old, &new) {
                (None, _) => Change::Added,
                (_, None) => Change::Removed,
                _ => Change::Changed,
            },
            ecosystem,
            name,
            old,
            new,
        })
        .collect()
}

#[cfg(test)]
mod tests;
