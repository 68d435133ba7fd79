//! `Release` files (the signed part of `InRelease`), as described by the Debian Repository
//! Format (<https://wiki.debian.org/DebianRepository/Format>, "Release files").

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use deb822_fast::borrowed::parse_borrowed;

/// One file listed in a Release file's `SHA256` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 (64 characters).
    pub sha256: String,
}

/// The fields of a Release file that drover uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// `Origin` (e.g. `Debian`): names the repository family; drover applies a repository's
    /// data only to packages whose origin has the same `Origin`.
    pub origin: String,
    /// `Label` (e.g. `Debian-Security`).
    pub label: String,
    /// `Suite` (e.g. `stable-security`).
    pub suite: String,
    /// `Codename` (e.g. `bookworm-security`).
    pub codename: String,
    /// `Date`: when the Release file was generated.
    pub date: Option<DateTime<Utc>>,
    /// `Valid-Until`: after this time the file must not be used (replay protection).
    pub valid_until: Option<DateTime<Utc>>,
    /// `Acquire-By-Hash: yes`: indexes may be fetched from `by-hash/SHA256/HEX`.
    pub acquire_by_hash: bool,
    /// `Components`.
    pub components: Vec<String>,
    /// `Architectures`.
    pub architectures: Vec<String>,
    /// `SHA256`: path relative to `dists/SUITE/` → size and hash.
    pub sha256: BTreeMap<String, IndexFile>,
}

/// Parse a date in the Release format (RFC 2822 as written by Debian's archive tools,
/// e.g. `Sat, 09 Nov 2024 10:12:34 UTC`).
pub fn parse_date(s: &str) -> Result<DateTime<Utc>> {
    let s = s.trim();
    let fixed = match s.strip_suffix(" UTC") {
        Some(p) => format!("{p} +0000"),
        None => s.to_string(),
    };
    DateTime::parse_from_rfc2822(&fixed)
        .map(|d| d.with_timezone(&Utc))
        .with_context(|| {
            format!("invalid date `{s}` (expected RFC 2822, e.g. `Sat, 09 Nov 2024 10:12:34 UTC`)")
        })
}

impl Release {
    /// Parse the text of a Release file (already verified when it came from `InRelease`).
    ///
    /// Errors: not a deb822 paragraph, a malformed date, or a malformed `SHA256` line.
    pub fn parse(text: &str) -> Result<Release> {
        let paragraphs =
            parse_borrowed(text).map_err(|e| anyhow::anyhow!("not a deb822 Release file: {e}"))?;
        let Some(p) = paragraphs.first() else {
            bail!("empty Release file");
        };
        let single = |k: &str| {
            p.get_single(k)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let words =
            |k: &str| -> Vec<String> { single(k).split_whitespace().map(str::to_string).collect() };
        let date = match p.get_single("Date") {
            Some(d) => Some(parse_date(d).context("field Date")?),
            None => None,
        };
        let valid_until = match p.get_single("Valid-Until") {
            Some(d) => Some(parse_date(d).context("field Valid-Until")?),
            None => None,
        };
        let mut sha256 = BTreeMap::new();
        if let Some(lines) = p.get("SHA256") {
            for line in lines {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let f: Vec<&str> = line.split_whitespace().collect();
                let [hash, size, path] = f[..] else {
                    bail!("malformed SHA256 line `{line}` (expected `HASH SIZE PATH`)");
                };
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    bail!("malformed SHA256 hash in line `{line}`");
                }
                let size: u64 = size
                    .parse()
                    .with_context(|| format!("malformed size in SHA256 line `{line}`"))?;
                sha256.insert(
                    path.to_string(),
                    IndexFile {
                        size,
                        sha256: hash.to_ascii_lowercase(),
                    },
                );
            }
        }
        Ok(Release {
            origin: single("Origin"),
            label: single("Label"),
            suite: single("Suite"),
            codename: single("Codename"),
            date,
            valid_until,
            acquire_by_hash: single("Acquire-By-Hash").eq_ignore_ascii_case("yes"),
            components: words("Components"),
            architectures: words("Architectures"),
            sha256,
        })
    }

    /// The Packages index of `component`/`arch` to fetch: `Packages.xz` when listed, else
    /// `Packages.gz`; returns the path relative to `dists/SUITE/` and its size and hash.
    pub fn packages_index(&self, component: &str, arch: &str) -> Option<(String, &IndexFile)> {
        ["xz", "gz"].iter().find_map(|ext| {
            let path = format!("{component}/binary-{arch}/Packages.{ext}");
            self.sha256.get(&path).map(|f| (path, f))
        })
    }

    /// The family name used to decide which packages a repository's data applies to:
    /// `Origin`, or `Label` when `Origin` is empty.
    pub fn family(&self) -> &str {
        if self.origin.is_empty() {
            &self.label
        } else {
            &self.origin
        }
    }
}
