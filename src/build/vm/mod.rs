//! VM images (issue #15): the same stack as a bootable UEFI disk (qcow2 or raw) for
//! AMIs, DigitalOcean custom images and Proxmox, published beside the OCI image as
//! `STATE/images/STACK/BUILD.qcow2` (or `.raw`).
//!
//! The disk's root filesystem is the OCI image's layers (base, deps, app) plus two more:
//! the **boot layer** ([`boot`]: the kernel, systemd as init, udev, networkd, cached per
//! base) and the stack's **system files** ([`system`]: fstab, the `drover-app` unit that
//! runs the entrypoint, the `drover-seed` unit that reads secrets from a NoCloud seed into
//! RAM at boot). Secrets are never baked: they come from the seed (`cloud-localds
//! seed.img CONFIG/secrets/NAME.env`). `[data]` is a second disk whose filesystem is
//! labelled `drover-data`, mounted at the data path, so a replaced VM keeps its data.
//! Assembly is in [`disk`]: no loop devices, no mounts on the host.

pub mod boot;
pub mod disk;
pub mod system;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::base::Base;
use super::sandbox::BuildLog;
use crate::manifest::Component;
use crate::paths::Paths;
use crate::stack::{Stack, VmFormat};

/// What a build's VM image is: the `vm` object of `drover build --json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VmImage {
    /// Where it was published.
    pub path: String,
    /// `qcow2` or `raw`.
    pub format: String,
    /// `sha256:…` of the file.
    pub digest: String,
    /// The file's size in bytes (a raw image is sparse: this is its length).
    pub size: u64,
    /// The disk's virtual size in bytes.
    pub disk_size: u64,
    /// The kernel package and version it boots.
    pub kernel: String,
    /// The packages the boot layer added to the OCI image's, `NAME VERSION` sorted.
    pub boot_packages: Vec<String>,
    /// The same packages as components (source package, suite, mirror), for the VM
    /// image's SBOM and update check; empty for an image made before they were kept.
    #[serde(default)]
    pub boot_components: Vec<Component>,
    /// The boot layer's key and whether it came from the cache.
    pub boot_key: String,
    /// Whether the boot layer came from the cache.
    pub boot_cached: bool,
    /// How long the VM step took, seconds.
    pub seconds: f64,
}

impl VmImage {
    /// Read build `build_id`'s VM image from the store (`None`: the build made none).
    ///
    /// Errors: the store failing, or a `vm` column that is not a `VmImage`'s JSON.
    pub fn of_build(store: &crate::store::Store, build_id: i64) -> Result<Option<VmImage>> {
        match store.build_vm(build_id)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .with_context(|| format!("build {build_id}'s VM image record is unreadable")),
        }
    }

    /// Every package of the VM image: the OCI image's `image` components, those a boot
    /// package replaced (same name and architecture, another version) left out, and the
    /// boot layer's, sorted by name and architecture.
    pub fn packages(&self, image: &[Component]) -> Vec<Component> {
        let replaced = |c: &Component| {
            self.boot_components
                .iter()
                .any(|b| b.name == c.name && b.arch == c.arch)
        };
        let mut all: Vec<Component> = image
            .iter()
            .filter(|c| !replaced(c))
            .chain(&self.boot_components)
            .cloned()
            .collect();
        all.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        all
    }
}

/// The kernel package a stack's VM boots: `[vm] kernel`, else Debian's cloud kernel for
/// `arch` (`linux-image-cloud-amd64`).
///
/// Errors: no default for `arch` (VM images are made for amd64 only: the loader is
/// systemd-boot's x64 binary and the root partition type is x86-64's).
pub fn kernel_for(stack: &Stack, arch: &str) -> Result<String> {
    if arch != "amd64" {
        bail!(
            "VM images are made for amd64 only, and this build is for {arch}: remove [vm] \
             enabled (or --vm) from {}",
            stack.file.display()
        );
    }
    Ok(stack
        .vm
        .kernel
        .clone()
        .unwrap_or_else(|| format!("linux-image-cloud-{arch}")))
}

