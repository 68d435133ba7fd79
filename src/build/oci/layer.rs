//! Directory tree → gzip tar layer blob (OCI image-spec `layer.md`).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use flate2::{Compression, GzBuilder};
use tar::EntryType;

use super::tarw::{append_entry, EntryMeta, ExactReader, HashWriter};
use super::{LayerBlob, LayerMode};

/// OCI whiteout prefix (`.wh.NAME` deletes NAME from lower layers).
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// OCI opaque whiteout: hides everything lower layers have in the directory.
const OPAQUE_WHITEOUT: &[u8] = b".wh..wh..opq";
/// The only xattr carried into layers (file capabilities, e.g. ping's `cap_net_raw`).
const CAPABILITY_XATTR: &str = "security.capability";
/// Overlay marks opaque directories with one of these set to `y` (`user.` with `userxattr`).
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];
/// Overlay features whose upper dirs are not self-contained changesets.
const UNSUPPORTED_OVERLAY_XATTRS: [(&str, &str); 4] = [
    ("trusted.overlay.metacopy", "metacopy"),
    ("user.overlay.metacopy", "metacopy"),
    ("trusted.overlay.redirect", "redirect_dir"),
    ("user.overlay.redirect", "redirect_dir"),
];

pub(super) fn write_layer(
    root: &Path,
    mode: LayerMode,
    exclude: &[&str],
    out: &Path,
) -> Result<LayerBlob> {
    let excludes = normalize_excludes(exclude)?;
    let root_meta = fs::symlink_metadata(root)
        .with_context(|| format!("reading layer root {}", root.display()))?;
    if !root_meta.is_dir() {
        bail!("layer root {} is not a directory", root.display());
    }

    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)
        .with_context(|| format!("creating layer blob {}", out.display()))?;
    let compressed = HashWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let gz = GzBuilder::new().write(compressed, Compression::default());
    let mut builder = tar::Builder::new(HashWriter::new(gz));

    let mut walker = Walker {
        root,
        mode,
        excludes,
        links: HashMap::new(),
    };
    walker.walk(&mut builder)?;

    let write_ctx = || format!("writing layer blob {}", out.display());
    let uncompressed = builder.into_inner().with_context(write_ctx)?;
    let (gz, diff_id, _) = uncompressed.finish();
    let compressed = gz.finish().with_context(write_ctx)?;
    let (buffered, digest, size) = compressed.finish();
    let file = buffered
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(write_ctx)?;
    file.sync_all()
        .with_context(|| format!("syncing layer blob {}", out.display()))?;

    Ok(LayerBlob {
        digest,
        diff_id,
        size,
        path: out.to_path_buf(),
    })
}

/// Relative exclude paths as archive path bytes (`a/b`, no leading `./` or `/`, no trailing
/// `/`). `.` or `/` means the whole tree. `..` is refused.
fn normalize_excludes(exclude: &[&str]) -> Result<HashSet<Vec<u8>>> {
    let mut set = HashSet::new();
    for raw in exclude {
        let mut parts: Vec<&[u8]> = Vec::new();
        for c in Path::new(raw).components() {
            match c {
                Component::Normal(p) => parts.push(p.as_bytes()),
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    bail!("exclude path {raw:?} must not contain `..`")
                }
            }
        }
        set.insert(parts.join(&b'/'));
    }
    Ok(set)
}

