//! The local .deb cache, `STATE/debs/HEX.deb` keyed by SHA-256: every .deb a base
//! installs is kept, and fed back to apt (its `/var/cache/apt/archives`, which apt uses
//! instead of downloading when a file of that name and hash is there), so a base that
//! differs by one package downloads one package.
//!
//! A file enters the cache only under its own hash (computed while copying) and leaves it
//! only after its hash is checked again against the lock, so a damaged or planted file is
//! never given to apt.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::lock::LockedPackage;

/// The cache at `dir` (normally `STATE/debs`).
pub struct DebCache {
    dir: PathBuf,
}

/// The name apt gives a downloaded .deb in `archives/`: `NAME_VERSION_ARCH.deb` with `:`
/// (the epoch) and `_` quoted as `%3a`/`%5f` (apt's `pkgAcqArchive` / `QuoteString`).
pub fn archive_name(p: &LockedPackage) -> String {
    let quote = |s: &str| {
        s.replace('%', "%25")
            .replace(':', "%3a")
            .replace('_', "%5f")
    };
    format!(
        "{}_{}_{}.deb",
        quote(&p.name),
        quote(&p.version),
        quote(&p.arch)
    )
}

/// Hex SHA-256 and size of a file, read in 64 KiB blocks.
///
/// Errors: the file cannot be read.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex::encode(h.finalize()), n))
}

impl DebCache {
    /// The cache in `dir`; created on first write.
    pub fn new(dir: &Path) -> DebCache {
        DebCache {
            dir: dir.to_path_buf(),
        }
    }

    /// Path of the cached .deb with this SHA-256.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.deb"))
    }

    /// Whether a .deb with this SHA-256 is cached.
    pub fn has(&self, sha256: &str) -> bool {
        self.path(sha256).is_file()
    }

    /// Put every `*.deb` of `from` into the cache under its own SHA-256 (hard link when on
    /// the same filesystem, else a copy; a temporary name, then a rename). Returns (files
    /// added, bytes added).
    ///
    /// Errors: the cache directory cannot be written.
    pub fn ingest(&self, from: &Path) -> Result<(usize, u64)> {
        let Ok(rd) = std::fs::read_dir(from) else {
            return Ok((0, 0));
        };
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let (mut files, mut bytes) = (0, 0);
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "deb") || !p.is_file() {
                continue;
            }
            let (sha, size) = hash_file(&p)?;
            let dest = self.path(&sha);
            if dest.exists() {
                continue;
            }
            let tmp = self.dir.join(format!(".tmp-{sha}-{}", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            if std::fs::hard_link(&p, &tmp).is_err() {
                copy_synced(&p, &tmp)?;
            }
            std::fs::rename(&tmp, &dest)
                .with_context(|| format!("cannot write {}", dest.display()))?;
            files += 1;
            bytes += size;
        }
        Ok((files, bytes))
    }

    /// Link the cached .debs of `packages` into `dest` under apt's archive names, each
    /// checked against its locked SHA-256 first (a mismatch is removed from the cache and
    /// left for apt to download). Returns how many were staged.
    ///
    /// Errors: `dest` cannot be written.
    pub fn stage<'a>(
        &self,
        packages: impl IntoIterator<Item = &'a LockedPackage>,
        dest: &Path,
    ) -> Result<usize> {
        std::fs::create_dir_all(dest)
            .with_context(|| format!("cannot create {}", dest.display()))?;
        let mut n = 0;
        for p in packages {
            let src = self.path(&p.sha256);
            if !src.is_file() {
                continue;
            }
            match hash_file(&src) {
                Ok((sha, _)) if sha == p.sha256 => {}
                _ => {
                    let _ = std::fs::remove_file(&src);
                    continue;
                }
            }
            let to = dest.join(archive_name(p));
            if std::fs::hard_link(&src, &to).is_err() {
                copy_synced(&src, &to)?;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Whether every package of `packages` is cached.
    pub fn has_all<'a>(&self, packages: impl IntoIterator<Item = &'a LockedPackage>) -> bool {
        packages.into_iter().all(|p| self.has(&p.sha256))
    }

    /// Make a flat apt repository (Debian Repository Format, "Flat Repository Format") in
    /// `dir` holding exactly `packages` from the cache: the .debs (checked against their
    /// locked SHA-256, [`DebCache::stage`]) and a `Packages` index made from each .deb's
    /// control file plus `Filename`, `Size` and `SHA256`. apt reads it as `deb
    /// [trusted=yes] file:DIR ./`: trust comes from the hashes checked here, which the
    /// signed indexes gave when the lock was made.
    ///
    /// Errors: a package is not cached (or its file no longer matches), or a .deb has no
    /// readable control file.
    pub fn local_repository(&self, packages: &[LockedPackage], dir: &Path) -> Result<()> {
        let staged = self.stage(packages.iter(), dir)?;
        if staged != packages.len() {
            anyhow::bail!(
                "{} of {} locked .debs are not in the local cache {}",
                packages.len() - staged,
                packages.len(),
                self.dir.display()
            );
        }
        let mut index = String::new();
        for p in packages {
            let file = archive_name(p);
            let bytes = std::fs::read(dir.join(&file))
                .with_context(|| format!("cannot read {}", dir.join(&file).display()))?;
            let control = crate::debian::deb::control_from_deb(&bytes, &file)?;
            index.push_str(control.trim_end());
            index.push_str(&format!(
                "\nFilename: ./{file}\nSize: {}\nSHA256: {}\n\n",
                bytes.len(),
                p.sha256
            ));
        }
        std::fs::write(dir.join("Packages"), index)
            .with_context(|| format!("cannot write {}", dir.join("Packages").display()))?;
        Ok(())
    }

    /// Remove every cached .deb whose SHA-256 is not in `keep` (and temporary files left
    /// by a killed build). Returns (files removed, bytes freed).
    pub fn prune(&self, keep: &BTreeSet<String>) -> (usize, u64) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return (0, 0);
        };
        let (mut files, mut bytes) = (0, 0);
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale_tmp = name.starts_with(".tmp-");
            let unkept = name
                .strip_suffix(".deb")
                .is_some_and(|sha| !keep.contains(sha));
            if stale_tmp || unkept {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                if std::fs::remove_file(e.path()).is_ok() {
                    files += 1;
                    bytes += size;
                }
            }
        }
        (files, bytes)
    }
}

