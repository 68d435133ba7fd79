//! Assembling a bootable GPT disk from directory trees with Debian's tools, without loop
//! devices or mounts on the host: an EFI system partition (FAT32, `mkfs.vfat` + `mcopy`
//! from mtools) holding systemd-boot (as the removable-media path `\EFI\BOOT\BOOTX64.EFI`),
//! the kernel, the initrd and a loader entry; the root filesystem made by `mkfs.ext4 -d`
//! from the image's layers (an overlayfs mounted only in a private mount namespace); both
//! written at their offsets of a sparse file partitioned by `sfdisk`; `qemu-img convert`
//! for qcow2. UEFI Specification 2.10 §13.3.1.3 (removable media boot path); Discoverable
//! Partitions Specification (root partition type for x86-64).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::super::sandbox::{private_mounts, run_logged, BuildLog, Overlay};
use super::system::ROOT_LABEL;

/// The EFI system partition's size, MiB (FAT32 needs at least ~33 MiB; kernel and initrd
/// take ~30 MiB).
pub const ESP_MIB: u64 = 128;
/// GPT and alignment: 1 MiB before the first partition and 1 MiB for the backup table.
const GPT_MIB: u64 = 2;
/// The Discoverable Partitions Specification's root partition type for x86-64.
const ROOT_X86_64: &str = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";

/// What the ESP holds, found in the boot layer.
pub struct BootFiles {
    /// `/boot/vmlinuz-VERSION`.
    pub kernel: PathBuf,
    /// `/boot/initrd.img-VERSION`.
    pub initrd: PathBuf,
    /// systemd-boot's `systemd-bootx64.efi`.
    pub loader: PathBuf,
    /// The kernel version (`VERSION`).
    pub version: String,
}

/// Find the kernel, its initrd and systemd-boot in `trees` (the boot layer's, then the
/// base's: a stack may list the kernel in `packages`), taking the newest kernel of the
/// first tree that has one (Debian version order: `6.1.0-10` after `6.1.0-9`).
///
/// Errors: any of the three missing (the boot layer is incomplete).
pub fn boot_files(trees: &[&Path]) -> Result<BootFiles> {
    let kernels = |boot: &Path| -> Vec<String> {
        std::fs::read_dir(boot)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("vmlinuz-"))
                    .map(str::to_string)
            })
            .collect()
    };
    let Some((boot, mut versions)) = trees
        .iter()
        .map(|t| (t.join("boot"), kernels(&t.join("boot"))))
        .find(|(_, v)| !v.is_empty())
    else {
        bail!("the image has no kernel in /boot (vmlinuz-*): the boot layer is incomplete");
    };
    versions.sort_by(|a, b| match (a.parse::<debversion::Version>(), b.parse()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    });
    let version = versions.pop().unwrap_or_default();
    let Some(initrd) = trees
        .iter()
        .map(|t| t.join(format!("boot/initrd.img-{version}")))
        .find(|p| p.is_file())
    else {
        bail!("the image has no initrd for kernel {version} (initramfs-tools did not run)");
    };
    let rel = "usr/lib/systemd/boot/efi/systemd-bootx64.efi";
    let Some(loader) = trees.iter().map(|t| t.join(rel)).find(|p| p.is_file()) else {
        bail!("the image has no systemd-boot EFI binary (/{rel})");
    };
    Ok(BootFiles {
        kernel: boot.join(format!("vmlinuz-{version}")),
        initrd,
        loader,
        version,
    })
}

/// Disk usage in bytes of the trees (`du -sx -B1`, summed): what the root filesystem must
/// hold, counted in blocks (an overestimate where layers overlap).
pub fn tree_bytes(trees: &[&Path]) -> Result<u64> {
    du_sum(trees, "-B1")
}

/// The number of inodes (files, directories, links) of the trees (`du -sx --inodes`,
/// summed): ext4's default of one inode per 16 KiB runs out on trees of small files
/// (`node_modules`, a venv).
pub fn tree_inodes(trees: &[&Path]) -> Result<u64> {
    du_sum(trees, "--inodes")
}

