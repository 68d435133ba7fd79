//! Shared by the tests that need a signed apt repository: throwaway OpenPGP keys (rpgp),
//! clearsigned InRelease files, Packages/Release files, and a tiny HTTP server on
//! 127.0.0.1 serving a directory tree with ETags.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::packet::{KeyFlags, SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::ser::Serialize;
use pgp::types::{Duration, KeyDetails, Password, Tag, Timestamp};
use sha2::{Digest, Sha256};

/// A fresh signing key (Ed25519), created now, that never expires.
pub fn key() -> SignedSecretKey {
    key_created(Timestamp::now())
}

fn key_created(created: Timestamp) -> SignedSecretKey {
    let mut p = SecretKeyParamsBuilder::default();
    p.key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .can_sign(true)
        .created_at(created)
        .primary_user_id("drover test repository <test@example.invalid>".into());
    p.build()
        .unwrap()
        .generate(rand::thread_rng())
        .expect("generate key")
}

/// Two days ago.
fn two_days_ago() -> Timestamp {
    Timestamp::from_secs(Timestamp::now().as_secs() - 2 * 86_400)
}

/// A self-signature of type `typ` by `key`'s primary, made now (so newer than the
/// generator's own and the one that counts), with `flags` and a key expiration one day
/// after the key's creation.
fn expiring_self_sig(
    key: &SignedSecretKey,
    typ: SignatureType,
    flags: KeyFlags,
) -> SignatureConfig {
    let mut config = SignatureConfig::from_key(rand::thread_rng(), &key.primary_key, typ).unwrap();
    config.hashed_subpackets = vec![
        Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::now())).unwrap(),
        Subpacket::regular(SubpacketData::KeyExpirationTime(Duration::from_secs(
            86_400,
        )))
        .unwrap(),
        Subpacket::regular(SubpacketData::KeyFlags(flags)).unwrap(),
        Subpacket::regular(SubpacketData::IssuerFingerprint(
            key.primary_key.fingerprint(),
        ))
        .unwrap(),
    ];
    config
}

/// A signing key created two days ago whose newest self-signature makes it expire one day
/// after creation (so: expired yesterday). Returns the key and its expiry (Unix seconds).
pub fn expired_key() -> (SignedSecretKey, u32) {
    let created = two_days_ago();
    let mut key = key_created(created);
    let mut flags = KeyFlags::default();
    flags.set_sign(true);
    flags.set_certify(true);
    let config = expiring_self_sig(&key, SignatureType::CertPositive, flags);
    let public = key.primary_key.public_key().clone();
    let user = key.details.users[0].id.clone();
    let sig = config
        .sign_certification(
            &key.primary_key,
            &public,
            &Password::empty(),
            Tag::UserId,
            &user,
        )
        .unwrap();
    key.details.users[0].signatures.push(sig);
    (key, created.as_secs() + 86_400)
}

/// A key whose primary never expires, with a signing subkey created two days ago whose
/// newest binding signature makes it expire one day after its creation. Returns the key,
/// the subkey's fingerprint and its expiry (Unix seconds). Sign with [`sign_with_subkey`].
pub fn key_with_expired_subkey() -> (SignedSecretKey, String, u32) {
    let created = two_days_ago();
    let mut p = SecretKeyParamsBuilder::default();
    p.key_type(KeyType::Ed25519Legacy)
        .can_certify(true)
        .created_at(created)
        .primary_user_id("drover test repository <test@example.invalid>".into())
        .subkeys(vec![SubkeyParamsBuilder::default()
            .key_type(KeyType::Ed25519Legacy)
            .can_sign(true)
            .created_at(created)
            .build()
            .unwrap()]);
    let mut key = p.build().unwrap().generate(rand::thread_rng()).unwrap();
    let mut flags = KeyFlags::default();
    flags.set_sign(true);
    let config = expiring_self_sig(&key, SignatureType::SubkeyBinding, flags);
    let public = key.primary_key.public_key().clone();
    let sub = &mut key.secret_subkeys[0];
    let sig = config
        .sign_subkey_binding(&key.primary_key, &public, &Password::empty(), &sub.key)
        .unwrap();
    sub.signatures.push(sig);
    let fpr = format!("{:X}", sub.key.fingerprint());
    (key, fpr, created.as_secs() + 86_400)
}

/// `text` clearsigned by `key`'s first subkey.
pub fn sign_with_subkey(key: &SignedSecretKey, text: &str) -> String {
    CleartextSignedMessage::sign(
        rand::thread_rng(),
        text,
        &key.secret_subkeys[0].key,
        &Password::empty(),
    )
    .unwrap()
    .to_armored_string(ArmorOptions::default())
    .unwrap()
}

/// The public half of `key` as a binary keyring (`.gpg`).
pub fn public_keyring(key: &SignedSecretKey) -> Vec<u8> {
    SignedPublicKey::from(key.clone()).to_bytes().unwrap()
}

/// The public half of `key` ASCII-armoured (`.asc`).
pub fn public_armored(key: &SignedSecretKey) -> String {
    SignedPublicKey::from(key.clone())
        .to_armored_string(ArmorOptions::default())
        .unwrap()
}

/// Uppercase hex fingerprint of `key`'s primary key.
pub fn fingerprint(key: &SignedSecretKey) -> String {
    format!("{:X}", key.primary_key.fingerprint())
}

/// `text` clearsigned by `key` (an InRelease file).
pub fn sign(key: &SignedSecretKey, text: &str) -> String {
    CleartextSignedMessage::sign(
        rand::thread_rng(),
        text,
        &key.primary_key,
        &Password::empty(),
    )
    .unwrap()
    .to_armored_string(ArmorOptions::default())
    .unwrap()
}

