//! From a tree that apt resolved (a base mmdebstrap just made) to the locked packages, and
//! from a lock back to what apt needs to make the same tree again: version pins
//! (apt_preferences(5)).

use anyhow::{bail, Result};

use super::{LockedPackage, LockedRepo};
use crate::manifest::dpkg;
use crate::manifest::origin::{uri_to_filename, OriginIndex};
use crate::manifest::rootfs::RootView;
use crate::stack::AptSource;

/// The packages installed in `root` (its dpkg database), each with the repository among
/// `sources` whose apt list holds that exact version, and that list's SHA-256 and size;
/// and the repositories with the `Date` of the Release apt used (its `InRelease` in the
/// lists). Packages are sorted by (name, arch).
///
/// Errors: an unreadable dpkg database, or an installed package that no list of `sources`
/// holds (it did not come from the stack's suites, so it cannot be locked), or a list entry
/// without a SHA-256.
pub fn read_tree(
    root: &RootView,
    sources: &[AptSource],
) -> Result<(Vec<LockedPackage>, Vec<LockedRepo>)> {
    let installed = dpkg::read_db(root)?;
    let origins = OriginIndex::from_lists(root, sources, &installed)?;
    let mut out = Vec::with_capacity(installed.len());
    let mut missing = Vec::new();
    for p in installed {
        let Some(o) = origins.lookup(&p.name, &p.version, &p.arch).filter(|o| {
            sources
                .iter()
                .any(|s| s.mirror == o.mirror && s.suite == o.suite)
        }) else {
            missing.push(format!("{} {} ({})", p.name, p.version, p.arch));
            continue;
        };
        if o.sha256.len() != 64 {
            bail!(
                "the Packages index of {} {} has no SHA256 for {} {}; drover locks only \
                 packages whose .deb hash the signed index gives",
                o.mirror,
                o.suite,
                p.name,
                p.version
            );
        }
        out.push(LockedPackage {
            name: p.name,
            arch: p.arch,
            version: p.version,
            source: p.source,
            source_version: p.source_version,
            mirror: o.mirror.clone(),
            suite: o.suite.clone(),
            sha256: o.sha256.clone(),
            size: o.size,
        });
    }
    if !missing.is_empty() {
        let n = missing.len();
        missing.truncate(5);
        bail!(
            "{n} installed package(s) are in no Packages index of the stack's suites: {}{}",
            missing.join(", "),
            if n > 5 { ", …" } else { "" }
        );
    }
    out.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    let repos = sources
        .iter()
        .map(|s| LockedRepo {
            mirror: s.mirror.clone(),
            suite: s.suite.clone(),
            components: s.components.clone(),
            date: release_date(root, s).unwrap_or_default(),
        })
        .collect();
    Ok((out, repos))
}

/// The `Date:` field of the Release apt fetched for `source` (its `InRelease`, or
/// `Release`, under `var/lib/apt/lists`).
fn release_date(root: &RootView, source: &AptSource) -> Option<String> {
    let prefix = uri_to_filename(&format!("{}/dists/{}/", source.mirror, source.suite));
    for name in ["InRelease", "Release"] {
        let rel = format!("var/lib/apt/lists/{prefix}{name}");
        if let Ok(Some(bytes)) = root.read(&rel) {
            let text = String::from_utf8_lossy(&bytes);
            // The signed part comes first; its header holds Date (Debian Repository
            // Format, "Release files").
            return text
                .lines()
                .find_map(|l| l.strip_prefix("Date:"))
                .map(|d| d.trim().to_string());
        }
    }
    None
}

/// apt preferences (apt_preferences(5)) that make apt choose exactly `pins`' versions:
/// one stanza per package name at priority 1001 (above every source, so apt keeps it even
/// when a newer version is in another suite).
pub fn pins_text<'a>(pins: impl IntoIterator<Item = &'a LockedPackage>) -> String {
    let mut out = String::from("# drover: versions pinned by the stack's lock\n\n");
    let mut seen = std::collections::BTreeSet::new();
    for p in pins {
        if !seen.insert(p.name.as_str()) {
            continue;
        }
        out.push_str(&format!(
            "Package: {}\nPin: version {}\nPin-Priority: 1001\n\n",
            p.name, p.version
        ));
    }
    out
}
