//! `drover build`.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::output::{print_json, short_digest};
use super::{interactive, CliError, CliResult};
use crate::build::{self, BuildOptions};
use crate::jobs::{BuildEvent, CancelToken, Stream};
use crate::paths::Paths;
use crate::store::builds::BuildStatus;
use crate::store::Store;
use crate::text::sanitize_for_terminal;

/// Load a stack by name, turning diagnostics into an exit-2 error.
pub(super) fn load_stack(paths: &Paths, name: &str) -> Result<crate::stack::Stack, CliError> {
    crate::stack::load_stack(&paths.config, name)
        .map_err(|diags| CliError::input(diags.to_string()))
}

/// Build `name`; print progress, then the result (or `--json` report).
pub fn build(
    paths: &Paths,
    name: &str,
    refresh_base: bool,
    apply_updates: bool,
    json: bool,
) -> CliResult {
    let mut stack = load_stack(paths, name)?;
    if apply_updates {
        crate::updates::add_tracked_suites(&mut stack);
    }
    let tty = interactive();
    let bar = if tty {
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
    let mut observer = |e: &BuildEvent| match e {
        BuildEvent::StepStarted { step, .. } => match &bar {
            Some(b) => b.set_prefix(step.as_str()),
            None => eprintln!("[{}]", step.as_str()),
        },
        BuildEvent::Log { line, stream, .. } => match &bar {
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
    // Failure: the step, the error, and the last lines of output, on stderr.
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
