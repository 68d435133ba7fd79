//! Fetching and caching apt repositories: `InRelease` (verified), then the Packages indexes
//! it lists (size and SHA-256 checked), under `STATE/repos/`.
//!
//! Cache layout, one directory per repository named like apt's list files
//! (`deb.debian.org_debian_dists_bookworm-updates`):
//! - `InRelease`: the last InRelease that verified; replaced (atomically) only after a new
//!   one verified and every index it lists for the tracked components was downloaded and
//!   checked, so it is the commit point of a refresh;
//! - `meta.json`: `ETag` / `Last-Modified` of that InRelease, for conditional requests;
//! - `objects/SHA256HEX.EXT`: index files, named by their SHA-256, so a failed or tampered
//!   download never replaces one a good InRelease refers to.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::packages::{IndexOrigin, PackageIndex};
use super::release::Release;
use super::signature::{verify_inrelease_at, Keyring, Verified, DEBIAN_ARCHIVE_KEYRING};
use crate::manifest::origin::uri_to_filename;
use crate::stack::{AptSource, RepoTrust};

/// Largest InRelease accepted (bytes).
const MAX_INRELEASE: u64 = 16 << 20;
/// Largest index or .deb accepted (bytes).
const MAX_DOWNLOAD: u64 = 1 << 30;

/// A tracked apt repository: one suite of one mirror, with how it is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedRepo {
    /// Mirror, suite and components.
    pub source: AptSource,
    /// `trusted` / `signed_by`.
    pub trust: RepoTrust,
    /// Architectures the repository is limited to (apt's `arch=` / `Architectures:`
    /// option); empty = every architecture asked for.
    pub architectures: Vec<String>,
    /// The family its data applies to, instead of the Release file's `Origin`: set for the
    /// repositories a build script adds, so that their data applies only to packages
    /// installed from them (whatever `Origin` their Release claims).
    pub family: Option<String>,
}

impl TrackedRepo {
    /// A repository verified with the Debian archive keyring.
    pub fn new(source: AptSource) -> Self {
        TrackedRepo {
            source,
            trust: RepoTrust::default(),
            architectures: Vec::new(),
            family: None,
        }
    }

    /// `MIRROR SUITE`, the repository's name in messages.
    pub fn name(&self) -> String {
        format!("{} {}", self.source.mirror, self.source.suite)
    }

    /// The architectures of `archs` this repository serves (all when it is not limited).
    pub fn archs_of(&self, archs: &[String]) -> Vec<String> {
        archs
            .iter()
            .filter(|a| self.architectures.is_empty() || self.architectures.contains(a))
            .cloned()
            .collect()
    }

    /// `MIRROR/dists/SUITE`.
    pub fn dists_url(&self) -> String {
        format!(
            "{}/dists/{}",
            self.source.mirror.trim_end_matches('/'),
            self.source.suite
        )
    }
}

/// Conditional-request data of a cached InRelease.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    etag: Option<String>,
    last_modified: Option<String>,
    /// RFC 3339 time of the last successful fetch or 304.
    checked_at: String,
    /// RFC 3339 `Date` of the cached Release: a newer fetch must not be older (a rollback of
    /// the repository), even when the cached copy itself is no longer usable.
    #[serde(default)]
    release_date: Option<String>,
}