fn copy_synced(from: &Path, to: &Path) -> Result<()> {
    let mut src =
        std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut dst =
        std::fs::File::create(to).with_context(|| format!("cannot write {}", to.display()))?;
    std::io::copy(&mut src, &mut dst)?;
    dst.flush()?;
    dst.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str, sha256: &str) -> LockedPackage {
        LockedPackage {
            name: name.into(),
            arch: "amd64".into(),
            version: version.into(),
            source: name.into(),
            source_version: version.into(),
            mirror: "http://deb.debian.org/debian".into(),
            suite: "bookworm".into(),
            sha256: sha256.into(),
            size: 0,
        }
    }

    #[test]
    fn debs_go_in_by_their_hash_and_out_only_when_it_still_matches() {
        let t = tempfile::tempdir().unwrap();
        let from = t.path().join("out");
        std::fs::create_dir_all(&from).unwrap();
        std::fs::write(from.join("a_1_amd64.deb"), b"package a").unwrap();
        std::fs::write(from.join("b_1_amd64.deb"), b"package b").unwrap();
        std::fs::write(from.join("notes.txt"), b"not a deb").unwrap();
        let cache = DebCache::new(&t.path().join("debs"));
        assert_eq!(cache.ingest(&from).unwrap(), (2, 18));
        assert_eq!(cache.ingest(&from).unwrap(), (0, 0), "already cached");
        let (sha_a, _) = hash_file(&from.join("a_1_amd64.deb")).unwrap();
        let (sha_b, _) = hash_file(&from.join("b_1_amd64.deb")).unwrap();
        assert!(cache.has(&sha_a) && cache.has(&sha_b));
        // A planted or damaged file is not given to apt, and leaves the cache.
        std::fs::write(cache.path(&sha_b), b"tampered").unwrap();
        let stage = t.path().join("in");
        let pkgs = [pkg("a", "1:2.0", &sha_a), pkg("b", "1", &sha_b)];
        assert_eq!(cache.stage(pkgs.iter(), &stage).unwrap(), 1);
        assert!(stage.join("a_1%3a2.0_amd64.deb").is_file());
        assert!(!cache.has(&sha_b));
        let keep: BTreeSet<String> = BTreeSet::new();
        assert_eq!(cache.prune(&keep), (1, 9));
        assert!(!cache.has(&sha_a));
    }
}
