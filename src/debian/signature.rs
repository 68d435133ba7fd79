//! OpenPGP verification of `InRelease` files (cleartext-signed Release files, RFC 9580 §7)
//! with rpgp, a pure-Rust OpenPGP implementation: no `gpg`/`gpgv` is run.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};
use pgp::packet::Signature;
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Timestamp};

/// The Debian archive keyring installed by the `debian-archive-keyring` package.
pub const DEBIAN_ARCHIVE_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A set of OpenPGP public keys (certificates) that may sign repositories.
#[derive(Debug, Clone)]
pub struct Keyring {
    /// The file the keys were read from.
    pub file: PathBuf,
    keys: Vec<SignedPublicKey>,
}

impl Keyring {
    /// Read a keyring file: binary OpenPGP packets (`.gpg`, as in `/usr/share/keyrings`) or
    /// ASCII-armoured (`.asc`).
    ///
    /// Errors: the file cannot be read, holds no public key, or is not OpenPGP data; the
    /// message names the file and, for the default keyring, the package that provides it.
    pub fn load(file: &Path) -> Result<Keyring> {
        let bytes = std::fs::read(file).with_context(|| {
            if file == Path::new(DEBIAN_ARCHIVE_KEYRING) {
                format!(
                    "cannot read the Debian archive keyring {}; install it with \
                     `apt-get install debian-archive-keyring` (or run .ci/setup)",
                    file.display()
                )
            } else {
                format!("cannot read the keyring {}", file.display())
            }
        })?;
        Self::from_bytes(&bytes)
            .with_context(|| format!("invalid keyring {}", file.display()))
            .map(|mut k| {
                k.file = file.to_path_buf();
                k
            })
    }

    /// Parse keys from bytes (binary or ASCII-armoured).
    pub fn from_bytes(bytes: &[u8]) -> Result<Keyring> {
        let armored = bytes
            .iter()
            .skip_while(|b| b.is_ascii_whitespace())
            .take(5)
            .eq(b"-----".iter());
        let mut keys = Vec::new();
        if armored {
            let (iter, _) = SignedPublicKey::from_armor_many(BufReader::new(bytes))
                .map_err(|e| anyhow::anyhow!("not an ASCII-armoured OpenPGP key block: {e}"))?;
            for k in iter {
                keys.push(k.map_err(|e| anyhow::anyhow!("malformed public key: {e}"))?);
            }
        } else {
            let iter = SignedPublicKey::from_bytes_many(BufReader::new(bytes))
                .map_err(|e| anyhow::anyhow!("not OpenPGP key data: {e}"))?;
            for k in iter {
                keys.push(k.map_err(|e| anyhow::anyhow!("malformed public key: {e}"))?);
            }
        }
        if keys.is_empty() {
            bail!("no OpenPGP public key in it");
        }
        Ok(Keyring {
            file: PathBuf::new(),
            keys,
        })
    }

    /// Number of certificates.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the keyring holds no certificate (never true for a loaded keyring).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Uppercase hex fingerprints of the primary keys, in file order.
    pub fn fingerprints(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| format!("{:X}", k.primary_key.fingerprint()))
            .collect()
    }

    /// The keys as binary OpenPGP packets (a `.gpg` keyring), whatever form they were read
    /// from.
    ///
    /// Errors: a key cannot be serialized (never for a key that was parsed).
    pub fn to_binary(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for k in &self.keys {
            out.extend(
                k.to_bytes()
                    .map_err(|e| anyhow::anyhow!("cannot serialize a public key: {e}"))?,
            );
        }
        Ok(out)
    }

    /// Append the keys of `other`.
    pub fn extend(&mut self, other: Keyring) {
        self.keys.extend(other.keys);
    }

    /// Every key (primary or subkey) of this keyring that a signature of `msg` verifies
    /// with (a Debian InRelease carries several signatures).
    fn signers(&self, msg: &CleartextSignedMessage) -> Vec<Signer> {
        let mut out = Vec::new();
        for k in &self.keys {
            let primary_expiry = expiry(
                k.primary_key.created_at(),
                k.details
                    .users
                    .iter()
                    .flat_map(|u| u.signatures.iter())
                    .chain(k.details.direct_signatures.iter()),
            );
            if let Ok(sig) = msg.verify(&k.primary_key) {
                out.push(Signer {
                    fingerprint: format!("{:X}", k.primary_key.fingerprint()),
                    expires: primary_expiry,
                    signed_at: sig.created().map(to_chrono),
                });
            }
            for s in &k.public_subkeys {
                if let Ok(sig) = msg.verify(&s.key) {
                    let own = expiry(s.key.created_at(), s.signatures.iter());
                    let expires = match (own, primary_expiry) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    out.push(Signer {
                        fingerprint: format!("{:X}", s.key.fingerprint()),
                        expires,
                        signed_at: sig.created().map(to_chrono),
                    });
                }
            }
        }
        out
    }
}

