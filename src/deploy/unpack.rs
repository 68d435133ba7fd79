//! Image unpack: an OCI archive (`STATE/images/STACK/ID.oci.tar`) becomes a root
//! filesystem at `STATE/rootfs/HEX/rootfs` (HEX = the image digest without `sha256:`), with
//! the image config beside it at `STATE/rootfs/HEX/config.json`.
//!
//! Each image is unpacked once, into a temporary directory that is renamed into place, and
//! never changed afterwards (instances bind it read-only). Layers are applied in order with
//! OCI whiteouts (`.wh.NAME` deletes `NAME` from the lower layers, `.wh..wh..opq` empties
//! the directory). Blob digests are checked; an entry whose path leaves the root (`..`) or
//! goes through a symlink is rejected.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// An unpacked image, ready for instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedImage {
    /// `sha256:HEX` image (manifest) digest.
    pub digest: String,
    /// The root filesystem directory (read-only by convention).
    pub rootfs: PathBuf,
    /// The image config's `Env`, as `(KEY, VALUE)` pairs in order.
    pub env: Vec<(String, String)>,
    /// The image config's `WorkingDir` (`/` when empty).
    pub working_dir: String,
    /// The image config's `Entrypoint` followed by `Cmd`.
    pub command: Vec<String>,
}

/// `STATE/rootfs`.
pub fn rootfs_root(state: &Path) -> PathBuf {
    state.join("rootfs")
}

fn hex_of(digest: &str) -> Result<&str> {
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("image digest {digest:?} is not sha256:HEX"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("image digest {digest:?} is not sha256: followed by 64 hex digits");
    }
    Ok(hex)
}

/// Unpack `archive` (whose manifest digest must be `digest`) under `STATE/rootfs`, unless
/// it is there already, and return it. `mount_points` are absolute directories created
/// empty in the root filesystem (e.g. the stack's `[data]` path) so a read-only root can
/// take bind mounts there.
///
/// Errors: the archive is missing or malformed, a digest does not match, a layer holds an
/// unsafe path. Nothing is left half-written: the work happens in `STATE/rootfs/.tmp-*`.
pub fn unpack(
    state: &Path,
    archive: &Path,
    digest: &str,
    mount_points: &[&str],
) -> Result<UnpackedImage> {
    let hex = hex_of(digest)?;
    let root = rootfs_root(state);
    let dir = root.join(hex);
    if dir.join("config.json").is_file() {
        return load(&dir, digest);
    }
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = root.join(format!(".tmp-{hex}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = unpack_into(&tmp, archive, digest, mount_points);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!(
            "cannot unpack the image {} ({digest})",
            archive.display()
        )));
    }
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another unpack of the same image won the race: use its result.
        if !dir.join("config.json").is_file() {
            return Err(e).with_context(|| format!("cannot publish {}", dir.display()));
        }
    }
    load(&dir, digest)
}

/// Remove unpacked images whose digest is not in `keep` and that were not unpacked in the
/// last `min_age` (a deploy may be about to use a fresh one). Each is unpacked again from
/// its archive if ever needed. Returns how many were removed.
pub fn remove_unused(state: &Path, keep: &[String], min_age: std::time::Duration) -> usize {
    let keep: Vec<&str> = keep
        .iter()
        .map(|d| d.trim_start_matches("sha256:"))
        .collect();
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(rootfs_root(state)) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let old_enough = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            if name.len() == 64 && !keep.contains(&name.as_str()) && old_enough {
                // Rename first so a half-removed tree is never taken for an image.
                let gone = rootfs_root(state).join(format!(".tmp-gc-{name}"));
                if std::fs::rename(e.path(), &gone).is_ok() {
                    let _ = std::fs::remove_dir_all(&gone);
                    n += 1;
                }
            }
        }
    }
    n
}

