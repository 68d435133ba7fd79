//! Background jobs of the console, on tokio's blocking pool, calling the same library code
//! as the CLI: a build runs `build::run` and forwards its
//! [`BuildEvent`](crate::jobs::BuildEvent)s over a channel; an update check runs
//! `updates::check_stack` (`drover updates STACK --refresh`); a deploy or rollback runs
//! `deploy::client::deploy` (`drover deploy` / `drover rollback`) and forwards its progress
//! lines. A panic in a job becomes an error message (the UI reports it instead of dying
//! half-drawn).

use tokio::sync::mpsc::UnboundedSender;

use super::msg::{JobError, JobMsg};
use super::state::AgentView;
use crate::build::locking::{LockMode, UpdateSelection};
use crate::build::{self, BuildOptions};
use crate::deploy::api::DeployRequest;
use crate::jobs::CancelToken;
use crate::paths::Paths;
#[cfg(test)]
use crate::store::builds::BuildStatus;

fn load_stack(paths: &Paths, name: &str) -> Result<crate::stack::Stack, JobError> {
    crate::stack::load_stack(&paths.config, name).map_err(JobError::Stack)
}

/// Start a build of `stack` as job `job` (with `apply_updates`, the lock first moves to the
/// pending updates, as `drover build --apply-updates` does); progress and the end arrive on
/// `tx`.
pub fn spawn_build(
    paths: Paths,
    stack: String,
    apply_updates: bool,
    job: u64,
    cancel: CancelToken,
    tx: UnboundedSender<JobMsg>,
) {
    let events = tx.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let stack = load_stack(&paths, &stack)?;
        let lock = if apply_updates {
            LockMode::Update(UpdateSelection::all())
        } else {
            LockMode::Follow
        };
        let opts = BuildOptions {
            refresh_base: false,
            cancel,
            lock,
            vm: false,
        };
        let mut observer = |e: &crate::jobs::BuildEvent| {
            let _ = events.send(JobMsg::Event {
                job,
                event: e.clone(),
            });
        };
        let r = build::run(&paths, &stack, &opts, &mut observer)?;
        Ok((r.status, r.error))
    });
    watch(handle, tx, move |outcome| JobMsg::Done { job, outcome });
}

/// Check `stack` for updates as job `job` with [`crate::updates::run_check`], as
/// `drover updates STACK --refresh` does (feeds, notifications and `auto_rebuild`
/// included); warnings, notifications and an automatic rebuild become lines, the summary
/// the outcome.
pub fn spawn_check(paths: Paths, stack: String, job: u64, tx: UnboundedSender<JobMsg>) {
    let lines = tx.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let stack = load_stack(&paths, &stack)?;
        let store = crate::build::select::open_store(&paths)?;
        let config = crate::config::load_text(&paths.config_file()).map_err(JobError::Config)?;
        let opts = crate::updates::CheckOptions {
            refresh: true,
            cves: true,
        };
        let run = crate::updates::run_check(
            &paths,
            &store,
            &config,
            &stack,
            opts,
            &crate::jobs::CancelToken::new(),
        )?;
        let r = &run.check;
        for w in &r.warnings {
            let line = format!("warning: {w}");
            let _ = lines.send(JobMsg::Line { job, line });
        }
        for n in &run.notify.sent {
            let line = format!("notified: {n}");
            let _ = lines.send(JobMsg::Line { job, line });
        }
        if let Some(b) = &run.rebuild {
            let line = match (b.build_id, b.status) {
                (Some(id), Some(st)) => format!("auto-rebuild: build {id} {}", st.as_str()),
                _ => format!(
                    "auto-rebuild did not start: {}",
                    b.error.as_deref().unwrap_or("?")
                ),
            };
            let _ = lines.send(JobMsg::Line { job, line });
        }
        let summary = r.summary_line();
        if r.refresh_errors.is_empty() {
            Ok(summary)
        } else {
            Err(JobError::Refresh {
                summary,
                errors: r.refresh_errors.clone(),
            })
        }
    });
    watch(handle, tx, move |outcome| JobMsg::Ended { job, outcome });
}

