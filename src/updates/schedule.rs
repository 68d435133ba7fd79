//! Everything after a check, in one place for the CLI, the agent and the console:
//! [`run_check`] checks a stack (repositories, changelog CVEs, feeds), notifies new
//! security updates ([`super::notify`]) and applies the stack's `auto_rebuild` policy;
//! [`run_due`] runs the checks the `check_interval` of `drover.toml` makes due.

use anyhow::Result;
use chrono::{DateTime, Utc};
use std::time::Duration;

use super::notify::{self, NotifyOutcome};
use super::{check_stack, is_security, CheckOptions, CheckReport, PendingUpdate};
use crate::build::{self, BuildOptions};
use crate::config::Config;
use crate::jobs::CancelToken;
use crate::paths::Paths;
use crate::stack::{AutoRebuild, Stack};
use crate::store::builds::BuildStatus;
use crate::store::Store;

/// The store action that remembers an automatic rebuild per (stack, source, candidate).
pub const REBUILD_ACTION: &str = "rebuild";

/// An automatic rebuild started by a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebuild {
    /// The (source package, candidate source version) pairs that caused it.
    pub updates: Vec<(String, String)>,
    /// The build id, when the build got one.
    pub build_id: Option<i64>,
    /// How it ended (`None` when it could not start).
    pub status: Option<BuildStatus>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// The outcome of [`run_check`].
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The check itself (already stored).
    pub check: CheckReport,
    /// What the notifications did.
    pub notify: NotifyOutcome,
    /// The automatic rebuild, if the policy and new updates started one.
    pub rebuild: Option<Rebuild>,
}

/// The new updates `policy` rebuilds for: one (source, candidate source version) per source
/// whose update matches the policy (`security`: [`is_security`]; `all`: any) and for which
/// `done(source, candidate)` is false. Empty for `off`. Order of first appearance.
pub fn rebuild_candidates(
    policy: AutoRebuild,
    updates: &[PendingUpdate],
    mut done: impl FnMut(&str, &str) -> bool,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for u in updates {
        let matches = match policy {
            AutoRebuild::Off => false,
            AutoRebuild::Security => is_security(u),
            AutoRebuild::All => true,
        };
        if !matches || out.iter().any(|(s, _)| *s == u.source) {
            continue;
        }
        if !done(&u.source, &u.source_candidate) {
            out.push((u.source.clone(), u.source_candidate.clone()));
        }
    }
    out
}

/// Check `stack` and act on the result: notify new security updates (`config.notify`) and,
/// per the stack's `auto_rebuild`, rebuild applying updates when the check found new
/// matching ones (the same as `drover build STACK --apply-updates`; never deploys; recorded
/// in the audit log). A failed notification is reported in the result and retried next
/// time; an automatic rebuild runs once per (source, candidate), even when it fails, so a
/// broken build does not repeat at every check.
///
/// `cancel` stops an automatic rebuild (recorded as cancelled) and keeps one from starting.
///
/// Errors: those of [`check_stack`] (nothing is notified or rebuilt then).
pub fn run_check(
    paths: &Paths,
    store: &Store,
    config: &Config,
    stack: &Stack,
    opts: CheckOptions,
    cancel: &CancelToken,
) -> Result<RunReport> {
    let check = check_stack(paths, store, stack, config, opts)?;
    let notify = notify::notify(store, &config.notify, &check);
    let mut done_err = None;
    let todo = rebuild_candidates(stack.track.auto_rebuild, &check.updates, |s, c| {
        store
            .update_action_done(&stack.name, s, c, REBUILD_ACTION)
            .unwrap_or_else(|e| {
                done_err = Some(format!("{e:#}"));
                true
            })
    });
    let rebuild = if let Some(e) = done_err {
        Some(Rebuild {
            updates: todo,
            build_id: None,
            status: None,
            error: Some(format!("cannot read the store: {e}")),
        })
    } else if todo.is_empty() || cancel.is_cancelled() {
        None
    } else {
        Some(rebuild(paths, store, stack, todo, cancel))
    };
    Ok(RunReport {
        check,
        notify,
        rebuild,
    })
}

