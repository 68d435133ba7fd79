//! Image unpack, layer by layer (issue #11, the deploy side of the ladder): an OCI archive
//! (`STATE/images/STACK/ID.oci.tar`) becomes an instance root assembled from cached
//! layers, so an image that shares its base layer with one deployed before unpacks only
//! its app layer.
//!
//! - `STATE/layers/HEX/` ([`layers_root`]): one tree per layer blob digest, unpacked once
//!   in overlayfs form (whiteouts converted; see the `layer` module), shared by every image
//!   that has that layer, never changed afterwards.
//! - `STATE/rootfs/HEX/` ([`rootfs_root`], HEX = the image manifest digest): `config.json`
//!   (the image config), `layers.json` (its layer digests, bottom first), `root/` (an
//!   empty directory: the mount point), and `mounts-KEY/`, a tiny top layer holding the
//!   directories the sandbox mounts over (`/proc`, `/dev`, `/tmp`, `/run`, the `[data]`
//!   path) when the image lacks them, one per set of mount points.
//!
//! Each instance's sandbox mounts an overlayfs of `mounts-KEY` and the layer trees
//! (read-only, no upper layer) on `root/` inside its own mount namespace ([`mount`]) and
//! bubblewrap binds that as `/`; on the host `root/` stays empty. Everything is written
//! under a `.tmp-*` name and renamed into place when complete. Blob digests are checked;
//! an entry whose path leaves the root (`..`) or goes through a symlink, and device nodes,
//! are refused. [`remove_unused`] drops images no release needs, then layers no remaining
//! image uses.

mod archive;
mod check;
mod layer;
pub mod mount;
mod view;

pub use check::{apply_layer_tar, check_image};

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use layer::layers_root;

/// An unpacked image, ready for instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedImage {
    /// `sha256:HEX` image (manifest) digest.
    pub digest: String,
    /// The directory bubblewrap binds read-only as `/`: the overlay's mount point (empty on
    /// the host) when `layers` is set, else a plain root tree.
    pub rootfs: PathBuf,
    /// The overlay's lower directories, top first (the mount-point layer, then the image's
    /// layers from the top down); empty for a plain root tree.
    pub layers: Vec<PathBuf>,
    /// The image config's `Env`, as `(KEY, VALUE)` pairs in order.
    pub env: Vec<(String, String)>,
    /// The image config's `WorkingDir` (`/` when empty).
    pub working_dir: String,
    /// The image config's `Entrypoint` followed by `Cmd`.
    pub command: Vec<String>,
    /// The image config's `User` as `(uid, gid)` (`None`: root), see
    /// [`crate::build::user::parse_config_user`].
    pub user: Option<(u32, u32)>,
}

/// How one [`unpack`] went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// True when this call assembled the image; false when it was unpacked already.
    pub assembled: bool,
    /// Each layer of the image, bottom first (empty when the image was there already).
    pub layers: Vec<LayerUse>,
}

/// One layer in an [`UnpackReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerUse {
    /// `sha256:HEX` of the layer blob.
    pub digest: String,
    /// True when this call unpacked it; false when it came from the layer cache.
    pub unpacked: bool,
    /// Time spent on it.
    pub elapsed: Duration,
}

/// `layers.json` of an assembled image.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImageLayers {
    /// Layer blob digests, bottom first (the manifest's order).
    layers: Vec<String>,
}

/// Serialises unpacking against [`remove_unused`] in this process (the agent): a layer
/// found in the cache cannot vanish before the image naming it is published.
static GC_LOCK: RwLock<()> = RwLock::new(());

/// `STATE/rootfs`: one directory per assembled image.
pub fn rootfs_root(state: &Path) -> PathBuf {
    state.join("rootfs")
}

pub(super) fn hex_of(digest: &str) -> Result<&str> {
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("digest {digest:?} is not sha256:HEX"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("digest {digest:?} is not sha256: followed by 64 hex digits");
    }
    Ok(hex)
}

/// A fresh temporary name `.tmp-HEX-PID-N` (a sibling of what it becomes).
fn temp_name(hex: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(".tmp-{hex}-{}-{n}", std::process::id())
}