/// Remove temporary unpack directories left by a killed process.
pub fn clean_temp(state: &Path) {
    if let Ok(rd) = std::fs::read_dir(rootfs_root(state)) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn load(dir: &Path, digest: &str) -> Result<UnpackedImage> {
    let cfg_path = dir.join("config.json");
    let cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&cfg_path).with_context(|| format!("cannot read {}", cfg_path.display()))?,
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
    Ok(UnpackedImage {
        digest: digest.to_string(),
        rootfs: dir.join("rootfs"),
        env,
        working_dir,
        command,
    })
}

fn unpack_into(tmp: &Path, archive: &Path, digest: &str, mount_points: &[&str]) -> Result<()> {
    let oci = tmp.join("oci");
    std::fs::create_dir_all(&oci)?;
    let f = File::open(archive)
        .with_context(|| format!("cannot open the image archive {}", archive.display()))?;
    let mut ar = tar::Archive::new(f);
    ar.unpack(&oci)
        .with_context(|| format!("{} is not a readable tar archive", archive.display()))?;
    let blob = |d: &str| -> Result<PathBuf> { Ok(oci.join("blobs/sha256").join(hex_of(d)?)) };
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(oci.join("index.json")).context("the archive has no index.json")?,
    )
    .context("index.json is not JSON")?;
    let manifests = index["manifests"].as_array().cloned().unwrap_or_default();
    if !manifests.iter().any(|m| m["digest"] == digest) {
        bail!("index.json does not list the manifest {digest}");
    }
    let manifest_bytes = read_checked(&blob(digest)?, digest)?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest_bytes).context("the image manifest is not JSON")?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .context("the image manifest has no config digest")?;
    let config = read_checked(&blob(config_digest)?, config_digest)?;
    let rootfs = tmp.join("rootfs");
    std::fs::create_dir_all(&rootfs)?;
    for layer in manifest["layers"].as_array().cloned().unwrap_or_default() {
        let d = layer["digest"]
            .as_str()
            .context("a layer in the image manifest has no digest")?;
        let path = blob(d)?;
        check_digest(&path, d)?;
        let gz = layer["mediaType"]
            .as_str()
            .is_none_or(|m| m.ends_with("+gzip"));
        apply_layer(&path, gz, &rootfs).with_context(|| format!("layer {d}"))?;
    }
    for m in mount_points
        .iter()
        .copied()
        .chain(["/proc", "/dev", "/tmp", "/run"])
    {
        let rel = safe_relative(Path::new(m))?;
        let p = rootfs.join(&rel);
        check_no_symlink(&rootfs, &rel)?;
        std::fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
    }
    std::fs::write(tmp.join("config.json"), config)?;
    std::fs::remove_dir_all(&oci)?;
    Ok(())
}

fn read_checked(path: &Path, digest: &str) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("the archive has no blob {digest}"))?;
    let got = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    if got != digest {
        bail!("blob {digest} has digest {got}: the archive is corrupt");
    }
    Ok(bytes)
}

fn check_digest(path: &Path, digest: &str) -> Result<()> {
    let mut f = File::open(path).with_context(|| format!("the archive has no blob {digest}"))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let got = format!("sha256:{}", hex::encode(h.finalize()));
    if got != digest {
        bail!("blob {digest} has digest {got}: the archive is corrupt");
    }
    Ok(())
}

/// A layer entry path made relative; errors on `..`.
fn safe_relative(p: &Path) -> Result<PathBuf> {
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
            match std::fs::symlink_metadata(&cur) {
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

fn open_layer(path: &Path, gz: bool) -> Result<tar::Archive<Box<dyn Read>>> {
    let f = std::io::BufReader::new(File::open(path)?);
    let r: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_preserve_mtime(true);
    ar.set_unpack_xattrs(true);
    ar.set_overwrite(true);
    Ok(ar)
}

fn remove_any(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p)?,
        Ok(_) => std::fs::remove_file(p)?,
        Err(_) => {}
    }
    Ok(())
}