/// Refresh (or with `update`, move to the pending updates) the lock of `stack` as job
/// `job`, as `drover lock` does: its drover lines and each `old -> new` arrive on `tx`,
/// then a summary.
pub fn spawn_lock(
    paths: Paths,
    stack: String,
    update: bool,
    job: u64,
    tx: UnboundedSender<JobMsg>,
) {
    let lines = tx.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let stack = load_stack(&paths, &stack)?;
        let mode = if update {
            LockMode::Update(UpdateSelection::all())
        } else {
            LockMode::Follow
        };
        build::locking::check_mode(&stack, &mode)?;
        let mut observer = |e: &crate::jobs::BuildEvent| {
            if let crate::jobs::BuildEvent::Log { line, stream, .. } = e {
                if *stream == crate::jobs::Stream::Drover {
                    let _ = lines.send(JobMsg::Line {
                        job,
                        line: line.clone(),
                    });
                }
            }
        };
        let o = build::locking::lock_stack(&paths, &stack, &mode, &mut observer)?;
        for c in &o.changes {
            let fixes = if c.cves.is_empty() {
                String::new()
            } else {
                format!(" (fixes {})", c.cves.join(", "))
            };
            let line = format!("{} {}{fixes}", c.kind.as_str(), c.line());
            let _ = lines.send(JobMsg::Line { job, line });
        }
        Ok(if o.changed {
            format!("lock written: {} package(s) changed", o.changes.len())
        } else {
            "lock unchanged".to_string()
        })
    });
    watch(handle, tx, move |outcome| JobMsg::Ended { job, outcome });
}

/// Deploy or roll back (`req.rollback`) as job `job` through the agent, starting it when
/// needed; progress lines arrive on `tx`, then the outcome (the release now live, or the
/// agent's error with the health check's status and body).
pub fn spawn_deploy(paths: Paths, mut req: DeployRequest, job: u64, tx: UnboundedSender<JobMsg>) {
    let lines = tx.clone();
    let handle = tokio::task::spawn_blocking(move || {
        req.by = crate::store::audit::current_user();
        let mut progress = |line: &str| {
            let _ = lines.send(JobMsg::Line {
                job,
                line: line.to_string(),
            });
        };
        let r = crate::deploy::client::deploy(&paths, &req, &mut progress)?;
        for w in &r.warnings {
            progress(&format!("warning: {w}"));
        }
        Ok(format!(
            "{}: release #{} (build #{}, {}) is live on port {} with {} instance(s){}",
            r.stack,
            r.release,
            r.build_id,
            crate::text::short_digest(&r.image_digest),
            r.route_port,
            r.instances.len(),
            r.rollback_of
                .map(|n| format!(", rolled back to release #{n}'s build"))
                .unwrap_or_default()
        ))
    });
    watch(handle, tx, move |outcome| JobMsg::Ended { job, outcome });
}

/// Run a lifecycle action ([`crate::deploy::client::lifecycle`]) as job `job`; its
/// outcome line says what runs now.
pub fn spawn_lifecycle(
    paths: Paths,
    mut req: crate::deploy::api::LifecycleRequest,
    job: u64,
    tx: UnboundedSender<JobMsg>,
) {
    let handle = tokio::task::spawn_blocking(move || {
        req.by = crate::store::audit::current_user();
        let r = crate::deploy::client::lifecycle(&paths, &req)?;
        Ok(if r.stopped {
            format!(
                "{}: stopped ({} instance(s) drained); O starts release #{} again",
                r.stack,
                r.stopped_instances.len(),
                r.release
            )
        } else {
            format!(
                "{}: release #{} serves with {} of {} instance(s) ({} started, {} stopped)",
                r.stack,
                r.release,
                r.instances.len(),
                r.replicas,
                r.started.len(),
                r.stopped_instances.len()
            )
        })
    });
    watch(handle, tx, move |outcome| JobMsg::Ended { job, outcome });
}

/// Poll the agent's status without starting it; the answer goes to `tx`. Returns at once;
/// the poll runs on the blocking pool.
pub fn poll_agent(paths: Paths, tx: UnboundedSender<AgentView>) {
    use crate::deploy::api::AgentError;
    tokio::task::spawn_blocking(move || {
        let s = crate::deploy::client::AgentClient::new(&paths)
            .status(Some(std::time::Duration::from_secs(2)));
        let _ = tx.send(match s {
            Ok(s) => AgentView::Running(s),
            Err(AgentError::PermissionDenied(m)) => AgentView::Denied(m),
            Err(_) => AgentView::NotRunning,
        });
    });
}

/// Start the scheduled update checks ([`crate::updates::schedule::scheduler`]); each
/// batch arrives on `tx` as one status line (stacks checked, or the error). Cancel
/// `cancel` before aborting the returned task (on quit).
pub fn spawn_scheduled_checks(
    paths: Paths,
    cancel: CancelToken,
    tx: UnboundedSender<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(crate::updates::schedule::scheduler(
        paths,
        crate::updates::schedule::SCHEDULER_TICK,
        cancel,
        move |r| {
            let _ = tx.send(match r {
                Ok(lines) => format!("scheduled check: {}", lines.join(" | ")),
                Err(e) => format!("scheduled checks failed: {e}"),
            });
        },
    ))
}

