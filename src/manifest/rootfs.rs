//! Read-only access to a root filesystem without mounting it: a plain directory, or an
//! overlayfs pair (lower = cached base, upper = the build's changes) resolved the way the
//! kernel's overlayfs would (Documentation/filesystems/overlayfs.rst: whiteouts are
//! character devices 0/0; `trusted.overlay.opaque=y` hides the lower directory).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A root filesystem to read from.
#[derive(Debug, Clone)]
pub enum RootView {
    /// A complete tree.
    Dir(PathBuf),
    /// An overlay: `upper` shadows `lower` (itself a tree or another overlay, so a stack
    /// of layers — base, deps, app — reads as one tree).
    Overlay {
        /// The read-only view below.
        lower: Box<RootView>,
        /// The upper tree holding changes and whiteouts.
        upper: PathBuf,
    },
}

fn is_whiteout(p: &Path) -> bool {
    match std::fs::symlink_metadata(p) {
        Ok(m) => m.file_type().is_char_device() && m.rdev() == 0,
        Err(_) => false,
    }
}

fn is_opaque(p: &Path) -> bool {
    matches!(xattr::get(p, "trusted.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

impl RootView {
    /// The view of a tree `bottom` with overlay upper directories stacked on it, lowest
    /// first (e.g. the base's tree, then the deps layer's upper, then the app's).
    pub fn stacked(bottom: PathBuf, uppers: impl IntoIterator<Item = PathBuf>) -> RootView {
        uppers
            .into_iter()
            .fold(RootView::Dir(bottom), |lower, upper| RootView::Overlay {
                lower: Box::new(lower),
                upper,
            })
    }

    /// The real path holding `rel` (relative, e.g. `var/lib/dpkg/status`), or `None` if it
    /// does not exist in the view (or was deleted by a whiteout).
    pub fn resolve(&self, rel: &str) -> Option<PathBuf> {
        let rel = rel.trim_start_matches('/');
        match self {
            RootView::Dir(root) => {
                let p = root.join(rel);
                std::fs::symlink_metadata(&p).ok().map(|_| p)
            }
            RootView::Overlay { lower, upper } => {
                let up = upper.join(rel);
                if std::fs::symlink_metadata(&up).is_ok() {
                    return if is_whiteout(&up) { None } else { Some(up) };
                }
                // An ancestor in upper that is a whiteout or opaque hides the lower file.
                let mut acc = PathBuf::new();
                for part in Path::new(rel)
                    .parent()
                    .into_iter()
                    .flat_map(|p| p.components())
                {
                    acc.push(part);
                    let a = upper.join(&acc);
                    if is_whiteout(&a) || is_opaque(&a) {
                        return None;
                    }
                }
                lower.resolve(rel)
            }
        }
    }

    /// Names in directory `rel` (sorted, deduplicated), honouring whiteouts and opaque dirs.
    /// A missing directory gives an empty list.
    pub fn list(&self, rel: &str) -> Vec<String> {
        let rel = rel.trim_start_matches('/');
        let names = |dir: &Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut out = match self {
            RootView::Dir(root) => names(&root.join(rel)),
            RootView::Overlay { lower, upper } => {
                let up_dir = upper.join(rel);
                let mut v: Vec<String> = names(&up_dir)
                    .into_iter()
                    .filter(|n| !is_whiteout(&up_dir.join(n)))
                    .collect();
                let hidden = self.resolve(rel).is_none();
                if !hidden && !is_opaque(&up_dir) {
                    for n in lower.list(rel) {
                        if std::fs::symlink_metadata(up_dir.join(&n)).is_err() {
                            v.push(n);
                        }
                    }
                }
                v
            }
        };
        out.sort();
        out.dedup();
        out
    }

    /// Read a file of the view as bytes. `Ok(None)` when it does not exist.
    pub fn read(&self, rel: &str) -> std::io::Result<Option<Vec<u8>>> {
        match self.resolve(rel) {
            Some(p) => std::fs::read(p).map(Some),
            None => Ok(None),
        }
    }
}
