//! `drover agent`: the long-running router and instance supervisor.
//!
//! One agent per state directory (an exclusive lock on `STATE/agent.lock`; its PID in
//! `STATE/agent.pid`), serving the API of [`super::api`] on `STATE/agent.sock`. At start it
//! restores every live release found in the store (route, then instances), then each
//! stack's warm release (`[deploy] keep_warm`: instances running unrouted). Instances that
//! exit or fail `[health] unhealthy_threshold` consecutive health checks after having been healthy
//! are replaced with exponential backoff (0.5 s doubling, at most 30 s); every start,
//! health change, exit and replacement is recorded as an instance event.
//!
//! - `server.rs`: the socket's HTTP handlers.
//! - `model.rs`: the runtime model (instances, live and warm sets, one stack's route).
//! - `deploy.rs`: deploy and rollback through the state machine.
//! - `restore.rs`: restoring live and warm releases at start.
//! - `supervise.rs`: starting, supervising, health-checking and replacing instances.
//! - `runtime.rs`: `LocalRuntime`, the state machine's view of the agent.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use crate::deploy::api::{
    AgentError, AgentStatus, DeployReport, DeployRequest, InstanceStatus, StackStatus,
};
use crate::deploy::instance::{self, InstanceSpec};
use crate::deploy::machine::{self, Check, Plan};
use crate::deploy::route::{empty_table, Backend, RouteTable, SharedTable};
use crate::deploy::unpack::{self, UnpackReport, UnpackedImage};
use crate::paths::Paths;
use crate::stack::Stack;
use crate::store::{now_rfc3339, Store};

mod deploy;
mod lifecycle;
mod model;
mod restore;
mod runtime;
mod server;
mod supervise;
mod watch;

use model::{Live, StackRt};
use server::ApiResult;

/// Previous releases per stack whose images stay unpacked for an immediate rollback.
pub const KEEP_UNPACKED: i64 = 2;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The agent's shared state.
pub struct Agent {
    paths: Paths,
    store: Mutex<Store>,
    stacks: Mutex<BTreeMap<String, Arc<StackRt>>>,
    started_at: String,
    shutdown: Notify,
    /// Serialises route creation, so two first deploys of one stack open one route.
    routes_lock: tokio::sync::Mutex<()>,
    /// The one writer of the instances' runtime logs.
    logs: crate::deploy::runtime_log::LogWriter,
}

