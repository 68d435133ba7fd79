//! Small text helpers shared by the front ends (CLI tables, TUI panes): short digests,
//! ages, byte sizes, and sanitising untrusted output (build logs) for a terminal.

use chrono::{DateTime, Utc};

/// `sha256:0123456789ab…` → `0123456789ab` (12 hex digits), as container tools show ids.
pub fn short_digest(d: &str) -> String {
    d.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Age of an RFC 3339 time relative to now: `42s`, `5m`, `3h`, `2d`.
pub fn age(rfc3339: &str) -> String {
    age_at(rfc3339, Utc::now())
}

/// Age of an RFC 3339 time relative to `now` (`?` when the time does not parse).
pub fn age_at(rfc3339: &str, now: DateTime<Utc>) -> String {
    let Ok(t) = DateTime::parse_from_rfc3339(rfc3339) else {
        return "?".into();
    };
    let secs = (now - t.with_timezone(&Utc)).num_seconds().max(0);
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// `installed -> candidate` in at most `width` columns (versions are ASCII). When the whole
/// text does not fit, the candidate stays whole and the installed version loses its start
/// (`..1 -> 2.5.0-1+deb12u2`): the start is usually the part both share, the end is where
/// they differ. Only when the candidate alone does not fit is it returned as is (cut by the
/// table).
pub fn version_change(from: &str, to: &str, width: usize) -> String {
    let full = format!("{from} -> {to}");
    if full.chars().count() <= width {
        return full;
    }
    let to_w = to.chars().count();
    // Room for `..X -> ` (at least one installed character).
    let Some(avail) = width.checked_sub(to_w + 4).filter(|a| *a >= 3) else {
        return to.to_string();
    };
    let from_w = from.chars().count();
    let tail: String = from.chars().skip(from_w + 2 - avail).collect();
    format!("..{tail} -> {to}")
}

/// Parse a byte size as an operator writes it: an integer count of bytes (`1048576`), or a
/// number (decimals allowed) followed by a unit, with or without a space: binary `KiB`,
/// `MiB`, `GiB`, `TiB` (powers of 1024), decimal `kB`/`KB`, `MB`, `GB`, `TB` (powers of
/// 1000), or `B`. Units are case-insensitive (`2gib`); fractions of a byte are dropped.
///
/// Errors: an empty or negative value, an unknown unit, or more than `u64::MAX` bytes; the
/// message says what was wrong, for a diagnostic.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..num_end], t[num_end..].trim());
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(format!(
            "`{s}` is not a size (a number of bytes, or e.g. \"500MiB\")"
        ));
    }
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{s}` (use B, KiB, MiB, GiB, TiB, kB, MB, GB or TB)"
            ))
        }
    };
    let too_big = || format!("`{s}` is more than {} bytes", u64::MAX);
    let whole: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| too_big())?
    };
    let mut bytes = whole.checked_mul(mult).ok_or_else(too_big)?;
    // The fraction as num / 10^k (19 digits are more than a u64 multiplier can use).
    let (mut num, mut den) = (0u128, 1u128);
    for d in frac.bytes().take(19) {
        num = num * 10 + u128::from(d - b'0');
        den *= 10;
    }
    let part = u64::try_from(u128::from(mult) * num / den).map_err(|_| too_big())?;
    bytes = bytes.checked_add(part).ok_or_else(too_big)?;
    Ok(bytes)
}

/// A byte count for messages: the largest binary unit it reaches, whole when exact
/// (`2 GiB`, `1.5 MiB`, `700 B`).
pub fn format_size(n: u64) -> String {
    for (unit, size) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if n >= size {
            return if n.is_multiple_of(size) {
                format!("{} {unit}", n / size)
            } else {
                format!("{:.1} {unit}", n as f64 / size as f64)
            };
        }
    }
    format!("{n} B")
}

/// Make untrusted output safe to lay out in a terminal cell grid: ANSI escape sequences
/// (CSI `ESC [ … final`, OSC `ESC ] … BEL|ST`, and two-byte `ESC x`) are removed, a tab
/// becomes spaces up to the next multiple of 8, a carriage return keeps only the text
/// after it (what a terminal would show), and every other control character becomes `?`.
pub fn sanitize_for_terminal(s: &str) -> String {
    // A carriage return inside a line (progress bars) overwrites: keep the last segment.
    let s = match s.rfind('\r') {
        Some(i) if i + 1 < s.len() => &s[i + 1..],
        Some(_) => s.trim_end_matches('\r'),
        None => s,
    };
    let mut out = String::with_capacity(s.len());
    let mut col = 0usize;
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\u{1b}' => match it.next() {
                Some('[') => {
                    // CSI: parameters and intermediates, then one final byte 0x40..=0x7e.
                    for c in it.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') | Some('P') | Some('_') | Some('^') => {
                    // OSC/DCS/APC/PM: until BEL or ST (ESC \).
                    while let Some(c) = it.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && it.peek() == Some(&'\\') {
                            it.next();
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\t' => {
                let n = 8 - col % 8;
                out.extend(std::iter::repeat_n(' ', n));
                col += n;
            }
            c if c.is_control() => {
                out.push('?');
                col += 1;
            }
            c => {
                out.push(c);
                col += 1;
            }
        }
    }
    out
}

/// Render rows as left-aligned columns separated by two spaces, with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                let pad = widths[i].saturating_sub(c.chars().count()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// The earliest time a `--since` value admits, as an RFC 3339 UTC time with milliseconds
/// (the store's format, so it compares as text): `since` is a duration back from `now`
/// (`10m`, `2h`, `1d`; humantime syntax) or a time (RFC 3339, e.g. `2026-12-01T10:00:00Z`).
///
/// A count in at most four characters for a narrow column: `999`, `1.2k`, `45k`, `3.1M`.
pub fn si_count(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=9_999 => format!("{:.1}k", n as f64 / 1e3),
        10_000..=999_999 => format!("{}k", n / 1000),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Errors: neither form, with an example of each.
pub fn since_cutoff(since: &str, now: DateTime<Utc>) -> Result<String, String> {
    let t = since.trim();
    let at = if let Ok(d) = humantime::parse_duration(t) {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .ok_or_else(|| format!("--since {t:?} reaches back too far"))?
    } else if let Ok(ts) = DateTime::parse_from_rfc3339(t) {
        ts.with_timezone(&Utc)
    } else {
        return Err(format!(
            "--since {t:?} is neither a duration (`10m`, `2h`, `1d`) nor an RFC 3339 time \
             (`2026-12-01T10:00:00Z`)"
        ));
    };
    Ok(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn si_count_fits_four_characters() {
        let shown: Vec<String> = [0, 999, 1_000, 1_250, 45_300, 999_999, 3_100_000]
            .into_iter()
            .map(si_count)
            .collect();
        assert_eq!(shown, ["0", "999", "1.0k", "1.2k", "45k", "999k", "3.1M"]);
    }

    #[test]
    fn version_change_keeps_the_candidate_whole() {
        let (a, b) = ("2.5.0-1+deb12u1", "2.5.0-1+deb12u2");
        assert_eq!(
            version_change(a, b, 40),
            "2.5.0-1+deb12u1 -> 2.5.0-1+deb12u2"
        );
        assert_eq!(
            version_change(a, b, 34),
            "2.5.0-1+deb12u1 -> 2.5.0-1+deb12u2"
        );
        // One column short: the installed version loses its (shared) start.
        assert_eq!(
            version_change(a, b, 33),
            "...0-1+deb12u1 -> 2.5.0-1+deb12u2"
        );
        assert_eq!(version_change(a, b, 22), "..1 -> 2.5.0-1+deb12u2");
        for w in 22..40 {
            let s = version_change(a, b, w);
            assert!(s.chars().count() <= w, "{s:?} in {w}");
            assert!(s.ends_with(" -> 2.5.0-1+deb12u2"), "{s:?}");
        }
        // No room for any of the installed version: the candidate alone.
        assert_eq!(version_change(a, b, 21), b);
        assert_eq!(version_change(a, b, 5), b);
    }

    #[test]
    fn strips_ansi_and_controls() {
        assert_eq!(
            sanitize_for_terminal("\u{1b}[1;31mred\u{1b}[0m ok"),
            "red ok"
        );
        assert_eq!(sanitize_for_terminal("\u{1b}]0;title\u{7}x\u{8}y"), "x?y");
        assert_eq!(sanitize_for_terminal("a\tb"), "a       b");
        assert_eq!(sanitize_for_terminal("10%\r50%\r100%"), "100%");
        assert_eq!(sanitize_for_terminal("\u{1b}"), "");
    }

    #[test]
    fn sizes_parse_in_binary_and_decimal_units() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("500MiB"), Ok(500 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("2gib"), Ok(2 << 30));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("10 B"), Ok(10));
        assert_eq!(parse_size(".5kB"), Ok(500));
        for bad in ["", "MiB", "-1", "1.2.3", "1 GiBs", "1e9", "20000000 TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(2 << 30), "2 GiB");
        assert_eq!(format_size(1536 << 10), "1.5 MiB");
        assert_eq!(format_size(700), "700 B");
    }

    #[test]
    fn ages() {
        let now = DateTime::parse_from_rfc3339("2026-01-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(age_at("2026-01-01T23:59:30Z", now), "30s");
        assert_eq!(age_at("2026-01-01T22:00:00Z", now), "2h");
        assert_eq!(age_at("2025-12-30T00:00:00Z", now), "3d");
        assert_eq!(age_at("garbage", now), "?");
        assert_eq!(short_digest("sha256:0123456789abcdef"), "0123456789ab");
    }
}
