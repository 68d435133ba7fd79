//! The layer cache: `STATE/layers/HEX/` holds one image layer (HEX = the SHA-256 of its
//! blob, the digest the manifest names), unpacked once and shared by every image built on
//! it — the base layer of a stack is unpacked by its first deploy and never again.
//!
//! `STATE/layers/HEX/tree/` is the layer's changeset in the form overlayfs reads as a lower
//! layer (kernel `Documentation/filesystems/overlayfs.rst`), converted from the OCI
//! image-spec v1.1 `layer.md` rules while the blob is read:
//! - a whiteout `DIR/.wh.NAME` ("`NAME` is deleted from the lower layers") becomes
//!   `DIR/NAME` as a character device 0/0, overlayfs' whiteout;
//! - an opaque whiteout `DIR/.wh..wh..opq` ("every child of `DIR` in the lower layers is
//!   hidden") becomes the xattr `trusted.overlay.opaque=y` on `DIR`;
//! - both apply to lower layers only: what the same layer holds stays visible, whatever
//!   the order of the entries (a whiteout and a directory of the same name = an opaque
//!   directory).
//!
//! Refused (the layer is unsafe or not self-contained): a path with `..`, an entry under a
//! symlink of the same layer, a device node, an overlay xattr (`trusted.overlay.*`,
//! `user.overlay.*`, which only this conversion may write), a hard link to a whiteout; a
//! hard link to a file outside the layer fails (allowed to by `layer.md`). The blob's
//! digest and size are checked while it is read; the tree is written under
//! `STATE/layers/.tmp-*` and renamed into place only when complete and verified, and never
//! changed afterwards. `STATE/layers/HEX/layer.json` records what the image assembly needs
//! (the directories the layer creates without an entry of their own).
//!
//! Creating whiteout devices and `trusted.*` xattrs needs root (CAP_MKNOD, CAP_SYS_ADMIN),
//! as the rest of drover's image handling does.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::archive::OciArchive;

/// The overlayfs xattr that makes a directory opaque.
pub(super) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// OCI opaque whiteout entry name.
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// OCI whiteout prefix.
const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the metadata file beside a layer's tree.
const META: &str = "layer.json";

/// `STATE/layers`: one directory per layer digest.
pub fn layers_root(state: &Path) -> PathBuf {
    state.join("layers")
}

/// A layer as the manifest describes it.
#[derive(Debug, Clone)]
pub(super) struct Descriptor {
    /// `sha256:HEX` of the blob.
    pub digest: String,
    /// Blob size in bytes.
    pub size: u64,
    /// Whether the blob is gzip-compressed (from its media type).
    pub gzip: bool,
}

impl Descriptor {
    /// From a manifest's `layers[]` entry. Media types: `application/vnd.oci.image.layer.v1.tar`
    /// (plain), `…tar+gzip` and Docker's `…rootfs.diff.tar.gzip` (gzip; also when absent).
    ///
    /// Errors: no digest or size, zstd or an unknown media type.
    pub(super) fn from_json(v: &serde_json::Value) -> Result<Descriptor> {
        let digest = v["digest"]
            .as_str()
            .context("a layer in the image manifest has no digest")?
            .to_string();
        super::hex_of(&digest)?;
        let size = v["size"]
            .as_u64()
            .with_context(|| format!("layer {digest} has no size in the image manifest"))?;
        let gzip = match v["mediaType"].as_str() {
            None => true,
            Some(m) if m.ends_with("+gzip") || m.ends_with(".tar.gzip") => true,
            Some(m) if m.ends_with(".tar") || m.ends_with(".tar+nondistributable") => false,
            Some(m) if m.ends_with("+zstd") => {
                bail!("layer {digest} is zstd-compressed ({m}), which drover cannot unpack")
            }
            Some(m) => bail!("layer {digest} has the unknown media type {m}"),
        };
        Ok(Descriptor { digest, size, gzip })
    }
}

