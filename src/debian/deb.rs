//! Reading the Debian changelog out of a binary package (`deb(5)`: an `ar` archive holding
//! `debian-binary`, `control.tar.*` and `data.tar.*`), with our bounded ar reader ([`super::ar`]) and the `tar` crate.
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

/// The first member of the ar archive `deb` whose name starts with `prefix` (`data.tar`,
/// `control.tar`): its name and bytes.
fn ar_member<'a>(deb: &'a [u8], prefix: &str, name: &str) -> Result<(String, &'a [u8])> {
    let members = super::ar::members(deb).with_context(|| format!("{name} is not a valid .deb"))?;
    match members.into_iter().find(|m| m.name.starts_with(prefix)) {
        Some(m) => Ok((m.name.to_string(), m.data)),
        None => bail!("{name} is not a valid .deb: it has no {prefix} member"),
    }
}

/// A reader of the tar inside member `member` (by its extension: xz, gz or none).
fn tar_reader<'a>(member: &str, bytes: &'a [u8], name: &str) -> Result<Box<dyn Read + 'a>> {
    Ok(match member.rsplit_once('.').map(|(_, ext)| ext) {
        Some("xz") => Box::new(liblzma::read::XzDecoder::new(bytes)),
        Some("gz") => Box::new(flate2::read::GzDecoder::new(bytes)),
        Some("tar") => Box::new(bytes),
        _ => {
            bail!(
                "{name}: member {member} uses a compression drover does not read (xz, gz or none)"
            )
        }
    })
}

/// The `control` file of the .deb bytes `deb` (deb(5): `./control` in `control.tar.*`,
/// deb-control(5)), as text; `name` labels the package in errors.
///
/// Errors: not an ar archive, no control member or file, an unsupported compression, a
/// control file over 1 MiB or not UTF-8.
pub fn control_from_deb(deb: &[u8], name: &str) -> Result<String> {
    let (member, bytes) = ar_member(deb, "control.tar", name)?;
    let mut tar = tar::Archive::new(tar_reader(&member, bytes, name)?);
    for entry in tar
        .entries()
        .with_context(|| format!("{name}: {member} is not a tar archive"))?
    {
        let mut entry = entry.with_context(|| format!("{name}: corrupt {member}"))?;
        let raw = entry
            .path()
            .with_context(|| format!("{name}: bad path in {member}"))?;
        if safe_path(&raw, name)? != "control" || !entry.header().entry_type().is_file() {
            continue;
        }
        let mut buf = Vec::new();
        (&mut entry)
            .take(1 << 20)
            .read_to_end(&mut buf)
            .with_context(|| format!("{name}: cannot read its control file"))?;
        return String::from_utf8(buf)
            .with_context(|| format!("{name}: its control file is not UTF-8"));
    }
    bail!("{name} is not a valid .deb: {member} has no control file");
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
    let (member, bytes) = ar_member(deb, "data.tar", name)?;
    let reader = tar_reader(&member, bytes, name)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gnu_long_name_without_a_name_table_is_an_error_not_a_panic() {
        // What the `deb` fuzz target's malformed ar archives look like: the `ar` crate
        // this module used before panicked on this input (slice index past the table).
        let mut deb = b"!<arch>\n".to_vec();
        deb.extend_from_slice(
            format!("{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", "/99", 0, 0, 0, 0, 0).as_bytes(),
        );
        let e = control_from_deb(&deb, "bad.deb").unwrap_err();
        assert!(format!("{e:#}").contains("no control.tar member"), "{e:#}");
        assert!(changelog_from_deb(&deb, "p", "amd64", "bad.deb").is_err());
        let e = control_from_deb(b"!<arch>\ncontrol.tar", "cut.deb").unwrap_err();
        assert!(
            format!("{e:#}").contains("cut.deb is not a valid .deb"),
            "{e:#}"
        );
    }
}
