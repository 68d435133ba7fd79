//! The base layer: the OS plus the stack's system packages, made by mmdebstrap exactly as
//! the stack's lock says (or resolving a new lock, [`resolve`]), and cached under the
//! lock's key ([`Lock::base_key`]).
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

use super::debcache::DebCache;
use super::oci::{self, LayerBlob, LayerMode};
use super::sandbox::{private_mounts, run_logged, BuildLog};
use crate::lock::diff::mismatches;
use crate::lock::resolve::{pins_text, read_tree};
use crate::lock::{Lock, LockedPackage};
use crate::manifest::origin::uri_to_filename;
use crate::manifest::rootfs::RootView;
use crate::paths::Paths;
use crate::stack::AptSource;

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
    /// The base key ([`Lock::base_key`] of the lock it was made from).
    pub key: String,
    /// A summary of the lock it was made from (recipe, stack, repositories, package count),
    /// for humans reading the cache.
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

/// Whether the base with this key is in the cache and usable.
pub fn is_cached(paths: &Paths, key: &str) -> bool {
    matches!(load(&paths.bases().join(key), key), Ok(Some(_)))
}

/// Take `bases/NAME.lock`, waiting (and saying so) while another build holds it.
fn take_lock(paths: &Paths, name: &str, log: &mut BuildLog<'_>) -> Result<File> {
    let lock_path = paths.bases().join(format!("{name}.lock"));
    let lock = File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        log.say("waiting for another build of the same base to finish");
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    }
    Ok(lock)
}

