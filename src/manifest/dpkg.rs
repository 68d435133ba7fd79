//! The dpkg database: `var/lib/dpkg/status` (one deb822 paragraph per package, dpkg(1)
//! "FILES") and the `var/lib/dpkg/status.d/` layout used by distroless-style images (one
//! file per package; `*.md5sums` files are skipped). Parsed with `deb822-fast`.

use anyhow::{bail, Context, Result};
use deb822_fast::borrowed::{parse_borrowed, BorrowedParagraph};

use super::rootfs::RootView;

/// An installed binary package as dpkg records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    /// `Package`.
    pub name: String,
    /// `Version`.
    pub version: String,
    /// `Architecture` (`all` included).
    pub arch: String,
    /// Source package: `Source:` name, else the binary name.
    pub source: String,
    /// Source version: the `(version)` of `Source: name (version)`, else `Version`.
    pub source_version: String,
    /// `Installed-Size` in KiB.
    pub installed_size_kib: Option<i64>,
}

/// Split `Source: name (version)` into its parts (Debian Policy §5.6.1, binary control
/// files). A missing or empty field yields the binary's own name and version.
pub fn split_source(field: Option<&str>, name: &str, version: &str) -> (String, String) {
    match field.map(str::trim).filter(|s| !s.is_empty()) {
        None => (name.to_string(), version.to_string()),
        Some(s) => match s.split_once('(') {
            Some((src, rest)) => (
                src.trim().to_string(),
                rest.trim_end().trim_end_matches(')').trim().to_string(),
            ),
            None => (s.to_string(), version.to_string()),
        },
    }
}

/// Whether a `Status:` value (`want flag state`, e.g. `install ok installed`) means the
/// package is installed. `config-files`, `half-installed`, `not-installed`, … are not.
pub fn is_installed(status: &str) -> bool {
    status.split_whitespace().nth(2) == Some("installed")
}

fn field<'a>(p: &BorrowedParagraph<'a>, name: &str) -> Option<&'a str> {
    p.get_single(name).map(str::trim)
}

/// Parse the text of a dpkg status file. `what` names the file in errors.
///
/// Returns the installed packages only, in file order. Errors: text that is not deb822, or
/// an installed paragraph without `Package`, `Version` or `Architecture` (named by
/// paragraph number and package).
pub fn parse_status(text: &str, what: &str) -> Result<Vec<InstalledPackage>> {
    let paragraphs = parse_borrowed(text)
        .map_err(|e| anyhow::anyhow!("{what}: not a valid deb822 file: {e:?}"))?;
    let mut out = Vec::with_capacity(paragraphs.len());
    for (i, p) in paragraphs.iter().enumerate() {
        let name = field(p, "Package");
        // Entries without Status (status.d files) are installed by construction.
        if let Some(status) = field(p, "Status") {
            if !is_installed(status) {
                continue;
            }
        }
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            bail!(
                "{what}: paragraph {} has no Package field; the dpkg database is damaged",
                i + 1
            );
        };
        let Some(version) = field(p, "Version").filter(|v| !v.is_empty()) else {
            bail!(
                "{what}: package {name} (paragraph {}) has no Version field",
                i + 1
            );
        };
        let Some(arch) = field(p, "Architecture").filter(|v| !v.is_empty()) else {
            bail!(
                "{what}: package {name} (paragraph {}) has no Architecture field",
                i + 1
            );
        };
        let (source, source_version) = split_source(field(p, "Source"), name, version);
        let installed_size_kib = field(p, "Installed-Size").and_then(|s| s.parse().ok());
        out.push(InstalledPackage {
            name: name.to_string(),
            version: version.to_string(),
            arch: arch.to_string(),
            source,
            source_version,
            installed_size_kib,
        });
    }
    Ok(out)
}

/// Read every installed package of a root filesystem: `var/lib/dpkg/status` plus each file
/// of `var/lib/dpkg/status.d/`. A (name, arch) pair seen twice keeps the first entry.
///
/// Errors: no dpkg database at all, or a malformed one.
pub fn read_db(root: &RootView) -> Result<Vec<InstalledPackage>> {
    let mut out = Vec::new();
    let mut found = false;
    if let Some(bytes) = root
        .read("var/lib/dpkg/status")
        .context("cannot read var/lib/dpkg/status")?
    {
        found = true;
        out.extend(parse_status(
            &String::from_utf8_lossy(&bytes),
            "var/lib/dpkg/status",
        )?);
    }
    for name in root.list("var/lib/dpkg/status.d") {
        if name.ends_with(".md5sums") {
            continue;
        }
        let rel = format!("var/lib/dpkg/status.d/{name}");
        if let Some(bytes) = root
            .read(&rel)
            .with_context(|| format!("cannot read {rel}"))?
        {
            found = true;
            out.extend(parse_status(&String::from_utf8_lossy(&bytes), &rel)?);
        }
    }
    if !found {
        bail!("the image has no dpkg database (var/lib/dpkg/status or status.d/)");
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert((p.name.clone(), p.arch.clone())));
    Ok(out)
}
