//! Plain-text tables and small formatting helpers for the CLI.

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

pub use crate::text::{age, short_digest};

/// Print JSON to stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<(), super::CliError> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| super::CliError::failed(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
