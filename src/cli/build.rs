//! `drover build`.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::output::{print_json, short_digest};
use super::{interactive, CliError, CliResult};
use crate::build::locking::{LockMode, UpdateSelection};
use crate::build::{self, BuildOptions};
use crate::jobs::{BuildEvent, CancelToken, Stream};
use crate::lock::Lock;
use crate::paths::Paths;
use crate::store::builds::BuildStatus;
use crate::store::Store;
use crate::text::sanitize_for_terminal;

/// Load a stack by name, turning diagnostics into an exit-2 error.
pub(super) fn load_stack(paths: &Paths, name: &str) -> Result<crate::stack::Stack, CliError> {
    crate::stack::load_stack(&paths.config, name)
        .map_err(|diags| CliError::input(diags.to_string()))
}

/// The lock mode of `drover build` from its flags; `--reproduce N` reads build N's lock.
///
/// Errors: build N does not exist, is of another stack, or recorded no lock (exit 2).
pub fn lock_mode(
    paths: &Paths,
    stack: &str,
    apply_updates: bool,
    locked: bool,
    reproduce: Option<i64>,
) -> Result<LockMode, CliError> {
    if let Some(id) = reproduce {
        let store = crate::build::select::open_store(paths)?;
        let b = crate::build::select::pick_build(
            &store,
            stack,
            Some(id),
            crate::build::select::Need::Any,
        )?;
        let Some(text) = store.build_lock(b.id)? else {
            return Err(CliError::input(format!(
                "build {id} of {stack} recorded no lock (it was made before drover kept \
                 locks, or failed before its base); pick a later build"
            )));
        };
        let lock = Lock::parse(&text, std::path::Path::new(&format!("build {id}")))
            .map_err(|d| CliError::failed(d.to_string()))?;
        return Ok(LockMode::Exact(Box::new(lock)));
    }
    Ok(if apply_updates {
        LockMode::Update(UpdateSelection::all())
    } else if locked {
        LockMode::Locked
    } else {
        LockMode::Follow
    })
}

/// A progress bar on a terminal (None otherwise) and the observer that feeds it build
/// events, or prints them to stderr when not `json`.
fn progress(json: bool) -> (Option<ProgressBar>, impl FnMut(&BuildEvent)) {
    let bar = if interactive() {
        let b = ProgressBar::new_spinner();
        b.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {prefix:.bold} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(Duration::from_millis(100));
        Some(b)
    } else {
        None
    };
    let shown = bar.clone();
    let observer = move |e: &BuildEvent| match e {
        BuildEvent::StepStarted { step, .. } => match &shown {
            Some(b) => b.set_prefix(step.as_str()),
            None => eprintln!("[{}]", step.as_str()),
        },
        BuildEvent::Log { line, stream, .. } => match &shown {
            Some(b) => {
                if *stream == Stream::Drover {
                    b.println(format!("  {line}"));
                }
                b.set_message(sanitize_for_terminal(line));
            }
            None if !json => eprintln!("  {line}"),
            None => {}
        },
        _ => {}
    };
    (bar, observer)
}

/// `drover lock STACK [--update [--security-only] [PACKAGE...]]`: settle the lock, print
/// old → new per package with the CVEs each fixes (or the `--json` outcome).
pub fn lock(
    paths: &Paths,
    name: &str,
    update: bool,
    security_only: bool,
    packages: Vec<String>,
    json: bool,
) -> CliResult {
    let stack = load_stack(paths, name)?;
    let mode = if update {
        let security_sources = if security_only {
            let store = crate::build::select::open_store(paths)?;
            crate::build::locking::security_sources(&store, name)
                .map_err(|e| CliError::input(format!("{e:#}")))?
        } else {
            Vec::new()
        };
        LockMode::Update(UpdateSelection {
            security_only,
            packages,
            security_sources,
        })
    } else {
        LockMode::Follow
    };
    crate::build::locking::check_mode(&stack, &mode)
        .map_err(|e| CliError::input(format!("{e:#}")))?;
    let (bar, mut observer) = progress(json);
    let outcome = crate::build::locking::lock_stack(paths, &stack, &mode, &mut observer);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let outcome = outcome.map_err(|e| CliError::failed(format!("{e:#}")))?;
    if json {
        return print_json(&outcome);
    }
    for c in &outcome.changes {
        let cves = if c.cves.is_empty() {
            String::new()
        } else {
            format!("  fixes {}", c.cves.join(", "))
        };
        println!("{:<11} {}{cves}", c.kind.as_str(), c.line());
    }
    let fixed: std::collections::BTreeSet<&String> =
        outcome.changes.iter().flat_map(|c| c.cves.iter()).collect();
    println!(
        "lock {}: {} package(s), {}{}",
        outcome.path,
        outcome.packages,
        match (&outcome.reason, outcome.changed) {
            (Some(r), true) => format!("written ({r}), {} changed", outcome.changes.len()),
            _ => "unchanged".to_string(),
        },
        if fixed.is_empty() {
            String::new()
        } else {
            format!(", fixes {} CVE(s)", fixed.len())
        }
    );
    Ok(())
}

