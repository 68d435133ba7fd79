//! Background jobs of the console: a build runs `build::run` (synchronous) on tokio's
//! blocking pool and forwards its [`BuildEvent`](crate::jobs::BuildEvent)s over a channel;
//! a panic in the job becomes a `Done` message with the panic text (the UI reports it
//! instead of dying half-drawn).

use tokio::sync::mpsc::UnboundedSender;

use super::update::JobMsg;
use crate::build::{self, BuildOptions};
use crate::jobs::CancelToken;
use crate::paths::Paths;
use crate::store::builds::BuildStatus;

/// Start a build of `stack` as job `job`; progress and the end arrive on `tx`.
pub fn spawn_build(
    paths: Paths,
    stack: String,
    job: u64,
    cancel: CancelToken,
    tx: UnboundedSender<JobMsg>,
) {
    let events = tx.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let stack = crate::stack::load_named(&paths.config, &stack).map_err(|diags| {
            diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let opts = BuildOptions {
            refresh_base: false,
            cancel,
        };
        let mut observer = |e: &crate::jobs::BuildEvent| {
            let _ = events.send(JobMsg::Event {
                job,
                event: e.clone(),
            });
        };
        build::run(&paths, &stack, &opts, &mut observer)
            .map(|r| (r.status, r.error))
            .map_err(|e| format!("{e:#}"))
    });
    watch(handle, job, tx);
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

/// Report the end of a job's task on `tx`, turning a panic into an error message.
pub fn watch(
    handle: tokio::task::JoinHandle<Result<(BuildStatus, Option<String>), String>>,
    job: u64,
    tx: UnboundedSender<JobMsg>,
) {
    tokio::spawn(async move {
        let outcome = match handle.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => {
                Err(format!("the job panicked: {}", panic_text(e.into_panic())))
            }
            Err(e) => Err(format!("the job was stopped: {e}")),
        };
        let _ = tx.send(JobMsg::Done { job, outcome });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_job_is_reported() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let h =
                tokio::task::spawn_blocking(|| -> Result<(BuildStatus, Option<String>), String> {
                    panic!("boom in a job")
                });
            watch(h, 7, tx);
            match rx.recv().await {
                Some(JobMsg::Done {
                    job: 7,
                    outcome: Err(e),
                }) => {
                    assert!(e.contains("panicked") && e.contains("boom in a job"), "{e}")
                }
                other => panic!("unexpected {other:?}"),
            }
        });
    }
}