/// Return the cached base of `lock`, or make it with mmdebstrap from the lock's
/// repositories with every package pinned to its locked version (and the cached .debs
/// given to apt), then check that the tree holds exactly the lock. With `refresh` the base
/// is made again even when cached. Holds `bases/KEY.lock` meanwhile so two builds never
/// race on a key.
///
/// Errors: mmdebstrap missing or failing (its output is in the log); the tree differs from
/// the lock (a locked version is no longer in the repositories: the message names the
/// packages and `drover lock --update`); the layer cannot be written. Nothing is left in
/// `bases/` on failure.
pub fn ensure_locked(
    paths: &Paths,
    lock: &Lock,
    keyrings: &[super::keyrings::Keyring],
    refresh: bool,
    offline: bool,
    log: &mut BuildLog<'_>,
) -> Result<Base> {
    let key = super::keyrings::cache_key(lock, keyrings)?;
    let dir = paths.bases().join(&key);
    let key_lock = take_lock(paths, &key, log)?;
    if !refresh {
        if let Some(mut base) = load(&dir, &key)? {
            base._lock = Some(std::sync::Arc::new(key_lock));
            return Ok(base);
        }
    }
    let tmp = paths
        .bases()
        .join(format!(".tmp-{key}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let local = tmp.join("local-repo");
    let spec = MakeSpec {
        arch: &lock.arch,
        variant: &lock.variant,
        suite: lock
            .repositories
            .first()
            .map(|r| r.suite.as_str())
            .unwrap_or_default(),
        sources: lock.sources(),
        include: &lock.include,
        pins: &lock.packages,
        stage: &lock.packages,
        local: offline.then_some(local.as_path()),
        keyrings,
    };
    let made = make(paths, &spec, &tmp, log).and_then(|()| {
        let got = Lock {
            packages: installed(&RootView::Dir(tmp.join("rootfs")))?,
            ..lock.clone()
        };
        let wrong = mismatches(lock, &got);
        if !wrong.is_empty() {
            let n = wrong.len();
            bail!(
                "the base made from the lock differs from it in {n} package(s): {}{}. The \
                 repositories no longer hold a locked version and no cached .deb has it; run \
                 `drover lock {} --update` to move the lock to what they hold",
                wrong[..n.min(5)].join("; "),
                if n > 5 { "; …" } else { "" },
                lock.stack
            );
        }
        write_info(&tmp, &key, lock)
    });
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    publish(&tmp, &dir)?;
    let mut base = load(&dir, &key)?.context("the base just built cannot be read back")?;
    base.cached = false;
    base._lock = Some(std::sync::Arc::new(key_lock));
    Ok(base)
}

/// Resolve a lock with apt: make a base with mmdebstrap from `template`'s repositories
/// (its `packages` and `repositories` dates are filled in here) installing
/// `template.include`, with `pins` held at their versions (apt_preferences(5)) and
/// everything else at apt's candidate (the cached .debs of `known`, e.g. the previous
/// lock's, are offered to apt so what did not move is not downloaded again); the lock is what the tree then holds. The base is
/// published under the new lock's key (an existing base of that key is kept unless
/// `refresh`).
///
/// Errors: those of mmdebstrap, of reading the tree ([`read_tree`]) and of writing the
/// layer; nothing is left in `bases/` on failure.
pub fn resolve(
    paths: &Paths,
    template: &Lock,
    keyrings: &[super::keyrings::Keyring],
    pins: &[LockedPackage],
    known: &[LockedPackage],
    refresh: bool,
    log: &mut BuildLog<'_>,
) -> Result<(Base, Lock)> {
    // The key is known only once apt has resolved: work under a token of our own.
    let token = format!(
        "resolve{}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let token_lock = take_lock(paths, &token, log)?;
    let tmp = paths
        .bases()
        .join(format!(".tmp-{token}-{}", std::process::id()));
    let sources = template.sources();
    let spec = MakeSpec {
        arch: &template.arch,
        variant: &template.variant,
        suite: sources
            .first()
            .map(|s| s.suite.as_str())
            .unwrap_or_default(),
        sources: sources.clone(),
        include: &template.include,
        pins,
        stage: known,
        local: None,
        keyrings,
    };
    let resolved = make(paths, &spec, &tmp, log).and_then(|()| {
        let (packages, repositories) = read_tree(&RootView::Dir(tmp.join("rootfs")), &sources)?;
        Ok(Lock {
            packages,
            repositories,
            ..template.clone()
        })
    });
    let lock = match resolved {
        Ok(l) => l,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let key = match super::keyrings::cache_key(&lock, keyrings) {
        Ok(k) => k,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let dir = paths.bases().join(&key);
    let key_lock = take_lock(paths, &key, log)?;
    let reuse = !refresh && load(&dir, &key)?.is_some();
    if reuse {
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        if let Err(e) = write_info(&tmp, &key, &lock) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        publish(&tmp, &dir)?;
    }
    drop(token_lock);
    let _ = std::fs::remove_file(paths.bases().join(format!("{token}.lock")));
    let mut base = load(&dir, &key)?.context("the base just built cannot be read back")?;
    base.cached = reuse;
    base._lock = Some(std::sync::Arc::new(key_lock));
    Ok((base, lock))
}

/// Publish `tmp` at `dir` in one step: with an old entry, swap the two directories
/// atomically (renameat2 RENAME_EXCHANGE), so a kill at any moment leaves either the old or
/// the new base at KEY, never none; the old one, now at the temporary name, is removed.
pub(super) fn publish(tmp: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        exchange(tmp, dir).with_context(|| format!("cannot publish base {}", dir.display()))?;
        let _ = std::fs::remove_dir_all(tmp);
    } else {
        std::fs::rename(tmp, dir)
            .with_context(|| format!("cannot publish base {}", dir.display()))?;
    }
    Ok(())
}

fn write_info(tmp: &Path, key: &str, lock: &Lock) -> Result<()> {
    let layer_text = std::fs::read_to_string(tmp.join("layer.json"))
        .context("the base layer description is missing")?;
    let mut layer: LayerBlob = serde_json::from_str(&layer_text)?;
    layer.path = PathBuf::from("layer.tar.gz");
    let info = BaseInfo {
        key: key.to_string(),
        inputs: serde_json::json!({
            "recipe": crate::lock::RECIPE_VERSION,
            "stack": lock.stack,
            "arch": lock.arch,
            "variant": lock.variant,
            "include": lock.include,
            "repositories": lock.sources().iter().map(|s| format!("{} {}", s.mirror, s.suite)).collect::<Vec<_>>(),
            "packages": lock.packages.len(),
        }),
        created_at: crate::store::now_rfc3339(),
        layer,
    };
    let info_path = tmp.join("base.json");
    std::fs::write(&info_path, serde_json::to_vec_pretty(&info)?)
        .with_context(|| format!("cannot write {}", info_path.display()))?;
    Ok(())
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

/// The installed packages of `root` with versions only (for comparing with a lock).
fn installed(root: &RootView) -> Result<Vec<LockedPackage>> {
    Ok(crate::manifest::dpkg::read_db(root)?
        .into_iter()
        .map(|p| LockedPackage {
            name: p.name,
            arch: p.arch,
            version: p.version,
            source: p.source,
            source_version: p.source_version,
            mirror: String::new(),
            suite: String::new(),
            sha256: String::new(),
            size: 0,
        })
        .collect())
}

/// What one mmdebstrap run makes.
struct MakeSpec<'a> {
    arch: &'a str,
    variant: &'a str,
    /// The primary suite (mmdebstrap's SUITE argument).
    suite: &'a str,
    /// Set: install from a flat repository made here from the .deb cache (exactly the
    /// pins, no network), and leave the real `sources` in the image's sources.list.
    local: Option<&'a Path>,
    sources: Vec<AptSource>,
    include: &'a [String],
    /// Held at their versions.
    pins: &'a [LockedPackage],
    /// Given to apt from the .deb cache when cached (apt uses a file only when it is the
    /// version it chose).
    stage: &'a [LockedPackage],
    /// The keyrings of sources not signed by the Debian archive key.
    keyrings: &'a [super::keyrings::Keyring],
}

/// Quote `s` for mmdebstrap's hook words (split like a POSIX shell).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn make(paths: &Paths, spec: &MakeSpec<'_>, tmp: &Path, log: &mut BuildLog<'_>) -> Result<()> {
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
    if spec.sources.is_empty() {
        bail!("no apt source to make the base from");
    }
    // The .deb cache goes in through apt's archives directory and the .debs apt used come
    // out of it (mmdebstrap(1), "use a local package cache"); the pins through
    // preferences.d, removed again at the end.
    let cache = DebCache::new(&paths.debs());
    let debs_in = tmp.join("debs-in");
    let debs_out = tmp.join("debs-out");
    std::fs::create_dir_all(&debs_out)?;
    let staged = cache.stage(spec.stage.iter(), &debs_in)?;
    let prefs = tmp.join("drover-lock.pref");
    std::fs::write(&prefs, pins_text(spec.pins.iter()))?;
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--pid",
        "--fork",
        "--kill-child=SIGKILL",
        "--",
        "mmdebstrap",
    ])
    .arg("--mode=root")
    .arg(format!("--variant={}", spec.variant))
    .arg(format!("--architectures={}", spec.arch))
    .arg("--format=directory")
    // Keep the lists: the build script may use apt, and the lock names origins and hashes.
    .arg("--skip=cleanup/apt/lists")
    // Keep the essential .debs in archives/ until the customize hook copies them out.
    .arg("--skip=essential/unlink")
    .arg("--aptopt=Acquire::Languages \"none\"")
    .arg("--verbose")
    .arg("--setup-hook=mkdir -p \"$1/var/cache/apt/archives\" \"$1/etc/apt/preferences.d\"")
    .arg(format!(
        "--setup-hook=copy-in {} /etc/apt/preferences.d/",
        sh_quote(&prefs.to_string_lossy())
    ));
    if staged > 0 {
        cmd.arg(format!(
            "--setup-hook=sync-in {} /var/cache/apt/archives/",
            sh_quote(&debs_in.to_string_lossy())
        ));
    }
    cmd.arg(format!(
        "--customize-hook=sync-out /var/cache/apt/archives {}",
        sh_quote(&debs_out.to_string_lossy())
    ))
    .arg("--customize-hook=rm -f \"$1/etc/apt/preferences.d/drover-lock.pref\"");
    if !spec.include.is_empty() {
        cmd.arg(format!("--include={}", spec.include.join(",")));
    }
    let lists = super::keyrings::stage(&spec.sources, spec.keyrings, tmp)?;
    if let Some(dir) = &lists.keys_dir {
        cmd.arg("--customize-hook=mkdir -p \"$1/etc/apt/keyrings\"")
            .arg(format!(
                "--customize-hook=sync-in {} /etc/apt/keyrings/",
                sh_quote(&dir.to_string_lossy())
            ));
    }
    cmd.arg(spec.suite).arg(&rootfs);
    match spec.local {
        Some(dir) => {
            cache.local_repository(spec.pins, dir)?;
            // The image keeps the real sources; the local repository's lists go (the lock
            // names every origin).
            let list = tmp.join("sources.list");
            std::fs::write(&list, &lists.image)?;
            cmd.arg("--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount")
                .arg(format!(
                    "--customize-hook=copy-in {} /etc/apt/",
                    sh_quote(&list.to_string_lossy())
                ))
                .arg(format!(
                    "--customize-hook=rm -f \"$1\"/var/lib/apt/lists/{}*",
                    uri_to_filename(&format!("file://{}", dir.display()))
                ))
                .arg(format!("deb [trusted=yes] file://{} ./", dir.display()));
        }
        None => {
            for line in lists.host.lines() {
                cmd.arg(line);
            }
            if lists.keys_dir.is_some() {
                let list = tmp.join("sources.list");
                std::fs::write(&list, &lists.image)?;
                cmd.arg(format!(
                    "--customize-hook=copy-in {} /etc/apt/",
                    sh_quote(&list.to_string_lossy())
                ));
            }
        }
    }
    cmd.env("TMPDIR", paths.tmp())
        .env("LC_ALL", "C.UTF-8")
        .env_remove("APT_CONFIG");
    private_mounts(&mut cmd, None)?;
    let suites: Vec<&str> = spec.sources.iter().map(|s| s.suite.as_str()).collect();
    log.say(&format!(
        "mmdebstrap {} ({}) with {} package(s) from {} [{}]; {} version(s) pinned, {} .deb(s) \
         from the local cache{}",
        spec.suite,
        spec.variant,
        spec.include.len(),
        spec.sources[0].mirror,
        suites.join(", "),
        spec.pins.len(),
        staged,
        if spec.local.is_some() {
            " (offline: a repository of the cached .debs only)"
        } else {
            ""
        }
    ));
    let status = run_logged(cmd, log)?;
    if !status.success() {
        bail!(
            "mmdebstrap failed ({status}); see the log lines above for the apt or dpkg error \
             (a wrong suite, mirror or package name is the usual cause)"
        );
    }
    let _ = std::fs::remove_dir_all(&debs_in);
    match cache.ingest(&debs_out) {
        Ok((n, bytes)) => log.say(&format!(
            "{n} new .deb(s) ({bytes} bytes) kept in the local cache"
        )),
        Err(e) => log.say(&format!("cannot keep the .debs in the local cache: {e:#}")),
    }
    let _ = std::fs::remove_dir_all(&debs_out);
    let _ = std::fs::remove_file(&prefs);
    log.say("writing the base layer");
    let layer_path = tmp.join("layer.tar.gz");
    let layer = oci::write_layer(&rootfs, LayerMode::Full, BASE_LAYER_EXCLUDES, &layer_path)?;
    log.say(&format!(
        "base layer {} ({} bytes)",
        layer.digest, layer.size
    ));
    std::fs::write(tmp.join("layer.json"), serde_json::to_vec(&layer)?)?;
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
                // A resolution's token lock is of no use once its tree is gone.
                if key.starts_with("resolve") {
                    let _ = std::fs::remove_file(&lock_path);
                }
            }
        }
    }
    // Token locks of resolutions whose process died before making a tree (an hour old, so
    // one just created and not yet locked is never taken for dead).
    if let Ok(rd) = std::fs::read_dir(paths.bases()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|a| a.as_secs() > 3600);
            if old && name.starts_with("resolve") && name.ends_with(".lock") {
                if let Ok(f) = File::open(e.path()) {
                    if f.try_lock().is_ok() {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
    }
}