/// Make the image `digest` of `archive` ready for instances under `STATE` and return it
/// with what was done: its layers unpacked into the layer cache unless there already, the
/// image assembled unless it was. `mount_points` are absolute directories the sandbox
/// mounts over (e.g. the stack's `[data]` path), added to the image's mount-point layer
/// when it lacks them.
///
/// Errors: the archive is missing or malformed, a digest or size does not match, a layer
/// holds a refused entry, a mount point goes through a symlink or a file of the image, the
/// state directory cannot be written (or its path cannot be an overlayfs option). Nothing
/// is left half-written.
pub fn unpack(
    state: &Path,
    archive: &Path,
    digest: &str,
    mount_points: &[&str],
) -> Result<(UnpackedImage, UnpackReport)> {
    let hex = hex_of(digest)?;
    let _guard = GC_LOCK.read().unwrap_or_else(|e| e.into_inner());
    let root = rootfs_root(state);
    let dir = root.join(hex);
    let ctx = || format!("cannot unpack the image {} ({digest})", archive.display());
    let mut report = UnpackReport::default();
    let layers = match read_image_layers(&dir) {
        Some(l) if l.iter().all(|d| layer_dir(state, d).is_some()) => {
            // Used now: garbage collection leaves it alone for a while (`min_age`).
            layer::touch(&dir);
            l
        }
        _ => {
            // Not there, unpacked whole by an older drover (`rootfs/`), or a layer of it
            // was removed by hand: assemble it (again). The old whole tree is replaced
            // only once that worked, and still serves when its archive is gone (pruned).
            match assemble(state, archive, digest, &dir) {
                Ok(r) => {
                    report = UnpackReport {
                        assembled: true,
                        ..r
                    }
                }
                Err(e) => {
                    if dir.join("rootfs").is_dir() && read_image_layers(&dir).is_none() {
                        eprintln!(
                            "drover: {:#}; using the whole tree an older drover unpacked",
                            e.context(ctx())
                        );
                        return Ok((legacy(&dir, digest)?, UnpackReport::default()));
                    }
                    return Err(e.context(ctx()));
                }
            }
            read_image_layers(&dir).with_context(|| format!("{} vanished", dir.display()))?
        }
    };
    let image = load(state, &dir, digest, &layers, mount_points).with_context(ctx)?;
    Ok((image, report))
}

/// `STATE/layers/HEX` of `digest` when it is complete.
fn layer_dir(state: &Path, digest: &str) -> Option<PathBuf> {
    let dir = layers_root(state).join(hex_of(digest).ok()?);
    layer::read_meta(&dir).map(|_| dir)
}

fn read_image_layers(dir: &Path) -> Option<Vec<String>> {
    let v: ImageLayers = serde_json::from_slice(&fs::read(dir.join("layers.json")).ok()?).ok()?;
    Some(v.layers)
}

/// Rename `dir` out of the way (to a `.tmp-gc-*` name [`clean_temp`] also removes) and
/// return its new name, for removal later.
fn retire(root: &Path, dir: &Path) -> Option<PathBuf> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let gone = root.join(temp_name(&format!("gc-{name}")));
    fs::rename(dir, &gone).ok().map(|()| gone)
}

