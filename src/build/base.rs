//! The base layer: the OS plus the stack's system packages, made by mmdebstrap from the
//! stack's mirror and suites, and cached under a key that hashes every input.
//!
//! Cache layout: `STATE/bases/KEY/` holds `rootfs/` (the tree, apt lists kept so the build
//! script can use apt and the manifest can name origins), `layer.tar.gz` (the base layer
//! blob, lists and device nodes left out) and `base.json` ([`BaseInfo`]). A base is built in
//! `STATE/bases/.tmp-KEY-PID/` and renamed into place only when complete.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::oci::{self, LayerBlob, LayerMode};
use super::sandbox::{private_mounts, run_logged, BuildLog};
use crate::paths::Paths;
use crate::stack::{Distro, Stack};

/// Bumped whenever the way a base is made changes (mmdebstrap options, excludes), so old
/// cache entries are not reused for the new recipe.
pub const RECIPE_VERSION: u32 = 1;

/// Paths left out of the base layer blob: kernel-provided mounts, device nodes (runtimes
/// create their own /dev), apt's lists and package cache (large, and stale by design).
pub const BASE_LAYER_EXCLUDES: &[&str] = &[
    "dev",
    "proc",
    "sys",
    "run",
    "tmp",
    "var/lib/apt/lists",
    "var/cache/apt",
];

/// What `base.json` records about a cached base.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaseInfo {
    /// Hex SHA-256 of [`key_inputs`].
    pub key: String,
    /// The canonical inputs, for humans reading the cache.
    pub inputs: serde_json::Value,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// The layer blob (its `path` is relative to the base directory).
    pub layer: LayerBlob,
}

/// A ready base: where its tree and layer blob are.
#[derive(Debug, Clone)]
pub struct Base {
    /// The cache key.
    pub key: String,
    /// `bases/KEY/rootfs`.
    pub rootfs: PathBuf,
    /// The layer blob with an absolute path.
    pub layer: LayerBlob,
    /// Whether it came from the cache.
    pub cached: bool,
    /// The key lock, held while a build uses this base so a `--refresh-base` elsewhere
    /// cannot swap the tree underneath it.
    _lock: Option<std::sync::Arc<File>>,
}

/// The canonical inputs of a stack's base as JSON: recipe version, distro, architecture,
/// variant, sources in order (mirror, suite, components) and the sorted package list.
pub fn key_inputs(stack: &Stack, arch: &str) -> serde_json::Value {
    let mut packages = stack.packages.clone();
    packages.sort();
    packages.dedup();
    let sources: Vec<_> = stack
        .base
        .sources()
        .into_iter()
        .map(|s| serde_json::json!({"mirror": s.mirror, "suite": s.suite, "components": s.components}))
        .collect();
    serde_json::json!({
        "recipe": RECIPE_VERSION,
        "distro": match stack.base.distro { Distro::Debian => "debian" },
        "arch": arch,
        "variant": stack.base.variant,
        "sources": sources,
        "packages": packages,
    })
}