struct Walker<'a> {
    root: &'a Path,
    mode: LayerMode,
    excludes: HashSet<Vec<u8>>,
    /// (st_dev, st_ino) → archive path of the first copy written, for hard links.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl Walker<'_> {
    fn walk<W: Write>(&mut self, b: &mut tar::Builder<W>) -> Result<()> {
        if self.excludes.contains(&Vec::new()) {
            return Ok(()); // the whole tree is excluded
        }
        // Depth-first pre-order with an explicit stack (no recursion limit on deep trees);
        // children are pushed in reverse so they pop in ascending byte order.
        let mut stack = self.children(self.root, b"")?;
        stack.reverse();
        while let Some(rel) = stack.pop() {
            let abs = self.abs(&rel);
            let meta = fs::symlink_metadata(&abs)
                .with_context(|| format!("reading metadata of {}", abs.display()))?;
            let excluded = self.excludes.contains(&rel);
            let ctx = || format!("adding {} to layer", abs.display());
            if meta.is_dir() {
                let descend = self
                    .add_dir(b, &rel, &abs, &meta, excluded)
                    .with_context(ctx)?;
                if descend {
                    let mut kids = self.children(&abs, &rel)?;
                    kids.reverse();
                    stack.extend(kids);
                }
            } else if !excluded {
                self.add_non_dir(b, &rel, &abs, &meta).with_context(ctx)?;
            }
        }
        Ok(())
    }

    fn abs(&self, rel: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel))
    }

    /// Child archive paths of directory `abs` (archive path `rel`), sorted by name bytes.
    fn children(&self, abs: &Path, rel: &[u8]) -> Result<Vec<Vec<u8>>> {
        let ctx = || format!("listing directory {}", abs.display());
        let mut names = Vec::new();
        for entry in fs::read_dir(abs).with_context(ctx)? {
            names.push(entry.with_context(ctx)?.file_name().into_vec());
        }
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| {
                if rel.is_empty() {
                    name
                } else {
                    let mut p = Vec::with_capacity(rel.len() + 1 + name.len());
                    p.extend_from_slice(rel);
                    p.push(b'/');
                    p.extend_from_slice(&name);
                    p
                }
            })
            .collect())
    }

    /// Write a directory entry (and, for opaque overlay dirs, the opaque whiteout). Returns
    /// whether to descend into it.
    fn add_dir<W: Write>(
        &mut self,
        b: &mut tar::Builder<W>,
        rel: &[u8],
        abs: &Path,
        meta: &Metadata,
        excluded: bool,
    ) -> Result<bool> {
        let mut dir_path = rel.to_vec();
        dir_path.push(b'/');
        let entry = base_meta(EntryType::Directory, dir_path.clone(), meta);
        let opaque = self.mode == LayerMode::OverlayUpper && self.check_overlay_dir(abs)?;
        append_entry(b, &entry, &mut io::empty())?;
        if excluded {
            // Kept empty; an opaque marker would delete the lower layers' contents.
            return Ok(false);
        }
        if opaque {
            let mut path = dir_path;
            path.extend_from_slice(OPAQUE_WHITEOUT);
            let mut wh = base_meta(EntryType::Regular, path, meta);
            wh.mode = meta.mode() & 0o777;
            append_entry(b, &wh, &mut io::empty())?;
        }
        Ok(true)
    }

    /// Overlay upper dir checks for a directory: is it opaque? Refuses redirected dirs.
    fn check_overlay_dir(&self, abs: &Path) -> Result<bool> {
        let names = list_xattrs(abs)?;
        check_unsupported_overlay(&names)?;
        for key in OPAQUE_XATTRS {
            if names.iter().any(|n| n == key) {
                if let Some(v) = get_xattr(abs, key)? {
                    if v == b"y" {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    fn add_non_dir<W: Write>(
        &mut self,
        b: &mut tar::Builder<W>,
        rel: &[u8],
        abs: &Path,
        meta: &Metadata,
    ) -> Result<()> {
        let ft = meta.file_type();
        if ft.is_socket() {
            return Ok(()); // sockets cannot be archived (and are meaningless in an image)
        }
        if self.mode == LayerMode::OverlayUpper {
            if ft.is_char_device() && meta.rdev() == 0 {
                return add_whiteout(b, rel, meta);
            }
            check_unsupported_overlay(&list_xattrs(abs)?)?;
        }

        let key = (meta.dev(), meta.ino());
        if meta.nlink() > 1 {
            if let Some(first) = self.links.get(&key) {
                let mut entry = base_meta(EntryType::Link, rel.to_vec(), meta);
                entry.link = Some(first.clone());
                append_entry(b, &entry, &mut io::empty())?;
                return Ok(());
            }
        }

        if ft.is_file() {
            let mut file = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(abs)
                .context("opening file")?;
            let mut entry = base_meta(EntryType::Regular, rel.to_vec(), meta);
            entry.size = meta.len();
            if let Some(cap) = file_capability(&file)? {
                entry.xattrs.push((CAPABILITY_XATTR.to_string(), cap));
            }
            let mut data = ExactReader::new(&mut file, entry.size);
            append_entry(b, &entry, &mut data)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(abs).context("reading symlink")?;
            let mut entry = base_meta(EntryType::Symlink, rel.to_vec(), meta);
            entry.link = Some(target.into_os_string().into_vec());
            append_entry(b, &entry, &mut io::empty())?;
        } else if ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            };
            let mut entry = base_meta(kind, rel.to_vec(), meta);
            entry.dev = Some(dev_major_minor(meta.rdev()));
            append_entry(b, &entry, &mut io::empty())?;
        } else if ft.is_fifo() {
            let entry = base_meta(EntryType::Fifo, rel.to_vec(), meta);
            append_entry(b, &entry, &mut io::empty())?;
        } else {
            return Ok(()); // unknown file type: nothing sensible to record
        }

        if meta.nlink() > 1 {
            self.links.insert(key, rel.to_vec());
        }
        Ok(())
    }
}

/// `DIR/.wh.NAME`: an empty regular file, mode 0, owner and mtime of the whiteout device.
fn add_whiteout<W: Write>(b: &mut tar::Builder<W>, rel: &[u8], meta: &Metadata) -> Result<()> {
    let (dir, name) = match rel.iter().rposition(|&c| c == b'/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => (&b""[..], rel),
    };
    let mut path = dir.to_vec();
    path.extend_from_slice(WHITEOUT_PREFIX);
    path.extend_from_slice(name);
    let mut entry = base_meta(EntryType::Regular, path, meta);
    entry.mode = 0;
    append_entry(b, &entry, &mut io::empty())?;
    Ok(())
}

fn base_meta(kind: EntryType, path: Vec<u8>, meta: &Metadata) -> EntryMeta {
    let mut e = EntryMeta::new(kind, path);
    e.mode = meta.mode() & 0o7777;
    e.uid = u64::from(meta.uid());
    e.gid = u64::from(meta.gid());
    e.mtime = u64::try_from(meta.mtime()).unwrap_or(0);
    e
}

/// Linux `dev_t` → (major, minor), glibc's encoding.
fn dev_major_minor(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major as u32, minor as u32)
}

fn check_unsupported_overlay(names: &[String]) -> Result<()> {
    for (key, feature) in UNSUPPORTED_OVERLAY_XATTRS {
        if names.iter().any(|n| n == key) {
            bail!(
                "overlay upper entry carries {key}: mount the overlay with {feature}=off \
                 (the upper dir is not a self-contained changeset otherwise)"
            );
        }
    }
    Ok(())
}

fn is_unsupported(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTSUP) || e.raw_os_error() == Some(libc::EOPNOTSUPP)
}