/// Refuse a kernel package the base's Packages indexes (its apt lists, as resolved for
/// the lock) do not hold for `arch`, before anything is written.
///
/// Errors: the package is in no `*_Packages` list of the base tree; the message names
/// `kernel` in `[vm]` of the stack file and what to write instead.
pub fn check_kernel(stack: &Stack, base_rootfs: &Path, kernel: &str, arch: &str) -> Result<()> {
    let lists = base_rootfs.join("var/lib/apt/lists");
    let needle = format!("\nPackage: {kernel}\n");
    let indexes: Vec<PathBuf> = std::fs::read_dir(&lists)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
        .map(|e| e.path())
        .collect();
    if indexes.is_empty() {
        bail!(
            "the base of {} has no Packages indexes (it was made offline from the .deb \
             cache), so the kernel cannot be looked up and the boot layer cannot be \
             installed; nothing was written. Build once with the network \
             (`drover build {} --vm`)",
            stack.name,
            stack.name
        );
    }
    let found = indexes.iter().any(|p| {
        std::fs::read_to_string(p)
            .map(|t| format!("\n{t}").contains(&needle))
            .unwrap_or(false)
    });
    if !found {
        bail!(
            "`kernel` in [vm] of {}: no package `{kernel}` in the Packages indexes of the \
             stack's repositories for {arch}, so the VM image could not boot; nothing was \
             written. Use `kernel = \"linux-image-cloud-{arch}\"` (or `linux-image-{arch}`), \
             or remove the key",
            stack.file.display()
        );
    }
    Ok(())
}

/// A stable GPT partition UUID for one build (the same build always gets the same).
fn part_uuid(stack: &str, build_id: i64) -> String {
    crate::manifest::sbom::uuid_from(&format!("drover-vm-root\0{stack}\0{build_id}"))
}

/// The layers of the image above the base, top first: the app layer's upper tree, then
/// the deps layer's when the stack has one.
pub struct ImageTrees<'a> {
    /// The app layer's upper tree.
    pub app: &'a Path,
    /// The deps layer's upper tree.
    pub deps: Option<&'a Path>,
}

/// Make the VM image of build `build_id` of `stack` from `base` and the image's `trees`,
/// in the build's directory `work`. Returns where the finished file is in `work` and its
/// description, whose `path` is where [`publish`] puts it
/// (`STATE/images/STACK/BUILD.FORMAT`). `oci_packages` are the OCI image's `NAME VERSION`
/// pairs (to tell the boot packages).
///
/// Errors: those of [`kernel_for`], [`check_kernel`], [`boot::ensure`] and
/// [`disk::write_disk`]; `[vm] size` below what the tree needs (refused before the disk
/// is written, naming the key). Nothing outside `work` is written but the boot layer.
#[allow(clippy::too_many_arguments)]
pub fn make(
    paths: &Paths,
    stack: &Stack,
    build_id: i64,
    arch: &str,
    base: &Base,
    trees: ImageTrees<'_>,
    oci: &[Component],
    refresh: bool,
    work: &Path,
    log: &mut BuildLog<'_>,
) -> Result<(PathBuf, VmImage)> {
    let t = Instant::now();
    let kernel = kernel_for(stack, arch)?;
    check_kernel(stack, &base.rootfs, &kernel, arch)?;
    system::check(stack)?;
    let boot = boot::ensure(paths, base, &kernel, refresh, work, log)?;
    log.check_cancel()?;
    let files = disk::boot_files(&[&boot.upper, &base.rootfs])?;
    let sys = work.join("vm-system");
    std::fs::create_dir_all(&sys)?;
    system::write_tree(stack, &sys)?;
    let above: Vec<&Path> = [Some(trees.app), trees.deps]
        .into_iter()
        .flatten()
        .collect();
    system::merge_over_boot(&sys, &above, &boot.upper)?;

    let mut lowers: Vec<&Path> = vec![&sys, trees.app];
    lowers.extend(trees.deps);
    lowers.push(&boot.upper);
    lowers.push(&base.rootfs);
    let inodes = disk::tree_inodes(&lowers)?;
    // The inode tables (256 bytes an inode, with mkfs's 20 % more) count as tree.
    let tree = disk::tree_bytes(&lowers)? + inodes * 310;
    let min = disk::Layout::min_root_mib(tree);
    let layout = match stack.vm.size {
        None => disk::Layout::default_for(tree),
        Some(size) => match disk::Layout::for_disk(size).filter(|l| l.root_mib >= min) {
            Some(l) => l,
            None => bail!(
                "`size` in [vm] of {} is {}, but the image's tree takes {} and the disk \
                 needs at least {} MiB (the root filesystem plus the {} MiB EFI partition); \
                 nothing was written. Raise it (e.g. `size = \"{}MiB\"`) or remove the key",
                stack.file.display(),
                crate::text::format_size(size),
                crate::text::format_size(tree),
                min + disk::ESP_MIB + 2,
                disk::ESP_MIB,
                (min + disk::ESP_MIB + 2).div_ceil(256) * 256
            ),
        },
    };
    log.say(&format!(
        "VM disk: {} MiB ({} MiB root filesystem for a {} tree, {} MiB EFI partition), \
         kernel {}",
        layout.disk_mib(),
        layout.root_mib,
        crate::text::format_size(tree),
        disk::ESP_MIB,
        files.version
    ));
    let scratch = work.join("vm-scratch");
    std::fs::create_dir_all(&scratch)?;
    let raw = work.join("vm.raw");
    disk::write_disk(
        &disk::DiskInput {
            lowers: &lowers,
            boot: &files,
            layout,
            inodes,
            part_uuid: &part_uuid(&stack.name, build_id),
            scratch: &scratch,
        },
        &raw,
        log,
    )?;
    let _ = std::fs::remove_dir_all(&scratch);
    log.check_cancel()?;
    let format = stack.vm.format;
    let ready: PathBuf = match format {
        VmFormat::Raw => raw.clone(),
        VmFormat::Qcow2 => {
            let q = work.join("vm.qcow2");
            let t = Instant::now();
            disk::to_qcow2(&raw, &q, log)?;
            log.say(&format!(
                "converted to compressed qcow2 in {:.1} s",
                t.elapsed().as_secs_f64()
            ));
            let _ = std::fs::remove_file(&raw);
            q
        }
    };
    let digest = file_digest(&ready)?;
    let size = std::fs::metadata(&ready)?.len();
    let boot_components = boot_components(&boot.upper, &base.rootfs, oci, &stack.base.sources())?;
    let boot_packages = boot_components
        .iter()
        .map(|c| format!("{} {}", c.name, c.version))
        .collect();
    let published = paths
        .images()
        .join(&stack.name)
        .join(format!("{build_id}.{}", format.as_str()));
    let image = VmImage {
        path: published.display().to_string(),
        format: format.as_str().to_string(),
        digest,
        size,
        disk_size: layout.disk_mib() << 20,
        kernel: format!("{kernel} {}", files.version),
        boot_packages,
        boot_components,
        boot_key: boot.key.clone(),
        boot_cached: boot.cached,
        seconds: t.elapsed().as_secs_f64(),
    };
    log.say(&format!(
        "VM image ready ({}, {} bytes, {} boot package(s)) in {:.1} s",
        image.format,
        image.size,
        image.boot_packages.len(),
        image.seconds
    ));
    Ok((ready, image))
}