/// Run the agent in the foreground until `drover agent stop` (or SIGTERM/SIGINT).
///
/// Errors: another agent holds the lock on this state directory, or the socket cannot be
/// created.
pub fn run(paths: Paths) -> Result<()> {
    paths.ensure_state()?;
    let lock_path = paths.agent_lock();
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(lock_file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let pid = std::fs::read_to_string(paths.agent_pid()).unwrap_or_default();
        bail!(
            "an agent is already running for {} (pid {}); use `drover agent status` or \
             `drover agent stop`",
            paths.state.display(),
            pid.trim()
        );
    }
    std::fs::write(paths.agent_pid(), std::process::id().to_string())?;
    super::raise_open_files();
    unpack::clean_temp(&paths.state);
    let store = Store::open(&paths.database())?;
    let failed = store.fail_unfinished_releases()?;
    if failed > 0 {
        eprintln!(
            "drover agent: {failed} deploy(s) interrupted by the previous agent marked failed"
        );
    }
    let config = crate::config::load_text(&paths.config_file()).map_err(anyhow::Error::msg)?;
    let logs =
        crate::deploy::runtime_log::LogWriter::start(&paths.database(), config.runtime_max_lines)?;
    let agent = Arc::new(Agent {
        logs,
        paths: paths.clone(),
        store: Mutex::new(store),
        stacks: Mutex::new(BTreeMap::new()),
        started_at: now_rfc3339(),
        shutdown: Notify::new(),
        routes_lock: tokio::sync::Mutex::new(()),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let sock = paths.agent_socket();
        let _ = std::fs::remove_file(&sock);
        let listener = tokio::net::UnixListener::bind(&sock)
            .with_context(|| format!("cannot listen on {}", sock.display()))?;
        let restore = tokio::spawn(restore::restore(agent.clone()));
        // Update checks due by `check_interval` (drover.toml), with notifications and
        // auto-rebuilds (never deploys): one library function, also used by the CLI.
        let checks_cancel = crate::jobs::CancelToken::new();
        let checks = tokio::spawn(crate::updates::schedule::scheduler(
            paths.clone(),
            crate::updates::schedule::SCHEDULER_TICK,
            checks_cancel.clone(),
            |r| match r {
                Ok(lines) => lines
                    .iter()
                    .for_each(|l| eprintln!("drover agent: scheduled check: {l}")),
                Err(e) => eprintln!("drover agent: scheduled checks: {e}"),
            },
        ));
        let flush = tokio::spawn({
            let agent = agent.clone();
            async move {
                let mut tick = tokio::time::interval(crate::deploy::metrics::FLUSH_INTERVAL);
                loop {
                    tick.tick().await;
                    agent.flush_metrics();
                }
            }
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                a = listener.accept() => {
                    let Ok((stream, _)) = a else { continue };
                    let agent = agent.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let agent = agent.clone();
                            async move { Ok::<_, Infallible>(server::handle(agent, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
                _ = agent.shutdown.notified() => break,
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        restore.abort();
        flush.abort();
        checks_cancel.cancel();
        checks.abort();
        let _ = std::fs::remove_file(&sock);
        agent.stop_everything().await;
        Ok::<(), anyhow::Error>(())
    });
    let _ = std::fs::remove_file(paths.agent_pid());
    rt.shutdown_timeout(Duration::from_secs(2));
    // The instances' last lines (their stop included) and the route's last requests are
    // committed before the exit.
    agent.logs.flush();
    agent.flush_metrics();
    drop(lock_file);
    result
}

impl Agent {
    /// The stack to act on ([`crate::deploy::definition::load`]): the file, or with
    /// `allow_stored` (rollback, restore) the text the live release was deployed with.
    /// Errors: 400 with the diagnostics when the file exists, else 404.
    fn load_stack(
        &self,
        name: &str,
        allow_stored: bool,
    ) -> ApiResult<crate::deploy::definition::Definition> {
        // The file is read and parsed without the store's lock (health loops, metrics and
        // the API take it); only a fallback to the kept text takes it.
        let kept = || lock(&self.store).live_stack_toml(name);
        crate::deploy::definition::load_with(&self.paths.config, kept, name, allow_stored).map_err(
            |diags| {
                let text = diags.to_string();
                if self
                    .paths
                    .stacks_dir()
                    .join(format!("{name}.toml"))
                    .is_file()
                {
                    AgentError::BadInput(text)
                } else {
                    AgentError::NotFound(text)
                }
            },
        )
    }

    /// The stack's runtime, creating its route (listening socket on `[deploy] listen`) on
    /// first use: the port remembered in the store, else the stack's `port` if free, else
    /// any free port. A route that listens on another address than the stack file now
    /// says moves there ([`Agent::relisten`]).
    async fn stack_rt(&self, stack: &Stack) -> Result<Arc<StackRt>> {
        let _routes = self.routes_lock.lock().await;
        let existing = lock(&self.stacks).get(&stack.name).cloned();
        if let Some(s) = existing {
            relisten(&s, stack.deploy.listen, stack.protocol).await?;
            return Ok(s);
        }
        let listen = stack.deploy.listen;
        let remembered = lock(&self.store).route_port(&stack.name)?;
        let mut tries: Vec<u16> = Vec::new();
        tries.extend(remembered);
        if remembered.is_none() {
            tries.extend(stack.port);
        }
        tries.push(0);
        let mut listener = None;
        let mut errors = Vec::new();
        for p in tries {
            match tokio::net::TcpListener::bind((listen, p)).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(e) => errors.push(format!("{}: {e}", std::net::SocketAddr::new(listen, p))),
            }
        }
        let listener = listener.with_context(|| {
            format!(
                "cannot open a route for {}: {}",
                stack.name,
                errors.join("; ")
            )
        })?;
        let port = listener.local_addr()?.port();
        if remembered.is_some_and(|r| r != port) {
            eprintln!(
                "drover agent: route port {} of {} is taken; using {port}",
                remembered.unwrap_or_default(),
                stack.name
            );
        }
        lock(&self.store).set_route_port(&stack.name, port)?;
        let started = lock(&self.store).instances_started(&stack.name)?;
        let rt = Arc::new(StackRt {
            name: stack.name.clone(),
            port,
            listen: Mutex::new(listen),
            protocol: Mutex::new(stack.protocol),
            router: Mutex::new(None),
            table: empty_table(),
            metrics: Default::default(),
            watch: Mutex::new(None),
            stopped: Mutex::new(None),
            log: self.logs.sink(&stack.name),
            live: Mutex::new(Live::default()),
            pending: Mutex::new(Vec::new()),
            warm: Mutex::new(None),
            deploy_lock: tokio::sync::Mutex::new(()),
            refill_lock: tokio::sync::Mutex::new(()),
            holder: Mutex::new(None),
            failures: AtomicU32::new(0),
            seq: AtomicU64::new(started),
            running: Default::default(),
        });
        start_router(&rt, listener);
        let mut stacks = lock(&self.stacks);
        Ok(stacks.entry(stack.name.clone()).or_insert(rt).clone())
    }

    /// Move every route's recorded buckets into the store (see [`crate::deploy::metrics`]).
    /// A failed write is reported on stderr and those buckets are lost, never retried
    /// into a double count.
    pub(super) fn flush_metrics(&self) {
        let stacks: Vec<Arc<StackRt>> = lock(&self.stacks).values().cloned().collect();
        for s in stacks {
            let buckets = s.metrics.take();
            if buckets.is_empty() {
                continue;
            }
            if let Err(e) = lock(&self.store).add_route_metrics(&s.name, &buckets) {
                eprintln!("drover agent: route metrics of {}: {e:#}", s.name);
            }
        }
    }

    fn event(&self, stack: &str, release: i64, instance: &str, event: &str, detail: &str) {
        if let Err(e) = lock(&self.store).instance_event(stack, release, instance, event, detail) {
            eprintln!("drover agent: {e:#}");
        }
    }

    /// Drop unpacked images no release needs any more (all but the live releases, the
    /// newest [`KEEP_UNPACKED`] previous ones per stack and anything unpacked in the last
    /// hour), then the cached layers none of the remaining images uses, in the background.
    fn collect_unpacked(&self) {
        let keep = match lock(&self.store).digests_to_keep(KEEP_UNPACKED) {
            Ok(mut k) => {
                for s in lock(&self.stacks).values() {
                    let live = lock(&s.live);
                    k.extend(live.template.as_ref().map(|t| t.image.digest.clone()));
                    drop(live);
                    k.extend(
                        lock(&s.warm)
                            .as_ref()
                            .map(|w| w.template.image.digest.clone()),
                    );
                }
                k
            }
            Err(_) => return,
        };
        let state = self.paths.state.clone();
        tokio::task::spawn_blocking(move || {
            let n = unpack::remove_unused(&state, &keep, Duration::from_secs(3600));
            if n.images > 0 || n.layers > 0 {
                eprintln!(
                    "drover agent: removed {} unpacked image(s) no release needs and {} \
                     cached layer(s) no kept image uses",
                    n.images, n.layers
                );
            }
        });
    }

    async fn stop_everything(&self) {
        let stacks: Vec<Arc<StackRt>> = lock(&self.stacks).values().cloned().collect();
        let mut all = Vec::new();
        for s in stacks {
            all.extend(s.take_live_instances());
            all.extend(lock(&s.pending).drain(..));
            all.extend(lock(&s.warm).take().into_iter().flat_map(|w| w.instances));
        }
        for i in &all {
            i.request_stop();
        }
        let stop_timeout = all.iter().map(|i| i.stop_with.1).max().unwrap_or_default();
        let deadline = Instant::now() + stop_timeout + Duration::from_secs(2);
        while Instant::now() < deadline && all.iter().any(|i| lock(&i.state).exited.is_none()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Serve `srt`'s route on `listener` by its protocol (the router task, kept to be aborted
/// by [`relisten`]): HTTP with route metrics, or the TCP pipe.
fn start_router(srt: &StackRt, listener: tokio::net::TcpListener) {
    let task = match *lock(&srt.protocol) {
        crate::stack::Protocol::Http => tokio::spawn(super::proxy::serve_recorded(
            listener,
            srt.name.clone(),
            srt.table.clone(),
            srt.metrics.clone(),
        )),
        crate::stack::Protocol::Tcp => tokio::spawn(super::proxy::tcp::serve_tcp(
            listener,
            srt.table.clone(),
            Default::default(),
        )),
    };
    *lock(&srt.router) = Some(task);
}

/// Move `srt`'s route to `want` (same port) when it listens elsewhere, or reopen it when
/// its protocol changed: the old listener
/// is closed first (Linux refuses a specific address beside a wildcard one on the same
/// port), so for the moment between the two new connections are refused; connections
/// already accepted are served to their end. When `want` cannot be bound the route goes
/// back to the old address and the error says so.
async fn relisten(
    srt: &StackRt,
    want: std::net::IpAddr,
    protocol: crate::stack::Protocol,
) -> Result<()> {
    let old = *lock(&srt.listen);
    let same_protocol = std::mem::replace(&mut *lock(&srt.protocol), protocol) == protocol;
    if old == want && same_protocol {
        return Ok(());
    }
    let task = lock(&srt.router).take();
    if let Some(task) = task {
        task.abort();
        let _ = task.await;
    }
    let (to, from) = (
        std::net::SocketAddr::new(want, srt.port),
        std::net::SocketAddr::new(old, srt.port),
    );
    match tokio::net::TcpListener::bind(to).await {
        Ok(l) => {
            start_router(srt, l);
            *lock(&srt.listen) = want;
            eprintln!(
                "drover agent: the route of {} moved from {from} to {to}",
                srt.name
            );
            Ok(())
        }
        Err(e) => match tokio::net::TcpListener::bind(from).await {
            Ok(l) => {
                start_router(srt, l);
                bail!("cannot listen on {to} ([deploy] listen): {e}; the route stays on {from}")
            }
            Err(e2) => bail!(
                "cannot listen on {to} ([deploy] listen): {e}; nor again on {from}: {e2}; \
                 the route of {} is closed until the agent restarts",
                srt.name
            ),
        },
    }
}
