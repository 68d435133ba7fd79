//! Low-level tar entry writing: POSIX ustar headers plus PAX extended headers (POSIX.1-2001
//! `pax` format) for whatever does not fit ustar (long paths and link targets, big ids and
//! sizes, `SCHILY.xattr.*`). This is the same shape Go's `archive/tar` (docker, podman,
//! buildkit) produces, and every tar reader in use understands it.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256};
use tar::{EntryType, Header};

/// Largest value an 8-byte octal ustar field holds (uid, gid, mode, devmajor, devminor).
const MAX_OCTAL_8: u64 = 0o7777777;
/// Largest value a 12-byte octal ustar field holds (size, mtime).
const MAX_OCTAL_12: u64 = 0o77777777777;
/// Length of the ustar `name` and `linkname` fields.
const NAME_LEN: usize = 100;

/// Everything about one tar entry except its data.
#[derive(Debug, Clone)]
pub(crate) struct EntryMeta {
    pub kind: EntryType,
    /// Archive path, relative, `/`-separated; directories end with `/`.
    pub path: Vec<u8>,
    /// Symlink target (as-is) or hard link target (archive path of the first copy).
    pub link: Option<Vec<u8>>,
    /// Permission bits plus setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: u64,
    /// Data length in bytes (0 for everything but regular files).
    pub size: u64,
    /// Device (major, minor) for character and block devices.
    pub dev: Option<(u32, u32)>,
    /// Extended attributes to record as `SCHILY.xattr.NAME` PAX records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl EntryMeta {
    /// A plain entry with mode/owner/time zeroed; callers fill in the rest.
    pub fn new(kind: EntryType, path: Vec<u8>) -> Self {
        EntryMeta {
            kind,
            path,
            link: None,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            dev: None,
            xattrs: Vec::new(),
        }
    }
}

/// Append one entry (a PAX `x` header first when needed, then the ustar header, then exactly
/// `meta.size` bytes read from `data`).
pub(crate) fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    meta: &EntryMeta,
    data: &mut dyn Read,
) -> io::Result<()> {
    let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if meta.path.is_empty() || meta.path.contains(&0) {
        return Err(invalid("empty path or NUL byte in path"));
    }
    if meta.path.len() > NAME_LEN {
        pax.insert("path".into(), meta.path.clone());
    }
    if let Some(link) = &meta.link {
        if link.is_empty() || link.contains(&0) {
            return Err(invalid("empty link target or NUL byte in link target"));
        }
        if link.len() > NAME_LEN {
            pax.insert("linkpath".into(), link.clone());
        }
    }
    if meta.uid > MAX_OCTAL_8 {
        pax.insert("uid".into(), meta.uid.to_string().into_bytes());
    }
    if meta.gid > MAX_OCTAL_8 {
        pax.insert("gid".into(), meta.gid.to_string().into_bytes());
    }
    if meta.size > MAX_OCTAL_12 {
        pax.insert("size".into(), meta.size.to_string().into_bytes());
    }
    for (name, value) in &meta.xattrs {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(invalid("bad xattr name"));
        }
        pax.insert(format!("SCHILY.xattr.{name}"), value.clone());
    }

    if !pax.is_empty() {
        let body = pax_body(&pax);
        let mut h = Header::new_ustar();
        put_field(&mut h.as_old_mut().name, &pax_header_name(&meta.path));
        h.set_entry_type(EntryType::XHeader);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(meta.mtime.min(MAX_OCTAL_12));
        h.set_size(body.len() as u64);
        set_devices(&mut h, 0, 0)?;
        h.set_cksum();
        builder.append(&h, body.as_slice())?;
    }

    let mut h = Header::new_ustar();
    put_field(&mut h.as_old_mut().name, &meta.path);
    if let Some(link) = &meta.link {
        put_field(&mut h.as_old_mut().linkname, link);
    }
    h.set_entry_type(meta.kind);
    h.set_mode(meta.mode & 0o7777);
    h.set_uid(meta.uid.min(MAX_OCTAL_8));
    h.set_gid(meta.gid.min(MAX_OCTAL_8));
    h.set_mtime(meta.mtime.min(MAX_OCTAL_12));
    // The tar crate switches to base-256 for sizes beyond the octal range; the PAX `size`
    // record above is authoritative anyway.
    h.set_size(meta.size);
    let (major, minor) = meta.dev.unwrap_or((0, 0));
    set_devices(&mut h, major, minor)?;
    h.set_cksum();
    builder.append(&h, data)
}

fn set_devices(h: &mut Header, major: u32, minor: u32) -> io::Result<()> {
    if u64::from(major) > MAX_OCTAL_8 || u64::from(minor) > MAX_OCTAL_8 {
        return Err(invalid("device number does not fit a ustar header"));
    }
    h.set_device_major(major)?;
    h.set_device_minor(minor)
}

/// Copy `src` into a fixed header field, truncating; the rest stays NUL.
fn put_field(dst: &mut [u8], src: &[u8]) {
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
    for b in &mut dst[n..] {
        *b = 0;
    }
}

/// `DIR/PaxHeaders.0/BASE`, as Go's archive/tar names the `x` entry (readers ignore it).
fn pax_header_name(path: &[u8]) -> Vec<u8> {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let (dir, base) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => (&b""[..], trimmed),
    };
    let mut name = dir.to_vec();
    name.extend_from_slice(b"PaxHeaders.0/");
    name.extend_from_slice(base);
    name.truncate(NAME_LEN);
    name
}

/// PAX records: `"%d %s=%s\n"`, where the leading decimal counts the whole record, itself
/// included. Keys are emitted sorted (BTreeMap) so output is deterministic.
fn pax_body(records: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let rest = 1 + k.len() + 1 + v.len() + 1; // " " k "=" v "\n"
        let mut len = rest + rest.to_string().len();
        if len.to_string().len() + rest != len {
            len = rest + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

/// A writer that SHA-256 hashes and counts everything passed through to `inner`.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Return the inner writer, `sha256:HEX` of the bytes written, and their count.
    pub fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader yielding exactly `len` bytes of `inner` (hashing them): it stops at `len` even if
/// `inner` has more, and fails if `inner` ends early (e.g. a file shrank while being read), so a
/// tar entry can never disagree with its header's size.
pub(crate) struct ExactReader<R> {
    inner: R,
    remaining: u64,
    hasher: Sha256,
}

impl<R: Read> ExactReader<R> {
    pub fn new(inner: R, len: u64) -> Self {
        ExactReader {
            inner,
            remaining: len,
            hasher: Sha256::new(),
        }
    }

    /// `sha256:HEX` of the bytes read so far.
    pub fn digest(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "file ended {} bytes early (changed while being read?)",
                    self.remaining
                ),
            ));
        }
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        for vlen in 0..2000 {
            let mut m = BTreeMap::new();
            m.insert("path".to_string(), vec![b'a'; vlen]);
            let body = pax_body(&m);
            let sp = body.iter().position(|&b| b == b' ').unwrap();
            let n: usize = std::str::from_utf8(&body[..sp]).unwrap().parse().unwrap();
            assert_eq!(n, body.len(), "value length {vlen}");
        }
    }

    #[test]
    fn pax_header_names() {
        assert_eq!(pax_header_name(b"a/b/c"), b"a/b/PaxHeaders.0/c");
        assert_eq!(pax_header_name(b"a/b/"), b"a/PaxHeaders.0/b");
        assert_eq!(pax_header_name(b"x"), b"PaxHeaders.0/x");
    }
}
