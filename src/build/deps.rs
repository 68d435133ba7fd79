//! The deps (framework) layer: the seeds' ladder OS → runtime → **framework** → app. A
//! stack's `[scripts].deps` runs over the base with only its `[deps] files` (e.g.
//! `requirements.txt`) in the app directory, and what it changes becomes its own OCI layer
//! between the base and the app, cached under [`layer_key`] so an app-only change reuses it
//! and rebuilds in seconds.
//!
//! Cache layout: `STATE/deps/KEY/` holds `upper/` (the overlayfs upper tree of the layer:
//! whiteouts as 0/0 character devices, opaque directories by xattr, as the app layer's),
//! `layer.tar.gz` (its blob) and `deps.json` ([`DepsInfo`]). A layer is made in
//! `STATE/deps/.tmp-KEY-PID/` and renamed into place only when complete, with
//! `STATE/deps/KEY.lock` held meanwhile so two builds never race on a key.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::app::ensure_upper_dir;
use super::base::Base;
use super::oci::{self, LayerBlob, LayerMode};
use super::sandbox::{run_stack_script, BuildLog, Overlay};
use super::APP_LAYER_EXCLUDES;
use crate::paths::Paths;
use crate::stack::{AppSource, Stack};

/// Version of the deps layer recipe: bump it when what goes into a layer changes, so
/// layers made by an older drover are not reused.
pub const DEPS_RECIPE: &str = "drover-deps-1";

/// What `deps.json` records about a cached deps layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DepsInfo {
    /// The layer key ([`layer_key`]).
    pub key: String,
    /// The stack it was first made for.
    pub stack: String,
    /// The base key it was made on.
    pub base_key: String,
    /// `(path under [app].dest, hex SHA-256)` of each file it was made from.
    pub files: Vec<(String, String)>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// The layer blob (its `path` is relative to the layer directory).
    pub layer: LayerBlob,
}

/// A ready deps layer.
#[derive(Debug)]
pub struct DepsLayer {
    /// The cache key.
    pub key: String,
    /// `deps/KEY/upper`: the layer's tree, stacked between the app's upper and the base.
    pub upper: PathBuf,
    /// The layer blob with an absolute path.
    pub layer: LayerBlob,
    /// Whether it came from the cache.
    pub cached: bool,
    /// Held while the build uses the layer, so a `--refresh-base` elsewhere cannot swap it.
    _lock: File,
}

/// The SHA-256 of a file's contents, lowercase hex.
fn file_sha256(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(h.finalize()))
}

/// The `[deps] files` of `stack` with their digests, in the stack file's order.
fn hashed_files(stack: &Stack) -> Result<Vec<(String, String)>> {
    let Some(AppSource::Dir(dir)) = stack.app.as_ref().map(|a| &a.source) else {
        return Ok(Vec::new());
    };
    stack
        .deps
        .iter()
        .map(|f| {
            let sum = file_sha256(&dir.join(f)).with_context(|| {
                format!(
                    "the [deps] file `{f}` of {} is gone since validation",
                    stack.file.display()
                )
            })?;
            Ok((f.clone(), sum))
        })
        .collect()
}

/// The deps layer key of `stack` on the base `base_key`, or `None` when the stack has no
/// `[scripts].deps`: hex SHA-256 over [`DEPS_RECIPE`], the base key, `[app].dest`, each
/// `[deps]` file's path and content digest, the deps script and `[env]` (which the script
/// sees), each field length-prefixed so no two input sets hash alike. The app's other
/// files, the build script and the runtime scripts are not in it: changing them reuses the
/// layer.
///
/// Errors: a `[deps]` file that cannot be read.
pub fn layer_key(stack: &Stack, base_key: &str) -> Result<Option<String>> {
    let Some(script) = &stack.scripts.deps else {
        return Ok(None);
    };
    Ok(Some(key_of(stack, base_key, &hashed_files(stack)?, script)))
}

fn key_of(stack: &Stack, base_key: &str, files: &[(String, String)], script: &str) -> String {
    let mut h = Sha256::new();
    let mut field = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    field(DEPS_RECIPE);
    field(base_key);
    field(stack.app.as_ref().map(|a| a.dest.as_str()).unwrap_or(""));
    for (name, sum) in files {
        field(name);
        field(sum);
    }
    field("script");
    field(script);
    for (k, v) in &stack.env {
        field(k);
        field(v);
    }
    hex::encode(h.finalize())
}

