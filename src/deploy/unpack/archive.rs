//! Reading an OCI image-layout tar (`STATE/images/STACK/ID.oci.tar`, written by
//! `build::oci`) in place: one pass over its headers finds where each blob lies, then the
//! manifest and config are read whole and layers are streamed straight from the archive,
//! each with its SHA-256 checked against its digest. Nothing is extracted to disk first.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Largest JSON blob (index, manifest, config) read into memory: 4 MiB.
const MAX_JSON: u64 = 4 << 20;

/// An opened image archive: where `index.json` and each `blobs/sha256/HEX` lie in it.
pub(super) struct OciArchive {
    path: PathBuf,
    file: File,
    /// Archive path → (offset of the data, size in bytes).
    entries: HashMap<String, (u64, u64)>,
}

impl OciArchive {
    /// Index the archive at `path` (headers only; blob data is skipped by seeking).
    ///
    /// Errors: the file cannot be opened or is not a tar archive.
    pub(super) fn open(path: &Path) -> Result<OciArchive> {
        let file = File::open(path)
            .with_context(|| format!("cannot open the image archive {}", path.display()))?;
        let mut ar = tar::Archive::new(
            file.try_clone()
                .with_context(|| format!("cannot read {}", path.display()))?,
        );
        let not_tar = || format!("{} is not a readable tar archive", path.display());
        let mut entries = HashMap::new();
        for e in ar.entries_with_seek().with_context(not_tar)? {
            let e = e.with_context(not_tar)?;
            if !e.header().entry_type().is_file() {
                continue;
            }
            let name = String::from_utf8_lossy(&e.path_bytes())
                .trim_start_matches("./")
                .to_string();
            entries.insert(name, (e.raw_file_position(), e.size()));
        }
        Ok(OciArchive {
            path: path.to_path_buf(),
            file,
            entries,
        })
    }

    /// The archive's file name, for messages.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// `index.json`, parsed.
    pub(super) fn index(&mut self) -> Result<serde_json::Value> {
        let (off, size) = *self
            .entries
            .get("index.json")
            .context("the archive has no index.json")?;
        let bytes = self.read_at(off, size, "index.json")?;
        serde_json::from_slice(&bytes).context("index.json is not JSON")
    }

    /// The whole blob `digest` (a JSON document: at most 4 MiB), its SHA-256 checked.
    pub(super) fn read_blob(&mut self, digest: &str) -> Result<Vec<u8>> {
        let (off, size) = self.blob(digest)?;
        let bytes = self.read_at(off, size, digest)?;
        let got = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if got != digest {
            bail!("blob {digest} has digest {got}: the archive is corrupt");
        }
        Ok(bytes)
    }

    /// A reader over the blob `digest`, which the manifest says is `size` bytes; it hashes
    /// what it reads, and [`HashingReader::finish`] checks the digest.
    pub(super) fn blob_reader(&self, digest: &str, size: u64) -> Result<HashingReader<File>> {
        let (off, actual) = self.blob(digest)?;
        if actual != size {
            bail!(
                "blob {digest} is {actual} bytes in the archive, the manifest says {size}: \
                 the archive is corrupt"
            );
        }
        let mut f = self
            .file
            .try_clone()
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        f.seek(SeekFrom::Start(off))?;
        Ok(HashingReader {
            inner: f.take(size),
            hasher: Sha256::new(),
            digest: digest.to_string(),
        })
    }

    fn blob(&self, digest: &str) -> Result<(u64, u64)> {
        let hex = super::hex_of(digest)?;
        self.entries
            .get(&format!("blobs/sha256/{hex}"))
            .copied()
            .with_context(|| format!("the archive has no blob {digest}"))
    }

    fn read_at(&mut self, off: u64, size: u64, what: &str) -> Result<Vec<u8>> {
        if size > MAX_JSON {
            bail!("{what} is {size} bytes, more than a JSON document of an image may be (4 MiB)");
        }
        self.file.seek(SeekFrom::Start(off))?;
        let mut bytes = Vec::with_capacity(size as usize);
        (&mut self.file).take(size).read_to_end(&mut bytes)?;
        if bytes.len() as u64 != size {
            bail!("{what} is cut short in {}", self.path.display());
        }
        Ok(bytes)
    }
}

/// A blob being read from the archive, hashed on the way.
pub(super) struct HashingReader<R> {
    inner: io::Take<R>,
    hasher: Sha256,
    digest: String,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<R: Read> HashingReader<R> {
    /// Read what is left of the blob (a decompressor or tar reader may stop before its
    /// end) and check its SHA-256 against the digest.
    ///
    /// Errors: a read error, or a digest that does not match (the archive is corrupt).
    pub(super) fn finish(mut self) -> Result<()> {
        io::copy(&mut self, &mut io::sink())?;
        let got = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        if got != self.digest {
            bail!(
                "blob {} has digest {got}: the archive is corrupt",
                self.digest
            );
        }
        Ok(())
    }
}
