//! The image reader without the layer cache: [`check_image`] reads an OCI archive the way
//! [`super::unpack`] does (index, manifest, config, every layer, digests checked) into a
//! scratch directory, and [`apply_layer_tar`] applies one layer tar given as bytes. The
//! fuzz targets (`fuzz/fuzz_targets/oci_image.rs`, `oci_layer.rs`) drive them; they are
//! the same code paths `drover deploy` runs on an image archive.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{archive, hex_of, layer};

/// Read the OCI image-layout tar at `archive` (`STATE/images/STACK/ID.oci.tar`) as a
/// deploy does: `index.json`, its first manifest, the config (must be JSON) and each
/// layer, applied into `scratch/N/tree` (N = the layer's position, bottom first). Returns
/// the number of layers read. `scratch` must be an empty directory the caller removes.
///
/// Errors: everything [`super::unpack`] reports about a malformed archive (no index, no
/// manifest, a digest or size that does not match, a refused entry, zstd layers).
pub fn check_image(archive: &Path, scratch: &Path) -> Result<usize> {
    let mut ar = archive::OciArchive::open(archive)?;
    let index = ar.index()?;
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .context("index.json lists no manifest")?
        .to_string();
    hex_of(&digest)?;
    let manifest: serde_json::Value = serde_json::from_slice(&ar.read_blob(&digest)?)
        .context("the image manifest is not JSON")?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .context("the image manifest has no config digest")?;
    let config: serde_json::Value = serde_json::from_slice(&ar.read_blob(config_digest)?)
        .context("the image config is not JSON")?;
    if !config.is_object() {
        bail!("the image config {config_digest} is not a JSON object");
    }
    let descs: Vec<layer::Descriptor> = manifest["layers"]
        .as_array()
        .map(|a| a.iter().map(layer::Descriptor::from_json).collect())
        .unwrap_or_else(|| Ok(Vec::new()))?;
    for (i, d) in descs.iter().enumerate() {
        let dir = scratch.join(i.to_string());
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        layer::unpack_into(&dir, &ar, d)?;
    }
    Ok(descs.len())
}

/// Apply the layer tar `bytes` (gzip-compressed when `gzip`) to the empty directory
/// `tree`, converting OCI whiteouts to overlayfs ones, as a deploy unpacks a layer.
/// Returns the number of tar entries applied.
///
/// Errors: not a tar (or gzip) stream, an entry whose path leaves the tree or goes
/// through a symlink, a device node, or a write that fails.
pub fn apply_layer_tar(bytes: &[u8], gzip: bool, tree: &Path) -> Result<u64> {
    let applied = if gzip {
        layer::apply(
            &mut tar::Archive::new(flate2::read::MultiGzDecoder::new(bytes)),
            tree,
        )?
    } else {
        layer::apply(&mut tar::Archive::new(bytes), tree)?
    };
    Ok(applied.entries)
}