/// Apply one layer in one pass. Whiteouts only hide what lower layers hold: `.wh.NAME`
/// deletes `NAME`; `.wh..wh..opq` empties its directory except for entries this layer
/// itself already wrote (the marker may come after them in the tar).
fn apply_layer(path: &Path, gz: bool, root: &Path) -> Result<()> {
    let mut added: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    let mut ar = open_layer(path, gz)?;
    for e in ar.entries()? {
        let mut e = e?;
        let rel = safe_relative(&e.path()?)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        check_no_symlink(root, &rel)?;
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        if name == ".wh..wh..opq" {
            if let Ok(rd) = std::fs::read_dir(root.join(&parent_rel)) {
                for c in rd.flatten() {
                    if !added.contains(&parent_rel.join(c.file_name())) {
                        remove_any(&c.path())?;
                    }
                }
            }
            continue;
        }
        if let Some(target) = name.strip_prefix(".wh.") {
            remove_any(&root.join(&parent_rel).join(target))?;
            continue;
        }
        let dst = root.join(&rel);
        // Anything but a directory over a directory replaces what the lower layer had.
        if let Ok(m) = std::fs::symlink_metadata(&dst) {
            if !(m.is_dir() && e.header().entry_type().is_dir()) {
                remove_any(&dst)?;
            }
        }
        if !e
            .unpack_in(root)
            .with_context(|| format!("cannot unpack {}", rel.display()))?
        {
            bail!("entry {} was refused as unsafe", rel.display());
        }
        added.insert(rel);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match data {
                Some(d) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(d.len() as u64);
                    h.set_mode(0o644);
                    h.set_cksum();
                    b.append_data(&mut h, path, *d).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    h.set_cksum();
                    b.append_data(&mut h, path, &[][..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_delete_and_opaque_dirs_hide_lower_layers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let l1 = dir.path().join("l1");
        std::fs::write(
            &l1,
            layer(&[
                ("etc/", None),
                ("etc/a", Some(b"a")),
                ("etc/b", Some(b"b")),
                ("opt/", None),
                ("opt/x", Some(b"x")),
            ]),
        )
        .unwrap();
        let l2 = dir.path().join("l2");
        std::fs::write(
            &l2,
            layer(&[
                ("etc/.wh.a", Some(b"")),
                ("opt/z", Some(b"z")),
                ("opt/.wh..wh..opq", Some(b"")),
                ("opt/y", Some(b"y")),
            ]),
        )
        .unwrap();
        apply_layer(&l1, false, &root).unwrap();
        apply_layer(&l2, false, &root).unwrap();
        assert!(!root.join("etc/a").exists());
        assert_eq!(std::fs::read(root.join("etc/b")).unwrap(), b"b");
        assert!(!root.join("opt/x").exists());
        assert_eq!(std::fs::read(root.join("opt/y")).unwrap(), b"y");
        assert_eq!(
            std::fs::read(root.join("opt/z")).unwrap(),
            b"z",
            "same-layer entry kept"
        );
        assert!(!root.join("opt/.wh..wh..opq").exists());
    }

    #[test]
    fn path_traversal_is_rejected() {
        assert!(safe_relative(Path::new("../etc/passwd")).is_err());
        assert!(safe_relative(Path::new("a/../../b")).is_err());
        assert_eq!(
            safe_relative(Path::new("/./etc/x")).unwrap(),
            PathBuf::from("etc/x")
        );
        // A symlink inside the root pointing out must not be followed by a later entry.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink("/tmp", root.join("evil")).unwrap();
        let l = dir.path().join("l");
        std::fs::write(&l, layer(&[("evil/planted", Some(b"x"))])).unwrap();
        let err = apply_layer(&l, false, &root).unwrap_err();
        assert!(format!("{err:#}").contains("symlink"), "{err:#}");
        assert!(!Path::new("/tmp/planted").exists());
    }

    #[test]
    fn bad_digest_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(dir.path(), &dir.path().join("x.tar"), "md5:1", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("sha256"), "{err:#}");
        let d = format!("sha256:{}", "0".repeat(64));
        let err = unpack(dir.path(), &dir.path().join("missing.tar"), &d, &[]).unwrap_err();
        assert!(format!("{err:#}").contains("missing.tar"), "{err:#}");
        assert!(std::fs::read_dir(rootfs_root(dir.path()))
            .unwrap()
            .next()
            .is_none());
    }
}
