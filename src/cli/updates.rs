//! `drover updates [STACK] [--refresh]`: pending updates of a stack's newest build, with the
//! CVEs they fix, riskiest first.

use std::collections::BTreeMap;

use super::build::load_stack;
use super::output::{print_json, table};
use super::{CliError, CliResult};
use crate::paths::Paths;
use crate::updates::{run_check, CheckOptions, CheckReport, RunReport};

/// Which pending updates `drover updates` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The newest build's (the default).
    Newest,
    /// The live release's build's (`--live`).
    Live,
    /// The newest build's VM image's boot packages (`--vm`).
    Vm,
    /// The language packages with newer registry versions (`--lang`).
    Lang,
}

/// One pending update in `updates --json`: the stored shape plus `against`, the build it
/// was computed for (`"build N"`, `"live"` with `--live`, `"vm build N"` with `--vm`).
#[derive(serde::Serialize)]
struct Against<'a> {
    #[serde(flatten)]
    update: &'a crate::manifest::pending::PendingUpdate,
    against: String,
}

/// Check one stack (or every stack with a succeeded build) with
/// [`run_check`](crate::updates::run_check) (feeds, notifications and `auto_rebuild`
/// included) and print the result. JSON: for one stack an array of `PendingUpdate`s; for
/// all stacks an object `{STACK: [...]}`. With `lang`, the language packages with newer
/// registry versions instead (same shapes, with `LangUpdate`s); with `Live` or `Vm`, the
/// live release's or the VM image's boot packages' updates. Refresh failures (the
/// previous good index was used), unusable feeds and failed notifications are printed as
/// errors after the result and make the exit code 1.
pub fn updates(
    paths: &Paths,
    stack: Option<&str>,
    refresh: bool,
    which: Which,
    json: bool,
) -> CliResult {
    let lang = which == Which::Lang;
    let config = crate::config::load_text(&paths.config_file()).map_err(CliError::input)?;
    let store = super::query::open_store(paths)?;
    let stacks = match stack {
        Some(name) => vec![load_stack(paths, name)?],
        None => {
            let (all, _) = crate::stack::load_all(&paths.config);
            let mut with_builds = Vec::new();
            for s in all {
                if store.latest_succeeded(&s.name)?.is_some() {
                    with_builds.push(s);
                }
            }
            with_builds
        }
    };
    // `--vm` of a stack without a VM image is refused before anything is fetched,
    // notified or rebuilt.
    if let (Which::Vm, Some(name)) = (which, stack) {
        let newest = store.latest_succeeded(name)?;
        let vm = match &newest {
            Some(b) => crate::build::vm::VmImage::of_build(&store, b.id)?,
            None => None,
        };
        if vm.is_none_or(|v| v.boot_components.is_empty()) {
            return Err(CliError::input(format!(
                "the newest build of {name} has no VM image with recorded boot packages; \
                 make one with `drover build {name} --vm`"
            )));
        }
    }
    let opts = CheckOptions {
        refresh,
        cves: true,
    };
    // With an auto_rebuild policy, Ctrl-C / SIGTERM stop the rebuild cleanly (recorded as
    // cancelled; a second one exits at once). Without one they end the command as usual.
    let cancel = crate::jobs::CancelToken::new();
    if stacks
        .iter()
        .any(|s| s.track.auto_rebuild != crate::stack::AutoRebuild::Off)
    {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, cancel.flag());
            let _ = signal_hook::flag::register(sig, cancel.flag());
        }
    }
    let mut runs: Vec<RunReport> = Vec::new();
    for s in &stacks {
        runs.push(run_check(paths, &store, &config, s, opts, &cancel)?);
    }
    for r in &runs {
        for w in &r.check.warnings {
            eprintln!("warning: {}: {w}", r.check.stack);
        }
        for n in &r.notify.sent {
            eprintln!("notified: {}: {n}", r.check.stack);
        }
        if let Some(b) = &r.rebuild {
            eprintln!(
                "auto-rebuild: {}: {}",
                r.check.stack,
                match (b.build_id, b.status) {
                    (Some(id), Some(s)) => format!(
                        "build {id} {} (see `drover builds {}`; deploying stays yours)",
                        s.as_str(),
                        r.check.stack
                    ),
                    _ => format!("did not start: {}", b.error.as_deref().unwrap_or("?")),
                }
            );
        }
    }
    let reports: Vec<&CheckReport> = runs.iter().map(|r| &r.check).collect();
    if lang {
        print_lang(&reports, stack.is_some(), json)?;
    } else if json {
        fn rows(r: &CheckReport, which: Which) -> Vec<Against<'_>> {
            let (against, updates) = match (which, &r.live, &r.vm) {
                (Which::Live, Some(l), _) => ("live".to_string(), l.updates.as_slice()),
                (Which::Vm, _, Some(v)) => (format!("vm build {}", v.build_id), &v.updates[..]),
                (Which::Vm, _, None) => (String::new(), &[][..]),
                _ => (format!("build {}", r.build_id), &r.updates[..]),
            };
            updates
                .iter()
                .map(|update| Against {
                    update,
                    against: against.clone(),
                })
                .collect()
        }
        if stack.is_some() {
            print_json(&reports.first().map(|r| rows(r, which)))?;
        } else {
            let by_stack: BTreeMap<&str, _> = reports
                .iter()
                .map(|r| (r.stack.as_str(), rows(r, which)))
                .collect();
            print_json(&by_stack)?;
        }
    } else {
        if reports.is_empty() {
            println!("no stack has a succeeded build to check; run `drover build STACK` first");
        }
        for r in reports.iter().copied() {
            println!("{} (checked {})", r.summary_line(), r.checked_at);
            if let Some(l) = &r.live {
                println!(
                    "{}: live release #{} runs build #{}: {} (deploy build #{} to apply what \
                     it has)",
                    r.stack,
                    l.release,
                    l.build_id,
                    crate::updates::PendingSummary::of(&l.updates),
                    r.build_id
                );
            }
            if let Some(v) = &r.vm {
                let summary = crate::updates::PendingSummary::of(&v.updates);
                if which == Which::Vm {
                    println!(
                        "{}: VM image ({}) of build #{}, boot packages: {summary}",
                        r.stack, v.format, v.build_id
                    );
                    if !v.updates.is_empty() {
                        print_updates(&v.updates);
                        println!(
                            "they are not in the lock: `drover build {} --vm --apply-updates \
                             --refresh-base` makes the base (with the tracked suites) and the \
                             boot layer again with them",
                            r.stack
                        );
                    }
                    continue;
                } else if !v.updates.is_empty() {
                    println!(
                        "{}: its VM image's boot packages (kernel, systemd, …): {summary}; \
                         `drover updates {} --vm` lists them",
                        r.stack, r.stack
                    );
                }
            }
            if which == Which::Vm || r.updates.is_empty() {
                continue;
            }
            print_updates(&r.updates);
        }
        for r in reports.iter().copied() {
            print_open_cves(r);
        }
    }
    for r in reports
        .iter()
        .filter(|r| !lang && !json && !r.lang_updates.is_empty())
    {
        println!(
            "{}: {} language package(s) have newer versions; `drover updates {} --lang` lists them",
            r.stack,
            r.lang_updates.len(),
            r.stack
        );
    }
    let errors: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            let c = &r.check;
            c.refresh_errors
                .iter()
                .chain(&c.feed_errors)
                .chain(&r.notify.errors)
                .map(move |e| format!("error: {}: {e}", c.stack))
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CliError::failed(errors.join("\n")))
    }
}