/// What `layer.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct LayerMeta {
    /// `sha256:HEX` of the blob.
    pub digest: String,
    /// Blob size in bytes.
    pub size: u64,
    /// Tar entries applied.
    pub entries: u64,
    /// Directories (relative, `/`-separated) the layer holds without an entry of their own
    /// (parents of its entries): the image assembly refuses them over a lower non-directory.
    pub implicit_dirs: Vec<String>,
}

/// A layer ready in the cache.
#[derive(Debug, Clone)]
pub(super) struct CachedLayer {
    /// `STATE/layers/HEX/tree`.
    pub tree: PathBuf,
    /// Its `layer.json`.
    pub meta: LayerMeta,
    /// True when this call unpacked it, false when it was in the cache.
    pub unpacked: bool,
    /// Time spent on it (unpacking, or finding it).
    pub elapsed: Duration,
}

/// Make sure the layer `desc` of `archive` is in the cache under `state` and return it.
/// A cached layer is only touched (its directory's mtime, which garbage collection reads).
///
/// Errors: the blob is missing, cut short or does not match its digest; an entry is
/// refused (see the module doc); the cache cannot be written.
pub(super) fn ensure(state: &Path, archive: &OciArchive, desc: &Descriptor) -> Result<CachedLayer> {
    let t = Instant::now();
    let hex = super::hex_of(&desc.digest)?;
    let root = layers_root(state);
    let dir = root.join(hex);
    if let Some(meta) = read_meta(&dir) {
        touch(&dir);
        return Ok(CachedLayer {
            tree: dir.join("tree"),
            meta,
            unpacked: false,
            elapsed: t.elapsed(),
        });
    }
    fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let tmp = root.join(super::temp_name(hex));
    let _ = fs::remove_dir_all(&tmp);
    let result = unpack_into(&tmp, archive, desc);
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e.context(format!(
            "cannot unpack layer {} of {}",
            desc.digest,
            archive.path().display()
        )));
    }
    if let Err(e) = fs::rename(&tmp, &dir) {
        let _ = fs::remove_dir_all(&tmp);
        // Another unpack of the same layer won the race: use its result.
        if read_meta(&dir).is_none() {
            return Err(e).with_context(|| format!("cannot publish {}", dir.display()));
        }
    }
    let meta = read_meta(&dir).with_context(|| format!("{} vanished", dir.display()))?;
    Ok(CachedLayer {
        tree: dir.join("tree"),
        meta,
        unpacked: true,
        elapsed: t.elapsed(),
    })
}

/// `layer.json` of a published layer directory, if it is complete.
pub(super) fn read_meta(dir: &Path) -> Option<LayerMeta> {
    if !dir.join("tree").is_dir() {
        return None;
    }
    serde_json::from_slice(&fs::read(dir.join(META)).ok()?).ok()
}