/// Build `name`; print progress, then the result (or `--json` report).
pub fn build(
    paths: &Paths,
    name: &str,
    (refresh_base, vm): (bool, bool),
    lock: LockMode,
    json: bool,
) -> CliResult {
    let stack = load_stack(paths, name)?;
    crate::build::locking::check_mode(&stack, &lock)
        .map_err(|e| CliError::input(format!("{e:#}")))?;
    let (bar, mut observer) = progress(json);
    let cancel = CancelToken::new();
    // Ctrl-C / SIGTERM cancel the build cleanly (children stopped, build recorded as
    // cancelled); a second Ctrl-C exits at once.
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, cancel.flag());
        let _ = signal_hook::flag::register(sig, cancel.flag());
    }
    let report = build::run(
        paths,
        &stack,
        &BuildOptions {
            refresh_base,
            cancel,
            lock,
            vm,
        },
        &mut observer,
    )?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let ok = report.status == BuildStatus::Succeeded;
    if json {
        print_json(&report)?;
    } else if ok {
        // build::run opened (and recovered) the store: here a plain open reads its rows.
        let store = Store::open(&paths.database())?;
        let components = store.manifest(report.build_id)?;
        let mut by_suite: BTreeMap<String, usize> = BTreeMap::new();
        for c in &components {
            let key = if c.suite.is_empty() {
                c.origin.clone()
            } else {
                c.suite.clone()
            };
            *by_suite.entry(key).or_default() += 1;
        }
        let suites = by_suite
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "build {} of {} succeeded in {:.1} s (base {} {})",
            report.build_id,
            report.stack,
            report.duration_ms as f64 / 1000.0,
            short_digest(report.base_key.as_deref().unwrap_or("")),
            if report.base_cached {
                "reused from the cache"
            } else {
                "built"
            }
        );
        println!("image     {}", report.image_digest.as_deref().unwrap_or(""));
        println!("archive   {}", report.image_path.as_deref().unwrap_or(""));
        println!("manifest  {} packages ({suites})", components.len());
        if let Some(v) = &report.vm {
            println!(
                "vm        {} ({}, {}, kernel {}, {} boot package(s))",
                v.path,
                v.format,
                crate::text::format_size(v.size),
                v.kernel,
                v.boot_packages.len()
            );
        }
        println!(
            "next      drover manifest {0}   |   skopeo inspect oci-archive:{1}",
            report.stack,
            report.image_path.as_deref().unwrap_or("")
        );
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if ok {
        return Ok(());
    }
    // Failure: the step, the error, and the last lines of output, on stderr (a plain
    // open, as above).
    let store = Store::open(&paths.database())?;
    let total = store.log_len(report.build_id)?;
    let tail = store.logs(report.build_id, (total - 20).max(0), 20)?;
    let mut msg = format!(
        "build {} of {} {} at step {}: {}\n--- last {} log lines ---\n",
        report.build_id,
        report.stack,
        report.status.as_str(),
        report.failed_step.map(|s| s.as_str()).unwrap_or("?"),
        report.error.as_deref().unwrap_or(""),
        tail.len()
    );
    for l in &tail {
        msg.push_str(&format!("  {}\n", sanitize_for_terminal(&l.line)));
    }
    msg.push_str(&format!(
        "full log: drover logs {} --build {}",
        report.stack, report.build_id
    ));
    Err(CliError::failed(msg))
}
