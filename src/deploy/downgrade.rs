//! Whether a deploy puts older packages live than the live release has (a downgrade: a
//! rollback, or a build of an older lock), and which CVE fixes that undoes: the
//! changelog entries drover stored for the live versions (when their update was checked)
//! between the target's source version and the live one.

use std::collections::{BTreeSet, HashMap};

use anyhow::Result;
use serde::Serialize;

use super::plan::Current;
use crate::debian::packages::parse_version;
use crate::store::Store;

/// One package that goes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageBack {
    /// Binary package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Version live now.
    pub live: String,
    /// Version the deploy would put live (lower, Debian Policy §5.6.12 order).
    pub target: String,
}

/// A deploy's downgrade against the live release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Downgrade {
    /// The live release's build.
    pub live_build: i64,
    /// The build the deploy would put live.
    pub build: i64,
    /// The packages that go back, by name.
    pub packages: Vec<PackageBack>,
    /// CVE ids whose fixes the downgrade undoes (sorted; empty when no changelog of the
    /// live versions is stored, which does not mean there are none).
    pub cves: Vec<String>,
}

impl Downgrade {
    /// `"12 package(s) go back from live build #4, undoing 27 CVE fix(es): CVE-…, …"`, as
    /// the CLI and the console's confirmation say it (the fixes first: they are what the
    /// operator weighs).
    pub fn summary(&self) -> String {
        let cves = if self.cves.is_empty() {
            String::new()
        } else {
            let mut ids: Vec<&str> = self.cves.iter().take(4).map(String::as_str).collect();
            if self.cves.len() > 4 {
                ids.push("…");
            }
            format!(": {}", ids.join(", "))
        };
        format!(
            "{} package(s) go back from live build #{}, undoing {} CVE fix(es){cves}",
            self.packages.len(),
            self.live_build,
            self.cves.len(),
        )
    }

    /// The first packages that go back, `name live -> target`, comma-separated.
    pub fn examples(&self, n: usize) -> String {
        let shown: Vec<String> = self
            .packages
            .iter()
            .take(n)
            .map(|p| format!("{} {} -> {}", p.name, p.live, p.target))
            .collect();
        let more = if self.packages.len() > n { ", …" } else { "" };
        format!("{}{more}", shown.join(", "))
    }
}

/// Compare build `build_id` with the build of `stack`'s live release: `None` when nothing
/// is live, it is the same build, or no package goes back.
///
/// Errors: the store cannot be read.
pub fn downgrade(store: &Store, stack: &str, build_id: i64) -> Result<Option<Downgrade>> {
    Ok(downgrades(store, stack, &[build_id])?.remove(&build_id))
}

/// [`downgrade`] for several builds, reading the releases and the live manifest once (the
/// console asks this for every deploy candidate of the selected stack): the builds that
/// would go back, by id.
///
/// Errors: the store cannot be read.
pub fn downgrades(
    store: &Store,
    stack: &str,
    build_ids: &[i64],
) -> Result<std::collections::BTreeMap<i64, Downgrade>> {
    let mut out = std::collections::BTreeMap::new();
    let releases = store.releases(stack)?;
    let Some(live) = Current::from_releases(&releases) else {
        return Ok(out);
    };
    let live_manifest = store.manifest(live.build_id)?;
    let by_key: HashMap<(&str, &str), &crate::manifest::Component> = live_manifest
        .iter()
        .map(|c| ((c.name.as_str(), c.arch.as_str()), c))
        .collect();
    for &id in build_ids {
        if id == live.build_id || out.contains_key(&id) {
            continue;
        }
        if let Some(d) = against(store, live.build_id, &by_key, id)? {
            out.insert(id, d);
        }
    }
    Ok(out)
}