/// Move the finished file `ready` to `image.path` (same filesystem: one rename).
///
/// Errors: the rename failing.
pub fn publish(ready: &Path, image: &VmImage) -> Result<()> {
    let to = Path::new(&image.path);
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::rename(ready, to).with_context(|| format!("cannot publish {}", to.display()))
}

/// The packages of the base with the boot layer over it that the OCI image does not have
/// (or has at another version), with their origins from the tree's apt lists for
/// `sources`, sorted by name.
fn boot_components(
    boot_upper: &Path,
    base_rootfs: &Path,
    oci: &[Component],
    sources: &[crate::stack::AptSource],
) -> Result<Vec<Component>> {
    let view = crate::manifest::rootfs::RootView::stacked(
        base_rootfs.to_path_buf(),
        [boot_upper.to_path_buf()],
    );
    let mut out: Vec<Component> = crate::manifest::capture(&view, sources)?
        .into_iter()
        .filter(|p| {
            !oci.iter()
                .any(|c| c.name == p.name && c.arch == p.arch && c.version == p.version)
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    Ok(out)
}

fn file_digest(p: &Path) -> Result<String> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::manifest::test_component as comp;

    #[test]
    fn an_image_recorded_before_boot_components_still_reads() {
        let old = r#"{"path":"/s/1.qcow2","format":"qcow2","digest":"sha256:00","size":1,
            "disk_size":2,"kernel":"k 1","boot_packages":["systemd 252"],"boot_key":"x",
            "boot_cached":false,"seconds":1.5}"#;
        let v: VmImage = serde_json::from_str(old).unwrap();
        assert!(v.boot_components.is_empty());
        assert_eq!(v.boot_packages, vec!["systemd 252".to_string()]);
    }

    #[test]
    fn vm_packages_are_the_image_s_with_the_boot_layer_s_over_them() {
        let v = VmImage {
            path: String::new(),
            format: "raw".into(),
            digest: String::new(),
            size: 0,
            disk_size: 0,
            kernel: String::new(),
            boot_packages: Vec::new(),
            boot_components: vec![comp("systemd", "252"), comp("libc6", "2.36-9+deb12u13")],
            boot_key: String::new(),
            boot_cached: true,
            seconds: 0.0,
        };
        let image = [comp("libc6", "2.36-9+deb12u7"), comp("bash", "5.2")];
        let all: Vec<String> = v
            .packages(&image)
            .iter()
            .map(|c| format!("{} {}", c.name, c.version))
            .collect();
        assert_eq!(all, ["bash 5.2", "libc6 2.36-9+deb12u13", "systemd 252"]);
    }

    #[test]
    fn partition_uuids_are_stable_version_4_uuids() {
        let a = part_uuid("hello", 3);
        assert_eq!(a, part_uuid("hello", 3));
        assert_ne!(a, part_uuid("hello", 4));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }
}