/// Read the archive's index, manifest and config, make sure every layer is cached, check
/// the stack of layers, and publish `STATE/rootfs/HEX`.
fn assemble(state: &Path, archive: &Path, digest: &str, dir: &Path) -> Result<UnpackReport> {
    let mut ar = archive::OciArchive::open(archive)?;
    let index = ar.index()?;
    let listed = index["manifests"]
        .as_array()
        .is_some_and(|ms| ms.iter().any(|m| m["digest"] == digest));
    if !listed {
        bail!("index.json does not list the manifest {digest}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&ar.read_blob(digest)?).context("the image manifest is not JSON")?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .context("the image manifest has no config digest")?;
    let config = ar.read_blob(config_digest)?;
    let descs = manifest["layers"]
        .as_array()
        .map(|a| a.iter().map(layer::Descriptor::from_json).collect())
        .unwrap_or_else(|| Ok(Vec::new()))?;
    if descs.is_empty() {
        bail!("the image manifest lists no layers");
    }
    let mut report = UnpackReport::default();
    let mut stack = Vec::new();
    for d in &descs {
        let l = layer::ensure(state, &ar, d)?;
        report.layers.push(LayerUse {
            digest: d.digest.clone(),
            unpacked: l.unpacked,
            elapsed: l.elapsed,
        });
        stack.push((d.digest.clone(), l.tree, l.meta.implicit_dirs));
    }
    view::check_implicit_dirs(&stack)?;
    let root = dir.parent().context("no parent directory")?;
    fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    let tmp = root.join(temp_name(hex_of(digest)?));
    let write = || -> Result<()> {
        fs::create_dir(&tmp)?;
        fs::create_dir(tmp.join("root"))?;
        fs::write(tmp.join("config.json"), &config)?;
        let layers = ImageLayers {
            layers: descs.iter().map(|d| d.digest.clone()).collect(),
        };
        fs::write(tmp.join("layers.json"), serde_json::to_vec_pretty(&layers)?)?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e.context(format!("cannot write {}", tmp.display())));
    }
    if fs::rename(&tmp, dir).is_err() {
        // Another unpack of the same image won the race (use its result), or `dir` is an
        // older drover's whole tree (replace it).
        if read_image_layers(dir).is_none() {
            // Removing a whole tree takes seconds: not on the deploy's path.
            if let Some(gone) = retire(root, dir) {
                std::thread::spawn(move || fs::remove_dir_all(gone));
            }
            if let Err(e) = fs::rename(&tmp, dir) {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e).with_context(|| format!("cannot publish {}", dir.display()));
            }
        }
        let _ = fs::remove_dir_all(&tmp);
    }
    Ok(report)
}

/// The [`UnpackedImage`] of the assembled image at `dir` with `layers`, its mount-point
/// layer made for `mount_points` if needed.
fn load(
    state: &Path,
    dir: &Path,
    digest: &str,
    layers: &[String],
    mount_points: &[&str],
) -> Result<UnpackedImage> {
    // Top first; a layer whose root is opaque hides every layer below it.
    let mut trees = Vec::new();
    for d in layers.iter().rev() {
        let tree = layers_root(state).join(hex_of(d)?).join("tree");
        let opaque = layer::is_opaque(&tree);
        trees.push(tree);
        if opaque {
            break;
        }
    }
    let mounts = mount_layer(dir, &trees, mount_points)?;
    let mut lower = vec![mounts];
    lower.extend(trees);
    let image = UnpackedImage {
        rootfs: dir.join("root"),
        layers: lower,
        ..legacy(dir, digest)?
    };
    mount::RootMount::of(&image)?;
    Ok(image)
}