fn rebuild(
    paths: &Paths,
    store: &Store,
    stack: &Stack,
    todo: Vec<(String, String)>,
    cancel: &CancelToken,
) -> Rebuild {
    let what = todo
        .iter()
        .map(|(s, c)| format!("{s} {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let policy = stack.track.auto_rebuild.as_str();
    // Remember first: a second check during the build must not start another one.
    if let Err(e) = store.record_update_actions(
        &stack.name,
        &todo,
        REBUILD_ACTION,
        &format!("auto_rebuild = {policy}"),
    ) {
        return Rebuild {
            updates: todo,
            build_id: None,
            status: None,
            error: Some(format!("cannot record the rebuild in the store: {e:#}")),
        };
    }
    // The same as `drover build --apply-updates`: move the lock, then build it.
    let opts = BuildOptions {
        refresh_base: false,
        cancel: cancel.clone(),
        lock: build::locking::LockMode::Update(build::locking::UpdateSelection::all()),
        vm: false,
    };
    let result = build::run(paths, stack, &opts, &mut |_| {});
    let (build_id, status, error) = match result {
        Ok(r) => (Some(r.build_id), Some(r.status), r.error),
        Err(e) => (None, None, Some(format!("{e:#}"))),
    };
    let detail = format!(
        "auto_rebuild = {policy} for {what}: {}{}",
        match (build_id, status) {
            (Some(id), Some(s)) => format!("build {id} {}", s.as_str()),
            _ => "the build did not start".to_string(),
        },
        error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    let _ = store.audit("auto-rebuild", Some(&stack.name), &detail);
    Rebuild {
        updates: todo,
        build_id,
        status,
        error,
    }
}

/// Whether a stack last checked at `last` (RFC 3339, `None` = never) is due for a check at
/// `now`, every `interval`. An unreadable time counts as never; an interval too large to
/// add never falls due.
pub fn is_due(last: Option<&str>, interval: Duration, now: DateTime<Utc>) -> bool {
    let Some(last) = last.and_then(|l| DateTime::parse_from_rfc3339(l).ok()) else {
        return true;
    };
    let interval = chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    last.with_timezone(&Utc)
        .checked_add_signed(interval)
        .is_some_and(|due| due <= now)
}

/// The stacks due for a scheduled check at `now`: those with a succeeded build whose last
/// check is older than `config.check_interval` (none when no interval is set). Stacks that
/// do not parse are skipped (the CLI and console report them elsewhere).
pub fn due_stacks(
    paths: &Paths,
    store: &Store,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Vec<Stack>> {
    let Some(interval) = config.check_interval else {
        return Ok(Vec::new());
    };
    let (all, _) = crate::stack::load_all(&paths.config);
    let mut due = Vec::new();
    for s in all {
        if store.latest_succeeded(&s.name)?.is_none() {
            continue;
        }
        if is_due(
            store.last_update_check_at(&s.name)?.as_deref(),
            interval,
            now,
        ) {
            due.push(s);
        }
    }
    Ok(due)
}

/// Run every due check now (refreshing the repositories, reading changelogs), one stack
/// after the other, with [`run_check`]. Reads `drover.toml` anew each time so edits apply
/// without a restart. Returns one line per stack: a summary, or the error. Once `cancel` is
/// set no further stack is checked (and a running auto-rebuild stops).
///
/// Errors: `drover.toml` is invalid, or the store cannot be opened.
pub fn run_due(paths: &Paths, now: DateTime<Utc>, cancel: &CancelToken) -> Result<Vec<String>> {
    let config = crate::config::load_text(&paths.config_file()).map_err(anyhow::Error::msg)?;
    let store = Store::open(&paths.database())?;
    let opts = CheckOptions {
        refresh: true,
        cves: true,
    };
    let mut lines = Vec::new();
    for stack in due_stacks(paths, &store, &config, now)? {
        if cancel.is_cancelled() {
            break;
        }
        lines.push(
            match run_check(paths, &store, &config, &stack, opts, cancel) {
                Ok(r) => summary(&r),
                Err(e) => format!("{}: scheduled check failed: {e:#}", stack.name),
            },
        );
    }
    Ok(lines)
}

/// How often [`scheduler`] looks for due checks.
pub const SCHEDULER_TICK: Duration = Duration::from_secs(60);

/// The background scheduler of the agent and the console: every `tick` (the first at
/// once), run [`run_due`] on tokio's blocking pool and hand its lines (or its error) to
/// `report` when there is something to say (an error once until it changes). One batch
/// at a time; runs until its task is dropped or aborted. Must be spawned on a tokio runtime. Cancel `cancel` before aborting
/// the task: the blocking check in flight (maybe an auto-rebuild) then stops too.
pub async fn scheduler<F>(paths: Paths, tick: Duration, cancel: CancelToken, report: F)
where
    F: Fn(std::result::Result<Vec<String>, String>) + Send + Sync + 'static,
{
    let mut clock = tokio::time::interval(tick);
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    loop {
        clock.tick().await;
        let (p, c) = (paths.clone(), cancel.clone());
        let outcome = tokio::task::spawn_blocking(move || run_due(&p, Utc::now(), &c))
            .await
            .map_err(|e| format!("the scheduled check stopped: {e}"))
            .and_then(|r| r.map_err(|e| format!("{e:#}")));
        match outcome {
            Ok(lines) => {
                last_error = None;
                if !lines.is_empty() {
                    report(Ok(lines));
                }
            }
            // The same error (e.g. an invalid drover.toml) is said once, not every tick.
            Err(e) if last_error.as_ref() == Some(&e) => {}
            Err(e) => {
                last_error = Some(e.clone());
                report(Err(e));
            }
        }
    }
}

/// One line about a run: pending and security counts, notifications, rebuild, problems.
pub fn summary(r: &RunReport) -> String {
    let sec = notify::security_updates(&r.check);
    let mut s = format!(
        "{}, {} security, {} open CVEs",
        r.check.summary_line(),
        sec.len(),
        r.check.open_cves.len()
    );
    for n in &r.notify.sent {
        s.push_str(&format!("; notified {n}"));
    }
    if let Some(b) = &r.rebuild {
        s.push_str(&match (b.build_id, b.status) {
            (Some(id), Some(st)) => format!("; auto-rebuild build {id} {}", st.as_str()),
            _ => format!(
                "; auto-rebuild failed: {}",
                b.error.as_deref().unwrap_or("unknown")
            ),
        });
    }
    let problems = r.check.refresh_errors.len() + r.check.feed_errors.len() + r.notify.errors.len();
    if problems > 0 {
        s.push_str(&format!(
            "; {problems} problems (see `drover updates {}`)",
            r.check.stack
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(pkg: &str, source: &str, suite: &str, cves: &[&str], urgency: &str) -> PendingUpdate {
        let mut u = crate::updates::test_update(pkg, source, suite, cves);
        u.urgency = Some(urgency.into());
        u
    }

    fn sample() -> Vec<PendingUpdate> {
        vec![
            update(
                "libssl3",
                "openssl",
                "bookworm-updates",
                &["CVE-1"],
                "medium",
            ),
            update(
                "openssl",
                "openssl",
                "bookworm-updates",
                &["CVE-1"],
                "medium",
            ),
            update("libc6", "glibc", "bookworm-updates", &[], "high"),
            update("curl", "curl", "bookworm-security", &[], "low"),
            update("tzdata", "tzdata", "bookworm-updates", &[], "medium"),
        ]
    }

    #[test]
    fn rebuild_policy_decides_on_new_matching_updates() {
        let none = |_: &str, _: &str| false;
        assert!(rebuild_candidates(AutoRebuild::Off, &sample(), none).is_empty());
        let pairs = |v: Vec<(String, String)>| v.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
        // One per source; tzdata (no CVE, medium, -updates) is not a security update.
        assert_eq!(
            pairs(rebuild_candidates(AutoRebuild::Security, &sample(), none)),
            vec!["openssl", "glibc", "curl"]
        );
        assert_eq!(
            pairs(rebuild_candidates(AutoRebuild::All, &sample(), none)),
            vec!["openssl", "glibc", "curl", "tzdata"]
        );
        // Already rebuilt for openssl 2 and glibc 2: only the rest is new.
        let done = |s: &str, c: &str| c == "2" && (s == "openssl" || s == "glibc");
        assert_eq!(
            pairs(rebuild_candidates(AutoRebuild::Security, &sample(), done)),
            vec!["curl"]
        );
        // A newer candidate of a handled source is new again.
        let mut newer = sample();
        newer[0].source_candidate = "3".into();
        assert_eq!(
            rebuild_candidates(AutoRebuild::Security, &newer[..1], done),
            vec![("openssl".to_string(), "3".to_string())]
        );
        // Feed CVEs make an update a security update.
        let mut tz = sample().split_off(4);
        assert!(rebuild_candidates(AutoRebuild::Security, &tz, none).is_empty());
        tz[0].feed_cves.push(crate::updates::FeedCve {
            id: "CVE-9".into(),
            source: "tzdata".into(),
            urgency: None,
            fixed_version: Some("2".into()),
            status: "fixed".into(),
            note: None,
            feed: "osv".into(),
        });
        assert_eq!(
            rebuild_candidates(AutoRebuild::Security, &tz, none).len(),
            1
        );
    }

    #[test]
    fn due_from_the_last_check() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let six = Duration::from_secs(6 * 3600);
        assert!(is_due(None, six, now));
        assert!(is_due(Some("garbage"), six, now));
        assert!(!is_due(Some("2026-11-29T06:00:01.000Z"), six, now));
        assert!(is_due(Some("2026-11-29T06:00:00.000Z"), six, now));
        assert!(is_due(Some("2026-11-28T12:00:00.000Z"), six, now));
        assert!(!is_due(Some("2026-11-29T11:59:00Z"), Duration::MAX, now));
    }
}
