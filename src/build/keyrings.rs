//! Base sources signed by their own keyring (`[track] apt`'s `signed_by`) instead of the
//! Debian archive key: which keyring signs which source, the base cache key that covers
//! them, and the keyring copies and `sources.list` texts a base is made with.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use sha2::Digest;

use crate::lock::Lock;
use crate::stack::AptSource;

/// The keyring that signs one apt source of a base (`[track].apt`'s `signed_by` for the
/// same mirror and suite), instead of the Debian archive keyring apt trusts by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    /// Mirror URL, as in the source.
    pub mirror: String,
    /// Suite, as in the source.
    pub suite: String,
    /// The keyring file on the host (binary or ASCII-armored OpenPGP).
    pub file: PathBuf,
}

/// The keyrings of `stack`'s tracked sources that name one (`signed_by`).
pub fn keyrings_of(stack: &crate::stack::Stack) -> Vec<Keyring> {
    stack
        .track
        .apt
        .iter()
        .zip(&stack.track.trust)
        .filter_map(|(src, t)| {
            t.signed_by.as_ref().map(|f| Keyring {
                mirror: src.mirror.clone(),
                suite: src.suite.clone(),
                file: f.clone(),
            })
        })
        .collect()
}

/// The cache key of the base of `lock` made with `keyrings`: [`Lock::base_key`] when no
/// keyring signs one of the lock's repositories; otherwise that key hashed with each such
/// keyring's mirror, suite and SHA-256, so a base made with one key is not reused with
/// another (the image carries the keyring).
///
/// Errors: a keyring file that cannot be read (its path is named).
pub fn cache_key(lock: &Lock, keyrings: &[Keyring]) -> Result<String> {
    let key = lock.base_key();
    let mut used: Vec<&Keyring> = keyrings
        .iter()
        .filter(|k| {
            lock.repositories
                .iter()
                .any(|r| r.mirror == k.mirror && r.suite == k.suite)
        })
        .collect();
    if used.is_empty() {
        return Ok(key);
    }
    used.sort_by(|a, b| (&a.mirror, &a.suite).cmp(&(&b.mirror, &b.suite)));
    let mut h = sha2::Sha256::new();
    h.update(key.as_bytes());
    for k in used {
        let bytes = std::fs::read(&k.file)
            .with_context(|| format!("cannot read the keyring {} (signed_by)", k.file.display()))?;
        for part in [
            k.mirror.as_bytes(),
            k.suite.as_bytes(),
            &sha2::Sha256::digest(&bytes),
        ] {
            h.update(part);
            h.update([0]);
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// The apt source lines of a base: for mmdebstrap on the host (`signed-by` the copies in
/// `keys_dir`) and for the image's `/etc/apt/sources.list` (`signed-by` the same copies in
/// `/etc/apt/keyrings/`).
pub(super) struct SourceLists {
    /// One `deb` line per source, as mmdebstrap (apt from the host) reads them.
    pub host: String,
    /// The same lines as the image's apt reads them.
    pub image: String,
    /// Where the keyring copies are, when a source has one (synced into the image).
    pub keys_dir: Option<PathBuf>,
}

/// Copy the keyring of each of `sources` that has one into `tmp/keyrings/` (checked to be
/// OpenPGP public keys, 0644, named `drover-source-N.gpg` or `.asc` by format: apt tells
/// them apart by the name) and write the source lines naming them.
///
/// Errors: a keyring that cannot be read or is not OpenPGP public keys; a `tmp` path with
/// a space or `]`, which apt's `signed-by` option cannot carry.
pub(super) fn stage(
    sources: &[AptSource],
    keyrings: &[Keyring],
    tmp: &std::path::Path,
) -> Result<SourceLists> {
    let keys_dir = tmp.join("keyrings");
    let mut copies: Vec<(usize, String)> = Vec::new();
    let mut names: Vec<Option<String>> = Vec::new();
    for s in sources {
        let Some(i) = keyrings
            .iter()
            .position(|k| k.mirror == s.mirror && k.suite == s.suite)
        else {
            names.push(None);
            continue;
        };
        if let Some((_, n)) = copies.iter().find(|(j, _)| *j == i) {
            names.push(Some(n.clone()));
            continue;
        }
        let k = &keyrings[i];
        let keyring = crate::debian::signature::Keyring::load(&k.file)
            .with_context(|| format!("the signed_by keyring of {} {}", k.mirror, k.suite))?;
        let bytes = std::fs::read(&keyring.file)?;
        let armored = bytes.trim_ascii_start().starts_with(b"-----");
        let name = format!("drover-source-{i}.{}", if armored { "asc" } else { "gpg" });
        std::fs::create_dir_all(&keys_dir)?;
        let to = keys_dir.join(&name);
        std::fs::write(&to, &bytes)?;
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        copies.push((i, name.clone()));
        names.push(Some(name));
    }
    let host_keys = keys_dir.to_string_lossy().into_owned();
    if !copies.is_empty() && host_keys.contains(|c: char| c.is_whitespace() || c == ']') {
        bail!(
            "the state directory's path {host_keys:?} holds a space or `]`, which an apt \
             source's signed-by option cannot carry; use a state directory without them"
        );
    }
    let lines = |dir: &str| -> String {
        sources
            .iter()
            .zip(&names)
            .map(|(s, name)| {
                let opt = name
                    .as_ref()
                    .map(|n| format!("[signed-by={dir}/{n}] "))
                    .unwrap_or_default();
                format!(
                    "deb {opt}{} {} {}\n",
                    s.mirror,
                    s.suite,
                    s.components.join(" ")
                )
            })
            .collect()
    };
    Ok(SourceLists {
        host: lines(&host_keys),
        image: lines("/etc/apt/keyrings"),
        keys_dir: (!copies.is_empty()).then_some(keys_dir),
    })
}
