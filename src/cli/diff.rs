//! `drover diff STACK [A] [B]`: what changes from A to B (default: the live release to the
//! newest build), as a table, JSON ([`crate::diff::Diff`]) or an OpenVEX document.

use clap::ValueEnum;

use super::output::print_json;
use super::{CliError, CliResult};
use crate::diff::{self, DiffError, Ref};
use crate::paths::Paths;

/// Output format of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// Sections for people.
    Table,
    /// The [`crate::diff::Diff`] JSON object (the documented contract).
    Json,
    /// OpenVEX v0.2.0: a `fixed` statement per CVE that B fixes relative to A.
    Openvex,
}

impl From<DiffError> for CliError {
    fn from(e: DiffError) -> Self {
        let code = if e.is_bad_input() { 2 } else { 1 };
        let message = match e {
            DiffError::Pick(p) => return p.into(),
            DiffError::Failed(inner) => format!("{inner:#}"),
            other => other.to_string(),
        };
        CliError { code, message }
    }
}

/// Run `drover diff`.
pub fn diff(
    paths: &Paths,
    stack: &str,
    a: Option<&str>,
    b: Option<&str>,
    format: DiffFormat,
    json: bool,
) -> CliResult {
    let parse = |s: Option<&str>, default: Ref| -> Result<Ref, CliError> {
        match s {
            Some(s) => s.parse().map_err(CliError::input),
            None => Ok(default),
        }
    };
    let (ra, rb) = (parse(a, Ref::Live)?, parse(b, Ref::Newest)?);
    let store = super::query::open_store(paths)?;
    super::query::known_stack(paths, &store, stack)?;
    let (sa, sb) = (
        diff::resolve(&store, stack, ra)?,
        diff::resolve(&store, stack, rb)?,
    );
    let d = diff::diff(&store, stack, sa, sb, true)?;
    match (format, json) {
        (DiffFormat::Openvex, _) => {
            let new = store.manifest(d.b.build)?;
            let now = crate::store::now_rfc3339();
            let who = crate::store::audit::current_user();
            let doc = diff::vex::openvex(&d, &new, &who, &now)
                .map_err(|e| CliError::failed(e.to_string()))?;
            print_json(&doc)
        }
        (DiffFormat::Json, _) | (_, true) => print_json(&d),
        (DiffFormat::Table, false) => {
            print!("{}", diff::text::render(&d));
            Ok(())
        }
    }
}
