//! Pushing images to registries through the OCI distribution API (distribution-spec v1.1:
//! blob existence checks, chunked blob uploads, manifest PUT), with the `oci-client` crate.
//!
//! The image manifest is uploaded byte for byte, so the digest in the registry equals the
//! build's `image_digest`. Credentials come from `DROVER_REGISTRY_USER` /
//! `DROVER_REGISTRY_PASSWORD`, else Docker's `config.json` (`$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`: `auths` entries and credential helpers), else none.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{bail, Context, Result};
use futures_util::stream;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Serialize;

pub mod archive;

pub use archive::{ArchiveImage, BlobRef};

/// Environment variable with the registry user name.
pub const ENV_USER: &str = "DROVER_REGISTRY_USER";
/// Environment variable with the registry password (or token).
pub const ENV_PASSWORD: &str = "DROVER_REGISTRY_PASSWORD";

/// Bytes read from the archive per upload chunk.
const CHUNK: usize = 1 << 20;

/// A push destination: `HOST[:PORT]/REPO:TAG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `HOST[:PORT]` as written (e.g. `127.0.0.1:5000`, `ghcr.io`).
    pub registry: String,
    /// Repository path, e.g. `team/hello`.
    pub repository: String,
    /// Tag, e.g. `latest`.
    pub tag: String,
}

impl Destination {
    /// Parse `HOST[:PORT]/REPO:TAG`. The registry host must be explicit (it contains a `.` or
    /// a `:`, or is `localhost`) and the tag is required, so nothing is pushed to a guessed
    /// place. Repository and tag follow distribution-spec v1.1's grammar
    /// (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/…)*` and `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`).
    ///
    /// # Errors
    /// A message saying which part is wrong and showing the expected form.
    pub fn parse(s: &str) -> Result<Destination> {
        let form = "expected HOST[:PORT]/REPO:TAG, e.g. 127.0.0.1:5000/hello:latest";
        let Some((registry, rest)) = s.split_once('/') else {
            bail!("{s:?} has no registry host; {form}");
        };
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            bail!("{s:?} does not start with a registry host (a name with a dot or a port, or localhost); {form}");
        }
        if rest.contains('@') {
            bail!("{s:?} holds a digest; push to a tag instead ({form})");
        }
        let Some((repository, tag)) = rest.rsplit_once(':') else {
            bail!("{s:?} has no tag; {form}");
        };
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphanumeric() || c == '_' || (i > 0 && (c == '.' || c == '-'))
            });
        if !tag_ok {
            bail!("tag {tag:?} in {s:?} is invalid: letters, digits, `_`, `.`, `-` (not first), at most 128; {form}");
        }
        let comp_ok = |c: &str| {
            !c.is_empty()
                && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
                })
        };
        if !repository.split('/').all(comp_ok) {
            bail!("repository {repository:?} in {s:?} is invalid: lowercase letters, digits and `.`, `_`, `-` inside `/`-separated parts; {form}");
        }
        Ok(Destination {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }

    /// `HOST[:PORT]/REPO:TAG`.
    pub fn reference(&self) -> String {
        format!("{}/{}:{}", self.registry, self.repository, self.tag)
    }

    /// `HOST[:PORT]/REPO@DIGEST`: the immutable reference of a pushed image.
    pub fn by_digest(&self, digest: &str) -> String {
        format!("{}/{}@{}", self.registry, self.repository, digest)
    }
}

/// Where credentials came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSource {
    /// `DROVER_REGISTRY_USER` / `DROVER_REGISTRY_PASSWORD`.
    Environment,
    /// Docker's `config.json` (an `auths` entry or a credential helper).
    DockerConfig,
    /// No credentials: anonymous access.
    Anonymous,
}

impl CredentialSource {
    fn describe(self) -> &'static str {
        match self {
            CredentialSource::Environment => "DROVER_REGISTRY_USER/DROVER_REGISTRY_PASSWORD",
            CredentialSource::DockerConfig => "Docker's config.json",
            CredentialSource::Anonymous => "no credentials (anonymous)",
        }
    }
}