/// Report the end of a job's task on `tx` as `done(outcome)`, turning a panic into
/// [`JobError::Panicked`].
pub fn watch<T: Send + 'static>(
    handle: tokio::task::JoinHandle<Result<T, JobError>>,
    tx: UnboundedSender<JobMsg>,
    done: impl FnOnce(Result<T, JobError>) -> JobMsg + Send + 'static,
) {
    tokio::spawn(async move {
        let outcome = match handle.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(JobError::Panicked(panic_text(e.into_panic()))),
            Err(e) => Err(JobError::Stopped(e.to_string())),
        };
        let _ = tx.send(done(outcome));
    });
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

/// `:new NAME TEMPLATE`: [`crate::stack::templates::create`] (the stack file and its app
/// skeleton, as `drover new` writes them), then the stack validated. `Ok((name, message))`
/// says what was written and what to press next; `Err` why nothing was written, or the
/// first diagnostic of a stack that was written but does not validate.
pub fn new_stack(
    paths: &crate::paths::Paths,
    name: &str,
    template: &str,
) -> Result<(String, String), String> {
    let c = crate::stack::templates::create(&paths.config, name, template, None)
        .map_err(|e| format!("new {name}: {e}"))?;
    if let Err(diags) = crate::stack::load_file(&c.stack_file, &paths.config) {
        let first = diags.first().map(|d| d.to_string()).unwrap_or_default();
        return Err(format!(
            "wrote {}, but it does not validate: {first}",
            c.stack_file.display()
        ));
    }
    let app = c
        .app_dir
        .as_ref()
        .map(|d| format!(" and its app in {}", d.display()))
        .unwrap_or_default();
    Ok((
        name.to_string(),
        format!(
            "wrote {}{app}; {name} validates and is selected: press b to build it",
            c.stack_file.display()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_errors_read_as_the_strings_they_replace() {
        let e = anyhow::anyhow!("disk full").context("writing the layer");
        assert_eq!(
            JobError::from(e).to_string(),
            "writing the layer: disk full",
            "the causes, as {{:#}} wrote them"
        );
        let e = JobError::Refresh {
            summary: "hello: 2 pending".into(),
            errors: vec!["a: 404".into(), "b: timeout".into()],
        };
        assert_eq!(
            e.to_string(),
            "hello: 2 pending, but refreshing failed (the previous index was used): a: 404; b: timeout"
        );
        let e = JobError::Agent(crate::deploy::api::AgentError::Conflict("busy".into()));
        assert_eq!(e.to_string(), "busy");
        assert_eq!(
            JobError::Panicked("boom".into()).to_string(),
            "the job panicked: boom"
        );
    }

    #[test]
    fn a_panicking_job_is_reported() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let h = tokio::task::spawn_blocking(
                || -> Result<(BuildStatus, Option<String>), JobError> { panic!("boom in a job") },
            );
            watch(h, tx, |outcome| JobMsg::Done { job: 7, outcome });
            match rx.recv().await {
                Some(JobMsg::Done {
                    job: 7,
                    outcome: Err(e),
                }) => {
                    let e = e.to_string();
                    assert!(e.contains("panicked") && e.contains("boom in a job"), "{e}")
                }
                other => panic!("unexpected {other:?}"),
            }
        });
    }

    #[test]
    fn new_stack_writes_a_valid_stack_and_refuses_an_existing_one() {
        let root = tempfile::tempdir().unwrap();
        let paths = crate::paths::Paths::resolve(
            Some(root.path().join("config")),
            Some(root.path().join("state")),
        )
        .unwrap();
        let (name, msg) = super::new_stack(&paths, "api", "python").unwrap();
        assert_eq!(name, "api");
        assert!(
            msg.contains("api validates") && msg.contains("press b"),
            "{msg}"
        );
        assert!(root.path().join("config/stacks/api.toml").is_file());
        assert!(root.path().join("apps/api/requirements.txt").is_file());
        let err = super::new_stack(&paths, "api", "python").unwrap_err();
        assert!(err.contains("already exists"), "{err}");
        let err = super::new_stack(&paths, "db", "mysql").unwrap_err();
        assert!(err.contains("there is no template `mysql`"), "{err}");
    }
}
