//! `drover diff STACK [A] [B]`: what changes from A to B (default: the live release to the
//! newest build), as a table, JSON ([`crate::diff::Diff`]) or an OpenVEX document.

use clap::ValueEnum;

use super::output::{print_json, short_digest, table};
use super::{CliError, CliResult};
use crate::diff::{self, Change, Diff, DiffError, Ref};
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
            print!("{}", render(&d));
            Ok(())
        }
    }
}

fn side(s: &diff::Side) -> String {
    match s.release {
        Some(r) => format!("build #{} (release {r})", s.build),
        None => format!("build #{}", s.build),
    }
}

fn word(c: Change) -> &'static str {
    match c {
        Change::Added => "added",
        Change::Removed => "removed",
        Change::Upgraded => "upgraded",
        Change::Downgraded => "DOWNGRADED",
        Change::Changed => "changed",
    }
}

fn cve_list(ids: &[String]) -> String {
    let mut s: Vec<&str> = ids.iter().take(3).map(String::as_str).collect();
    if ids.len() > 3 {
        s.push("…");
    }
    if ids.is_empty() {
        String::new()
    } else {
        format!("{} ({})", s.join(" "), ids.len())
    }
}

/// The table form: a summary line, then one section per kind of change.
pub fn render(d: &Diff) -> String {
    let mut out = format!(
        "{}: {} -> {}: {}\n",
        d.stack,
        side(&d.a),
        side(&d.b),
        d.summary()
    );
    if !d.packages.is_empty() {
        let rows: Vec<Vec<String>> = d
            .packages
            .iter()
            .map(|s| {
                let cves = match s.change {
                    Change::Downgraded => format!("undoes {}", cve_list(&s.undoes)),
                    _ => cve_list(&s.fixes),
                };
                let unknown =
                    matches!(s.change, Change::Upgraded | Change::Downgraded) && !s.changelog_known;
                vec![
                    s.source.clone(),
                    word(s.change).into(),
                    s.old.clone().unwrap_or_else(|| "-".into()),
                    s.new.clone().unwrap_or_else(|| "-".into()),
                    s.packages.len().to_string(),
                    if unknown && cves.trim().is_empty() {
                        "? (no changelog stored)".into()
                    } else {
                        cves
                    },
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(
            &["SOURCE", "CHANGE", "OLD", "NEW", "PKGS", "CVES"],
            &rows,
        ));
    }
    if !d.language.is_empty() {
        out.push_str("\nlanguage packages:\n");
        for l in &d.language {
            out.push_str(&format!(
                "  {:<8} {} ({}) {} -> {}\n",
                word(l.change),
                l.name,
                l.ecosystem,
                l.old.as_deref().unwrap_or("-"),
                l.new.as_deref().unwrap_or("-")
            ));
        }
    }
    match &d.image {
        None => out.push_str("\nimage: not compared (an image archive was pruned)\n"),
        Some(img) => {
            if !img.config.is_empty() {
                out.push_str("\nimage config:\n");
                for c in &img.config {
                    out.push_str(&format!(
                        "  {}: {} -> {}\n",
                        c.field,
                        c.old.as_deref().unwrap_or("(unset)"),
                        c.new.as_deref().unwrap_or("(unset)")
                    ));
                }
            }
            if !img.files.is_empty() {
                out.push_str("\napp files:\n");
                let short = |v: &Option<String>| match v.as_deref() {
                    None => "-".to_string(),
                    Some(s) if s.starts_with("sha256:") => short_digest(s),
                    Some(s) => s.to_string(),
                };
                for f in &img.files {
                    out.push_str(&format!(
                        "  {:<8} /{}  {} -> {}\n",
                        word(f.change),
                        f.path,
                        short(&f.old),
                        short(&f.new)
                    ));
                }
            }
        }
    }
    out
}