/// Find credentials for `registry` (`HOST[:PORT]`): the environment first, then Docker's
/// `config.json`, else anonymous.
///
/// # Errors
/// Only one of the two environment variables is set, or `config.json` exists but cannot be
/// read or parsed, or names an identity token (not supported).
pub fn credentials(registry: &str) -> Result<(RegistryAuth, CredentialSource)> {
    let user = std::env::var(ENV_USER).ok().filter(|v| !v.is_empty());
    let pass = std::env::var(ENV_PASSWORD).ok().filter(|v| !v.is_empty());
    match (user, pass) {
        (Some(u), Some(p)) => {
            return Ok((RegistryAuth::Basic(u, p), CredentialSource::Environment))
        }
        (Some(_), None) => {
            bail!("{ENV_USER} is set but {ENV_PASSWORD} is not; set both or neither")
        }
        (None, Some(_)) => {
            bail!("{ENV_PASSWORD} is set but {ENV_USER} is not; set both or neither")
        }
        (None, None) => {}
    }
    use docker_credential::{CredentialRetrievalError as E, DockerCredential};
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")));
    let Some(file) = dir.map(|d| d.join("config.json")).filter(|f| f.is_file()) else {
        return Ok((RegistryAuth::Anonymous, CredentialSource::Anonymous));
    };
    let reader = File::open(&file)
        .map(std::io::BufReader::new)
        .with_context(|| format!("cannot read Docker's credentials file {}", file.display()))?;
    match docker_credential::get_credential_from_reader(reader, registry) {
        Ok(DockerCredential::UsernamePassword(u, p)) => {
            Ok((RegistryAuth::Basic(u, p), CredentialSource::DockerConfig))
        }
        Ok(DockerCredential::IdentityToken(_)) => bail!(
            "{} holds an identity token for {registry}, which drover cannot use; set {ENV_USER} \
             and {ENV_PASSWORD} instead",
            file.display()
        ),
        Err(E::NoCredentialConfigured) => {
            Ok((RegistryAuth::Anonymous, CredentialSource::Anonymous))
        }
        Err(e) => bail!(
            "cannot use Docker's credentials for {registry} from {}: {e}; fix that file (or run \
             `docker login {registry}` again), or set {ENV_USER} and {ENV_PASSWORD}",
            file.display()
        ),
    }
}

/// Options of [`push`].
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Plain HTTP instead of HTTPS (a local or test registry).
    pub insecure: bool,
}

/// Progress of a push, in bytes of blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// The upload starts: `total` bytes of config and layers.
    Started {
        /// Sum of all blob sizes, bytes.
        total: u64,
    },
    /// A blob already exists in the registry and is skipped (its bytes count as done).
    BlobExists {
        /// `sha256:…`
        digest: String,
        /// Bytes.
        size: u64,
    },
    /// `bytes` more were sent.
    Sent {
        /// Bytes in this chunk.
        bytes: u64,
    },
    /// The manifest was uploaded.
    ManifestPushed,
}

/// The result of a successful push (the `push --json` shape, minus drover's bookkeeping).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushReport {
    /// `HOST[:PORT]/REPO:TAG` as pushed.
    pub reference: String,
    /// `sha256:…` digest of the manifest in the registry (equals the build's image digest).
    pub digest: String,
    /// `HOST[:PORT]/REPO@sha256:…`.
    pub reference_by_digest: String,
    /// `HOST[:PORT]`.
    pub registry: String,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had.
    pub blobs_skipped: usize,
    /// Bytes uploaded.
    pub bytes_uploaded: u64,
    /// Where the credentials came from.
    pub credentials: CredentialSource,
}