/// xattr names on `path` (not following symlinks); none if the filesystem has no xattrs.
fn list_xattrs(path: &Path) -> Result<Vec<String>> {
    match xattr::list(path) {
        Ok(names) => Ok(names.map(|n| n.to_string_lossy().into_owned()).collect()),
        Err(e) if is_unsupported(&e) => Ok(Vec::new()),
        Err(e) => Err(e).context("listing xattrs"),
    }
}

fn get_xattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    match xattr::get(path, name) {
        Ok(v) => Ok(v),
        Err(e) if is_unsupported(&e) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading xattr {name}")),
    }
}

fn file_capability(file: &File) -> Result<Option<Vec<u8>>> {
    use xattr::FileExt;
    match file.get_xattr(CAPABILITY_XATTR) {
        Ok(v) => Ok(v),
        Err(e) if is_unsupported(&e) => Ok(None),
        Err(e) => Err(e).context("reading xattr security.capability"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excludes_normalize() {
        let s = normalize_excludes(&["/var/lib/apt/lists/", "./tmp", "a//b"]).unwrap();
        assert!(s.contains(b"var/lib/apt/lists".as_slice()));
        assert!(s.contains(b"tmp".as_slice()));
        assert!(s.contains(b"a/b".as_slice()));
        assert!(normalize_excludes(&["../etc"]).is_err());
        assert!(normalize_excludes(&["."]).unwrap().contains(&Vec::new()));
    }

    #[test]
    fn dev_numbers() {
        // makedev(1, 3) = /dev/null; makedev(259, 1048575) uses the high bits.
        assert_eq!(dev_major_minor(0x0103), (1, 3));
        let major: u64 = 259;
        let minor: u64 = 1_048_575;
        let dev = ((major & 0xfff) << 8)
            | ((major & !0xfff) << 32)
            | (minor & 0xff)
            | ((minor & !0xff) << 12);
        assert_eq!(dev_major_minor(dev), (259, 1_048_575));
    }
}