/// Below this many columns `drover updates` prints one row per source package (as the
/// console's Updates pane does) instead of one per binary package.
const NARROW: usize = 100;

/// The width of the terminal the text goes to: `COLUMNS` when it is a number, else the
/// width of stdout when it is a terminal; `None` for a pipe or a file (scripts get the
/// full table).
fn text_width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return Some(n);
    }
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    crossterm::terminal::size().ok().map(|(w, _)| w as usize)
}

/// The pending updates for a terminal `width` columns wide (< [`NARROW`]): one row per
/// source package (grouped as the console's Updates pane groups them, riskiest first) with
/// SOURCE, VERSION (`installed -> candidate` of the source; the candidate stays whole, the
/// installed version loses its shared start when room is short), URGENCY, CVES (how many,
/// changelogs and feeds) and its binary PACKAGES (cut with `…` at the width), then a line
/// saying how to get the full table.
fn by_source_table(updates: &[crate::updates::PendingUpdate], width: usize) -> String {
    let rows = crate::tui::data::group_by_source(updates.to_vec());
    let col = |f: &dyn Fn(&crate::tui::state::UpdateRow) -> usize, head: &str| {
        rows.iter().map(f).max().unwrap_or(0).max(head.len())
    };
    let source_w = col(&|r| r.source.chars().count(), "SOURCE").min(20);
    let urgency_w = col(&|r| r.urgency.chars().count().max(1), "URGENCY");
    let cves_w = "CVES".len();
    // Two spaces between columns; PACKAGES keeps at least 8 columns.
    let fixed = source_w + urgency_w + cves_w + 4 * 2;
    let want_v = col(
        &|r| r.from.chars().count() + 4 + r.to.chars().count(),
        "VERSION",
    );
    let version_w = want_v.min(width.saturating_sub(fixed + 8));
    let version_w = version_w.max(col(&|r| r.to.chars().count(), "VERSION"));
    let packages_w = width.saturating_sub(fixed + version_w).max(8);
    let cut = |s: String, w: usize| {
        if s.chars().count() <= w {
            s
        } else {
            let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
            t.push('…');
            t
        }
    };
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                cut(r.source.clone(), source_w),
                crate::text::version_change(&r.from, &r.to, version_w),
                if r.urgency.is_empty() {
                    "?".into()
                } else {
                    r.urgency.clone()
                },
                r.cves.len().to_string(),
                cut(r.packages.join(" "), packages_w),
            ]
        })
        .collect();
    let mut out = table(&["SOURCE", "VERSION", "URGENCY", "CVES", "PACKAGES"], &body);
    out.push_str(&format!(
        "{} binary package(s) from {} source package(s); --json or COLUMNS>={NARROW} \
         lists each\n",
        updates.len(),
        rows.len()
    ));
    out
}

