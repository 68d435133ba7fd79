//! Packages indexes (Debian Repository Format, "Packages Indices"): decompressed and parsed
//! with `deb822-fast` into an index keyed by (package, architecture).

use std::io::Read;
use std::sync::Arc;

use anyhow::{Context, Result};
use compact_str::CompactString;
use deb822_fast::borrowed::iter_paragraphs_borrowed;
use debversion::Version;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

/// The newest version of one binary package in one suite.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Version (Debian Policy §5.6.12); parsed only when compared (see [`Candidate::parsed`]).
    pub version: CompactString,
    /// Source package name (`Source:` field, else the binary's name).
    pub source: String,
    /// Source version (`Source: name (version)`, else the binary version).
    pub source_version: String,
    /// Suite (codename as configured, e.g. `bookworm-security`); shared by the index's entries.
    pub suite: Arc<str>,
    /// Mirror URL.
    pub mirror: Arc<str>,
    /// Repository family (the Release file's `Origin`, e.g. `Debian`).
    pub family: Arc<str>,
    /// Path of the .deb relative to the mirror (`Filename:`).
    pub filename: String,
    /// Size of the .deb in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the .deb.
    pub sha256: String,
}

impl Candidate {
    /// The version parsed for ordering; `None` when it is not a valid Debian version.
    pub fn parsed(&self) -> Option<Version> {
        parse_version(&self.version)
    }
}

/// Split a Debian version into epoch, upstream version and revision (Debian Policy
/// §5.6.12: `[epoch:]upstream_version[-debian_revision]`, the revision after the last
/// hyphen) without a regular expression; accepts exactly what `debversion`'s
/// `Version::from_str` accepts (checked by a property test), several times faster.
pub fn parse_version(s: &str) -> Option<Version> {
    fn upstream_ok(u: &str) -> bool {
        !u.is_empty()
            && u.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".+:~-".contains(&b))
    }
    /// `upstream[-revision]`, the revision after the last hyphen when that leaves a
    /// non-empty upstream.
    fn split(rest: &str) -> Option<(&str, Option<&str>)> {
        if let Some((u, r)) = rest.rsplit_once('-') {
            if !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+.~".contains(&b))
                && upstream_ok(u)
            {
                return Some((u, Some(r)));
            }
        }
        upstream_ok(rest).then_some((rest, None))
    }
    let with_epoch = s
        .split_once(':')
        .filter(|(e, _)| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|(e, r)| split(r).map(|p| (e, p)));
    let (epoch, (upstream, revision)) = match with_epoch {
        Some((e, p)) => (Some(e.parse().ok()?), p),
        None => (None, split(s)?),
    };
    Some(Version {
        epoch,
        upstream_version: upstream.to_string(),
        debian_revision: revision.map(str::to_string),
    })
}

/// Candidates by (package, architecture): at most one per suite (the highest version of
/// that suite), in the order the suites were added. Keyed by package name with a fast
/// non-cryptographic hash (the keys come from verified indexes).
#[derive(Debug, Default)]
pub struct PackageIndex {
    map: FxHashMap<CompactString, SmallVec<[(u16, Candidate); 1]>>,
    /// Architecture names; entries refer to them by position (fewer memory loads per lookup).
    archs: Vec<String>,
}

/// Where the entries of one Packages index come from.
#[derive(Debug, Clone)]
pub struct IndexOrigin<'a> {
    /// Mirror URL.
    pub mirror: &'a str,
    /// Suite.
    pub suite: &'a str,
    /// Repository family (Release `Origin`).
    pub family: &'a str,
}