/// Take `deps/KEY.lock`, waiting (and saying so) while another build holds it.
fn take_lock(paths: &Paths, key: &str, log: &mut BuildLog<'_>) -> Result<File> {
    let path = paths.deps().join(format!("{key}.lock"));
    let lock = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    if lock.try_lock().is_err() {
        log.say("waiting for another build of the same deps layer to finish");
        lock.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
    }
    Ok(lock)
}

/// The cached layer at `dir` (its upper tree and blob), if complete and of `key`.
fn load(dir: &Path, key: &str) -> Option<(PathBuf, LayerBlob)> {
    let text = std::fs::read_to_string(dir.join("deps.json")).ok()?;
    // A damaged cache entry is rebuilt, not trusted.
    let info: DepsInfo = serde_json::from_str(&text).ok()?;
    if info.key != key {
        return None;
    }
    let mut layer = info.layer;
    layer.path = dir.join(&layer.path);
    let upper = dir.join("upper");
    (layer.path.is_file() && upper.is_dir()).then_some((upper, layer))
}

/// Return the cached deps layer of `stack` on `base`, or make it: copy the `[deps]`
/// files to their paths under `[app].dest` in a fresh upper directory, run
/// `[scripts].deps` in the build sandbox over base + that upper (network as for the build
/// script), write the upper as a layer blob and publish it. `None` when the stack has no
/// deps script. With `refresh` the layer is made again even when cached. `work` is the
/// build's own directory (the overlay's mount point goes there).
///
/// Errors: a `[deps]` file unreadable; the script failing (its output is in the log; the
/// message names `[scripts].deps` and the stack file); the layer not writable. Nothing is
/// left in `deps/` on failure.
pub fn ensure(
    paths: &Paths,
    stack: &Stack,
    base: &Base,
    refresh: bool,
    work: &Path,
    log: &mut BuildLog<'_>,
) -> Result<Option<DepsLayer>> {
    let Some(script) = &stack.scripts.deps else {
        return Ok(None);
    };
    let files = hashed_files(stack)?;
    let key = key_of(stack, &base.key, &files, script);
    std::fs::create_dir_all(paths.deps())
        .with_context(|| format!("cannot create {}", paths.deps().display()))?;
    let dir = paths.deps().join(&key);
    let lock = take_lock(paths, &key, log)?;
    if !refresh {
        if let Some((upper, layer)) = load(&dir, &key) {
            // The newest use decides what `prune` keeps.
            let _ = File::options()
                .append(true)
                .open(dir.join("deps.json"))
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            log.say(&format!(
                "deps layer {} reused from the cache ({} file(s))",
                &key[..12],
                files.len()
            ));
            return Ok(Some(DepsLayer {
                key,
                upper,
                layer,
                cached: true,
                _lock: lock,
            }));
        }
    }
    let t = Instant::now();
    let tmp = paths
        .deps()
        .join(format!(".tmp-{key}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let made = make(stack, base, script, &files, &key, &tmp, work, log);
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    super::base::publish(&tmp, &dir)?;
    let Some((upper, layer)) = load(&dir, &key) else {
        bail!(
            "the deps layer just made cannot be read back from {}",
            dir.display()
        );
    };
    log.say(&format!(
        "deps layer {} made in {:.1} s ({} bytes)",
        &key[..12],
        t.elapsed().as_secs_f64(),
        layer.size
    ));
    Ok(Some(DepsLayer {
        key,
        upper,
        layer,
        cached: false,
        _lock: lock,
    }))
}

#[allow(clippy::too_many_arguments)]
fn make(
    stack: &Stack,
    base: &Base,
    script: &str,
    files: &[(String, String)],
    key: &str,
    tmp: &Path,
    work: &Path,
    log: &mut BuildLog<'_>,
) -> Result<()> {
    let upper = tmp.join("upper");
    let overlay_work = tmp.join("overlay-work");
    let merged = work.join("deps-merged");
    for d in [&upper, &overlay_work, &merged] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    if let (Some(app), Some(AppSource::Dir(src))) =
        (&stack.app, stack.app.as_ref().map(|a| &a.source))
    {
        for (f, _) in files {
            let rel = Path::new(&app.dest).join(f);
            let parent = rel.parent().unwrap_or(Path::new("/"));
            let dir = ensure_upper_dir(&[&base.rootfs], &upper, &parent.to_string_lossy())?;
            let name = rel.file_name().context("a [deps] file has no name")?;
            let to = dir.join(name);
            std::fs::copy(src.join(f), &to)
                .with_context(|| format!("cannot copy the [deps] file `{f}` into the layer"))?;
            std::os::unix::fs::lchown(&to, Some(0), Some(0))?;
        }
        log.say(&format!(
            "making the deps layer {} from {} file(s): {}",
            &key[..12],
            files.len(),
            files
                .iter()
                .map(|(f, _)| f.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    } else {
        log.say(&format!("making the deps layer {}", &key[..12]));
    }
    let status = run_stack_script(
        script,
        &work.join("deps-script"),
        Overlay {
            lowers: &[&base.rootfs],
            upper: &upper,
            work: &overlay_work,
            merged: &merged,
        },
        &stack.env,
        log,
    )?;
    if !status.success() {
        bail!(
            "the deps script failed ({status}); its last lines are above. Fix \
             [scripts].deps in {} (or the [deps] files it installs from)",
            stack.file.display()
        );
    }
    let _ = std::fs::remove_dir_all(&overlay_work);
    let _ = std::fs::remove_dir(&merged);
    let layer_path = tmp.join("layer.tar.gz");
    let mut layer = oci::write_layer(
        &upper,
        LayerMode::OverlayUpper,
        APP_LAYER_EXCLUDES,
        &layer_path,
    )?;
    layer.path = PathBuf::from("layer.tar.gz");
    let info = DepsInfo {
        key: key.to_string(),
        stack: stack.name.clone(),
        base_key: base.key.clone(),
        files: files.to_vec(),
        created_at: crate::store::now_rfc3339(),
        layer,
    };
    let info_path = tmp.join("deps.json");
    std::fs::write(&info_path, serde_json::to_vec_pretty(&info)?)
        .with_context(|| format!("cannot write {}", info_path.display()))?;
    Ok(())
}

/// Remove deps directories left by dead builds (`.tmp-KEY-PID`) whose key lock is free.
pub fn clean_stale(paths: &Paths) {
    clean_stale_in(&paths.deps());
}

/// Remove the `.tmp-KEY-PID` directories of `dir` whose `KEY.lock` is free (their build
/// died): the layout of the deps and VM boot layer caches.
pub(super) fn clean_stale_in(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(".tmp-") else {
            continue;
        };
        let key = rest.split('-').next().unwrap_or_default();
        if let Ok(lock) = File::create(dir.join(format!("{key}.lock"))) {
            if lock.try_lock().is_ok() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Remove cached deps layers that no kept build uses (`keep`: their keys) and that are
/// not the newest-used layer of their stack, skipping any a running build holds locked.
/// Returns the keys removed and the bytes their blobs took.
pub fn prune(paths: &Paths, keep: &std::collections::HashSet<String>) -> (Vec<String>, u64) {
    let mut newest: std::collections::HashMap<String, (std::time::SystemTime, String)> =
        Default::default();
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(paths.deps())
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".lock") {
            continue;
        }
        let info_path = e.path().join("deps.json");
        let stack = std::fs::read_to_string(&info_path)
            .ok()
            .and_then(|t| serde_json::from_str::<DepsInfo>(&t).ok())
            .map(|i| i.stack)
            .unwrap_or_default();
        let used = std::fs::metadata(&info_path)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        let slot = newest
            .entry(stack)
            .or_insert((std::time::UNIX_EPOCH, String::new()));
        if used >= slot.0 {
            *slot = (used, name.clone());
        }
        entries.push((name, e.path()));
    }
    let newest: std::collections::HashSet<&String> = newest.values().map(|(_, k)| k).collect();
    let (mut removed, mut bytes) = (Vec::new(), 0);
    for (key, path) in &entries {
        if keep.contains(key) || newest.contains(key) {
            continue;
        }
        let lock_path = paths.deps().join(format!("{key}.lock"));
        let Ok(lock) = File::create(&lock_path) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue;
        }
        let size = std::fs::metadata(path.join("layer.tar.gz"))
            .map(|m| m.len())
            .unwrap_or(0);
        if std::fs::remove_dir_all(path).is_ok() {
            let _ = std::fs::remove_file(&lock_path);
            bytes += size;
            removed.push(key.clone());
        }
    }
    (removed, bytes)
}

#[cfg(test)]
mod tests {
    use super::layer_key;
    use crate::stack::parse::parse_stack;

    const BASE: &str = "[base]\ndistro = \"debian\"\nsuite = \"bookworm\"\n\
                        mirror = \"http://deb.debian.org/debian\"\n";

    #[test]
    fn the_deps_key_follows_the_deps_files_script_env_and_base_only() {
        let cfg = tempfile::tempdir().unwrap();
        let app = cfg.path().join("apps/w");
        std::fs::create_dir_all(&app).unwrap();
        let write = |name: &str, text: &str| std::fs::write(app.join(name), text).unwrap();
        write("requirements.txt", "six==1.16.0\n");
        write("app.py", "print(1)\n");
        let key = |deps: &str, build: &str, env: &str, base: &str| {
            let text = format!(
                "name = \"w\"\n{BASE}[app]\npath = \"apps/w\"\n[deps]\nfiles = \
                 [\"requirements.txt\"]\n[scripts]\ndeps = \"{deps}\"\nbuild = \"{build}\"\n\
                 [env]\n{env}"
            );
            let stack = parse_stack(std::path::Path::new("w.toml"), &text, cfg.path())
                .unwrap_or_else(|d| panic!("{d:#?}"));
            layer_key(&stack, base).unwrap().unwrap()
        };
        let k = key("pip", "true", "A = \"1\"\n", "b1");
        assert_eq!(k.len(), 64);
        assert_eq!(k, key("pip", "true", "A = \"1\"\n", "b1"), "stable");
        // The app's other files and the build script are not inputs of the layer.
        write("app.py", "print(2)\n");
        assert_eq!(k, key("pip", "make", "A = \"1\"\n", "b1"));
        // Each input of the layer is.
        assert_ne!(k, key("pip -q", "true", "A = \"1\"\n", "b1"), "script");
        assert_ne!(k, key("pip", "true", "A = \"2\"\n", "b1"), "env");
        assert_ne!(k, key("pip", "true", "A = \"1\"\n", "b2"), "base");
        write("requirements.txt", "six==1.17.0\n");
        assert_ne!(k, key("pip", "true", "A = \"1\"\n", "b1"), "a [deps] file");
    }

    #[test]
    fn prune_keeps_layers_in_use_each_stacks_newest_and_locked_ones() {
        use std::time::{Duration, SystemTime};
        let root = tempfile::tempdir().unwrap();
        let paths = crate::paths::Paths::resolve(
            Some(root.path().join("config")),
            Some(root.path().join("state")),
        )
        .unwrap();
        let blob = super::LayerBlob {
            digest: String::new(),
            diff_id: String::new(),
            size: 1,
            path: "layer.tar.gz".into(),
        };
        let make = |key: &str, stack: &str, age_s: u64| {
            let dir = paths.deps().join(key);
            std::fs::create_dir_all(dir.join("upper")).unwrap();
            std::fs::write(dir.join("layer.tar.gz"), "x").unwrap();
            let info = super::DepsInfo {
                key: key.into(),
                stack: stack.into(),
                base_key: "b".into(),
                files: vec![],
                created_at: String::new(),
                layer: blob.clone(),
            };
            let f = dir.join("deps.json");
            std::fs::write(&f, serde_json::to_vec(&info).unwrap()).unwrap();
            std::fs::File::options()
                .append(true)
                .open(&f)
                .unwrap()
                .set_modified(SystemTime::now() - Duration::from_secs(age_s))
                .unwrap();
        };
        make("old", "api", 300);
        make("kept", "api", 200);
        make("busy", "api", 150);
        make("newest", "api", 10);
        make("web-only", "web", 500);
        // A running build holds the layer it uses.
        let held = std::fs::File::create(paths.deps().join("busy.lock")).unwrap();
        held.lock().unwrap();
        let keep: std::collections::HashSet<String> = ["kept".to_string()].into();
        let (removed, bytes) = super::prune(&paths, &keep);
        assert_eq!(removed, ["old"]);
        assert_eq!(bytes, 1);
        for k in ["kept", "busy", "newest", "web-only"] {
            assert!(paths.deps().join(k).is_dir(), "{k} kept");
        }
        assert!(!paths.deps().join("old").exists());
    }
}