/// Set `dir`'s mtime to now (best effort).
pub(super) fn touch(dir: &Path) {
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// Unpack the layer `desc` of `archive` into `tmp/tree` and write `tmp/layer.json`.
pub(super) fn unpack_into(tmp: &Path, archive: &OciArchive, desc: &Descriptor) -> Result<()> {
    let tree = tmp.join("tree");
    fs::create_dir_all(&tree)?;
    set_root_attrs(&tree, 0o755, 0, 0)?;
    let blob = archive.blob_reader(&desc.digest, desc.size)?;
    let (applied, blob) = if desc.gzip {
        let mut ar = tar::Archive::new(flate2::read::MultiGzDecoder::new(blob));
        let applied = apply(&mut ar, &tree);
        (applied, ar.into_inner().into_inner())
    } else {
        let mut ar = tar::Archive::new(blob);
        let applied = apply(&mut ar, &tree);
        (applied, ar.into_inner())
    };
    // A blob that is not what its digest says is reported as such, whatever its bytes
    // made of the unpack.
    blob.finish()?;
    let applied = applied?;
    let meta = LayerMeta {
        digest: desc.digest.clone(),
        size: desc.size,
        entries: applied.entries,
        implicit_dirs: applied.implicit_dirs,
    };
    fs::write(tmp.join(META), serde_json::to_vec_pretty(&meta)?)?;
    Ok(())
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub(super) struct Applied {
    pub entries: u64,
    pub implicit_dirs: Vec<String>,
}

/// Apply one layer's tar entries to its own (empty) `tree`, converting OCI whiteouts to
/// overlayfs ones (see the module doc).
pub(super) fn apply<R: Read>(ar: &mut tar::Archive<R>, tree: &Path) -> Result<Applied> {
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_preserve_mtime(true);
    // xattrs are applied below, without the overlay ones.
    ar.set_unpack_xattrs(false);
    ar.set_overwrite(true);
    let mut st = State::default();
    for e in ar.entries()? {
        let mut e = e?;
        let rel = safe_relative(&e.path()?)?;
        st.entry(&mut e, &rel, tree)
            .with_context(|| format!("entry {}", rel.display()))?;
    }
    let mut implicit: Vec<String> = st
        .parents
        .difference(&st.dirs)
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    implicit.sort();
    Ok(Applied {
        entries: st.entries,
        implicit_dirs: implicit,
    })
}

#[derive(Default)]
struct State {
    entries: u64,
    /// Every path this layer wrote (entries, not whiteouts).
    added: HashSet<PathBuf>,
    /// Directories with an entry of their own.
    dirs: HashSet<PathBuf>,
    /// Whiteout devices this layer made.
    whiteouts: HashSet<PathBuf>,
    /// Every ancestor directory of what this layer holds.
    parents: HashSet<PathBuf>,
}

impl State {
    fn entry<R: Read>(&mut self, e: &mut tar::Entry<R>, rel: &Path, tree: &Path) -> Result<()> {
        let kind = e.header().entry_type();
        self.entries += 1;
        if rel.as_os_str().is_empty() {
            // The layer's root (`./`): its attributes go to the tree's root.
            if kind.is_dir() {
                let h = e.header();
                let (mode, uid, gid) = (h.mode()?, h.uid()?, h.gid()?);
                set_root_attrs(tree, mode, uid as u32, gid as u32)?;
            }
            return Ok(());
        }
        check_no_symlink(tree, rel)?;
        let name = rel.file_name().unwrap_or_default().to_string_lossy();
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        if name == OPAQUE_WHITEOUT {
            self.make_dir(tree, &parent)?;
            set_opaque(&tree.join(&parent))?;
            return Ok(());
        }
        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
            if target.is_empty() || target == "." || target == ".." {
                bail!("a whiteout must name an entry; this layer is unsafe");
            }
            let t = parent.join(target);
            if self.added.contains(&t) {
                // Only lower layers are hidden: a directory of this layer becomes opaque,
                // anything else of this layer stays as it is.
                if self.dirs.contains(&t) {
                    set_opaque(&tree.join(&t))?;
                }
                return Ok(());
            }
            self.make_dir(tree, &parent)?;
            let p = tree.join(&t);
            remove_any(&p)?;
            mknod_whiteout(&p)?;
            self.whiteouts.insert(t);
            return Ok(());
        }
        if kind.is_character_special() || kind.is_block_special() {
            bail!(
                "a device node: images may not carry device nodes (instances get /dev from \
                 the sandbox); this layer is refused"
            );
        }
        if kind.is_hard_link() {
            if let Some(target) = e.link_name()? {
                if self.whiteouts.contains(&safe_relative(&target)?) {
                    bail!("a hard link to a whiteout; this layer is unsafe");
                }
            }
        }
        let xattrs = xattrs_of(e)?;
        self.make_dir(tree, &parent)?;
        let dst = tree.join(rel);
        let over_whiteout = self.whiteouts.remove(rel);
        // Anything but a directory over a directory replaces what was there (layer.md,
        // "Changeset over existing files"), in this layer: a duplicate entry.
        if let Ok(m) = fs::symlink_metadata(&dst) {
            if !(m.is_dir() && kind.is_dir()) {
                remove_any(&dst)?;
            }
        }
        if !e.unpack_in(tree).with_context(|| {
            if kind.is_hard_link() {
                "cannot unpack it (a hard link must point into the same layer)".to_string()
            } else {
                "cannot unpack it".to_string()
            }
        })? {
            bail!("refused as unsafe");
        }
        if over_whiteout && kind.is_dir() {
            set_opaque(&dst)?;
        }
        if kind.is_file() || kind == tar::EntryType::Continuous || kind.is_gnu_sparse() {
            for (k, v) in &xattrs {
                xattr::set(&dst, k, v).with_context(|| format!("cannot set the xattr {k}"))?;
            }
        }
        self.added.insert(rel.to_path_buf());
        if kind.is_dir() {
            self.dirs.insert(rel.to_path_buf());
        }
        Ok(())
    }

    /// Make sure directory `rel` (and its parents) exists in this layer's tree. A whiteout
    /// this layer made on the way becomes an opaque directory (the name is deleted below,
    /// then created again here).
    fn make_dir(&mut self, tree: &Path, rel: &Path) -> Result<()> {
        let mut cur = PathBuf::new();
        for c in rel.components() {
            cur.push(c);
            self.parents.insert(cur.clone());
            let p = tree.join(&cur);
            if self.whiteouts.remove(&cur) {
                fs::remove_file(&p)?;
                fs::create_dir(&p)?;
                set_opaque(&p)?;
                continue;
            }
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => bail!("{} is not a directory in this layer", cur.display()),
                Err(_) => {
                    fs::create_dir(&p).with_context(|| format!("cannot create {}", p.display()))?
                }
            }
        }
        Ok(())
    }
}