/// Compare build `build_id` with the live build's packages `by_key` ((name, arch) →
/// component).
fn against(
    store: &Store,
    live_build: i64,
    by_key: &HashMap<(&str, &str), &crate::manifest::Component>,
    build_id: i64,
) -> Result<Option<Downgrade>> {
    let mut packages = Vec::new();
    let mut cves = BTreeSet::new();
    for c in store.manifest(build_id)? {
        let Some(l) = by_key.get(&(c.name.as_str(), c.arch.as_str())) else {
            continue;
        };
        let (Some(now), Some(then)) = (parse_version(&l.version), parse_version(&c.version)) else {
            continue;
        };
        if then >= now {
            continue;
        }
        // The live version's fixes after the target's source version.
        let (undone, _) = crate::diff::fixes_between(
            store,
            None,
            &l.source,
            &c.source_version,
            &l.source_version,
        )?;
        cves.extend(undone);
        packages.push(PackageBack {
            name: c.name.clone(),
            arch: c.arch.clone(),
            live: l.version.clone(),
            target: c.version.clone(),
        });
    }
    if packages.is_empty() {
        return Ok(None);
    }
    Ok(Some(Downgrade {
        live_build,
        build: build_id,
        packages,
        cves: cves.into_iter().collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::changelog::Entry;
    use crate::manifest::Component;
    use crate::store::builds::Success;

    use crate::manifest::test_component as comp;

    fn build(s: &mut Store, comps: &[Component]) -> i64 {
        let id = s.create_build("hello", 1).unwrap();
        s.finish_build_success(
            id,
            &Success {
                image_digest: &format!("sha256:{id:064}"),
                image_path: "/x",
                components: comps,
            },
        )
        .unwrap();
        id
    }

    #[test]
    fn a_build_older_than_the_live_one_names_the_packages_and_the_fixes_it_undoes() {
        let mut s = Store::open_in_memory().unwrap();
        let old = build(
            &mut s,
            &[comp("expat", "2.5.0-1+deb12u2"), comp("zlib", "1")],
        );
        let new = build(
            &mut s,
            &[comp("expat", "2.5.0-1+deb12u5"), comp("zlib", "1")],
        );
        assert_eq!(downgrade(&s, "hello", old).unwrap(), None, "nothing live");
        let r = s
            .create_release("hello", new, "sha256:n", 1, "op", None)
            .unwrap();
        s.mark_release_live("hello", r).unwrap();
        let entry = |v: &str, cves: &[&str]| Entry {
            version: v.into(),
            distributions: "bookworm-security".into(),
            urgency: "high".into(),
            date: String::new(),
            cves: cves.iter().map(|c| c.to_string()).collect(),
            advisories: Vec::new(),
            text: String::new(),
        };
        s.put_changelog(
            "expat",
            "2.5.0-1+deb12u5",
            &[
                entry("2.5.0-1+deb12u5", &["CVE-2025-3"]),
                entry("2.5.0-1+deb12u3", &["CVE-2025-1", "CVE-2025-2"]),
                entry("2.5.0-1+deb12u2", &["CVE-2024-9"]),
            ],
        )
        .unwrap();
        let d = downgrade(&s, "hello", old).unwrap().unwrap();
        assert_eq!(d.live_build, new);
        assert_eq!(d.packages.len(), 1);
        assert_eq!(d.packages[0].target, "2.5.0-1+deb12u2");
        assert_eq!(d.cves, ["CVE-2025-1", "CVE-2025-2", "CVE-2025-3"]);
        assert_eq!(
            d.summary(),
            format!(
                "1 package(s) go back from live build #{new}, undoing 3 CVE fix(es): \
                 CVE-2025-1, CVE-2025-2, CVE-2025-3"
            )
        );
        assert_eq!(d.examples(2), "expat 2.5.0-1+deb12u5 -> 2.5.0-1+deb12u2");
        assert_eq!(
            downgrade(&s, "hello", new).unwrap(),
            None,
            "the live build itself"
        );
        let newer = build(
            &mut s,
            &[comp("expat", "2.5.0-1+deb12u6"), comp("zlib", "1")],
        );
        assert_eq!(downgrade(&s, "hello", newer).unwrap(), None, "an upgrade");
    }
}
