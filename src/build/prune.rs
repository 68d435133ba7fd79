//! `drover prune`: keep the newest N images per stack, drop unused cached bases and the
//! cached .debs no kept build's lock (nor any stack's lock file) names.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;

use anyhow::Result;

use crate::paths::Paths;
use crate::store::Store;

/// One image removed.
#[derive(Debug, Clone)]
pub struct RemovedImage {
    /// Stack name.
    pub stack: String,
    /// Build id.
    pub build_id: i64,
    /// The archive path that was deleted.
    pub image_path: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What [`prune`] did.
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    /// Images removed (build rows, logs and manifests stay).
    pub removed: Vec<RemovedImage>,
    /// Base keys removed from the cache.
    pub bases_removed: Vec<String>,
    /// Bytes freed by removing bases (layer blobs; trees counted by their blobs' size).
    pub base_bytes: u64,
    /// Deps layer keys removed from the cache (`crate::build::deps`).
    pub deps_removed: Vec<String>,
    /// Bytes freed by removing them (their layer blobs).
    pub deps_bytes: u64,
    /// VM boot layer keys removed (their base was removed: `crate::build::vm::boot`).
    pub vm_boot_removed: Vec<String>,
    /// Cached .debs removed (no kept build's lock and no stack's lock file names them).
    pub debs_removed: usize,
    /// Bytes freed by removing them.
    pub deb_bytes: u64,
}

/// The SHA-256s of the .debs to keep: every package of the locks of builds that keep an
/// image, and of every lock file under `CONFIG/stacks`.
fn debs_in_use(paths: &Paths, store: &Store) -> Result<std::collections::BTreeSet<String>> {
    let mut texts = store.locks_of_kept_builds()?;
    if let Ok(rd) = std::fs::read_dir(paths.stacks_dir()) {
        for e in rd.flatten() {
            if e.path().extension().is_some_and(|x| x == "lock") {
                if let Ok(t) = std::fs::read_to_string(e.path()) {
                    texts.push(t);
                }
            }
        }
    }
    let mut keep = std::collections::BTreeSet::new();
    for t in texts {
        // An unreadable lock keeps nothing of its own; its build is unusable anyway.
        if let Ok(l) = crate::lock::Lock::parse(&t, std::path::Path::new("lock")) {
            keep.extend(l.packages.into_iter().map(|p| p.sha256));
        }
    }
    Ok(keep)
}

/// Keep the newest `keep` images of every stack; delete older archives and forget their
/// paths. Then delete cached bases and deps layers that no kept image and no stack's
/// newest build uses (skipping any a running build holds locked; a stack's most recently
/// used deps layer is kept too).
pub fn prune(paths: &Paths, store: &Store, keep: usize) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let mut per_stack: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for b in store.builds_with_images()? {
        per_stack.entry(b.stack.clone()).or_default().push(b);
    }
    let mut used_keys: HashSet<String> = HashSet::new();
    for (stack, builds) in per_stack {
        for (i, b) in builds.into_iter().enumerate() {
            if i < keep {
                used_keys.extend(b.base_key.clone());
                continue;
            }
            let path = b.image_path.clone().unwrap_or_default();
            let mut bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            // The build's VM image goes with its OCI image.
            if let Some(vm_path) = store
                .build_vm(b.id)?
                .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
                .and_then(|v| v["path"].as_str().map(str::to_string))
            {
                bytes += std::fs::metadata(&vm_path).map(|m| m.len()).unwrap_or(0);
                match std::fs::remove_file(&vm_path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(anyhow::anyhow!("cannot remove {vm_path}: {e}")),
                }
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(anyhow::anyhow!("cannot remove {path}: {e}")),
            }
            store.clear_image_path(b.id)?;
            report.removed.push(RemovedImage {
                stack: stack.clone(),
                build_id: b.id,
                image_path: path,
                bytes,
            });
        }
    }
    used_keys.extend(store.latest_base_keys()?);
    if let Ok(rd) = std::fs::read_dir(paths.bases()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.ends_with(".lock") || used_keys.contains(&name) {
                continue;
            }
            let lock_path = paths.bases().join(format!("{name}.lock"));
            let Ok(lock) = File::create(&lock_path) else {
                continue;
            };
            if lock.try_lock().is_err() {
                continue;
            }
            let bytes = std::fs::metadata(e.path().join("layer.tar.gz"))
                .map(|m| m.len())
                .unwrap_or(0);
            if std::fs::remove_dir_all(e.path()).is_ok() {
                let _ = std::fs::remove_file(&lock_path);
                report.base_bytes += bytes;
                report.bases_removed.push(name);
            }
        }
    }
    let deps_keep: HashSet<String> = store.deps_keys_in_use()?.into_iter().collect();
    (report.deps_removed, report.deps_bytes) = super::deps::prune(paths, &deps_keep);
    report.vm_boot_removed = super::vm::boot::prune(paths);
    // .debs that a running build may have just added are kept (younger than an hour).
    let mut keep = debs_in_use(paths, store)?;
    if let Ok(rd) = std::fs::read_dir(paths.debs()) {
        for e in rd.flatten() {
            let young = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() < 3600);
            if young {
                let name = e.file_name().to_string_lossy().into_owned();
                keep.extend(name.strip_suffix(".deb").map(str::to_string));
            }
        }
    }
    let (n, bytes) = super::debcache::DebCache::new(&paths.debs()).prune(&keep);
    report.debs_removed = n;
    report.deb_bytes = bytes;
    Ok(report)
}