/// The entry's `SCHILY.xattr.*` PAX records. Overlay xattrs are refused: only the whiteout
/// conversion may write them, or a layer could hide or redirect what lower layers hold.
fn xattrs_of<R: Read>(e: &mut tar::Entry<R>) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = e.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            let name = String::from_utf8_lossy(name).into_owned();
            if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                bail!("it carries the overlay xattr {name}; this layer is unsafe");
            }
            out.push((name, ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}

fn set_opaque(dir: &Path) -> Result<()> {
    xattr::set(dir, OPAQUE_XATTR, b"y").with_context(|| {
        format!(
            "cannot set {OPAQUE_XATTR} on {} (the agent must run as root)",
            dir.display()
        )
    })
}

fn mknod_whiteout(p: &Path) -> Result<()> {
    let c = CString::new(p.as_os_str().as_bytes())?;
    // SAFETY: mknod on a NUL-terminated path we own; device 0/0, no permission bits.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) } != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!(
                "cannot create the whiteout {} (the agent must run as root)",
                p.display()
            )
        });
    }
    Ok(())
}

fn set_root_attrs(tree: &Path, mode: u32, uid: u32, gid: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::lchown(tree, Some(uid), Some(gid))
        .with_context(|| format!("cannot chown {}", tree.display()))?;
    fs::set_permissions(tree, fs::Permissions::from_mode(mode & 0o7777))?;
    Ok(())
}

/// Whether `m` is an overlayfs whiteout (a character device 0/0).
pub(super) fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Whether directory `p` is opaque.
pub(super) fn is_opaque(p: &Path) -> bool {
    matches!(xattr::get(p, OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}

/// A layer entry path made relative; errors on `..`.
pub(super) fn safe_relative(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => bail!(
                "entry {} leaves the root filesystem (`..`); the layer is unsafe",
                p.display()
            ),
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(out)
}

/// Every existing ancestor of `rel` under `root` must be a real directory, not a symlink.
fn check_no_symlink(root: &Path, rel: &Path) -> Result<()> {
    let mut cur = root.to_path_buf();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => bail!(
                    "entry {} goes through the symlink {}; the layer is unsafe",
                    rel.display(),
                    cur.display()
                ),
                Ok(_) => {}
                Err(_) => return Ok(()),
            }
        }
    }
    Ok(())
}

fn remove_any(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p)?,
        Ok(_) => fs::remove_file(p)?,
        Err(_) => {}
    }
    Ok(())
}