fn du_sum(trees: &[&Path], unit: &str) -> Result<u64> {
    let mut total = 0;
    for t in trees {
        let out = Command::new("du")
            .args(["-sx", unit])
            .arg(t)
            .stderr(Stdio::null())
            .output()
            .context("cannot run du")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let n: u64 = text
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("du gave no size for {}", t.display()))?;
        total += n;
    }
    Ok(total)
}

/// The layout of one disk, sizes in MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The root partition.
    pub root_mib: u64,
}

impl Layout {
    /// The whole disk, MiB.
    pub fn disk_mib(self) -> u64 {
        GPT_MIB + ESP_MIB + self.root_mib
    }

    /// The root partition that `disk_bytes` leaves, or `None` below the ESP and tables.
    pub fn for_disk(disk_bytes: u64) -> Option<Layout> {
        let mib = disk_bytes.div_ceil(1 << 20);
        mib.checked_sub(GPT_MIB + ESP_MIB)
            .filter(|r| *r > 0)
            .map(|root_mib| Layout { root_mib })
    }

    /// The smallest root filesystem for `tree` bytes: the tree plus 15 % and 64 MiB for
    /// ext4's inode tables and journal.
    pub fn min_root_mib(tree: u64) -> u64 {
        (tree + tree / 100 * 15).div_ceil(1 << 20) + 64
    }

    /// The default: the tree plus 40 % and 256 MiB of room for the logs and the app.
    pub fn default_for(tree: u64) -> Layout {
        Layout {
            root_mib: (tree + tree / 100 * 40).div_ceil(1 << 20) + 256,
        }
    }
}

fn run(cmd: Command, what: &str, log: &mut BuildLog<'_>) -> Result<()> {
    let status = run_logged(cmd, log).with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status}); its output is above");
    }
    Ok(())
}

/// Everything [`write_disk`] needs.
pub struct DiskInput<'a> {
    /// The image's trees, top first (stack files, app, deps, boot, base).
    pub lowers: &'a [&'a Path],
    /// The kernel, initrd and loader.
    pub boot: &'a BootFiles,
    /// Sizes.
    pub layout: Layout,
    /// Inodes the tree needs ([`tree_inodes`]); the filesystem gets 20 % and 16384 more.
    pub inodes: u64,
    /// The root partition's GPT UUID (the kernel finds its root by it).
    pub part_uuid: &'a str,
    /// A scratch directory (removed by the caller).
    pub scratch: &'a Path,
}