/// The image at `dir` as a plain tree `dir/rootfs` (how an older drover unpacked it
/// whole), with its config.
fn legacy(dir: &Path, digest: &str) -> Result<UnpackedImage> {
    let cfg_path = dir.join("config.json");
    let cfg: serde_json::Value = serde_json::from_slice(
        &fs::read(&cfg_path).with_context(|| format!("cannot read {}", cfg_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", cfg_path.display()))?;
    let c = &cfg["config"];
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let env = strings(&c["Env"])
        .into_iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let mut command = strings(&c["Entrypoint"]);
    command.extend(strings(&c["Cmd"]));
    let working_dir = c["WorkingDir"]
        .as_str()
        .filter(|w| !w.is_empty())
        .unwrap_or("/")
        .to_string();
    let user = crate::build::user::parse_config_user(c["User"].as_str().unwrap_or(""))
        .with_context(|| format!("in {}", cfg_path.display()))?;
    Ok(UnpackedImage {
        digest: digest.to_string(),
        rootfs: dir.join("rootfs"),
        layers: Vec::new(),
        env,
        working_dir,
        command,
        user,
    })
}

/// `dir/mounts-KEY` for this set of mount points (plus `/proc`, `/dev`, `/tmp`, `/run`),
/// made under a temporary name if it is not there yet. `trees` are the image's layers,
/// top first.
fn mount_layer(dir: &Path, trees: &[PathBuf], mount_points: &[&str]) -> Result<PathBuf> {
    let mut rels = Vec::new();
    for m in mount_points
        .iter()
        .copied()
        .chain(["/proc", "/dev", "/tmp", "/run"])
    {
        let rel = layer::safe_relative(Path::new(m))?;
        if !rel.as_os_str().is_empty() {
            rels.push(rel);
        }
    }
    rels.sort();
    rels.dedup();
    let mut h = Sha256::new();
    for r in &rels {
        h.update(r.as_os_str().as_encoded_bytes());
        h.update([0]);
    }
    let key = &hex::encode(h.finalize())[..16];
    let mdir = dir.join(format!("mounts-{key}"));
    if mdir.is_dir() {
        return Ok(mdir);
    }
    let tmp = dir.join(temp_name(key));
    let make = || -> Result<()> {
        fs::create_dir(&tmp)?;
        // The merged root shows the topmost layer's root attributes: keep the image's.
        if let view::Node::Dir(m) = view::lookup(trees, Path::new("")) {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            std::os::unix::fs::lchown(&tmp, Some(m.uid()), Some(m.gid()))?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
        let mut stack = vec![tmp.clone()];
        stack.extend(trees.iter().cloned());
        view::make_mount_points(&stack, &tmp, &rels)
    };
    if let Err(e) = make() {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if let Err(e) = fs::rename(&tmp, &mdir) {
        let _ = fs::remove_dir_all(&tmp);
        if !mdir.is_dir() {
            return Err(e).with_context(|| format!("cannot publish {}", mdir.display()));
        }
    }
    Ok(mdir)
}

/// What [`remove_unused`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Assembled images removed from `STATE/rootfs`.
    pub images: usize,
    /// Layer trees removed from `STATE/layers`.
    pub layers: usize,
}

/// Remove assembled images whose digest is not in `keep` and that were not assembled in
/// the last `min_age` (a deploy may be about to use a fresh one), then every cached layer
/// that no remaining image uses and that was not unpacked or used in the last `min_age`.
/// Each comes back from its archive if ever needed.
pub fn remove_unused(state: &Path, keep: &[String], min_age: Duration) -> Collected {
    // Decide and rename under the lock; the (slow) removal of the trees happens after it.
    let mut gone = Vec::new();
    let out = collect(state, keep, min_age, &mut gone);
    for g in gone {
        let _ = fs::remove_dir_all(g);
    }
    out
}

fn collect(state: &Path, keep: &[String], min_age: Duration, gone: &mut Vec<PathBuf>) -> Collected {
    let _guard = GC_LOCK.write().unwrap_or_else(|e| e.into_inner());
    let keep: Vec<&str> = keep
        .iter()
        .map(|d| d.trim_start_matches("sha256:"))
        .collect();
    let old_enough = |e: &fs::DirEntry| {
        e.metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= min_age)
    };
    let is_hex = |name: &str| name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
    let mut out = Collected::default();
    let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
    let root = rootfs_root(state);
    if let Ok(rd) = fs::read_dir(&root) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !is_hex(&name) {
                continue;
            }
            if !keep.contains(&name.as_str()) && old_enough(&e) {
                if let Some(g) = retire(&root, &e.path()) {
                    gone.push(g);
                    out.images += 1;
                    continue;
                }
            }
            for d in read_image_layers(&e.path()).unwrap_or_default() {
                used.insert(d.trim_start_matches("sha256:").to_string());
            }
        }
    }
    let lroot = layers_root(state);
    if let Ok(rd) = fs::read_dir(&lroot) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if is_hex(&name) && !used.contains(&name) && old_enough(&e) {
                if let Some(g) = retire(&lroot, &e.path()) {
                    gone.push(g);
                    out.layers += 1;
                }
            }
        }
    }
    out
}

/// Remove temporary directories left by a killed process (in `STATE/rootfs`, in each
/// image there, and in `STATE/layers`).
pub fn clean_temp(state: &Path) {
    let clean = |dir: &Path| {
        if let Ok(rd) = fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
    };
    let root = rootfs_root(state);
    clean(&root);
    if let Ok(rd) = fs::read_dir(&root) {
        for e in rd.flatten() {
            clean(&e.path());
        }
    }
    clean(&layers_root(state));
}

#[cfg(test)]
mod tests;
