//! Plain-text tables and small formatting helpers for the CLI.

pub use crate::text::{age, short_digest, table};

/// Print JSON to stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<(), super::CliError> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| super::CliError::failed(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
