//! The app layer's inputs: the app's files and the lifecycle scripts, written straight
//! into the overlay upper directory (before it is mounted), so the layer holds only them
//! plus whatever the build script changes.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::stack::{AppSource, Stack};
use crate::text::format_size;

/// Directory inside the image holding drover's lifecycle files.
pub const DROVER_DIR: &str = "etc/drover";

/// The image entrypoint: run `boot` (if any), then exec `run` (if any) or the arguments.
pub const ENTRYPOINT: &str = "#!/bin/sh\n\
# drover entrypoint: run the stack's boot script, then exec its run script.\n\
set -e\n\
if [ -x /etc/drover/boot ]; then /etc/drover/boot; fi\n\
if [ -x /etc/drover/run ]; then exec /etc/drover/run \"$@\"; fi\n\
exec \"$@\"\n";

/// Absolute path of the entrypoint inside the image.
pub const ENTRYPOINT_PATH: &str = "/etc/drover/entrypoint";

/// Create `rel` (and its parents) in `upper`, copying mode and owner from the same
/// directory in the first of `lowers` (top first) that has it, so the merged view keeps the
/// lower layers' metadata.
pub fn ensure_upper_dir(lowers: &[&Path], upper: &Path, rel: &str) -> Result<PathBuf> {
    let mut acc = PathBuf::new();
    for part in Path::new(rel.trim_start_matches('/')).components() {
        acc.push(part);
        let up = upper.join(&acc);
        if up.exists() {
            continue;
        }
        std::fs::create_dir(&up).with_context(|| format!("cannot create {}", up.display()))?;
        if let Some(m) = lowers
            .iter()
            .find_map(|l| std::fs::symlink_metadata(l.join(&acc)).ok())
            .filter(|m| m.is_dir())
        {
            std::fs::set_permissions(&up, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
            std::os::unix::fs::chown(&up, Some(m.uid()), Some(m.gid()))?;
        }
    }
    Ok(upper.join(acc))
}

fn script_text(body: &str) -> String {
    let mut s = if body.starts_with("#!") {
        body.to_string()
    } else {
        format!("#!/bin/sh\n{body}")
    };
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

fn write_exec(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Write the entrypoint and the `boot`/`run` scripts into `upper/etc/drover/` (`lowers`:
/// the trees below, top first, as for [`ensure_upper_dir`]).
pub fn install_scripts(stack: &Stack, lowers: &[&Path], upper: &Path) -> Result<()> {
    let dir = ensure_upper_dir(lowers, upper, DROVER_DIR)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    write_exec(&dir.join("entrypoint"), ENTRYPOINT)?;
    if let Some(b) = &stack.scripts.boot {
        write_exec(&dir.join("boot"), &script_text(b))?;
    }
    if let Some(r) = &stack.scripts.run {
        write_exec(&dir.join("run"), &script_text(r))?;
    }
    Ok(())
}

/// The build script as an executable file's text.
pub fn build_script_text(body: &str) -> String {
    script_text(body)
}

/// Copy the app into `upper` at its destination. A URL is downloaded into `work_dir` first
/// (at most its `max_size` bytes) and checked against its SHA-256; `.tar`, `.tar.gz` and
/// `.tgz` are unpacked, any other file is copied as is. Returns the number of files written.
///
/// Errors: unreadable source files, download failures (URL and HTTP status named), a
/// download larger than `[app] max_size` (URL and cap named; nothing of it is kept), a
/// checksum mismatch (both digests named), archive entries escaping the destination.
pub fn stage_app(stack: &Stack, lowers: &[&Path], upper: &Path, work_dir: &Path) -> Result<u64> {
    let Some(app) = &stack.app else {
        return Ok(0);
    };
    let dest = ensure_upper_dir(lowers, upper, &app.dest)?;
    match &app.source {
        AppSource::Dir(src) => copy_tree(src, &dest),
        AppSource::Url {
            url,
            sha256,
            max_size,
        } => {
            let file = download(url, sha256, *max_size, work_dir)?;
            let lower_name = url.to_ascii_lowercase();
            if lower_name.ends_with(".tar.gz") || lower_name.ends_with(".tgz") {
                unpack(
                    flate2::read::GzDecoder::new(std::fs::File::open(&file)?),
                    &dest,
                    url,
                )
            } else if lower_name.ends_with(".tar") {
                unpack(std::fs::File::open(&file)?, &dest, url)
            } else {
                let name = url
                    .rsplit('/')
                    .next()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("app");
                std::fs::copy(&file, dest.join(name))?;
                Ok(1)
            }
        }
    }
}

fn unpack<R: Read>(r: R, dest: &Path, url: &str) -> Result<u64> {
    let mut ar = tar::Archive::new(r);
    ar.set_preserve_permissions(true);
    let mut n = 0;
    for entry in ar
        .entries()
        .with_context(|| format!("{url}: not a tar archive"))?
    {
        let mut entry = entry.with_context(|| format!("{url}: damaged tar archive"))?;
        // unpack_in refuses entries that would land outside `dest` (`..`, absolute paths).
        if !entry
            .unpack_in(dest)
            .with_context(|| format!("{url}: cannot unpack an entry"))?
        {
            bail!(
                "{url}: the archive has an entry outside the app directory ({}); \
                 refusing to unpack it",
                entry
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
        }
        n += 1;
    }
    Ok(n)
}

/// Download `url` into `work_dir/app-download`, at most `max_size` bytes, and check its
/// SHA-256. On any error the partial file is removed.
fn download(url: &str, sha256: &str, max_size: u64, work_dir: &Path) -> Result<PathBuf> {
    let mut resp = reqwest::blocking::get(url)
        .with_context(|| format!("cannot download the app from {url}"))?;
    if !resp.status().is_success() {
        bail!(
            "cannot download the app from {url}: HTTP {}; check [app].url",
            resp.status()
        );
    }
    if let Some(len) = resp.content_length().filter(|n| *n > max_size) {
        bail!(
            "{}",
            too_large(url, max_size, &format!("the server announces {len} bytes"))
        );
    }
    let path = work_dir.join("app-download");
    let written = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))
        .and_then(|mut out| copy_capped(&mut resp, &mut out, max_size, url));
    let got = match written {
        Ok(got) => got,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    if got != sha256 {
        let _ = std::fs::remove_file(&path);
        bail!(
            "sha256 mismatch for {url}: the stack expects {sha256}, the download is {got}; \
             if the artifact changed on purpose, update [app].sha256"
        );
    }
    Ok(path)
}

fn too_large(url: &str, max_size: u64, seen: &str) -> String {
    format!(
        "the app at {url} is larger than [app] max_size ({}, {max_size} bytes): {seen}; \
         if it is meant to be this big, raise `max_size` in the stack's [app] table \
         (e.g. `max_size = \"{}\"`)",
        format_size(max_size),
        suggested_cap(max_size)
    )
}

/// Twice the cap, rounded up to whole GiB (or MiB under 1 GiB), for the hint.
fn suggested_cap(max_size: u64) -> String {
    let twice = max_size.saturating_mul(2);
    if twice >= 1 << 30 {
        format!("{}GiB", twice.div_ceil(1 << 30))
    } else {
        format!("{}MiB", twice.div_ceil(1 << 20).max(1))
    }
}

/// Copy `r` into `w` while hashing it, reading never more than `max_size + 1` bytes: the
/// first byte over the cap stops it with an error. Returns the lowercase hex SHA-256.
fn copy_capped(r: &mut dyn Read, w: &mut dyn Write, max_size: u64, url: &str) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        // One byte past the cap is enough to know it is too big.
        let room = max_size.saturating_add(1).saturating_sub(total);
        let want = usize::try_from(room).unwrap_or(usize::MAX).min(buf.len());
        let n = r
            .read(&mut buf[..want])
            .with_context(|| format!("download of {url} broke off"))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > max_size {
            bail!(
                "{}",
                too_large(url, max_size, &format!("stopped after {total} bytes"))
            );
        }
        hasher.update(&buf[..n]);
        w.write_all(&buf[..n])?;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Copy a directory tree (files, directories, symlinks; modes kept, owned by root).
pub fn copy_tree(src: &Path, dst: &Path) -> Result<u64> {
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .with_context(|| format!("cannot read app directory {}", src.display()))?
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let from = e.path();
        let to = dst.join(e.file_name());
        let ft = e.file_type()?;
        if ft.is_symlink() {
            let target = std::fs::read_link(&from)?;
            std::os::unix::fs::symlink(&target, &to)
                .with_context(|| format!("cannot create symlink {}", to.display()))?;
        } else if ft.is_dir() {
            if !to.exists() {
                std::fs::create_dir(&to)?;
            }
            let mode = e.metadata()?.mode();
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode & 0o7777))?;
            n += copy_tree(&from, &to)?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to)
                .with_context(|| format!("cannot copy {} into the image", from.display()))?;
            std::os::unix::fs::lchown(&to, Some(0), Some(0))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader of `len` bytes that counts how many were taken from it.
    struct Counting {
        len: u64,
        taken: u64,
    }

    impl Read for Counting {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = (self.len - self.taken).min(buf.len() as u64) as usize;
            buf[..n].fill(b'x');
            self.taken += n as u64;
            Ok(n)
        }
    }

    #[test]
    fn a_download_over_the_cap_stops_at_the_first_byte_over() {
        for cap in [1u64, 1000, 64 * 1024, 64 * 1024 + 1, 1 << 20] {
            let mut r = Counting {
                len: 10 << 20,
                taken: 0,
            };
            let mut out = Vec::new();
            let err = copy_capped(&mut r, &mut out, cap, "http://x/app.tar").unwrap_err();
            assert_eq!(r.taken, cap + 1, "cap {cap}");
            assert!(out.len() as u64 <= cap);
            let msg = err.to_string();
            assert!(
                msg.contains("http://x/app.tar") && msg.contains("max_size"),
                "{msg}"
            );
        }
        // Exactly at the cap is fine.
        let mut r = Counting {
            len: 5000,
            taken: 0,
        };
        let mut out = Vec::new();
        copy_capped(&mut r, &mut out, 5000, "u").unwrap();
        assert_eq!(out.len(), 5000);
        assert_eq!(suggested_cap(2 << 30), "4GiB");
        assert_eq!(suggested_cap(1 << 20), "2MiB");
    }
}
