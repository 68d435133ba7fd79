//! OpenPGP verification of `InRelease` files (cleartext-signed Release files, RFC 9580 §7)
//! with rpgp, a pure-Rust OpenPGP implementation: no `gpg`/`gpgv` is run.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};

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

    /// Whether any signature of `msg` verifies with a primary key or subkey of this keyring.
    fn verifies(&self, msg: &CleartextSignedMessage) -> bool {
        self.keys.iter().any(|k| {
            msg.verify(&k.primary_key).is_ok()
                || k.public_subkeys.iter().any(|s| msg.verify(&s.key).is_ok())
        })
    }
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
/// `\n` line ends). `repo` names the repository in errors (`MIRROR SUITE`).
///
/// Errors: not a cleartext-signed message, or no signature made by a key of the keyring —
/// unless `trusted` is set, in which case the text is returned as [`Verified::Waived`].
pub fn verify_inrelease(
    bytes: &[u8],
    keyring: &Keyring,
    trusted: bool,
    repo: &str,
) -> Result<Verified> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) if trusted => {
            bail!("InRelease of {repo} is not UTF-8 text");
        }
        Err(_) => {
            bail!("InRelease of {repo} is not UTF-8 text, so it cannot be a signed Release file")
        }
    };
    let parsed = CleartextSignedMessage::from_string(text);
    let problem = match &parsed {
        Ok((msg, _)) if keyring.verifies(msg) => {
            return Ok(Verified::Signed(msg.signed_text().replace("\r\n", "\n")));
        }
        Ok(_) => format!(
            "no signature of the InRelease file of {repo} verifies with a key of {} \
             (a modified file, or a repository signed by another key)",
            keyring.file.display()
        ),
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
         `signed_by = \"FILE\"` on its [track].apt entry"
    )
}