/// The base key: hex SHA-256 of the compact JSON of [`key_inputs`] (serde_json keeps
/// object keys sorted, so the text is canonical).
pub fn key(stack: &Stack, arch: &str) -> String {
    let text = serde_json::to_string(&key_inputs(stack, arch)).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The host's Debian architecture (`dpkg --print-architecture`), which mmdebstrap builds for.
pub fn host_arch() -> Result<String> {
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .context("cannot run `dpkg --print-architecture` (is this a Debian system?)")?;
    if !out.status.success() {
        bail!("`dpkg --print-architecture` failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Return the cached base for `stack`, or build it with mmdebstrap when missing or when
/// `refresh` is set. Holds `bases/KEY.lock` meanwhile so two builds never race on a key.
///
/// Errors: mmdebstrap missing or failing (its output is in the log), the layer cannot be
/// written. Nothing is left in `bases/` on failure.
pub fn ensure(
    paths: &Paths,
    stack: &Stack,
    arch: &str,
    refresh: bool,
    log: &mut BuildLog<'_>,
) -> Result<Base> {
    let key = key(stack, arch);
    let dir = paths.bases().join(&key);
    let lock_path = paths.bases().join(format!("{key}.lock"));
    let lock = File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        log.say("waiting for another build of the same base to finish");
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    }
    if !refresh {
        if let Some(mut base) = load(&dir, &key)? {
            base._lock = Some(std::sync::Arc::new(lock));
            return Ok(base);
        }
    }
    let tmp = paths
        .bases()
        .join(format!(".tmp-{key}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = make(paths, stack, arch, &key, &tmp, log);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // Publish in one step: with an old entry, swap the two directories atomically
    // (renameat2 RENAME_EXCHANGE), so a kill at any moment leaves either the old or the
    // new base at KEY, never none; the old one, now at the temporary name, is removed.
    if dir.exists() {
        exchange(&tmp, &dir).with_context(|| format!("cannot publish base {}", dir.display()))?;
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        std::fs::rename(&tmp, &dir)
            .with_context(|| format!("cannot publish base {}", dir.display()))?;
    }
    let mut base = load(&dir, &key)?.context("the base just built cannot be read back")?;
    base.cached = false;
    base._lock = Some(std::sync::Arc::new(lock));
    Ok(base)
}

/// Swap two paths atomically (Linux `renameat2(2)` with `RENAME_EXCHANGE`).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let to_c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (to_c(a)?, to_c(b)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them as given.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn load(dir: &Path, key: &str) -> Result<Option<Base>> {
    let info_path = dir.join("base.json");
    let Ok(text) = std::fs::read_to_string(&info_path) else {
        return Ok(None);
    };
    let info: BaseInfo = match serde_json::from_str(&text) {
        Ok(i) => i,
        // A damaged cache entry is rebuilt, not trusted.
        Err(_) => return Ok(None),
    };
    let mut layer = info.layer;
    layer.path = dir.join(&layer.path);
    let rootfs = dir.join("rootfs");
    if !layer.path.is_file() || !rootfs.is_dir() {
        return Ok(None);
    }
    Ok(Some(Base {
        key: key.to_string(),
        rootfs,
        layer,
        cached: true,
        _lock: None,
    }))
}

fn make(
    paths: &Paths,
    stack: &Stack,
    arch: &str,
    key: &str,
    tmp: &Path,
    log: &mut BuildLog<'_>,
) -> Result<()> {
    std::fs::create_dir_all(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let rootfs = tmp.join("rootfs");
    // mmdebstrap runs as PID 1 of its own PID namespace (util-linux `unshare`): when drover
    // dies, `unshare` gets SIGKILL (PR_SET_PDEATHSIG, below), kills mmdebstrap
    // (--kill-child), and the kernel kills every process left in the namespace (apt, dpkg,
    // gpgv, maintainer scripts) at once instead of leaving them running for 20-25 s.
    // `unshare` would report a missing mmdebstrap only as exit 127: say what to install.
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("mmdebstrap").is_file()));
    if !on_path {
        bail!("`mmdebstrap` is not installed; install it with `apt-get install mmdebstrap`");
    }
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--pid",
        "--fork",
        "--kill-child=SIGKILL",
        "--",
        "mmdebstrap",
    ])
    .arg("--mode=root")
    .arg(format!("--variant={}", stack.base.variant))
    .arg(format!("--architectures={arch}"))
    .arg("--format=directory")
    // Keep the lists: the build script may use apt, and the manifest names origins.
    .arg("--skip=cleanup/apt/lists")
    .arg("--aptopt=Acquire::Languages \"none\"")
    .arg("--verbose");
    if !stack.packages.is_empty() {
        cmd.arg(format!("--include={}", stack.packages.join(",")));
    }
    cmd.arg(&stack.base.suite).arg(&rootfs);
    for s in stack.base.sources() {
        cmd.arg(format!(
            "deb {} {} {}",
            s.mirror,
            s.suite,
            s.components.join(" ")
        ));
    }
    cmd.env("TMPDIR", paths.tmp())
        .env("LC_ALL", "C.UTF-8")
        .env_remove("APT_CONFIG");
    private_mounts(&mut cmd, None)?;
    log.say(&format!(
        "mmdebstrap {} ({}) with {} package(s) from {}",
        stack.base.suite,
        stack.base.variant,
        stack.packages.len(),
        stack.base.mirror
    ));
    let status = run_logged(cmd, log)?;
    if !status.success() {
        bail!(
            "mmdebstrap failed ({status}); see the log lines above for the apt or dpkg error \
             (a wrong suite, mirror or package name is the usual cause)"
        );
    }
    log.say("writing the base layer");
    let layer_path = tmp.join("layer.tar.gz");
    let mut layer = oci::write_layer(&rootfs, LayerMode::Full, BASE_LAYER_EXCLUDES, &layer_path)?;
    layer.path = PathBuf::from("layer.tar.gz");
    log.say(&format!(
        "base layer {} ({} bytes)",
        layer.digest, layer.size
    ));
    let info = BaseInfo {
        key: key.to_string(),
        inputs: key_inputs(stack, arch),
        created_at: crate::store::now_rfc3339(),
        layer,
    };
    let info_path = tmp.join("base.json");
    std::fs::write(&info_path, serde_json::to_vec_pretty(&info)?)
        .with_context(|| format!("cannot write {}", info_path.display()))?;
    Ok(())
}

/// Remove base directories left by dead builds (`.tmp-*`, `.old-*`) whose key lock is free.
pub fn clean_stale(paths: &Paths) {
    let Ok(rd) = std::fs::read_dir(paths.bases()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(".tmp-")
            .or_else(|| name.strip_prefix(".old-"))
        else {
            continue;
        };
        let key = rest.split('-').next().unwrap_or_default();
        let lock_path = paths.bases().join(format!("{key}.lock"));
        if let Ok(lock) = File::create(&lock_path) {
            if lock.try_lock().is_ok() {
                // An `.old-` entry with no base at KEY was moved aside by a build killed
                // before its second rename (drover before the atomic exchange): put it
                // back rather than lose the cached base.
                let live = paths.bases().join(key);
                if name.starts_with(".old-") && !key.is_empty() && !live.exists() {
                    let _ = std::fs::rename(e.path(), &live);
                    continue;
                }
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
