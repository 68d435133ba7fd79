//! The image side of a diff: the config fields an instance runs with and the files of the
//! layers above the base (the app layer), read from drover's OCI archives
//! (`STATE/images/STACK/ID.oci.tar`, OCI image-spec v1.1 `image-layout.md`, `config.md`,
//! `layer.md` with its whiteouts).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::Change;
use crate::registry::archive::{self, BlobRef, MAX_JSON_BYTES};

/// What of one image a diff compares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// Config fields rendered as text, by name: `Entrypoint`, `Cmd`, `WorkingDir`, `User`,
    /// `ExposedPorts`, and one `Env NAME` per variable. (Labels are left out: they carry
    /// the build id, which always differs.)
    pub config: BTreeMap<String, String>,
    /// Files of the layers above the base, by path (no leading `/`): `sha256:HEX` of a
    /// regular file, `-> TARGET` of a symlink, `link to PATH` of a hard link. Directories
    /// are not listed; a whiteout removes what a lower app layer had.
    pub files: BTreeMap<String, String>,
}

/// One config field that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigChange {
    /// The field, e.g. `Entrypoint`, `Env PORT`.
    pub field: String,
    /// Its value in A (`None`: not set).
    pub old: Option<String>,
    /// Its value in B.
    pub new: Option<String>,
}

/// One app file that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// Path inside the image, without the leading `/`.
    pub path: String,
    /// Added, removed or changed.
    pub change: Change,
    /// Digest (or link) in A.
    pub old: Option<String>,
    /// Digest (or link) in B.
    pub new: Option<String>,
}

/// Config fields and app files that differ, in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageDiff {
    /// Config fields that differ.
    pub config: Vec<ConfigChange>,
    /// App files that differ.
    pub files: Vec<FileChange>,
}

/// Largest app layer read (uncompressed bytes), so a diff's memory and time stay bounded.
pub const MAX_LAYER_BYTES: u64 = 8 << 30;

/// Read the config and the app files of the image archive at `path`.
///
/// Errors: the archive is not an OCI image-layout tar ([`archive::open`]), its config is not
/// JSON or over 4 MiB, or a layer is not a gzip tar; each error names the archive.
pub fn read(path: &Path) -> Result<ImageFacts> {
    let img = archive::open(path)?;
    let ctx = || format!("image archive {}", path.display());
    let mut f = std::fs::File::open(path).with_context(ctx)?;
    if img.config.size > MAX_JSON_BYTES {
        bail!("{}: config blob over 4 MiB", ctx());
    }
    let raw = read_blob(&mut f, &img.config).with_context(ctx)?;
    let cfg: serde_json::Value =
        serde_json::from_slice(&raw).with_context(|| format!("{}: config", ctx()))?;
    let mut facts = ImageFacts {
        config: config_fields(&cfg),
        ..Default::default()
    };
    for layer in img.layers.iter().skip(1) {
        f.seek(SeekFrom::Start(layer.offset)).with_context(ctx)?;
        let gz = flate2::read::GzDecoder::new((&mut f).take(layer.size));
        let mut tar = tar::Archive::new(gz.take(MAX_LAYER_BYTES));
        for entry in tar.entries().with_context(|| format!("{}: layer", ctx()))? {
            let mut e = entry.with_context(|| format!("{}: layer {}", ctx(), layer.digest))?;
            let p = e
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            let (dir, name) = match p.rsplit_once('/') {
                Some((d, n)) => (format!("{d}/"), n.to_string()),
                None => (String::new(), p.clone()),
            };
            if name == ".wh..wh..opq" {
                facts.files.retain(|k, _| !k.starts_with(&dir));
                continue;
            }
            if let Some(gone) = name.strip_prefix(".wh.") {
                let gone = format!("{dir}{gone}");
                facts
                    .files
                    .retain(|k, _| k != &gone && !k.starts_with(&format!("{gone}/")));
                continue;
            }
            let kind = e.header().entry_type();
            let value = if kind.is_file() {
                let mut h = Sha256::new();
                std::io::copy(&mut e, &mut h)?;
                format!("sha256:{}", hex::encode(h.finalize()))
            } else if kind.is_symlink() {
                let t = e.link_name()?.map(|l| l.to_string_lossy().into_owned());
                format!("-> {}", t.unwrap_or_default())
            } else if kind.is_hard_link() {
                let t = e.link_name()?.map(|l| l.to_string_lossy().into_owned());
                format!("link to {}", t.unwrap_or_default())
            } else {
                continue;
            };
            facts
                .files
                .insert(p.trim_end_matches('/').to_string(), value);
        }
    }
    Ok(facts)
}

fn read_blob(f: &mut std::fs::File, b: &BlobRef) -> std::io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(b.offset))?;
    let mut buf = Vec::with_capacity(b.size as usize);
    f.take(b.size).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The compared fields of an OCI image config (`config.md`: `config.Env`, `Entrypoint`,
/// `Cmd`, `WorkingDir`, `User`, `ExposedPorts`).
fn config_fields(cfg: &serde_json::Value) -> BTreeMap<String, String> {
    let c = &cfg["config"];
    let mut out = BTreeMap::new();
    let list = |v: &serde_json::Value| -> Option<String> {
        let items: Vec<&str> = v.as_array()?.iter().filter_map(|x| x.as_str()).collect();
        Some(serde_json::to_string(&items).unwrap_or_default())
    };
    for k in ["Entrypoint", "Cmd"] {
        if let Some(v) = list(&c[k]) {
            out.insert(k.to_string(), v);
        }
    }
    for k in ["WorkingDir", "User"] {
        if let Some(v) = c[k].as_str().filter(|s| !s.is_empty()) {
            out.insert(k.to_string(), v.to_string());
        }
    }
    if let Some(ports) = c["ExposedPorts"].as_object() {
        let p: Vec<&str> = ports.keys().map(String::as_str).collect();
        out.insert("ExposedPorts".into(), p.join(" "));
    }
    for e in c["Env"].as_array().into_iter().flatten() {
        if let Some((k, v)) = e.as_str().and_then(|s| s.split_once('=')) {
            out.insert(format!("Env {k}"), v.to_string());
        }
    }
    out
}

/// What differs from `a` to `b`.
pub fn diff(a: &ImageFacts, b: &ImageFacts) -> ImageDiff {
    fn pairs<'m>(
        a: &'m BTreeMap<String, String>,
        b: &'m BTreeMap<String, String>,
    ) -> impl Iterator<Item = (&'m String, Option<&'m String>, Option<&'m String>)> {
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        keys.into_iter()
            .map(move |k| (k, a.get(k), b.get(k)))
            .filter(|(_, x, y)| x != y)
    }
    ImageDiff {
        config: pairs(&a.config, &b.config)
            .map(|(k, o, n)| ConfigChange {
                field: k.clone(),
                old: o.cloned(),
                new: n.cloned(),
            })
            .collect(),
        files: pairs(&a.files, &b.files)
            .map(|(k, o, n)| FileChange {
                path: k.clone(),
                change: match (o, n) {
                    (None, _) => Change::Added,
                    (_, None) => Change::Removed,
                    _ => Change::Changed,
                },
                old: o.cloned(),
                new: n.cloned(),
            })
            .collect(),
    }
}