/// Write the raw disk image `out` (sparse).
///
/// Errors: a tool missing (`mkfs.vfat`, `mcopy`, `mkfs.ext4`, `sfdisk`: the message says
/// which package) or failing (its output is in the log).
pub fn write_disk(input: &DiskInput<'_>, out: &Path, log: &mut BuildLog<'_>) -> Result<()> {
    for (tool, pkg) in [
        ("mkfs.vfat", "dosfstools"),
        ("mcopy", "mtools"),
        ("mkfs.ext4", "e2fsprogs"),
        ("sfdisk", "fdisk"),
    ] {
        if !on_path(tool) {
            bail!("`{tool}` is not installed; install it with `apt-get install {pkg}`");
        }
    }
    let s = input.scratch;
    // The ESP: loader, kernel, initrd and one entry, no menu.
    let esp_dir = s.join("esp");
    for d in ["EFI/BOOT", "loader/entries"] {
        std::fs::create_dir_all(esp_dir.join(d))?;
    }
    std::fs::copy(&input.boot.loader, esp_dir.join("EFI/BOOT/BOOTX64.EFI"))?;
    std::fs::copy(&input.boot.kernel, esp_dir.join("vmlinuz"))?;
    std::fs::copy(&input.boot.initrd, esp_dir.join("initrd.img"))?;
    std::fs::write(
        esp_dir.join("loader/loader.conf"),
        "default drover.conf\ntimeout 0\nconsole-mode keep\n",
    )?;
    std::fs::write(
        esp_dir.join("loader/entries/drover.conf"),
        format!(
            "title drover (kernel {})\nlinux /vmlinuz\ninitrd /initrd.img\n\
             options root=PARTUUID={} rw console=tty0 console=ttyS0,115200 panic=10\n",
            input.boot.version, input.part_uuid
        ),
    )?;
    let esp = s.join("esp.img");
    let mut c = Command::new("mkfs.vfat");
    c.args(["-F", "32", "-n", "ESP", "-C"])
        .arg(&esp)
        .arg((ESP_MIB * 1024).to_string());
    run(c, "mkfs.vfat", log)?;
    let mut c = Command::new("mcopy");
    c.arg("-s").arg("-i").arg(&esp);
    for e in std::fs::read_dir(&esp_dir)? {
        c.arg(e?.path());
    }
    c.arg("::/");
    run(c, "mcopy", log)?;

    // The root filesystem, from the layers merged in a private mount namespace.
    let rootfs = s.join("root.img");
    let (upper, work, merged) = (s.join("upper"), s.join("work"), s.join("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d)?;
    }
    let mut c = Command::new("mkfs.ext4");
    let inodes = input.inodes + input.inodes / 5 + 16384;
    c.args(["-q", "-F", "-L", ROOT_LABEL, "-N"])
        .arg(inodes.to_string())
        .arg("-d")
        .arg(&merged)
        .arg(&rootfs)
        .arg(format!("{}M", input.layout.root_mib));
    private_mounts(
        &mut c,
        Some(Overlay {
            lowers: input.lowers,
            upper: &upper,
            work: &work,
            merged: &merged,
        }),
    )?;
    let t = std::time::Instant::now();
    run(c, "mkfs.ext4 -d", log)?;
    log.say(&format!(
        "root filesystem written in {:.1} s",
        t.elapsed().as_secs_f64()
    ));

    // The GPT and the two filesystems at their offsets.
    let disk =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    disk.set_len(input.layout.disk_mib() << 20)?;
    drop(disk);
    let table = format!(
        "label: gpt\nunit: sectors\nfirst-lba: 2048\n\
         start=2048, size={}, type=uefi, name=\"esp\"\n\
         start={}, size={}, type={ROOT_X86_64}, uuid={}, name=\"root\"\n",
        ESP_MIB * 2048,
        2048 + ESP_MIB * 2048,
        input.layout.root_mib * 2048,
        input.part_uuid
    );
    let mut child = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run sfdisk")?;
    std::io::Write::write_all(
        child.stdin.as_mut().context("sfdisk has no stdin")?,
        table.as_bytes(),
    )?;
    let done = child.wait_with_output()?;
    if !done.status.success() {
        bail!(
            "sfdisk failed ({}): {}",
            done.status,
            String::from_utf8_lossy(&done.stderr).trim()
        );
    }
    copy_at(&esp, out, 1 << 20)?;
    copy_at(&rootfs, out, (1 + ESP_MIB) << 20)?;
    Ok(())
}

/// Copy the file `from` into `to` at byte `offset`, leaving runs of zeros as holes.
fn copy_at(from: &Path, to: &Path, offset: u64) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::OpenOptions::new().write(true).open(to)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = offset;
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            dst.seek(SeekFrom::Start(pos))?;
            dst.write_all(&buf[..n])?;
        }
        pos += n as u64;
    }
    dst.sync_all()?;
    Ok(())
}

/// Convert the raw disk `raw` to a compressed qcow2 at `out` (`qemu-img convert -c`).
///
/// Errors: `qemu-img` missing (package qemu-utils) or failing.
pub fn to_qcow2(raw: &Path, out: &Path, log: &mut BuildLog<'_>) -> Result<()> {
    if !on_path("qemu-img") {
        bail!("`qemu-img` is not installed; install it with `apt-get install qemu-utils`");
    }
    let mut c = Command::new("qemu-img");
    c.args(["convert", "-q", "-c", "-f", "raw", "-O", "qcow2"])
        .arg(raw)
        .arg(out);
    run(c, "qemu-img convert", log)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .any(|d| d.join(tool).is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_leave_room_for_the_esp_and_the_tables() {
        assert_eq!(Layout::for_disk(2 << 30).unwrap().root_mib, 2048 - 130);
        assert_eq!(Layout::for_disk(100 << 20), None);
        let tree = 400 << 20;
        assert_eq!(Layout::min_root_mib(tree), 460 + 64);
        assert_eq!(Layout::default_for(tree).root_mib, 560 + 256);
        assert_eq!(Layout::default_for(tree).disk_mib(), 560 + 256 + 130);
    }
}