/// `text` clearsigned by every key of `keys` (one signature each, like Debian's InRelease).
pub fn sign_many(keys: &[&SignedSecretKey], text: &str) -> String {
    CleartextSignedMessage::new_many(text, |_| {
        Ok(keys
            .iter()
            .map(|k| {
                CleartextSignedMessage::sign(
                    rand::thread_rng(),
                    text,
                    &k.primary_key,
                    &Password::empty(),
                )
                .unwrap()
                .signatures()[0]
                    .clone()
            })
            .collect())
    })
    .unwrap()
    .to_armored_string(ArmorOptions::default())
    .unwrap()
}

pub fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

pub fn xz(b: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

pub fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// A Release date a week from now (for `Valid-Until`).
pub fn future() -> String {
    let t = chrono::Utc::now() + chrono::Duration::days(7);
    t.format("%a, %d %b %Y %H:%M:%S UTC").to_string()
}

/// How [`publish_suite`] writes one suite.
pub struct Suite<'a> {
    /// `Origin:`.
    pub origin: &'a str,
    /// `Label:`.
    pub label: &'a str,
    /// Suite and codename.
    pub suite: &'a str,
    /// `Valid-Until:`.
    pub valid_until: &'a str,
}

/// Write `dists/SUITE/` under `repo` (the repository's root directory) for one Packages
/// text of `main`/`amd64`: Packages.xz and Packages (plain and by-hash), Release, and InRelease signed by
/// `key` (unsigned when None). Returns the Release text.
pub fn publish_suite(
    repo: &Path,
    s: &Suite<'_>,
    packages: &str,
    key: Option<&SignedSecretKey>,
) -> String {
    publish_suite_as(
        repo,
        s.suite,
        s,
        packages,
        key,
        "Sat, 09 Nov 2024 10:12:34 UTC",
    )
}

/// [`publish_suite`] with the Release's `Date:` given, written under `dists/DIR/` whatever
/// suite the Release names (a mirror serving another suite's signed data under DIR).
pub fn publish_suite_as(
    repo: &Path,
    dir: &str,
    s: &Suite<'_>,
    packages: &str,
    key: Option<&SignedSecretKey>,
    date: &str,
) -> String {
    let dists = repo.join("dists").join(dir);
    let bin = dists.join("main/binary-amd64");
    std::fs::create_dir_all(bin.join("by-hash/SHA256")).unwrap();
    let data = xz(packages.as_bytes());
    std::fs::write(bin.join("Packages.xz"), &data).unwrap();
    std::fs::write(bin.join("by-hash/SHA256").join(sha(&data)), &data).unwrap();
    // apt looks an index up by its uncompressed name: list (and serve) that one too.
    let plain = packages.as_bytes();
    std::fs::write(bin.join("Packages"), plain).unwrap();
    std::fs::write(bin.join("by-hash/SHA256").join(sha(plain)), plain).unwrap();
    let release = format!(
        "Origin: {o}\nLabel: {l}\nSuite: {s}\nCodename: {s}\n\
         Date: {date}\nValid-Until: {v}\n\
         Acquire-By-Hash: yes\nArchitectures: amd64\nComponents: main\n\
         Description: drover fixture\nSHA256:\n {} {} main/binary-amd64/Packages.xz\n \
         {} {} main/binary-amd64/Packages\n",
        sha(&data),
        data.len(),
        sha(plain),
        plain.len(),
        o = s.origin,
        l = s.label,
        s = s.suite,
        v = s.valid_until,
    );
    let inrelease = match key {
        Some(k) => sign(k, &release),
        None => release.clone(),
    };
    std::fs::write(dists.join("InRelease"), inrelease).unwrap();
    release
}

/// A file tree served over HTTP with ETags (SHA-256 of the content) and `304` answers to
/// `If-None-Match`; every request path is logged.
pub struct Server {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base: String,
    log: Arc<Mutex<Vec<(String, u16)>>>,
}

impl Server {
    /// Serve `root` on an ephemeral port of 127.0.0.1 from a background thread.
    pub fn start(root: &Path) -> Server {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (root2, log2) = (root.to_path_buf(), log.clone());
        std::thread::spawn(move || {
            for req in server.incoming_requests() {
                let path = req.url().trim_start_matches('/').to_string();
                let file = root2.join(&path);
                let inm = req
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("If-None-Match"))
                    .map(|h| h.value.as_str().to_string());
                let (code, resp) = match std::fs::read(&file) {
                    Ok(data) if !path.contains("..") => {
                        let etag = format!("\"{}\"", sha(&data));
                        if inm.as_deref() == Some(etag.as_str()) {
                            (
                                304,
                                tiny_http::Response::from_data(Vec::new()).with_status_code(304),
                            )
                        } else {
                            let h = tiny_http::Header::from_bytes("ETag", etag.as_bytes()).unwrap();
                            (200, tiny_http::Response::from_data(data).with_header(h))
                        }
                    }
                    _ => (
                        404,
                        tiny_http::Response::from_data(Vec::new()).with_status_code(404),
                    ),
                };
                log2.lock().unwrap().push((path, code));
                let _ = req.respond(resp);
            }
        });
        Server {
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// The (path, status) of every request so far.
    pub fn requests(&self) -> Vec<(String, u16)> {
        self.log.lock().unwrap().clone()
    }

    /// Forget the logged requests.
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}
