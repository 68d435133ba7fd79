//! Reading the Debian changelog out of a binary package (`deb(5)`: an `ar` archive holding
//! `debian-binary`, `control.tar.*` and `data.tar.*`), with the `ar` and `tar` crates.
//!
//! `data.tar` is hostile input: an entry whose path is absolute or climbs with `..` makes
//! the whole package rejected.

use std::io::Read;
use std::path::{Component, Path};

use anyhow::{bail, Context, Result};

/// What the package's documentation directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocChangelog {
    /// The changelog text (decompressed), plus the binNMU changelog
    /// (`changelog.Debian.ARCH.gz`) when the package has one.
    Found {
        /// `changelog.Debian.gz` (or `changelog.gz` for native packages).
        changelog: String,
        /// `changelog.Debian.ARCH.gz`, binNMU entries only.
        binnmu: Option<String>,
    },
    /// `usr/share/doc/PKG` is a symlink to another package's doc directory (the name of
    /// that directory; its changelog is in that package).
    SymlinkTo(String),
    /// No changelog in the package.
    Missing,
}

/// Reject absolute paths and `..` components; return the path without a leading `./`.
fn safe_path(p: &Path, deb: &str) -> Result<String> {
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => bail!(
                "{deb}: data.tar entry `{}` escapes the package root (path traversal); \
                 refusing the package",
                p.display()
            ),
        }
    }
    Ok(parts.join("/"))
}

fn gunzip(bytes: &[u8], what: &str) -> Result<String> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(64 << 20)
        .read_to_end(&mut out)
        .with_context(|| format!("{what} is not valid gzip"))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Find the changelog of binary package `package` (architecture `arch`) in the .deb bytes
/// `deb`; `name` labels the package in errors (e.g. its URL or file name).
///
/// Errors: not an ar archive, no `data.tar` member, an unsupported compression
/// (`data.tar.zst`), a corrupt member, or a path-traversal entry.
pub fn changelog_from_deb(
    deb: &[u8],
    package: &str,
    arch: &str,
    name: &str,
) -> Result<DocChangelog> {
    let mut ar = ar::Archive::new(deb);
    let mut data: Option<(String, Vec<u8>)> = None;
    while let Some(entry) = ar.next_entry() {
        let mut entry =
            entry.with_context(|| format!("{name} is not a valid .deb (ar archive)"))?;
        let id = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        if id.starts_with("data.tar") {
            let mut buf = Vec::new();
            entry
                .read_to_end(&mut buf)
                .with_context(|| format!("cannot read {id} of {name}"))?;
            data = Some((id, buf));
            break;
        }
    }
    let Some((member, bytes)) = data else {
        bail!("{name} is not a valid .deb: it has no data.tar member");
    };
    let reader: Box<dyn Read> = match member.as_str() {
        "data.tar.xz" => Box::new(liblzma::read::XzDecoder::new(&bytes[..])),
        "data.tar.gz" => Box::new(flate2::read::GzDecoder::new(&bytes[..])),
        "data.tar" => Box::new(&bytes[..]),
        other => {
            bail!("{name}: member {other} uses a compression drover does not read (xz, gz or none)")
        }
    };
    let doc = format!("usr/share/doc/{package}");
    let debian = format!("{doc}/changelog.Debian.gz");
    let native = format!("{doc}/changelog.gz");
    let binnmu_name = format!("{doc}/changelog.Debian.{arch}.gz");
    let (mut changelog, mut native_log, mut binnmu, mut link) = (None, None, None, None);
    let mut tar = tar::Archive::new(reader);
    for entry in tar
        .entries()
        .with_context(|| format!("{name}: {member} is not a tar archive"))?
    {
        let mut entry = entry.with_context(|| format!("{name}: corrupt {member}"))?;
        let raw = entry
            .path()
            .with_context(|| format!("{name}: bad path in {member}"))?;
        let path = safe_path(&raw, name)?;
        let kind = entry.header().entry_type();
        if path == doc && kind.is_symlink() {
            if let Ok(Some(target)) = entry.link_name() {
                let t = target.to_string_lossy().trim_end_matches('/').to_string();
                let last = t.rsplit('/').next().unwrap_or(&t).to_string();
                if !last.is_empty() && last != ".." && last != "." {
                    link = Some(last);
                }
            }
            continue;
        }
        if !kind.is_file() || !(path == debian || path == native || path == binnmu_name) {
            continue;
        }
        let mut buf = Vec::new();
        (&mut entry)
            .take(64 << 20)
            .read_to_end(&mut buf)
            .with_context(|| format!("{name}: cannot read {path}"))?;
        let text = gunzip(&buf, &format!("{name}: {path}"))?;
        if path == debian {
            changelog = Some(text);
        } else if path == native {
            native_log = Some(text);
        } else {
            binnmu = Some(text);
        }
    }
    Ok(match (changelog.or(native_log), link) {
        (Some(changelog), _) => DocChangelog::Found { changelog, binnmu },
        (None, Some(l)) => DocChangelog::SymlinkTo(l),
        (None, None) => DocChangelog::Missing,
    })
}