/// Decompress a Packages index by its file name: `.xz` (liblzma), `.gz` (flate2), or plain.
///
/// Errors: corrupt compressed data (`name` is named in the message).
pub fn decompress(name: &str, bytes: &[u8]) -> Result<String> {
    let mut out = Vec::with_capacity(bytes.len() * 6);
    if name.ends_with(".xz") {
        liblzma::read::XzDecoder::new(bytes)
            .read_to_end(&mut out)
            .with_context(|| format!("corrupt xz data in {name}"))?;
    } else if name.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .with_context(|| format!("corrupt gzip data in {name}"))?;
    } else {
        out.extend_from_slice(bytes);
    }
    Ok(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Split `Source: name (version)` into its parts; `binary`/`version` fill in what is absent.
pub fn split_source(field: Option<&str>, binary: &str, version: &str) -> (String, String) {
    match field.map(str::trim) {
        None | Some("") => (binary.to_string(), version.to_string()),
        Some(s) => match s.split_once('(') {
            Some((name, rest)) => (
                name.trim().to_string(),
                rest.trim_end_matches(')').trim().to_string(),
            ),
            None => (s.to_string(), version.to_string()),
        },
    }
}

impl PackageIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add every paragraph of a (decompressed) Packages index. Paragraphs without
    /// `Package`, `Version` or `Architecture`, or with a version that is not a Debian
    /// version, are skipped (apt ignores them too). Returns how many entries were read.
    ///
    /// Errors: a paragraph that is not deb822 (its number and the repository are named).
    pub fn add_packages(&mut self, text: &str, from: &IndexOrigin<'_>) -> Result<usize> {
        let suite: Arc<str> = from.suite.into();
        let mirror: Arc<str> = from.mirror.into();
        let family: Arc<str> = from.family.into();
        let mut n = 0;
        for (i, p) in iter_paragraphs_borrowed(text).enumerate() {
            let p = p.map_err(|e| {
                anyhow::anyhow!(
                    "malformed paragraph {} of the Packages index of {} {}: {e}",
                    i + 1,
                    from.mirror,
                    from.suite
                )
            })?;
            // One pass over the fields (a Packages paragraph has ~20) instead of a lookup
            // per field.
            let (mut name, mut version, mut arch) = (None, None, None);
            let (mut source, mut filename, mut size, mut sha256) = (None, None, None, None);
            for f in p.iter() {
                let slot = match f.name() {
                    n if n.eq_ignore_ascii_case("Package") => &mut name,
                    n if n.eq_ignore_ascii_case("Version") => &mut version,
                    n if n.eq_ignore_ascii_case("Architecture") => &mut arch,
                    n if n.eq_ignore_ascii_case("Source") => &mut source,
                    n if n.eq_ignore_ascii_case("Filename") => &mut filename,
                    n if n.eq_ignore_ascii_case("Size") => &mut size,
                    n if n.eq_ignore_ascii_case("SHA256") => &mut sha256,
                    _ => continue,
                };
                *slot = f.as_single_line();
            }
            let (Some(name), Some(version), Some(arch)) = (name, version, arch) else {
                continue;
            };
            let (name, version, arch) = (name.trim(), version.trim(), arch.trim());
            n += 1;
            let slot = self.map.entry(CompactString::from(name)).or_default();
            let existing = slot.iter().position(|(a, c)| {
                self.archs[*a as usize] == arch && c.suite == suite && c.mirror == mirror
            });
            if let Some(i) = existing {
                // Several versions in one suite (rare): keep the highest valid one.
                let (Some(new), old) = (parse_version(version), slot[i].1.parsed()) else {
                    continue;
                };
                if old.is_some_and(|o| o >= new) {
                    continue;
                }
            }
            let (source, source_version) = split_source(source, name, version);
            let cand = Candidate {
                version: CompactString::from(version),
                source,
                source_version,
                suite: suite.clone(),
                mirror: mirror.clone(),
                family: family.clone(),
                filename: filename.unwrap_or_default().trim().to_string(),
                size: size.and_then(|s| s.trim().parse().ok()).unwrap_or(0),
                sha256: sha256.unwrap_or_default().trim().to_ascii_lowercase(),
            };
            match existing {
                Some(i) => slot[i].1 = cand,
                None => {
                    let a = match self.archs.iter().position(|a| a == arch) {
                        Some(a) => a,
                        None => {
                            self.archs.push(arch.to_string());
                            self.archs.len() - 1
                        }
                    };
                    let a = u16::try_from(a).map_err(|_| {
                        anyhow::anyhow!("more than 65535 architectures in the Packages indexes")
                    })?;
                    slot.push((a, cand));
                }
            }
        }
        Ok(n)
    }

    /// Decompress (by `name`'s extension: `.xz`, `.gz`, or plain) and parse a Packages
    /// index, pipelined: a thread decompresses 1 MiB blocks while this one parses the
    /// complete paragraphs received so far, so on two cores the cost is close to
    /// decompression alone. Returns the number of entries read.
    ///
    /// Errors: corrupt compressed data or a malformed paragraph (`name` and the repository
    /// are named).
    pub fn add_compressed(
        &mut self,
        name: &str,
        bytes: &[u8],
        from: &IndexOrigin<'_>,
    ) -> Result<usize> {
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(8);
            let name_owned = name.to_string();
            scope.spawn(move || {
                let mut reader: Box<dyn Read> = if name_owned.ends_with(".xz") {
                    Box::new(liblzma::read::XzDecoder::new(bytes))
                } else if name_owned.ends_with(".gz") {
                    Box::new(flate2::read::MultiGzDecoder::new(bytes))
                } else {
                    Box::new(bytes)
                };
                loop {
                    let mut block = vec![0u8; 1 << 20];
                    let mut filled = 0;
                    while filled < block.len() {
                        match reader.read(&mut block[filled..]) {
                            Ok(0) => break,
                            Ok(n) => filled += n,
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                        }
                    }
                    if filled == 0 {
                        return;
                    }
                    block.truncate(filled);
                    if tx.send(Ok(block)).is_err() {
                        return;
                    }
                }
            });
            let mut pending: Vec<u8> = Vec::new();
            let mut n = 0;
            for block in rx {
                let block = block.with_context(|| format!("corrupt compressed data in {name}"))?;
                pending.extend_from_slice(&block);
                // Parse up to the last paragraph break; keep the rest for the next block.
                if let Some(cut) = pending.windows(2).rposition(|w| w == b"\n\n") {
                    let text = String::from_utf8_lossy(&pending[..cut + 2]).into_owned();
                    n += self.add_packages(&text, from)?;
                    pending.drain(..cut + 2);
                }
            }
            if !pending.is_empty() {
                let text = String::from_utf8_lossy(&pending).into_owned();
                n += self.add_packages(&text, from)?;
            }
            Ok(n)
        })
    }

    /// Every suite's candidate for (package, arch).
    pub fn candidates<'s>(
        &'s self,
        package: &str,
        arch: &'s str,
    ) -> impl Iterator<Item = &'s Candidate> + 's {
        let id = self.archs.iter().position(|a| a == arch);
        id.and_then(|id| self.map.get(package).map(|v| (id, v)))
            .into_iter()
            .flat_map(|(id, v)| v.iter().filter(move |(a, _)| *a as usize == id))
            .map(|(_, c)| c)
    }

    /// Number of (package, arch, suite) entries.
    pub fn len(&self) -> usize {
        self.map.values().map(|v| v.len()).sum()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
