//! Which apt source each installed package came from, found in the apt lists
//! (`var/lib/apt/lists/*_Packages`) that the build left in the tree. List file names follow
//! apt's `URItoFileName` (scheme dropped, `/` → `_`), so a list belongs to a configured
//! source when its name starts with that source's `MIRROR/dists/SUITE/` in that form.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use deb822_fast::borrowed::parse_borrowed;

use super::dpkg::InstalledPackage;
use super::rootfs::RootView;
use crate::stack::AptSource;

/// Where one package version came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Mirror URL (as configured, or reconstructed from the list file name).
    pub mirror: String,
    /// Suite.
    pub suite: String,
    /// Lowercase hex SHA-256 of the .deb as the (signed) Packages index gives it; empty
    /// when the list has none.
    pub sha256: String,
    /// Size of the .deb in bytes as the index gives it (0 when absent).
    pub size: u64,
}

/// (name, version, arch) → origin, for the packages asked about.
#[derive(Debug, Default)]
pub struct OriginIndex {
    map: HashMap<(String, String, String), Origin>,
}

/// apt's `URItoFileName`: drop the scheme and user info, `_` → `%5f`, `/` → `_`.
pub fn uri_to_filename(uri: &str) -> String {
    let no_scheme = uri.split_once("://").map(|(_, r)| r).unwrap_or(uri);
    let no_user = match no_scheme.split_once('@') {
        Some((user, rest)) if !user.contains('/') => rest,
        _ => no_scheme,
    };
    no_user.replace('_', "%5f").replace('/', "_")
}

impl OriginIndex {
    /// Scan the lists in `root` for the versions in `installed`. Lists of configured
    /// `sources` are searched first, in order; lists of other repositories (added by a build
    /// script) after them, with the mirror reconstructed from the file name.
    ///
    /// Errors: none for missing lists (packages then stay without origin); a list that is
    /// not deb822 is skipped, since apt itself would have refused it.
    pub fn from_lists(
        root: &RootView,
        sources: &[AptSource],
        installed: &[InstalledPackage],
    ) -> Result<OriginIndex> {
        let wanted: HashSet<(&str, &str, &str)> = installed
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.arch.as_str()))
            .collect();
        let lists: Vec<String> = root
            .list("var/lib/apt/lists")
            .into_iter()
            .filter(|n| n.ends_with("_Packages"))
            .collect();
        // Order: configured sources first, then anything else.
        let mut ordered: Vec<(String, Origin)> = Vec::new();
        let mut used = HashSet::new();
        for s in sources {
            let prefix = uri_to_filename(&format!("{}/dists/{}/", s.mirror, s.suite));
            for l in lists.iter().filter(|l| l.starts_with(&prefix)) {
                if used.insert(l.clone()) {
                    ordered.push((
                        l.clone(),
                        Origin {
                            mirror: s.mirror.clone(),
                            suite: s.suite.clone(),
                            sha256: String::new(),
                            size: 0,
                        },
                    ));
                }
            }
        }
        for l in &lists {
            if used.contains(l) {
                continue;
            }
            if let Some((base, rest)) = l.split_once("_dists_") {
                let suite = rest.split('_').next().unwrap_or_default().to_string();
                ordered.push((
                    l.clone(),
                    Origin {
                        mirror: format!("http://{}", base.replace('_', "/").replace("%5f", "_")),
                        suite,
                        sha256: String::new(),
                        size: 0,
                    },
                ));
            }
        }
        let mut map = HashMap::new();
        for (list, origin) in ordered {
            let rel = format!("var/lib/apt/lists/{list}");
            let Ok(Some(bytes)) = root.read(&rel) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            let Ok(paragraphs) = parse_borrowed(&text) else {
                continue;
            };
            for p in &paragraphs {
                let (Some(n), Some(v), Some(a)) = (
                    p.get_single("Package"),
                    p.get_single("Version"),
                    p.get_single("Architecture"),
                ) else {
                    continue;
                };
                let key = (n.trim(), v.trim(), a.trim());
                if wanted.contains(&key) {
                    map.entry((key.0.to_string(), key.1.to_string(), key.2.to_string()))
                        .or_insert_with(|| Origin {
                            sha256: p
                                .get_single("SHA256")
                                .map(|h| h.trim().to_ascii_lowercase())
                                .unwrap_or_default(),
                            size: p
                                .get_single("Size")
                                .and_then(|n| n.trim().parse().ok())
                                .unwrap_or(0),
                            ..origin.clone()
                        });
                }
            }
        }
        Ok(OriginIndex { map })
    }

    /// The origin of one package version, if a list holds it.
    pub fn lookup(&self, name: &str, version: &str, arch: &str) -> Option<&Origin> {
        self.map
            .get(&(name.to_string(), version.to_string(), arch.to_string()))
    }
}
