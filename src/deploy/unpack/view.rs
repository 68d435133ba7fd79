//! The merged view of a stack of cached layer trees, resolved as overlayfs resolves it
//! (top layer first; a whiteout hides the name below it; a directory merges with the
//! directories of the same name below it until one is opaque; anything else hides what
//! is below), without mounting anything. Used to check an image before it is published
//! and to build its mount-point layer.

use std::fs::{self, Metadata};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::layer::{is_opaque, is_whiteout};

/// What a path is in the merged view.
#[derive(Debug)]
pub(super) enum Node {
    /// Nothing there (never created, or whited out).
    Missing,
    /// A directory, with the attributes of its topmost copy.
    Dir(Metadata),
    /// A file, symlink or other non-directory.
    Other(Metadata),
}

/// Resolve `rel` (relative, no `..`) in the merged view of `stack` (layer trees, top
/// first).
pub(super) fn lookup(stack: &[PathBuf], rel: &Path) -> Node {
    let Some(top) = stack.first() else {
        return Node::Missing;
    };
    let mut node = match fs::symlink_metadata(top) {
        Ok(m) => Node::Dir(m),
        Err(_) => return Node::Missing,
    };
    let mut dirs: Vec<PathBuf> = stack.to_vec();
    for c in rel.components() {
        if !matches!(node, Node::Dir(_)) {
            return Node::Missing;
        }
        let mut found: Option<Node> = None;
        let mut next = Vec::new();
        for d in &dirs {
            let p = d.join(c);
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            if is_whiteout(&m) {
                break;
            }
            if !m.is_dir() {
                if found.is_none() {
                    found = Some(Node::Other(m));
                }
                break;
            }
            let opaque = is_opaque(&p);
            if found.is_none() {
                found = Some(Node::Dir(m));
            }
            next.push(p);
            if opaque {
                break;
            }
        }
        match found {
            None => return Node::Missing,
            Some(n) => {
                node = n;
                dirs = next;
            }
        }
    }
    node
}

/// Refuse directories an upper layer holds only as parents of its entries (no entry of
/// their own) where the layers below have a symlink or file: unpacking into one merged
/// tree would have gone through that symlink, and overlayfs would instead hide it behind
/// a new directory. `layers` are (digest, tree, implicit dirs), bottom first.
pub(super) fn check_implicit_dirs(layers: &[(String, PathBuf, Vec<String>)]) -> Result<()> {
    for (i, (digest, _, implicit)) in layers.iter().enumerate().skip(1) {
        let below: Vec<PathBuf> = layers[..i].iter().rev().map(|l| l.1.clone()).collect();
        for d in implicit {
            if let Node::Other(m) = lookup(&below, Path::new(d)) {
                let what = if m.file_type().is_symlink() {
                    "a symlink"
                } else {
                    "not a directory"
                };
                bail!(
                    "layer {digest} has entries under /{d}, which is {what} in the layers \
                     below; the image is unsafe"
                );
            }
        }
    }
    Ok(())
}

/// Create in `top` (the topmost, still empty layer of `stack`) every directory that
/// `mount_points` (relative) need and the merged view lacks, so a read-only root can take
/// the sandbox's mounts there. Directories on the way that exist below are copied with
/// their mode and owner (overlayfs shows the topmost copy's attributes); new ones are
/// 0755 root.
///
/// Errors: a mount point that is, or goes through, a symlink or a file in the image.
pub(super) fn make_mount_points(
    stack: &[PathBuf],
    top: &Path,
    mount_points: &[PathBuf],
) -> Result<()> {
    for rel in mount_points {
        if matches!(lookup(stack, rel), Node::Dir(_)) {
            continue;
        }
        let mut prefix = PathBuf::new();
        for c in rel.components() {
            prefix.push(c);
            let p = top.join(&prefix);
            match lookup(stack, &prefix) {
                Node::Dir(m) => {
                    if fs::symlink_metadata(&p).is_err() {
                        make_dir(&p, m.mode(), m.uid(), m.gid())?;
                    }
                }
                Node::Missing => make_dir(&p, 0o755, 0, 0)?,
                Node::Other(m) if m.file_type().is_symlink() => bail!(
                    "the mount point /{} goes through the symlink /{} in the image",
                    rel.display(),
                    prefix.display()
                ),
                Node::Other(_) => bail!(
                    "the mount point /{}: /{} is not a directory in the image",
                    rel.display(),
                    prefix.display()
                ),
            }
        }
    }
    Ok(())
}

fn make_dir(p: &Path, mode: u32, uid: u32, gid: u32) -> Result<()> {
    fs::create_dir(p).with_context(|| format!("cannot create {}", p.display()))?;
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .with_context(|| format!("cannot chown {}", p.display()))?;
    fs::set_permissions(p, fs::Permissions::from_mode(mode & 0o7777))?;
    Ok(())
}
