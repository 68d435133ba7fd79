//! The instance root of a layered image: an overlayfs of its cached layers, mounted by
//! each sandbox in its own mount namespace, between fork and exec of bubblewrap (which
//! then binds it read-only as `/`). bubblewrap 0.8 (Debian 12) has no overlay options
//! (`--overlay-src`/`--ro-overlay` came in 0.9), so drover mounts it itself, as the build
//! sandbox does for its overlay.
//!
//! The mount lives only in that namespace: propagation is made private first, so the host
//! never sees it, and the kernel drops it with the namespace's last process — no mount is
//! left on the host after a `kill -9` of anything. The overlay has no upper layer, so it
//! is read-only whatever bubblewrap does; it is also `nosuid,nodev` (as bubblewrap's own
//! binds are) with `redirect_dir=nofollow,metacopy=off` (no layer may point elsewhere).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;

use anyhow::{bail, Result};

use super::UnpackedImage;

/// Longest overlay option string the kernel takes through mount(2): one page.
const MAX_OPTIONS: usize = 4000;

/// The overlay mount of one image, ready to run in a child process.
#[derive(Debug, Clone)]
pub struct RootMount {
    target: CString,
    options: CString,
}

impl RootMount {
    /// The mount for `image`, or `None` when its root is a plain directory (no layers).
    ///
    /// Errors: a layer path overlayfs options cannot express (`,`, `:`, `\`) or too many
    /// layers for one option string.
    pub fn of(image: &UnpackedImage) -> Result<Option<RootMount>> {
        if image.layers.is_empty() {
            return Ok(None);
        }
        for p in image.layers.iter().chain([&image.rootfs]) {
            if p.as_os_str().as_bytes().iter().any(|b| b",:\\".contains(b)) {
                bail!(
                    "path {} contains ',', ':' or '\\', which overlayfs cannot mount; use a \
                     --state directory without them",
                    p.display()
                );
            }
        }
        let lower: Vec<String> = image
            .layers
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let options = format!(
            "lowerdir={},redirect_dir=nofollow,metacopy=off",
            lower.join(":")
        );
        if options.len() > MAX_OPTIONS {
            bail!(
                "the image {} has too many layers for one overlay mount ({} bytes of options)",
                image.digest,
                options.len()
            );
        }
        Ok(Some(RootMount {
            target: CString::new(image.rootfs.as_os_str().as_bytes())?,
            options: CString::new(options)?,
        }))
    }

    /// In the child, between fork and exec: a private mount namespace, then the overlay on
    /// the image's root directory. Only raw syscalls on pre-built C strings
    /// (async-signal-safe).
    fn mount_in_child(&self) -> std::io::Result<()> {
        let check = |rc: i32| {
            if rc != 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        private_mount_namespace()?;
        // SAFETY: plain syscalls with valid NUL-terminated strings or null pointers.
        unsafe {
            check(libc::mount(
                c"overlay".as_ptr(),
                self.target.as_ptr(),
                c"overlay".as_ptr(),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                self.options.as_ptr().cast(),
            ))
        }
    }
}

/// In a child between fork and exec: unshare the mount namespace and make every mount in
/// it private, so what the child mounts next never reaches the host. Only raw syscalls
/// (async-signal-safe). Errors: the errno of `unshare` or `mount`.
pub fn private_mount_namespace() -> std::io::Result<()> {
    let check = |rc: i32| {
        if rc != 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: plain syscalls with a valid NUL-terminated string or null pointers.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))
    }
}

/// Make `cmd` (bubblewrap for `image`) mount the image's overlay in its own mount
/// namespace before it runs; nothing for a plain root directory.
///
/// Errors: as [`RootMount::of`]. A mount that fails in the child makes the spawn fail
/// with its errno.
pub fn prepare(cmd: &mut std::process::Command, image: &UnpackedImage) -> Result<()> {
    if let Some(m) = RootMount::of(image)? {
        // SAFETY: mount_in_child only makes async-signal-safe syscalls.
        unsafe {
            cmd.pre_exec(move || m.mount_in_child());
        }
    }
    Ok(())
}
