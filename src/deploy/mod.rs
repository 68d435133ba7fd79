//! The local target (issue #5): releases of a stack run as sandboxed instances on this
//! machine behind a stable route, deployed blue-green and rolled back through the same
//! health-checked path.
//!
//! - [`unpack`]: an image archive's layers go into the layer cache, once per layer digest;
//!   the image's read-only root is an overlayfs of them each sandbox mounts for itself.
//! - [`instance`]: one instance under bubblewrap.
//! - [`netns`]: the instance's own network namespace: sockets into it for the router,
//!   the health checks and the `test` step; outbound through `pasta`.
//! - [`health`]: the active health check of one instance.
//! - [`runtime_log`]: the central runtime log (batched into the store, capped per stack).
//! - [`secrets`]: secret values from the operator's 0600 file or the agent's environment.
//! - [`route`]: the route table, swapped atomically; in-flight counting for drains.
//! - [`proxy`]: the router (hyper 1 reverse proxy) on the route port.
//! - [`metrics`]: what the router saw per release and minute (requests, classes, latency).
//! - [`watch`]: the watch window after a deploy: its verdict from the route metrics.
//! - [`machine`]: the deploy state machine (verify → start → healthy → switch → drain → stop).
//! - [`agent`]: `drover agent`, the long-running router and supervisor, and its restore.
//! - [`api`]: the agent's HTTP/JSON API on `STATE/agent.sock`: types, [`api::AgentError`]
//!   and its HTTP status mapping.
//! - [`client`]: [`client::AgentClient`], the typed client the CLI, the console and the
//!   tests use, and the deploy a front end runs (precheck, start the agent, progress).
//! - [`definition`]: the stack file, or the definition the live release was deployed with
//!   when the file is broken or gone (rollback, restore).
//! - [`plan`]: which build, as which rollback, with how many replicas (both ends decide alike).

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::paths::Paths;

pub mod agent;
pub mod api;
pub mod client;
pub mod definition;
pub mod detail;
pub mod downgrade;
pub mod health;
pub mod instance;
pub mod links;
pub mod machine;
pub mod metrics;
pub mod netns;
pub mod plan;
pub mod proxy;
pub mod route;
pub mod runtime_log;
pub mod secrets;
pub mod unpack;
pub mod watch;

/// Whether an agent answers on `STATE/agent.sock` (within 5 s).
pub fn agent_running(paths: &Paths) -> bool {
    client::AgentClient::new(paths).running(Duration::from_secs(5))
}

/// Start `drover agent` detached (its own session, output to `STATE/logs/agent.log`) unless
/// one answers already, and wait up to 15 s for its socket. Returns whether it was started.
///
/// Errors: the socket refuses this user (EACCES: an agent of another user; the message
/// says so), the agent binary cannot be run, or it did not come up (the message points at
/// its log).
pub fn ensure_agent(paths: &Paths) -> Result<bool> {
    match client::AgentClient::new(paths).status(Some(Duration::from_secs(5))) {
        Ok(_) | Err(api::AgentError::Unexpected(_)) => return Ok(false),
        Err(api::AgentError::PermissionDenied(m)) => bail!("{m}"),
        Err(_) => {}
    }
    paths.ensure_state()?;
    std::fs::create_dir_all(paths.logs())?;
    let log_path = paths.agent_log();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let exe = std::env::current_exe().context("cannot find the drover binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--config")
        .arg(&paths.config)
        .arg("--state")
        .arg(&paths.state)
        .arg("agent")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the agent must outlive this CLI's session.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the agent")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if agent_running(paths) {
            // Reap it in the background if it ever exits while we still run.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return Ok(true);
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "the agent exited at start ({status}); see {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "the agent did not answer on {} within 15 s; see {}",
        paths.agent_socket().display(),
        log_path.display()
    )
}

/// The open-file limit this process started with, for its instances
/// ([`raise_open_files`]).
static STARTED_WITH_OPEN_FILES: std::sync::OnceLock<libc::rlimit> = std::sync::OnceLock::new();

/// Most open files the agent asks for (soft limit), if the hard limit allows.
const AGENT_OPEN_FILES: libc::rlim_t = 65536;

/// Raise this process's soft limit of open files (to [`AGENT_OPEN_FILES`], or the hard
/// limit if lower): each route may hold [`proxy::MAX_CONNECTIONS`] client connections and
/// one to an instance per streamed upload, far over the usual soft limit of 1024.
/// Instances get the limit the agent started with back ([`instance_open_files`]), as Go's
/// `os/exec` does, since programs written for 1024 may break above it (`select`).
pub(crate) fn raise_open_files() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return;
        }
        let _ = STARTED_WITH_OPEN_FILES.set(r);
        let wanted = AGENT_OPEN_FILES.min(r.rlim_max);
        if r.rlim_cur < wanted {
            r.rlim_cur = wanted;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                eprintln!("drover agent: cannot raise the open-file limit to {wanted}");
            }
        }
    }
}

/// The open-file limit to give an instance: the one the agent started with, if
/// [`raise_open_files`] changed it (set it between fork and exec: setrlimit is
/// async-signal-safe).
pub(crate) fn instance_open_files() -> Option<libc::rlimit> {
    STARTED_WITH_OPEN_FILES.get().copied()
}
