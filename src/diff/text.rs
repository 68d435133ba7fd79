//! The diff as text for people: the CLI's table form and the console's diff view (one
//! rendering for both front ends).

use super::{Change, Diff};
use crate::text::{short_digest, table};

fn side(s: &super::Side) -> String {
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
