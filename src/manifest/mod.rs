//! The components manifest: what an image holds, with exact versions and origins.
//!
//! [`dpkg`] reads the dpkg database (`var/lib/dpkg/status` and `status.d/`), [`origin`]
//! maps each installed (name, version, arch) to the apt source it came from using the apt
//! lists left in the build tree, and [`rootfs`] reads a root filesystem that is either a
//! plain directory or an overlayfs lower+upper pair (without mounting it), and [`sbom`]
//! exports it as CycloneDX or SPDX JSON; [`lang`] catalogs language packages.

use serde::{Deserialize, Serialize};

pub mod dpkg;
pub mod lang;
pub mod origin;
pub mod pending;
pub mod rootfs;
pub mod sbom;

/// One Debian binary package in an image (the `manifest --format json` shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Binary package name.
    pub name: String,
    /// Exact installed version (Debian Policy §5.6.12).
    pub version: String,
    /// Debian architecture (`amd64`, `all`, …).
    pub arch: String,
    /// Source package name (the binary's own name when `Source:` is absent).
    pub source: String,
    /// Source version (from `Source: name (version)`, else the binary version).
    pub source_version: String,
    /// Suite it was installed from (`bookworm`, `bookworm-security`), empty when unknown.
    pub suite: String,
    /// Mirror URL it was installed from, or `local` when no apt list holds that version.
    pub origin: String,
    /// `Installed-Size` in KiB, when recorded.
    pub installed_size_kib: Option<i64>,
}

/// A Debian `amd64` package of `bookworm` from deb.debian.org, its own source (unit tests).
#[cfg(test)]
pub(crate) fn test_component(name: &str, version: &str) -> Component {
    Component {
        name: name.into(),
        version: version.into(),
        arch: "amd64".into(),
        source: name.into(),
        source_version: version.into(),
        suite: "bookworm".into(),
        origin: "http://deb.debian.org/debian".into(),
        installed_size_kib: None,
    }
}

/// Read the components manifest of a root filesystem: the installed dpkg packages with the
/// origins found in its apt lists for `sources` (the first matching source wins).
///
/// Errors: an unreadable or malformed dpkg database (the file and package are named).
pub fn capture(
    root: &rootfs::RootView,
    sources: &[crate::stack::AptSource],
) -> anyhow::Result<Vec<Component>> {
    capture_known(root, sources, &|_, _, _| None)
}

/// `(name, arch, version)` → the (suite, mirror) a package is known to come from.
pub type KnownOrigin<'a> = &'a dyn Fn(&str, &str, &str) -> Option<(String, String)>;

/// [`capture`] where `known(name, arch, version)` already gives the (suite, mirror) of
/// some packages (a build's lock): the apt lists are read only for the others, and not at
/// all when every installed package is known (the lists of a Debian suite are tens of MB).
///
/// Errors: as [`capture`].
pub fn capture_known(
    root: &rootfs::RootView,
    sources: &[crate::stack::AptSource],
    known: KnownOrigin<'_>,
) -> anyhow::Result<Vec<Component>> {
    let installed = dpkg::read_db(root)?;
    let unknown: Vec<dpkg::InstalledPackage> = installed
        .iter()
        .filter(|p| known(&p.name, &p.arch, &p.version).is_none())
        .cloned()
        .collect();
    let origins = if unknown.is_empty() {
        origin::OriginIndex::default()
    } else {
        origin::OriginIndex::from_lists(root, sources, &unknown)?
    };
    let mut out: Vec<Component> = installed
        .into_iter()
        .map(|p| {
            let (suite, origin) = match known(&p.name, &p.arch, &p.version) {
                Some(k) => k,
                None => match origins.lookup(&p.name, &p.version, &p.arch) {
                    Some(o) => (o.suite.clone(), o.mirror.clone()),
                    None => (String::new(), "local".to_string()),
                },
            };
            Component {
                name: p.name,
                version: p.version,
                arch: p.arch,
                source: p.source,
                source_version: p.source_version,
                suite,
                origin,
                installed_size_kib: p.installed_size_kib,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    Ok(out)
}
