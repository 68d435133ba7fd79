//! CVE layering: for each pending source update, the candidate's Debian changelog is read
//! from its .deb (downloaded and checked against the index's SHA-256), and the entries
//! newer than the installed source version up to the candidate give the CVE ids, the
//! highest urgency, DSA/DLA advisories and dates. Parsed changelogs are cached in the store
//! per (source package, version).

use std::collections::BTreeMap;

use anyhow::{bail, Result};

use super::{urgency_rank, PendingUpdate};
use crate::debian::changelog::{self, Entry};
use crate::debian::deb::{changelog_from_deb, DocChangelog};
use crate::debian::packages::parse_version;
use crate::debian::{PackageIndex, RepoClient};
use crate::store::Store;

/// Entries `e` with `installed < e.version <= candidate` (Debian version order).
pub fn entries_between<'e>(
    entries: &'e [Entry],
    installed: &str,
    candidate: &str,
) -> Vec<&'e Entry> {
    let (Some(lo), Some(hi)) = (parse_version(installed), parse_version(candidate)) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|e| parse_version(&e.version).is_some_and(|v| v > lo && v <= hi))
        .collect()
}

/// Read the changelog entries of the candidate of `u` (following a doc-directory symlink
/// to another binary of the same source once).
fn fetch_entries(
    client: &RepoClient,
    index: &PackageIndex,
    u: &PendingUpdate,
) -> Result<Vec<Entry>> {
    let Some(deb) = &u.deb else {
        bail!("no .deb location for {}", u.package);
    };
    let data = client.download_checked(&deb.mirror, &deb.filename, deb.size, &deb.sha256)?;
    let mut found = changelog_from_deb(&data, &u.package, &u.arch, &deb.filename)?;
    if let DocChangelog::SymlinkTo(target) = &found {
        let target = target.clone();
        let cand = index
            .candidates(&target, &u.arch)
            .chain(index.candidates(&target, "all"))
            .find(|c| c.source == u.source && c.source_version == u.source_candidate);
        let Some(c) = cand else {
            bail!(
                "the doc directory of {} links to {target}, which has no candidate of source {} {} in the index",
                u.package, u.source, u.source_candidate
            );
        };
        let data = client.download_checked(&c.mirror, &c.filename, c.size, &c.sha256)?;
        found = changelog_from_deb(&data, &target, &u.arch, &c.filename)?;
    }
    match found {
        DocChangelog::Found { changelog, binnmu } => {
            let mut entries = binnmu.map(|b| changelog::parse(&b)).unwrap_or_default();
            entries.extend(changelog::parse(&changelog));
            Ok(entries)
        }
        DocChangelog::SymlinkTo(t) => bail!("{}: doc directory links to {t} twice over", u.package),
        DocChangelog::Missing => bail!("{} {} ships no Debian changelog", u.package, u.candidate),
    }
}

/// Fill `cves`, `urgency`, `advisories` and `dates` of `updates`, one changelog per
/// (source, candidate source version). Failures become warnings naming the package; the
/// update stays listed with `urgency` null.
pub fn layer(
    client: &RepoClient,
    store: &Store,
    index: &PackageIndex,
    updates: &mut [PendingUpdate],
    warnings: &mut Vec<String>,
) {
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, u) in updates.iter().enumerate() {
        groups
            .entry((u.source.clone(), u.source_candidate.clone()))
            .or_default()
            .push(i);
    }
    for ((source, version), idx) in groups {
        let entries = match store.cached_changelog(&source, &version) {
            Ok(Some(e)) => e,
            _ => {
                // Prefer the binary named like the source: it usually owns the doc directory.
                let pick = idx
                    .iter()
                    .copied()
                    .find(|&i| updates[i].package == source)
                    .unwrap_or(idx[0]);
                match fetch_entries(client, index, &updates[pick]) {
                    Ok(e) => {
                        if let Err(err) = store.put_changelog(&source, &version, &e) {
                            warnings.push(format!(
                                "cannot cache the changelog of {source} {version}: {err:#}"
                            ));
                        }
                        e
                    }
                    Err(err) => {
                        warnings.push(format!(
                            "no CVE data for source {source} {version}: {err:#}"
                        ));
                        continue;
                    }
                }
            }
        };
        for i in idx {
            let u = &mut updates[i];
            let sel = entries_between(&entries, &u.source_installed, &u.source_candidate);
            let mut cves: Vec<String> = sel.iter().flat_map(|e| e.cves.iter().cloned()).collect();
            cves.sort();
            cves.dedup();
            let mut adv: Vec<String> = sel
                .iter()
                .flat_map(|e| e.advisories.iter().cloned())
                .collect();
            adv.sort();
            adv.dedup();
            u.urgency = sel
                .iter()
                .map(|e| e.urgency.clone())
                .max_by_key(|x| urgency_rank(Some(x)))
                .or_else(|| Some("low".into()));
            u.cves = cves;
            u.advisories = adv;
            u.dates = sel
                .iter()
                .map(|e| e.date.clone())
                .filter(|d| !d.is_empty())
                .collect();
        }
    }
}
