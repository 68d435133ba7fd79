//! The `[vm]` table: the bootable disk image made beside the OCI image (issue #15).

use super::super::parse::is_valid_package_name;
use super::super::toml_check::{Checker, Field, Tbl};
use super::super::{Vm, VmFormat};
use super::app::size_field;

const VM_KEYS: &[&str] = &["enabled", "size", "format", "kernel"];

/// Smallest disk accepted: a Debian tree with a kernel and systemd needs several hundred
/// MiB, so anything below this is a typo (a missing unit), not a plan.
pub(in crate::stack) const MIN_VM_SIZE: u64 = 256 << 20;
/// Largest disk accepted (the image is written sparse, but qcow2 conversion and the
/// filesystem still scale with it).
const MAX_VM_SIZE: u64 = 2 << 40;

/// `[vm]`: `enabled` (bool), `size` (bytes or a size string, 256 MiB to 2 TiB), `format`
/// (`"qcow2"` or `"raw"`) and `kernel` (a Debian package name).
pub(in crate::stack) fn validate_vm(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Vm {
    let mut vm = Vm::default();
    let Some((t, _)) = chk.table(root, "vm", "[vm]", "[vm]").present() else {
        return vm;
    };
    chk.check_keys(&t, VM_KEYS);
    if let Some((b, _)) = chk.boolean(&t, "enabled", "enabled = true").present() {
        vm.enabled = b;
    }
    let example = "size = \"2GiB\"";
    let hint = "give the disk's size with a unit, e.g. `size = \"2GiB\"`, or remove the key \
                (the tree's size plus room)";
    if let Field::Present(n, span) = size_field(chk, &t, ("[vm]", "size"), example, hint) {
        if n < MIN_VM_SIZE {
            chk.error(
                &span,
                format!(
                    "`size` in [vm] is {}, below the {} a Debian system with a kernel needs",
                    crate::text::format_size(n),
                    crate::text::format_size(MIN_VM_SIZE)
                ),
                "write a unit (`size = \"2GiB\"`, not `size = 2`), or remove the key",
            );
        } else if n > MAX_VM_SIZE {
            chk.error(
                &span,
                format!(
                    "`size` in [vm] is {}, above the {} drover writes",
                    crate::text::format_size(n),
                    crate::text::format_size(MAX_VM_SIZE)
                ),
                "give the system disk a few GiB and put the data on its own disk ([data])",
            );
        } else {
            vm.size = Some(n);
        }
    }
    if let Some((f, span)) = chk.string(&t, "format", "format = \"qcow2\"").present() {
        match f.as_str() {
            "qcow2" => vm.format = VmFormat::Qcow2,
            "raw" => vm.format = VmFormat::Raw,
            _ => chk.error(
                &span,
                format!("unknown disk format `{f}` in [vm]"),
                "use \"qcow2\" (QEMU, Proxmox, OpenStack) or \"raw\" (AWS import-image, \
                 DigitalOcean custom images)",
            ),
        }
    }
    let example = "kernel = \"linux-image-cloud-amd64\"";
    if let Some((k, span)) = chk.string(&t, "kernel", example).present() {
        if is_valid_package_name(&k) {
            vm.kernel = Some(k);
        } else {
            chk.error(
                &span,
                format!("invalid kernel package name `{k}` in [vm]"),
                format!(
                    "give a Debian kernel package, e.g. `{example}` (or `linux-image-amd64` \
                     for the full kernel)"
                ),
            );
        }
    }
    vm
}
