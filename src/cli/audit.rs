//! `drover audit [STACK] [--since …]`: who did what, when, and how it ended (builds, lock
//! changes, deploys, rollbacks, stops, auto-rebuilds, notifications, pushes, exports,
//! prunes), newest first.

use super::output::{print_json, table};
use super::{CliError, CliResult};
use crate::paths::Paths;
use crate::store::audit::AuditRecord;

/// Run `drover audit`.
pub fn audit(
    paths: &Paths,
    stack: Option<&str>,
    since: Option<&str>,
    limit: i64,
    json: bool,
) -> CliResult {
    if limit < 1 {
        return Err(CliError::input("--limit must be at least 1"));
    }
    let cutoff = since
        .map(|s| crate::text::since_cutoff(s, chrono::Utc::now()))
        .transpose()
        .map_err(CliError::input)?;
    let store = super::query::open_store(paths)?;
    let rows = store.audit_query(stack, cutoff.as_deref(), limit)?;
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!(
            "no audit records{}",
            match stack {
                Some(s) => format!(" for {s}"),
                None => String::new(),
            }
        );
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows.iter().map(AuditRecord::cells).collect();
    print!("{}", table(&AuditRecord::HEADER, &cells));
    Ok(())
}
