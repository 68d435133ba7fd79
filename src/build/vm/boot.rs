//! The boot layer of a VM image: the kernel, systemd as init, udev, networkd and the tools
//! the first boot needs, installed by apt over the stack's base in the build sandbox, and
//! cached under `STATE/vm/boot/KEY/` (`upper/`, `boot.json`) like the deps layer.
//!
//! KEY covers [`BOOT_RECIPE`], the base key (so a new lock gives a new boot layer), the
//! kernel package and [`BOOT_PACKAGES`]. apt keeps the locked packages where they are
//! unless a boot package needs a newer one (then the VM image's manifest says so).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::super::base::Base;
use super::super::sandbox::{run_stack_script, BuildLog, Overlay};
use crate::paths::Paths;

/// Bump when the boot layer's recipe changes, so cached ones are not reused.
pub const BOOT_RECIPE: &str = "drover-vm-boot-1";

/// Installed beside the kernel: init, device manager, D-Bus (logind handles the ACPI
/// power button with it), module loading (the seed's vfat/iso9660), fsck, DNS for the
/// app, and systemd-boot's EFI binary (copied to the ESP).
pub const BOOT_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "systemd-resolved",
    "udev",
    "dbus",
    "kmod",
    "e2fsprogs",
    "initramfs-tools",
    "systemd-boot-efi",
];

/// A ready boot layer.
pub struct BootLayer {
    /// Cache key (hex SHA-256).
    pub key: String,
    /// The overlayfs upper tree (over the base's rootfs).
    pub upper: PathBuf,
    /// Whether it came from the cache.
    pub cached: bool,
    _lock: File,
}

#[derive(Serialize, Deserialize)]
struct BootInfo {
    key: String,
    base_key: String,
    kernel: String,
    packages: Vec<String>,
    created_at: String,
}

/// The boot layer's key for `base_key` and `kernel`.
pub fn key_of(base_key: &str, kernel: &str) -> String {
    let mut h = Sha256::new();
    for part in [BOOT_RECIPE, base_key, kernel]
        .into_iter()
        .chain(BOOT_PACKAGES.iter().copied())
    {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// The cached boot layer of `base` with `kernel`, or make it: `apt-get update` then
/// `apt-get install --no-install-recommends` of `kernel` and [`BOOT_PACKAGES`] in the
/// build sandbox, then enable systemd-networkd. With `refresh` (`--refresh-base`) it is
/// made again even when cached, taking the mirror's newest kernel and boot packages.
/// `work` is the build's directory (the overlay's mount point goes there).
///
/// Errors: apt failing (its output is in the log; a kernel apt cannot find was refused
/// before, by [`super::check_kernel`]); the tree missing the kernel, the initrd or
/// systemd-boot afterwards. Nothing is left in `vm/boot/` on failure.
pub fn ensure(
    paths: &Paths,
    base: &Base,
    kernel: &str,
    refresh: bool,
    work: &Path,
    log: &mut BuildLog<'_>,
) -> Result<BootLayer> {
    let key = key_of(&base.key, kernel);
    let root = paths.vm().join("boot");
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let lock_path = root.join(format!("{key}.lock"));
    let lock = File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        log.say("waiting for another build of the same boot layer to finish");
        lock.lock()?;
    }
    let dir = root.join(&key);
    if !refresh && is_complete(&dir, &key) {
        log.say(&format!("boot layer {} reused from the cache", &key[..12]));
        return Ok(BootLayer {
            key,
            upper: dir.join("upper"),
            cached: true,
            _lock: lock,
        });
    }
    let t = Instant::now();
    let tmp = root.join(format!(".tmp-{key}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    if let Err(e) = make(base, kernel, &key, &tmp, work, log) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    super::super::base::publish(&tmp, &dir)?;
    log.say(&format!(
        "boot layer {} ({kernel}, systemd) made in {:.1} s",
        &key[..12],
        t.elapsed().as_secs_f64()
    ));
    Ok(BootLayer {
        key,
        upper: dir.join("upper"),
        cached: false,
        _lock: lock,
    })
}

fn is_complete(dir: &Path, key: &str) -> bool {
    std::fs::read_to_string(dir.join("boot.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<BootInfo>(&t).ok())
        .is_some_and(|i| i.key == key)
}

fn make(
    base: &Base,
    kernel: &str,
    key: &str,
    tmp: &Path,
    work: &Path,
    log: &mut BuildLog<'_>,
) -> Result<()> {
    let upper = tmp.join("upper");
    let overlay_work = tmp.join("overlay-work");
    let merged = work.join("boot-merged");
    for d in [&upper, &overlay_work, &merged] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    log.say(&format!(
        "making the boot layer {}: {kernel} {}",
        &key[..12],
        BOOT_PACKAGES.join(" ")
    ));
    // Installing a kernel in a container: no bootloader to update, and initramfs-tools
    // must not size the initrd to the build host's hardware (MODULES=most is Debian's
    // default and holds virtio and ext4).
    let script = format!(
        "apt-get update -q\n\
         apt-get install -y -q --no-install-recommends {kernel} {}\n\
         systemctl enable systemd-networkd.service systemd-resolved.service\n\
         apt-get clean\n",
        BOOT_PACKAGES.join(" ")
    );
    let status = run_stack_script(
        &script,
        &work.join("boot-script"),
        Overlay {
            lowers: &[&base.rootfs],
            upper: &upper,
            work: &overlay_work,
            merged: &merged,
        },
        &Default::default(),
        log,
    )?;
    if !status.success() {
        bail!(
            "installing the kernel and systemd failed ({status}); apt's output is above. \
             Check `kernel` in [vm] and the stack's repositories"
        );
    }
    let _ = std::fs::remove_dir_all(&overlay_work);
    let _ = std::fs::remove_dir(&merged);
    let info = BootInfo {
        key: key.to_string(),
        base_key: base.key.clone(),
        kernel: kernel.to_string(),
        packages: BOOT_PACKAGES.iter().map(|p| p.to_string()).collect(),
        created_at: crate::store::now_rfc3339(),
    };
    std::fs::write(tmp.join("boot.json"), serde_json::to_vec_pretty(&info)?)?;
    Ok(())
}

/// Remove the boot layers whose base is no longer cached (`prune` removed it: a boot layer
/// is only ever used over its own base), skipping any a running build holds locked.
/// Returns the keys removed.
pub fn prune(paths: &Paths) -> Vec<String> {
    let root = paths.vm().join("boot");
    let mut removed = Vec::new();
    let Ok(rd) = std::fs::read_dir(&root) else {
        return removed;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".lock") {
            continue;
        }
        let base_key = std::fs::read_to_string(e.path().join("boot.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<BootInfo>(&t).ok())
            .map(|i| i.base_key);
        if base_key.is_some_and(|k| paths.bases().join(k).is_dir()) {
            continue;
        }
        let lock_path = root.join(format!("{name}.lock"));
        let free = File::create(&lock_path)
            .map(|f| f.try_lock().is_ok())
            .unwrap_or(false);
        if free && std::fs::remove_dir_all(e.path()).is_ok() {
            let _ = std::fs::remove_file(&lock_path);
            removed.push(name);
        }
    }
    removed
}

/// Remove boot layers left by dead builds (`.tmp-KEY-PID`) whose key lock is free.
pub fn clean_stale(paths: &Paths) {
    super::super::deps::clean_stale_in(&paths.vm().join("boot"));
}
