//! A bounded reader of the `ar` archives that hold Debian binary packages.
//!
//! Format: ar(5) "common" format as deb(5) uses it — the magic `!<arch>\n`, then members,
//! each a 60-byte header (name 16 bytes, mtime 12, uid 6, gid 6, mode 8, size 10 — decimal
//! ASCII padded with spaces — and the terminator `` `\n ``) followed by `size` bytes of data
//! and one `\n` of padding when `size` is odd. A name may end with `/` (GNU style). The
//! GNU long-name table (`//`) and symbol table (`/`) and BSD `#1/N` names are never in a
//! .deb (dpkg-deb writes names of at most 16 bytes) and are skipped as members with
//! those names.
//!
//! It replaces the `ar` crate (0.9.0, unreleased since 2021), which panics on a GNU name
//! index past its name table and allocates whatever size a header claims; found by the
//! `deb` fuzz target (fuzz/README.md). Here every size is checked against the bytes
//! there are, and the reader borrows from the input instead of copying.

use anyhow::{bail, Context, Result};

/// The archive magic.
const MAGIC: &[u8] = b"!<arch>\n";
/// Bytes in a member header.
const HEADER: usize = 60;

/// One member of an ar archive: its name (without a trailing `/`) and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    /// The name, e.g. `control.tar.xz`.
    pub name: &'a str,
    /// The member's bytes.
    pub data: &'a [u8],
}

/// The members of the ar archive `bytes`, in order.
///
/// Errors: no `!<arch>` magic; a header cut short, without its terminator, or whose name
/// is not UTF-8 or size not a decimal number; a size past the end of the archive. The
/// message names the member's offset.
pub fn members(bytes: &[u8]) -> Result<Vec<Member<'_>>> {
    let Some(mut rest) = bytes.strip_prefix(MAGIC) else {
        bail!("not an ar archive (no `!<arch>` magic)");
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        let at = bytes.len() - rest.len();
        if rest.len() < HEADER {
            bail!("the ar member header at byte {at} is cut short");
        }
        let (h, after) = rest.split_at(HEADER);
        if &h[58..60] != b"`\n" {
            bail!("the ar member header at byte {at} has no terminator (corrupt archive)");
        }
        let name = std::str::from_utf8(&h[..16])
            .ok()
            .map(|n| n.trim_end_matches(' '))
            .with_context(|| format!("the ar member name at byte {at} is not UTF-8"))?;
        let name = if name.len() > 1 {
            name.strip_suffix('/').unwrap_or(name)
        } else {
            name
        };
        let size = std::str::from_utf8(&h[48..58])
            .ok()
            .map(|s| s.trim_end_matches(' '))
            .and_then(|s| s.parse::<usize>().ok())
            .with_context(|| format!("the ar member {name:?} at byte {at} has no valid size"))?;
        if size > after.len() {
            bail!(
                "the ar member {name:?} at byte {at} is {size} bytes but the archive ends \
                 {} bytes later (cut short?)",
                after.len()
            );
        }
        let (data, tail) = after.split_at(size);
        out.push(Member { name, data });
        // Odd sizes are padded with one byte; a missing pad at the very end is tolerated.
        rest = if size % 2 == 1 && !tail.is_empty() {
            &tail[1..]
        } else {
            tail
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, data: &[u8]) -> Vec<u8> {
        let mut v = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            0,
            0,
            0,
            100644,
            data.len()
        )
        .into_bytes();
        v.extend_from_slice(data);
        if data.len() % 2 == 1 {
            v.push(b'\n');
        }
        v
    }

    #[test]
    fn reads_the_members_of_a_deb_in_order_with_padding() {
        let mut a = MAGIC.to_vec();
        a.extend(member("debian-binary", b"2.0\n"));
        a.extend(member("control.tar.gz/", b"abc"));
        a.extend(member("data.tar", b"xy"));
        let m = members(&a).unwrap();
        let names: Vec<&str> = m.iter().map(|m| m.name).collect();
        assert_eq!(names, ["debian-binary", "control.tar.gz", "data.tar"]);
        assert_eq!(m[1].data, b"abc");
        assert_eq!(m[2].data, b"xy");
    }

    #[test]
    fn the_inputs_the_ar_crate_panicked_on_are_errors() {
        // A GNU name index past an absent name table (`ar` 0.9: slice index panic).
        let mut gnu = MAGIC.to_vec();
        gnu.extend(member("/99", b""));
        assert!(members(&gnu).unwrap()[0].name == "/99");
        // A size claiming more than the archive holds (`ar` 0.9: allocates it).
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(
            format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                "//", 0, 0, 0, 0, 9999999999u64
            )
            .as_bytes(),
        );
        let e = members(&huge).unwrap_err().to_string();
        assert!(e.contains("9999999999 bytes"), "{e}");
        // Cut short, and not an archive.
        assert!(members(&MAGIC[..5]).is_err());
        let mut short = MAGIC.to_vec();
        short.extend_from_slice(b"debian-binary   0");
        assert!(members(&short)
            .unwrap_err()
            .to_string()
            .contains("cut short"));
    }
}