/// `updates --lang`: the language updates of each report, as a table or JSON (one stack:
/// an array; all stacks: an object keyed by stack).
fn print_lang(reports: &[&CheckReport], one: bool, json: bool) -> CliResult {
    if json {
        if one {
            print_json(&reports.first().map(|r| &r.lang_updates))?;
        } else {
            let by_stack: BTreeMap<&str, _> = reports
                .iter()
                .map(|r| (r.stack.as_str(), &r.lang_updates))
                .collect();
            print_json(&by_stack)?;
        }
        return Ok(());
    }
    for r in reports {
        println!(
            "{}: build #{}, {} language package(s) with newer versions (checked {})",
            r.stack,
            r.build_id,
            r.lang_updates.len(),
            r.checked_at
        );
        if r.lang_updates.is_empty() {
            continue;
        }
        let rows: Vec<Vec<String>> = r
            .lang_updates
            .iter()
            .map(|u| {
                vec![
                    u.ecosystem.clone(),
                    u.package.clone(),
                    u.installed.clone(),
                    u.latest.clone(),
                    u.location.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &["ECOSYSTEM", "PACKAGE", "INSTALLED", "LATEST", "LOCATION"],
                &rows
            )
        );
    }
    Ok(())
}

/// The CVES cell: the changelog's ids, then the feeds' marked `+` (e.g.
/// `CVE-1 +CVE-2`), at most 3 then a count.
fn cve_cell(u: &crate::updates::PendingUpdate) -> String {
    let all: Vec<String> = u
        .cves
        .iter()
        .cloned()
        .chain(u.feed_cves.iter().map(|c| format!("+{}", c.id)))
        .collect();
    match all.len() {
        0 => "-".into(),
        n if n <= 3 => all.join(" "),
        n => format!("{} (+{} more)", all[..3].join(" "), n - 3),
    }
}

/// The open CVEs of a check (from the feeds), by source package.
fn print_open_cves(r: &CheckReport) {
    if r.open_cves.is_empty() {
        return;
    }
    println!(
        "{}: {} open CVEs with no fix in the tracked suites (from the feeds)",
        r.stack,
        r.open_cves.len()
    );
    let rows: Vec<Vec<String>> = r
        .open_cves
        .iter()
        .map(|c| {
            vec![
                c.source.clone(),
                c.id.clone(),
                c.urgency.clone().unwrap_or_else(|| "?".into()),
                match (&c.fixed_version, &c.note) {
                    (Some(v), _) => format!("{} (fixed in {v})", c.status),
                    (None, Some(n)) => format!("{}: {n}", c.status),
                    (None, None) => c.status.clone(),
                },
                c.feed.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["SOURCE", "CVE", "URGENCY", "STATUS", "FEED"], &rows)
    );
}

/// `manifest STACK --format cyclonedx|spdx`: the SBOM of a build (default: the newest
/// succeeded one) on stdout.
///
/// With `vm`, the SBOM of the build's VM disk image instead: the image's packages with
/// the boot layer's ([`crate::build::vm::VmImage::packages`]), the subject the disk file.
pub fn sbom(
    paths: &Paths,
    name: &str,
    build: Option<i64>,
    format: super::Format,
    vm: bool,
) -> CliResult {
    use crate::manifest::sbom::{cyclonedx, spdx, SbomSubject};
    let stack = load_stack(paths, name)?;
    let store = super::query::open_store(paths)?;
    let b = super::query::pick_build(&store, name, build, crate::build::select::Need::Manifest)?;
    let mut comps = store.manifest(b.id)?;
    let lang = store.language_packages(b.id)?;
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let vm_image = if vm {
        let image = crate::build::vm::VmImage::of_build(&store, b.id)?.ok_or_else(|| {
            CliError::input(format!(
                "build {} of {name} has no VM image; make one with `drover build {name} --vm`",
                b.id
            ))
        })?;
        if image.boot_components.is_empty() {
            return Err(CliError::input(format!(
                "build {} of {name} was made before VM images kept their boot packages' \
                 origins; make a new VM image with `drover build {name} --vm`",
                b.id
            )));
        }
        comps = image.packages(&comps);
        Some(image)
    } else {
        None
    };
    let subject = SbomSubject {
        stack: name,
        build_id: b.id,
        image_digest: match &vm_image {
            Some(v) => Some(v.digest.as_str()),
            None => b.image_digest.as_deref(),
        },
        suite: &stack.base.suite,
        created: &created,
        vm_format: vm_image.as_ref().map(|v| v.format.as_str()),
    };
    let doc = if format == super::Format::Spdx {
        spdx(&subject, &comps, &lang)
    } else {
        // The CVEs of the newest check, for the packages this build really holds.
        let pending = store
            .latest_update_check(name)?
            .map(|(_, u)| u)
            .unwrap_or_default()
            .into_iter()
            .filter(|u| {
                comps
                    .iter()
                    .any(|c| c.name == u.package && c.arch == u.arch && c.version == u.installed)
            })
            .collect::<Vec<_>>();
        cyclonedx(&subject, &comps, &lang, &pending)
    };
    print_json(&doc)
}

/// Print pending updates as the table (or, in a narrow terminal, grouped by source
/// package as the console does).
fn print_updates(updates: &[crate::updates::PendingUpdate]) {
    if let Some(w) = text_width().filter(|w| *w < NARROW) {
        print!("{}", by_source_table(updates, w));
        return;
    }
    let rows: Vec<Vec<String>> = updates
        .iter()
        .map(|u| {
            vec![
                u.package.clone(),
                u.arch.clone(),
                u.installed.clone(),
                u.candidate.clone(),
                u.suite.clone(),
                u.source.clone(),
                u.urgency.clone().unwrap_or_else(|| "?".into()),
                cve_cell(u),
                u.advisories.join(" "),
                match u.open_cves.len() {
                    0 => "-".into(),
                    n => n.to_string(),
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "PACKAGE",
                "ARCH",
                "INSTALLED",
                "CANDIDATE",
                "SUITE",
                "SOURCE",
                "URGENCY",
                "CVES",
                "ADVISORIES",
                "OPEN"
            ],
            &rows
        )
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::updates::PendingUpdate;

    fn pending(pkg: &str, source: &str, cves: &[&str], urgency: &str) -> PendingUpdate {
        PendingUpdate {
            package: pkg.into(),
            arch: "amd64".into(),
            installed: "3.0.15-1~deb12u1".into(),
            candidate: "3.0.17-1~deb12u2".into(),
            suite: "bookworm-security".into(),
            source: source.into(),
            source_installed: "3.0.15-1~deb12u1".into(),
            source_candidate: "3.0.17-1~deb12u2".into(),
            cves: cves.iter().map(|c| c.to_string()).collect(),
            urgency: Some(urgency.into()),
            checked_at: "2026-01-01T10:00:00Z".into(),
            advisories: vec![],
            dates: vec![],
            deb: None,
            feed_cves: vec![],
            open_cves: vec![],
        }
    }

    #[test]
    fn a_narrow_terminal_gets_one_row_per_source_riskiest_first_within_its_width() {
        let updates = vec![
            pending("tzdata", "tzdata", &[], "medium"),
            pending("libssl3", "openssl", &["CVE-2025-1", "CVE-2025-2"], "high"),
            pending("openssl", "openssl", &["CVE-2025-1"], "high"),
            pending("libssl-dev", "openssl", &[], "high"),
        ];
        let text = by_source_table(&updates, 90);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("SOURCE   VERSION"), "{text}");
        assert!(
            lines[1].starts_with("openssl  3.0.15-1~deb12u1 -> 3.0.17-1~deb12u2  high     2"),
            "{text}"
        );
        assert!(lines[1].ends_with("libssl3 openssl libssl-dev"), "{text}");
        assert!(lines[2].starts_with("tzdata "), "{text}");
        assert_eq!(
            lines[3],
            "4 binary package(s) from 2 source package(s); --json or COLUMNS>=100 lists each"
        );
        for l in &lines {
            assert!(l.chars().count() <= 90, "{l}");
        }
        // At 50 columns the installed version loses its start, the candidate stays whole
        // and the package list is cut.
        let text = by_source_table(&updates, 50);
        let row = text.lines().nth(1).unwrap();
        assert!(row.contains(" 3.0.17-1~deb12u2 "), "{text}");
        assert!(!row.contains("3.0.15-1~deb12u1"), "{text}");
        assert!(row.ends_with('…'), "{text}");
        assert!(row.chars().count() <= 50, "{row}");
    }
}
