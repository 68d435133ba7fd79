//! Reading drover's OCI image archives (`STATE/images/STACK/ID.oci.tar`) for a push: the
//! image manifest's exact bytes and where each blob's bytes sit inside the tar.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};

/// Largest `index.json` or manifest accepted (distribution-spec v1.1 lets registries refuse
/// manifests over 4 MiB).
pub const MAX_JSON_BYTES: u64 = 4 << 20;

/// Media type of an OCI image manifest (image-spec v1.1 `manifest.md`).
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// One blob stored in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    /// `sha256:HEX`.
    pub digest: String,
    /// Size in bytes (as given by the manifest and checked against the tar entry).
    pub size: u64,
    /// Byte offset of the blob's data inside the archive file.
    pub offset: u64,
}

/// An image archive opened for upload: one image manifest, its config and layers.
#[derive(Debug, Clone)]
pub struct ArchiveImage {
    /// The archive file.
    pub path: PathBuf,
    /// `sha256:HEX` of [`ArchiveImage::manifest`] (the image's identity, equal to the build's
    /// `image_digest`).
    pub digest: String,
    /// The manifest's exact bytes (pushed unchanged so the digest is kept).
    pub manifest: Vec<u8>,
    /// The manifest's media type (always [`MEDIA_TYPE_MANIFEST`] for drover's archives).
    pub media_type: String,
    /// The config blob.
    pub config: BlobRef,
    /// Layer blobs, bottom first.
    pub layers: Vec<BlobRef>,
}

impl ArchiveImage {
    /// Total bytes of config and layers (what a push may have to upload).
    pub fn blob_bytes(&self) -> u64 {
        self.config.size + self.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

fn check_digest(d: &str, what: &str) -> Result<String> {
    match d.strip_prefix("sha256:") {
        Some(h)
            if h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(h.to_string())
        }
        _ => bail!("{what} has digest {d:?}, expected sha256:<64 lowercase hex digits>"),
    }
}

/// Open an OCI image-layout tar (image-spec v1.1 `image-layout.md`) and locate the single
/// image manifest named by `index.json`, its config and its layers.
///
/// Nothing is loaded but `index.json` and the manifest; blobs are located by their byte
/// offset so a push can stream them.
///
/// # Errors
/// The file cannot be read or is not a tar; `index.json` is missing, is not JSON or does not
/// hold exactly one image manifest; a digest is malformed; a blob named by the manifest is
/// missing or its size differs; the manifest's bytes do not hash to its digest. Each error
/// names the archive.
pub fn open(path: &Path) -> Result<ArchiveImage> {
    let ctx = || format!("image archive {}", path.display());
    let file = File::open(path).with_context(ctx)?;
    let mut ar = tar::Archive::new(file);
    // digest hex -> (offset, size)
    let mut blobs: HashMap<String, (u64, u64)> = HashMap::new();
    let mut index: Option<Vec<u8>> = None;
    for entry in ar.entries().with_context(ctx)? {
        let mut entry = entry.with_context(ctx)?;
        let name = entry
            .path()
            .with_context(ctx)?
            .to_string_lossy()
            .into_owned();
        let name = name.trim_start_matches("./").to_string();
        if name == "index.json" {
            if entry.size() > MAX_JSON_BYTES {
                bail!(
                    "{}: index.json has {} bytes, more than 4 MiB",
                    ctx(),
                    entry.size()
                );
            }
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).with_context(ctx)?;
            index = Some(buf);
        } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            blobs.insert(hex.to_string(), (entry.raw_file_position(), entry.size()));
        }
    }
    let index =
        index.with_context(|| format!("{}: no index.json (not an OCI image layout)", ctx()))?;
    let index: serde_json::Value =
        serde_json::from_slice(&index).with_context(|| format!("{}: index.json", ctx()))?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    if manifests.len() != 1 {
        bail!(
            "{}: index.json lists {} manifests, expected exactly one image",
            ctx(),
            manifests.len()
        );
    }
    let desc = &manifests[0];
    let media_type = desc["mediaType"].as_str().unwrap_or_default().to_string();
    if media_type != MEDIA_TYPE_MANIFEST {
        bail!(
            "{}: index.json names a {media_type:?}, expected an image manifest",
            ctx()
        );
    }
    let digest = desc["digest"].as_str().unwrap_or_default().to_string();
    let hex = check_digest(&digest, "the manifest").with_context(ctx)?;

    let locate = |digest: &str, size: Option<u64>, what: &str| -> Result<BlobRef> {
        let hex = check_digest(digest, what).with_context(ctx)?;
        let (offset, actual) = *blobs
            .get(&hex)
            .with_context(|| format!("{}: {what} blob {digest} is missing", ctx()))?;
        if let Some(size) = size {
            if size != actual {
                bail!(
                    "{}: {what} blob {digest} has {actual} bytes, the manifest says {size}",
                    ctx()
                );
            }
        }
        Ok(BlobRef {
            digest: digest.to_string(),
            size: actual,
            offset,
        })
    };
    let mref = locate(&digest, desc["size"].as_u64(), "the manifest")?;
    if mref.size > MAX_JSON_BYTES {
        bail!(
            "{}: the manifest has {} bytes, more than 4 MiB",
            ctx(),
            mref.size
        );
    }
    let mut manifest = vec![0u8; mref.size as usize];
    let mut f = File::open(path).with_context(ctx)?;
    f.seek(SeekFrom::Start(mref.offset)).with_context(ctx)?;
    f.read_exact(&mut manifest).with_context(ctx)?;
    if hex::encode(Sha256::digest(&manifest)) != hex {
        bail!(
            "{}: the manifest's bytes do not match its digest {digest}",
            ctx()
        );
    }
    let m: serde_json::Value =
        serde_json::from_slice(&manifest).with_context(|| format!("{}: manifest", ctx()))?;
    let config = locate(
        m["config"]["digest"].as_str().unwrap_or_default(),
        m["config"]["size"].as_u64(),
        "the config",
    )?;
    let mut layers = Vec::new();
    for (i, l) in m["layers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        layers.push(locate(
            l["digest"].as_str().unwrap_or_default(),
            l["size"].as_u64(),
            &format!("layer {i}"),
        )?);
    }
    Ok(ArchiveImage {
        path: path.to_path_buf(),
        digest,
        manifest,
        media_type,
        config,
        layers,
    })
}