/// Push the image in the OCI archive `archive` to `dest`.
///
/// Follows OCI distribution-spec v1.1: for each blob (config, then layers bottom first) a
/// `HEAD /v2/REPO/blobs/DIGEST` and, when missing, a chunked upload
/// (`POST …/blobs/uploads/`, `PATCH`, `PUT ?digest=`) streamed from the archive; then
/// `PUT /v2/REPO/manifests/TAG` with the manifest's exact bytes. `on_event` sees progress.
/// Runs its own single-threaded tokio runtime; call it from a plain thread.
///
/// # Errors
/// The archive is unreadable (see [`archive::open`]); credentials are malformed (see
/// [`credentials`]); the registry cannot be reached, refuses the credentials or an upload, or
/// answers with a different digest. The message names the registry, the HTTP status (when
/// there is one) and what to do.
pub fn push(
    archive_path: &Path,
    dest: &Destination,
    opts: &PushOptions,
    on_event: &mut dyn FnMut(PushEvent),
) -> Result<PushReport> {
    let image = archive::open(archive_path)?;
    let (auth, source) = credentials(&dest.registry)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime for the upload")?;
    rt.block_on(push_async(&image, dest, opts, auth, source, on_event))
}

async fn push_async(
    image: &ArchiveImage,
    dest: &Destination,
    opts: &PushOptions,
    auth: RegistryAuth,
    source: CredentialSource,
    on_event: &mut dyn FnMut(PushEvent),
) -> Result<PushReport> {
    // rustls needs a process-wide crypto provider; ring is the one reqwest already uses.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let reference: Reference = dest
        .reference()
        .parse()
        .with_context(|| format!("cannot use {:?} as an image reference", dest.reference()))?;
    let protocol = if opts.insecure {
        ClientProtocol::Http
    } else {
        ClientProtocol::Https
    };
    let client = Client::new(ClientConfig {
        protocol,
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        ..Default::default()
    });
    let explain = |e: OciDistributionError, doing: &str| explain(e, doing, dest, opts, source);
    client
        .auth(&reference, &auth, oci_client::RegistryOperation::Push)
        .await
        .map_err(|e| explain(e, "contacting"))?;

    on_event(PushEvent::Started {
        total: image.blob_bytes(),
    });
    let mut report = PushReport {
        reference: dest.reference(),
        digest: image.digest.clone(),
        reference_by_digest: dest.by_digest(&image.digest),
        registry: dest.registry.clone(),
        blobs_uploaded: 0,
        blobs_skipped: 0,
        bytes_uploaded: 0,
        credentials: source,
    };
    let mut seen = std::collections::HashSet::new();
    for blob in std::iter::once(&image.config).chain(image.layers.iter()) {
        if !seen.insert(blob.digest.clone()) {
            continue;
        }
        let exists = client
            .blob_exists(&reference, &blob.digest)
            .await
            .map_err(|e| explain(e, "checking a blob on"))?;
        if exists {
            report.blobs_skipped += 1;
            on_event(PushEvent::BlobExists {
                digest: blob.digest.clone(),
                size: blob.size,
            });
            continue;
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let body = blob_stream(&image.path, blob, tx)?;
        let upload = client.push_blob_stream(&reference, body, &blob.digest, Some(blob.size));
        tokio::pin!(upload);
        loop {
            tokio::select! {
                res = &mut upload => {
                    while let Ok(n) = rx.try_recv() {
                        on_event(PushEvent::Sent { bytes: n });
                    }
                    res.map_err(|e| explain(e, "uploading a blob to"))?;
                    break;
                }
                Some(n) = rx.recv() => on_event(PushEvent::Sent { bytes: n }),
            }
        }
        report.blobs_uploaded += 1;
        report.bytes_uploaded += blob.size;
    }
    let url = client
        .push_manifest_raw(
            &reference,
            image.manifest.clone(),
            image
                .media_type
                .parse()
                .context("the manifest media type is not a valid HTTP header value")?,
        )
        .await
        .map_err(|e| explain(e, "uploading the manifest to"))?;
    on_event(PushEvent::ManifestPushed);
    // The registry's Location (…/manifests/sha256:…) names the digest it computed.
    if let Some(idx) = url.rfind("sha256:") {
        let got = &url[idx..];
        if got.len() == 71 && got != image.digest {
            bail!(
                "registry {} stored the manifest as {got}, but drover sent {}; the registry \
                 rewrote the manifest: push to a registry that stores OCI manifests unchanged",
                dest.registry,
                image.digest
            );
        }
    }
    Ok(report)
}

/// A stream of the blob's bytes read from the archive in [`CHUNK`]-sized pieces; each
/// piece's length is also sent on `progress` as it is handed to the uploader.
fn blob_stream(
    path: &Path,
    blob: &BlobRef,
    progress: tokio::sync::mpsc::UnboundedSender<u64>,
) -> Result<
    impl futures_util::Stream<Item = oci_client::errors::Result<bytes::Bytes>> + Send + 'static,
> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    file.seek(SeekFrom::Start(blob.offset))
        .with_context(|| format!("cannot seek in {}", path.display()))?;
    let reader = file.take(blob.size);
    Ok(stream::unfold(reader, move |mut reader| {
        let progress = progress.clone();
        async move {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => return Some((Err(OciDistributionError::IoError(e)), reader)),
                }
            }
            if filled == 0 {
                return None;
            }
            buf.truncate(filled);
            let _ = progress.send(filled as u64);
            Some((Ok(bytes::Bytes::from(buf)), reader))
        }
    }))
}