impl Meta {
    /// The repository's `meta.json` (default when missing or unreadable: no conditional
    /// request, no known Date).
    fn read(dir: &Path) -> Meta {
        std::fs::read(dir.join("meta.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

/// How far a Release's `Date` may lie in the future of our clock before it is refused as
/// "not valid yet" (clock skew between the mirror and this machine).
pub const MAX_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(10);

/// apt's "Conflicting distribution" check, as an error: the Release must be the suite that
/// was asked for — its `Suite` or its `Codename` equals the requested suite (a signed
/// `bookworm` Release served as `bookworm-security` is refused). A Release naming neither
/// is accepted, as apt does; flat repositories (`suite` ending in `/`) are not checked.
pub fn check_suite(asked: &str, release: &Release, repo_name: &str) -> Result<()> {
    if asked.ends_with('/') || (release.suite.is_empty() && release.codename.is_empty()) {
        return Ok(());
    }
    if release.suite == asked || release.codename == asked {
        return Ok(());
    }
    bail!(
        "conflicting distribution: the Release file of {repo_name} is for suite `{}` \
         (codename `{}`), not `{asked}`; the mirror or a proxy serves another suite's signed \
         data under this name; the previous index stays; check the mirror",
        release.suite,
        release.codename
    )
}

/// The Release's `Date` must move forward: not older than `previous` (the cached Release of
/// the same repository: a rollback would hide newer updates) and not later than `now` plus
/// [`MAX_CLOCK_SKEW`] ("not valid yet").
pub fn check_date(
    release: &Release,
    previous: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    repo_name: &str,
) -> Result<()> {
    let Some(date) = release.date else {
        return Ok(());
    };
    if let Some(prev) = previous {
        if date < prev {
            bail!(
                "the Release file of {repo_name} is dated {} but the cached one is dated {}: \
                 the repository was rolled back (a stale mirror or a replay); the previous \
                 index stays; try again later or use another mirror",
                date.to_rfc3339(),
                prev.to_rfc3339()
            );
        }
    }
    if date > now + MAX_CLOCK_SKEW {
        bail!(
            "the Release file of {repo_name} is not valid yet: dated {}, now {} (more than {} \
             min ahead); check this machine's clock or the mirror",
            date.to_rfc3339(),
            now.to_rfc3339(),
            MAX_CLOCK_SKEW.num_minutes()
        );
    }
    Ok(())
}

/// A repository whose Release is verified and whose indexes (for the requested
/// architectures) are in the cache.
#[derive(Debug, Clone)]
pub struct SyncedRepo {
    /// The repository.
    pub repo: TrackedRepo,
    /// Its verified Release.
    pub release: Release,
    /// Its cache directory.
    pub dir: PathBuf,
    /// Set when the signature check was waived (`trusted = true`): why it did not verify.
    pub waived: Option<String>,
    /// Set when a refresh failed and the previous good cached index is used instead.
    pub refresh_error: Option<String>,
    /// Set when the cached copy was present but rejected (modified on disk, expired) and
    /// fetched again: why.
    pub cache_rejected: Option<String>,
    /// Whether the server answered `304 Not Modified`.
    pub not_modified: bool,
    /// RFC 3339 time the index was last confirmed current with the server.
    pub checked_at: String,
}

impl SyncedRepo {
    /// The family this repository's data applies to: [`TrackedRepo::family`] when set,
    /// else the Release file's (see [`Release::family`]).
    pub fn family(&self) -> &str {
        self.repo.family.as_deref().unwrap_or(self.release.family())
    }
}

/// HTTP client and cache for apt repositories.
pub struct RepoClient {
    http: reqwest::blocking::Client,
    cache: PathBuf,
    now: Option<DateTime<Utc>>,
    default_keyring: PathBuf,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Write `bytes` to `path` atomically (temporary file in the same directory, then rename),
/// creating the directory if needed.
///
/// Errors: the directory or file cannot be written; the message names the path.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("path without parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

impl RepoClient {
    /// A client caching under `cache` (normally `STATE/repos`).
    ///
    /// Errors: the HTTP client cannot be built (TLS setup).
    pub fn new(cache: &Path) -> Result<RepoClient> {
        let http = crate::http::client_builder(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(20))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(RepoClient {
            http,
            cache: cache.to_path_buf(),
            now: None,
            default_keyring: PathBuf::from(DEBIAN_ARCHIVE_KEYRING),
        })
    }

    /// Use `now` instead of the clock for `Valid-Until` checks (tests).
    pub fn with_now(mut self, now: DateTime<Utc>) -> Self {
        self.now = Some(now);
        self
    }

    /// Use another keyring for repositories without `signed_by` (tests).
    pub fn with_default_keyring(mut self, file: &Path) -> Self {
        self.default_keyring = file.to_path_buf();
        self
    }

    /// The cache directory of a repository.
    pub fn repo_dir(&self, repo: &TrackedRepo) -> PathBuf {
        self.cache.join(uri_to_filename(&repo.dists_url()))
    }

    fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }

    fn keyring(&self, repo: &TrackedRepo) -> Result<Keyring> {
        let file = repo
            .trust
            .signed_by
            .clone()
            .unwrap_or_else(|| self.default_keyring.clone());
        Keyring::load(&file).with_context(|| format!("cannot verify {}", repo.name()))
    }

    /// Verify InRelease bytes, parse the Release and enforce `Valid-Until`.
    fn check_inrelease(
        &self,
        repo: &TrackedRepo,
        bytes: &[u8],
    ) -> Result<(Release, Option<String>)> {
        let keyring = match self.keyring(repo) {
            Ok(k) => Some(k),
            Err(e) if repo.trust.trusted => {
                let _ = e;
                None
            }
            Err(e) => return Err(e),
        };
        let verified = match &keyring {
            Some(k) => verify_inrelease_at(bytes, k, repo.trust.trusted, &repo.name(), self.now())?,
            None => Verified::Waived(
                String::from_utf8_lossy(bytes).into_owned(),
                "no keyring could be read".into(),
            ),
        };
        let text = match &verified {
            Verified::Signed(t) => t.clone(),
            Verified::Waived(t, _) => match t.find("-----BEGIN PGP SIGNED MESSAGE-----") {
                // Unverifiable but signed: drop the armour header lines up to the blank line.
                Some(_) => t
                    .split_once("\n\n")
                    .map(|(_, b)| b.split("-----BEGIN PGP SIGNATURE-----").next().unwrap_or(b))
                    .unwrap_or(t)
                    .to_string(),
                None => t.clone(),
            },
        };
        let release = Release::parse(&text)
            .with_context(|| format!("the Release file of {} is malformed", repo.name()))?;
        check_suite(&repo.source.suite, &release, &repo.name())?;
        if let Some(until) = release.valid_until {
            let now = self.now();
            if now > until {
                bail!(
                    "the Release file of {} expired at {} (Valid-Until; now {}): the mirror is \
                     stale or the file was replayed; try again later or use another mirror",
                    repo.name(),
                    until.to_rfc3339(),
                    now.to_rfc3339()
                );
            }
        }
        let waived = match verified {
            Verified::Waived(_, why) => Some(why),
            Verified::Signed(_) => None,
        };
        Ok((release, waived))
    }

    /// The Packages indexes the repository must have for `archs`: (path under dists/SUITE,
    /// size, sha256). Errors when the Release lists none for a component/arch.
    fn wanted_indexes(
        repo: &TrackedRepo,
        release: &Release,
        archs: &[String],
    ) -> Result<Vec<(String, u64, String)>> {
        let mut out = Vec::new();
        let archs = repo.archs_of(archs);
        for component in &repo.source.components {
            for arch in &archs {
                let Some((path, f)) = release.packages_index(component, arch) else {
                    bail!(
                        "the Release file of {} lists no Packages index for {component}/{arch} \
                         (neither Packages.xz nor Packages.gz); check the suite's components \
                         and architectures",
                        repo.name()
                    );
                };
                out.push((path, f.size, f.sha256.clone()));
            }
        }
        Ok(out)
    }

    fn object_path(dir: &Path, path: &str, sha: &str) -> PathBuf {
        let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("raw");
        dir.join("objects").join(format!("{sha}.{ext}"))
    }

    fn cached(&self, repo: &TrackedRepo, archs: &[String]) -> Result<SyncedRepo> {
        let dir = self.repo_dir(repo);
        let file = dir.join("InRelease");
        let bytes = std::fs::read(&file).with_context(|| {
            format!(
                "no cached index of {} (fetch it with --refresh)",
                repo.name()
            )
        })?;
        let (release, waived) = self
            .check_inrelease(repo, &bytes)
            .with_context(|| format!("the cached {} is not usable", file.display()))?;
        for (path, size, sha) in Self::wanted_indexes(repo, &release, archs)? {
            let obj = Self::object_path(&dir, &path, &sha);
            let len = std::fs::metadata(&obj).map(|m| m.len()).ok();
            if len != Some(size) {
                bail!("the cached index {path} of {} is missing", repo.name());
            }
        }
        let meta = Meta::read(&dir);
        Ok(SyncedRepo {
            repo: repo.clone(),
            release,
            dir,
            waived,
            refresh_error: None,
            cache_rejected: None,
            not_modified: false,
            checked_at: meta.checked_at,
        })
    }

    /// Make the repository's verified Release and its Packages indexes for `archs` available
    /// in the cache. Without `refresh` a good cached copy is used as is; with it (or when
    /// there is none) the InRelease is fetched with a conditional request, verified, and the
    /// indexes it lists are downloaded (by-hash when `Acquire-By-Hash: yes`) and checked
    /// against its size and SHA-256.
    ///
    /// When a refresh fails (network, bad signature, expired, hash mismatch) and a good
    /// cached copy exists, that copy is returned with [`SyncedRepo::refresh_error`] set;
    /// without one the error is returned. Errors name the repository and the URL.
    pub fn sync(&self, repo: &TrackedRepo, archs: &[String], refresh: bool) -> Result<SyncedRepo> {
        let cached = self.cached(repo, archs);
        if !refresh {
            if let Ok(c) = cached {
                return Ok(c);
            }
        }
        let rejected = match &cached {
            Err(e) if self.repo_dir(repo).join("InRelease").exists() => Some(format!("{e:#}")),
            _ => None,
        };
        match self.fetch(repo, archs, cached.as_ref().ok()) {
            Ok(mut s) => {
                s.cache_rejected = rejected;
                Ok(s)
            }
            Err(e) => match cached {
                Ok(mut c) => {
                    c.refresh_error = Some(format!("{e:#}"));
                    Ok(c)
                }
                Err(_) => Err(e),
            },
        }
    }

    fn get(&self, url: &str, limit: u64) -> Result<Vec<u8>> {
        let resp = self
            .http
            .get(url)
            .send()
            .with_context(|| format!("cannot fetch {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            bail!("fetching {url} failed: HTTP {status}");
        }
        read_limited(resp, limit, url)
    }

    fn fetch(
        &self,
        repo: &TrackedRepo,
        archs: &[String],
        cached: Option<&SyncedRepo>,
    ) -> Result<SyncedRepo> {
        let dir = self.repo_dir(repo);
        let url = format!("{}/InRelease", repo.dists_url());
        let stored = Meta::read(&dir);
        // The newest Date this repository was seen with, cached copy usable or not.
        let previous_date = [
            cached.and_then(|c| c.release.date),
            stored
                .release_date
                .as_deref()
                .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
                .map(|d| d.with_timezone(&Utc)),
        ]
        .into_iter()
        .flatten()
        .max();
        // Conditional requests only against a usable cached copy.
        let meta = if cached.is_some() {
            stored
        } else {
            Meta::default()
        };
        let mut req = self.http.get(&url);
        if let Some(e) = &meta.etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, e);
        }
        if let Some(m) = &meta.last_modified {
            req = req.header(reqwest::header::IF_MODIFIED_SINCE, m);
        }
        let resp = req
            .send()
            .with_context(|| format!("cannot fetch {url} (repository {})", repo.name()))?;
        let now = crate::store::now_rfc3339();
        if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
            if let Some(c) = cached {
                let meta = Meta {
                    checked_at: now.clone(),
                    ..meta
                };
                write_atomic(&dir.join("meta.json"), &serde_json::to_vec(&meta)?)?;
                let mut c = c.clone();
                c.not_modified = true;
                c.checked_at = now;
                return Ok(c);
            }
            bail!("{url} answered 304 Not Modified to an unconditional request");
        }
        if !resp.status().is_success() {
            bail!(
                "fetching {url} failed: HTTP {} (repository {}; check the mirror and suite)",
                resp.status(),
                repo.name()
            );
        }
        let header = |h: reqwest::header::HeaderName| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header(reqwest::header::ETAG);
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        let bytes = read_limited(resp, MAX_INRELEASE, &url)?;
        let (release, waived) = self.check_inrelease(repo, &bytes)?;
        check_date(&release, previous_date, self.now(), &repo.name())?;
        // Indexes first, InRelease last: the InRelease is the commit point.
        let wanted = Self::wanted_indexes(repo, &release, archs)?;
        for (path, size, sha) in &wanted {
            let obj = Self::object_path(&dir, path, sha);
            if std::fs::metadata(&obj).map(|m| m.len()).ok() == Some(*size) {
                continue;
            }
            let plain = format!("{}/{path}", repo.dists_url());
            let by_hash = match path.rsplit_once('/') {
                Some((d, _)) if release.acquire_by_hash => {
                    Some(format!("{}/{d}/by-hash/SHA256/{sha}", repo.dists_url()))
                }
                _ => None,
            };
            let data = match by_hash.as_deref().map(|u| (u, self.get(u, MAX_DOWNLOAD))) {
                Some((_, Ok(d))) => (d, by_hash.clone().unwrap_or_default()),
                _ => (self.get(&plain, MAX_DOWNLOAD)?, plain.clone()),
            };
            let (data, from) = data;
            if data.len() as u64 != *size {
                bail!(
                    "{from} has {} bytes but the Release file of {} says {size}: the mirror is \
                     inconsistent or the download was tampered with; the previous index stays",
                    data.len(),
                    repo.name()
                );
            }
            let got = sha256_hex(&data);
            if &got != sha {
                bail!(
                    "{from} has SHA-256 {got} but the Release file of {} says {sha}: the \
                     download was tampered with or the mirror is mid-update; the previous index \
                     stays",
                    repo.name()
                );
            }
            write_atomic(&obj, &data)?;
        }
        write_atomic(&dir.join("InRelease"), &bytes)?;
        let meta = Meta {
            etag,
            last_modified,
            checked_at: now.clone(),
            release_date: release.date.map(|d| d.to_rfc3339()),
        };
        write_atomic(&dir.join("meta.json"), &serde_json::to_vec(&meta)?)?;
        // Drop objects the new Release no longer lists.
        if let Ok(rd) = std::fs::read_dir(dir.join("objects")) {
            let keep: std::collections::HashSet<&str> =
                release.sha256.values().map(|f| f.sha256.as_str()).collect();
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let sha = name.split('.').next().unwrap_or_default();
                if !keep.contains(sha) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(SyncedRepo {
            repo: repo.clone(),
            release,
            dir,
            waived,
            refresh_error: None,
            cache_rejected: None,
            not_modified: false,
            checked_at: now,
        })
    }

    /// Read, check (size and SHA-256 against the Release) and parse the cached Packages
    /// indexes of `synced` for `archs` into one index.
    ///
    /// Errors: a cached index is missing or no longer matches its Release entry (the cache
    /// was modified; `--refresh` fetches it again), or it does not decompress.
    pub fn load_index(&self, synced: &[SyncedRepo], archs: &[String]) -> Result<PackageIndex> {
        let mut index = PackageIndex::new();
        for s in synced {
            for (path, size, sha) in Self::wanted_indexes(&s.repo, &s.release, archs)? {
                let obj = Self::object_path(&s.dir, &path, &sha);
                let data = std::fs::read(&obj).with_context(|| {
                    format!(
                        "cannot read the cached index {} of {}",
                        obj.display(),
                        s.repo.name()
                    )
                })?;
                if data.len() as u64 != size || sha256_hex(&data) != sha {
                    bail!(
                        "the cached index {} of {} does not match its Release file (modified on \
                         disk?); run with --refresh to fetch it again",
                        obj.display(),
                        s.repo.name()
                    );
                }
                index
                    .add_compressed(
                        &path,
                        &data,
                        &IndexOrigin {
                            mirror: &s.repo.source.mirror,
                            suite: &s.repo.source.suite,
                            family: s.family(),
                        },
                    )
                    .with_context(|| format!("index {path} of {}", s.repo.name()))?;
            }
        }
        Ok(index)
    }

    /// Download `MIRROR/FILENAME` into memory and check it against the index's size and
    /// SHA-256 (used for candidate .debs).
    ///
    /// Errors: HTTP failure, or a size/hash mismatch (the URL and both hashes are named).
    pub fn download_checked(
        &self,
        mirror: &str,
        filename: &str,
        size: u64,
        sha256: &str,
    ) -> Result<Vec<u8>> {
        if filename.is_empty() || filename.split('/').any(|c| c == "..") {
            bail!("refusing the file name `{filename}` from the index of {mirror}");
        }
        let url = format!("{}/{filename}", mirror.trim_end_matches('/'));
        let data = self.get(&url, MAX_DOWNLOAD)?;
        if size != 0 && data.len() as u64 != size {
            bail!(
                "{url} has {} bytes but its Packages index says {size}",
                data.len()
            );
        }
        let got = sha256_hex(&data);
        if got != sha256 {
            bail!("{url} has SHA-256 {got} but its Packages index says {sha256}: refusing it");
        }
        Ok(data)
    }
}

fn read_limited(resp: reqwest::blocking::Response, limit: u64, url: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    resp.take(limit + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("download of {url} was interrupted"))?;
    if out.len() as u64 > limit {
        bail!("{url} is larger than {limit} bytes; refusing it");
    }
    Ok(out)
}
