//! The app layer's inputs: the app's files and the lifecycle scripts, written straight
//! into the overlay upper directory (before it is mounted), so the layer holds only them
//! plus whatever the build script changes.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::stack::{AppSource, Stack};

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

/// Create `rel` (and its parents) in `upper`, copying mode, owner and mtime from the same
/// directory in `lower` when it exists there (so the merged view keeps the base's metadata).
pub fn ensure_upper_dir(lower: &Path, upper: &Path, rel: &str) -> Result<PathBuf> {
    let mut acc = PathBuf::new();
    for part in Path::new(rel.trim_start_matches('/')).components() {
        acc.push(part);
        let up = upper.join(&acc);
        if up.exists() {
            continue;
        }
        std::fs::create_dir(&up).with_context(|| format!("cannot create {}", up.display()))?;
        if let Ok(m) = std::fs::metadata(lower.join(&acc)) {
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

/// Write the entrypoint and the `boot`/`run` scripts into `upper/etc/drover/`.
pub fn install_scripts(stack: &Stack, lower: &Path, upper: &Path) -> Result<()> {
    let dir = ensure_upper_dir(lower, upper, DROVER_DIR)?;
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
/// and checked against its SHA-256; `.tar`, `.tar.gz` and `.tgz` are unpacked, any other
/// file is copied as is. Returns the number of files written.
///
/// Errors: unreadable source files, download failures (URL and HTTP status named), a
/// checksum mismatch (both digests named), archive entries escaping the destination.
pub fn stage_app(stack: &Stack, lower: &Path, upper: &Path, work_dir: &Path) -> Result<u64> {
    let Some(app) = &stack.app else {
        return Ok(0);
    };
    let dest = ensure_upper_dir(lower, upper, &app.dest)?;
    match &app.source {
        AppSource::Dir(src) => copy_tree(src, &dest),
        AppSource::Url { url, sha256 } => {
            let file = download(url, sha256, work_dir)?;
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

fn download(url: &str, sha256: &str, work_dir: &Path) -> Result<PathBuf> {
    let mut resp = reqwest::blocking::get(url)
        .with_context(|| format!("cannot download the app from {url}"))?;
    if !resp.status().is_success() {
        bail!(
            "cannot download the app from {url}: HTTP {}; check [app].url",
            resp.status()
        );
    }
    let path = work_dir.join("app-download");
    let mut out = std::fs::File::create(&path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = resp
            .read(&mut buf)
            .with_context(|| format!("download of {url} broke off"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
    }
    let got = hex::encode(hasher.finalize());
    if got != sha256 {
        bail!(
            "sha256 mismatch for {url}: the stack expects {sha256}, the download is {got}; \
             if the artifact changed on purpose, update [app].sha256"
        );
    }
    Ok(path)
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