/// Turn an `oci-client` error into a message naming the registry, the HTTP status and the fix.
fn explain(
    e: OciDistributionError,
    doing: &str,
    dest: &Destination,
    opts: &PushOptions,
    source: CredentialSource,
) -> anyhow::Error {
    let reg = &dest.registry;
    let scheme = if opts.insecure { "http" } else { "https" };
    let status = match &e {
        OciDistributionError::ServerError { code, .. } => Some(*code),
        OciDistributionError::UnauthorizedError { .. } => Some(401),
        OciDistributionError::RequestError(r) => r.status().map(|s| s.as_u16()),
        _ => None,
    };
    if let OciDistributionError::RequestError(r) = &e {
        if r.status().is_none() {
            let hint = if opts.insecure {
                format!("check that a registry listens on {scheme}://{reg} (the address and port)")
            } else {
                "check the address and that the registry serves HTTPS with a trusted \
                 certificate; for a plain-HTTP registry (e.g. a local one) add --insecure"
                    .to_string()
            };
            return anyhow::anyhow!(
                "cannot reach registry {reg} ({scheme}) while {doing} it: {}; {hint}",
                error_chain(r)
            );
        }
    }
    let fix = match status {
        Some(401) if source == CredentialSource::Anonymous => format!(
            "the registry requires credentials and none were found: set {ENV_USER} and \
             {ENV_PASSWORD}, or run `docker login {reg}`"
        ),
        Some(401) => format!(
            "the registry refused the credentials from {}: check the user and password \
             ({ENV_USER}/{ENV_PASSWORD}, or `docker login {reg}`)",
            source.describe()
        ),
        Some(403) => format!(
            "the account from {} may not push to {}: ask the registry's administrator for \
             push access or choose another repository",
            source.describe(),
            dest.repository
        ),
        Some(404) => format!(
            "the registry does not know repository {} or does not serve the OCI distribution \
             API at {scheme}://{reg}/v2/",
            dest.repository
        ),
        Some(413) => "the registry rejected the upload size: raise its body size limit".into(),
        Some(c) if c >= 500 => "the registry failed internally: check its logs and retry".into(),
        _ => "check the registry's address and logs".into(),
    };
    let status = status
        .map(|s| format!("HTTP {s} {}", status_text(s)))
        .unwrap_or_else(|| "no HTTP status".into());
    anyhow::anyhow!(
        "registry {reg} failed while {doing} it ({status}): {fix}\n  detail: {}",
        detail(&e)
    )
}

fn status_text(code: u16) -> &'static str {
    reqwest::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

fn detail(e: &OciDistributionError) -> String {
    let s = match e {
        OciDistributionError::ServerError { message, url, .. } => {
            format!("{url}: {}", message.trim())
        }
        other => other.to_string(),
    };
    s.chars().take(400).collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