/// The key a signature verified with.
struct Signer {
    /// Uppercase hex fingerprint of the (sub)key.
    fingerprint: String,
    /// When the key (or, for a subkey, it or its primary) expires; `None` = never.
    expires: Option<DateTime<Utc>>,
    /// The signature's creation time.
    signed_at: Option<DateTime<Utc>>,
}

impl Signer {
    /// Whether the key had expired by `now`, or the signature was made after its expiry.
    fn expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires
            .is_some_and(|exp| exp <= now || self.signed_at.is_some_and(|t| t > exp))
    }

    /// The error for an expired signer of `repo`'s InRelease: fingerprint and expiry date.
    fn expiry_problem(&self, repo: &str) -> String {
        let fmt = "%Y-%m-%d %H:%M:%S UTC";
        let when = self
            .expires
            .map(|e| e.format(fmt).to_string())
            .unwrap_or_default();
        let fpr = &self.fingerprint;
        let fix = "the repository must publish a renewed key (update the key file in the image, \
                   or the keyring named by signed_by, then rebuild)";
        match self.signed_at {
            Some(t) if self.expires.is_some_and(|e| t > e) => format!(
                "the InRelease file of {repo} was signed on {} by key {fpr}, which expired on \
                 {when}: {fix}",
                t.format(fmt)
            ),
            _ => format!(
                "the key {fpr} that signs the InRelease file of {repo} expired on {when}: {fix}"
            ),
        }
    }
}

fn to_chrono(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::from(t.as_secs()), 0).unwrap_or_default()
}

/// Expiry of a key created at `created` per its newest self-signature among `sigs`
/// (RFC 9580 §5.2.3.13 Key Expiration Time, counted from the key's creation; 0 = never).
fn expiry<'a>(
    created: Timestamp,
    sigs: impl Iterator<Item = &'a Signature>,
) -> Option<DateTime<Utc>> {
    let newest = sigs
        .filter(|s| s.created().is_some())
        .max_by_key(|s| s.created().map(|t| t.as_secs()))?;
    let secs = newest.key_expiration_time()?.as_secs();
    if secs == 0 {
        return None;
    }
    Some(to_chrono(created) + chrono::Duration::seconds(i64::from(secs)))
}

/// Outcome of reading an `InRelease` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// A signature made by a key of the keyring verified; holds the signed text.
    Signed(String),
    /// No valid signature, accepted only because the repository is `trusted = true`;
    /// holds the text and why the signature was not accepted.
    Waived(String, String),
}

impl Verified {
    /// The Release text.
    pub fn text(&self) -> &str {
        match self {
            Verified::Signed(t) | Verified::Waived(t, _) => t,
        }
    }
}

/// Verify an `InRelease` file against `keyring` and return the signed Release text (with
/// `\n` line ends). `repo` names the repository in errors (`MIRROR SUITE`). Same as
/// [`verify_inrelease_at`] with the current time.
pub fn verify_inrelease(
    bytes: &[u8],
    keyring: &Keyring,
    trusted: bool,
    repo: &str,
) -> Result<Verified> {
    verify_inrelease_at(bytes, keyring, trusted, repo, Utc::now())
}

/// Verify an `InRelease` file against `keyring` at time `now` and return the signed
/// Release text (with `\n` line ends). `repo` names the repository in errors.
///
/// Errors: not a cleartext-signed message; no signature made by a key of the keyring; or
/// the signing key (or subkey, or its primary key) has expired by `now`, or the signature
/// was made after the key's expiry (the message names the repository, the fingerprint and
/// the expiry date) — unless `trusted` is set, in which case the text is returned as
/// [`Verified::Waived`].
pub fn verify_inrelease_at(
    bytes: &[u8],
    keyring: &Keyring,
    trusted: bool,
    repo: &str,
    now: DateTime<Utc>,
) -> Result<Verified> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        bail!("InRelease of {repo} is not UTF-8 text, so it cannot be a signed Release file")
    };
    let parsed = CleartextSignedMessage::from_string(text);
    let problem = match &parsed {
        Ok((msg, _)) => {
            let signers = keyring.signers(msg);
            match signers.iter().find(|s| !s.expired_at(now)) {
                Some(_) => return Ok(Verified::Signed(msg.signed_text().replace("\r\n", "\n"))),
                None => match signers.first() {
                    Some(s) => s.expiry_problem(repo),
                    None => format!(
                        "no signature of the InRelease file of {repo} verifies with a key of {} \
                         (a modified file, or a repository signed by another key)",
                        keyring.file.display()
                    ),
                },
            }
        }
        Err(e) => format!("the InRelease file of {repo} is not OpenPGP cleartext-signed: {e}"),
    };
    if trusted {
        let body = match &parsed {
            Ok((msg, _)) => msg.signed_text().replace("\r\n", "\n"),
            Err(_) => text.to_string(),
        };
        return Ok(Verified::Waived(body, problem));
    }
    bail!(
        "{problem}; refusing to use it. If the repository really uses another key, set \
         `signed_by = \"FILE\"` on its [track].apt entry (or, for a repository a build \
         script adds, its signed-by key in the image)"
    )
}
