//! `drover agent`: the long-running router and instance supervisor.
//!
//! One agent per state directory (an exclusive lock on `STATE/agent.lock`; its PID in
//! `STATE/agent.pid`), serving the API of [`super::api`] on `STATE/agent.sock`. At start it
//! restores every live release found in the store (route, then instances), then each
//! stack's warm release (`[deploy] keep_warm`: instances running unrouted). Instances that
//! exit or fail `[health] unhealthy_threshold` consecutive health checks after having been healthy
//! are replaced with exponential backoff (0.5 s doubling, at most 30 s); every start,
//! health change, exit and replacement is recorded as an instance event.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use super::api::{
    socket_path, AgentStatus, DeployReport, DeployRequest, InstanceStatus, StackStatus,
};
use super::instance::{self, InstanceSpec, LogSink};
use super::machine::{self, Check, Plan};
use super::route::{empty_table, Backend, RouteTable, SharedTable};
use super::unpack::{self, UnpackedImage};
use crate::paths::Paths;
use crate::stack::Stack;
use crate::store::{now_rfc3339, Store};

/// Previous releases per stack whose images stay unpacked for an immediate rollback.
pub const KEEP_UNPACKED: i64 = 2;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What is needed to start instances of one release.
#[derive(Debug, Clone)]
struct Template {
    stack: Stack,
    image: UnpackedImage,
    release: i64,
}

#[derive(Debug, Default)]
struct InstState {
    last_check: String,
    exited: Option<String>,
    ever_healthy: bool,
}

/// One running instance.
struct Instance {
    id: String,
    /// The release it serves: the one it was started for, or the release a warm rollback
    /// promoted it to (its id keeps the release it was started for).
    release: AtomicI64,
    /// Parked as the stack's warm release: running, health-checked, not routed.
    warm: AtomicBool,
    port: u16,
    pid: Option<u32>,
    started_at: String,
    backend: Arc<Backend>,
    state: Mutex<InstState>,
    stopping: AtomicBool,
    stop: Notify,
}

impl Instance {
    fn release(&self) -> i64 {
        self.release.load(Ordering::SeqCst)
    }
    fn request_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.notify_one();
    }
    fn kill_for_replacement(&self) {
        self.stop.notify_one();
    }
    fn status(&self) -> InstanceStatus {
        let st = lock(&self.state);
        let state = if st.exited.is_some() {
            "exited"
        } else if self.stopping.load(Ordering::SeqCst) {
            "stopping"
        } else if self.warm.load(Ordering::SeqCst) {
            "warm"
        } else if self.backend.healthy() {
            "healthy"
        } else if st.ever_healthy {
            "unhealthy"
        } else {
            "starting"
        };
        InstanceStatus {
            id: self.id.clone(),
            release: self.release(),
            pid: self.pid,
            port: self.port,
            state: state.into(),
            healthy: self.backend.healthy(),
            last_check: st.last_check.clone(),
            in_flight: self.backend.in_flight(),
            started_at: self.started_at.clone(),
        }
    }
}

#[derive(Default)]
struct Live {
    template: Option<Template>,
    build_id: i64,
    replicas: usize,
    instances: Vec<Arc<Instance>>,
    /// Instances started for this release (restore, replacement) that have not passed a
    /// health check yet: not routed until they do.
    joining: Vec<Arc<Instance>>,
}

/// The stack's warm release (`[deploy] keep_warm`): the previous live release's
/// instances, running unrouted for an immediate rollback.
struct WarmSet {
    template: Template,
    build_id: i64,
    instances: Vec<Arc<Instance>>,
}

/// One stack's route and instances.
struct StackRt {
    name: String,
    port: u16,
    table: SharedTable,
    log: LogSink,
    live: Mutex<Live>,
    /// Instances of a deploy in progress (shown by status).
    pending: Mutex<Vec<Arc<Instance>>>,
    /// The warm release, if one is kept.
    warm: Mutex<Option<WarmSet>>,
    deploy_lock: tokio::sync::Mutex<()>,
    holder: Mutex<Option<String>>,
    failures: AtomicU32,
    seq: AtomicU64,
}

impl StackRt {
    /// The next restart delay after a failure: 0.5 s doubling, at most 30 s.
    fn backoff(&self) -> Duration {
        let n = self.failures.fetch_add(1, Ordering::SeqCst).min(6);
        Duration::from_millis(500 * (1u64 << n)).min(Duration::from_secs(30))
    }

    fn publish(&self, live: &Live) {
        let release = live.template.as_ref().map(|t| t.release).unwrap_or(0);
        let backends = live.instances.iter().map(|i| i.backend.clone()).collect();
        self.table
            .store(Arc::new(RouteTable::new(release, backends)));
    }
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
}

/// Run the agent in the foreground until `drover agent stop` (or SIGTERM/SIGINT).
///
/// Errors: another agent holds the lock on this state directory, or the socket cannot be
/// created.
pub fn run(paths: Paths) -> Result<()> {
    paths.ensure_state()?;
    let lock_path = paths.state.join("agent.lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(lock_file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let pid = std::fs::read_to_string(paths.state.join("agent.pid")).unwrap_or_default();
        bail!(
            "an agent is already running for {} (pid {}); use `drover agent status` or \
             `drover agent stop`",
            paths.state.display(),
            pid.trim()
        );
    }
    std::fs::write(
        paths.state.join("agent.pid"),
        std::process::id().to_string(),
    )?;
    unpack::clean_temp(&paths.state);
    let store = Store::open(&paths.database())?;
    let failed = store.fail_unfinished_releases()?;
    if failed > 0 {
        eprintln!(
            "drover agent: {failed} deploy(s) interrupted by the previous agent marked failed"
        );
    }
    let agent = Arc::new(Agent {
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
        let sock = socket_path(&paths.state);
        let _ = std::fs::remove_file(&sock);
        let listener = tokio::net::UnixListener::bind(&sock)
            .with_context(|| format!("cannot listen on {}", sock.display()))?;
        let restore = tokio::spawn(restore(agent.clone()));
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
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                a = listener.accept() => {
                    let Ok((stream, _)) = a else { continue };
                    let agent = agent.clone();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let agent = agent.clone();
                            async move { Ok::<_, Infallible>(handle(agent, req).await) }
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
        checks_cancel.cancel();
        checks.abort();
        let _ = std::fs::remove_file(&sock);
        agent.stop_everything().await;
        Ok::<(), anyhow::Error>(())
    });
    let _ = std::fs::remove_file(paths.state.join("agent.pid"));
    rt.shutdown_timeout(Duration::from_secs(2));
    drop(lock_file);
    result
}

fn json_response(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response<Full<Bytes>> {
    json_response(status, serde_json::json!({ "error": msg.to_string() }))
}

async fn handle(agent: Arc<Agent>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("unreadable request: {e}")),
    };
    match (method.as_str(), path.as_str()) {
        ("GET", "/v1/status") => json_response(
            StatusCode::OK,
            serde_json::to_value(agent.status()).unwrap_or_default(),
        ),
        ("POST", "/v1/deploy") => {
            let req: DeployRequest = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => {
                    return error(StatusCode::BAD_REQUEST, format!("bad deploy request: {e}"))
                }
            };
            // Run in its own task: a client that goes away must not cancel a deploy halfway.
            let a = agent.clone();
            match tokio::spawn(async move { a.deploy(req).await }).await {
                Ok(Ok(report)) => json_response(
                    StatusCode::OK,
                    serde_json::to_value(report).unwrap_or_default(),
                ),
                Ok(Err((status, msg))) => error(status, msg),
                Err(e) => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("deploy task failed: {e}"),
                ),
            }
        }
        ("POST", "/v1/stop") => {
            agent.shutdown.notify_one();
            json_response(StatusCode::OK, serde_json::json!({ "stopping": true }))
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no endpoint {method} {path}"),
        ),
    }
}

type ApiResult<T> = std::result::Result<T, (StatusCode, String)>;

fn internal(e: anyhow::Error) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
}

impl Agent {
    fn status(&self) -> AgentStatus {
        let stacks = lock(&self.stacks).values().cloned().collect::<Vec<_>>();
        AgentStatus {
            pid: std::process::id(),
            started_at: self.started_at.clone(),
            stacks: stacks
                .iter()
                .map(|s| {
                    let live = lock(&s.live);
                    let mut instances: Vec<InstanceStatus> = live
                        .instances
                        .iter()
                        .chain(&live.joining)
                        .map(|i| i.status())
                        .collect();
                    instances.extend(lock(&s.pending).iter().map(|i| i.status()));
                    if let Some(w) = lock(&s.warm).as_ref() {
                        instances.extend(w.instances.iter().map(|i| i.status()));
                    }
                    StackStatus {
                        stack: s.name.clone(),
                        route_port: s.port,
                        live_release: live.template.as_ref().map(|t| t.release),
                        build_id: live.template.as_ref().map(|_| live.build_id),
                        image_digest: live.template.as_ref().map(|t| t.image.digest.clone()),
                        replicas: live.replicas,
                        deploying: lock(&s.holder).clone(),
                        instances,
                    }
                })
                .collect(),
        }
    }

    fn load_stack(&self, name: &str) -> ApiResult<Stack> {
        crate::stack::load_named(&self.paths.config, name).map_err(|diags| {
            let text = diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n");
            let status = if self
                .paths
                .stacks_dir()
                .join(format!("{name}.toml"))
                .is_file()
            {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::NOT_FOUND
            };
            (status, text)
        })
    }

    /// The stack's runtime, creating its route (listening socket) on first use: the port
    /// remembered in the store, else the stack's `port` if free, else any free port.
    async fn stack_rt(&self, stack: &Stack) -> Result<Arc<StackRt>> {
        if let Some(s) = lock(&self.stacks).get(&stack.name) {
            return Ok(s.clone());
        }
        let _creating = self.routes_lock.lock().await;
        if let Some(s) = lock(&self.stacks).get(&stack.name) {
            return Ok(s.clone());
        }
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
            match tokio::net::TcpListener::bind(("0.0.0.0", p)).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(e) => errors.push(format!("port {p}: {e}")),
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
            table: empty_table(),
            log: LogSink::open(&self.paths.state, &stack.name)?,
            live: Mutex::new(Live::default()),
            pending: Mutex::new(Vec::new()),
            warm: Mutex::new(None),
            deploy_lock: tokio::sync::Mutex::new(()),
            holder: Mutex::new(None),
            failures: AtomicU32::new(0),
            seq: AtomicU64::new(started),
        });
        tokio::spawn(super::proxy::serve(
            listener,
            stack.name.clone(),
            rt.table.clone(),
        ));
        let mut stacks = lock(&self.stacks);
        Ok(stacks.entry(stack.name.clone()).or_insert(rt).clone())
    }

    fn event(&self, stack: &str, release: i64, instance: &str, event: &str, detail: &str) {
        if let Err(e) = lock(&self.store).instance_event(stack, release, instance, event, detail) {
            eprintln!("drover agent: {e:#}");
        }
    }

    /// Start one instance of `t` and its supervision and health-check tasks.
    fn start_instance(self: &Arc<Self>, srt: &Arc<StackRt>, t: &Template) -> Result<Arc<Instance>> {
        let n = srt.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let id = format!("{}-r{}-{n}", srt.name, t.release);
        let data = match &t.stack.data {
            Some(d) => {
                let host = self.paths.state.join("data").join(&srt.name);
                std::fs::create_dir_all(&host)
                    .with_context(|| format!("cannot create the data volume {}", host.display()))?;
                Some((host, d.path.clone()))
            }
            None => None,
        };
        let resolved = super::secrets::resolve(&self.paths.config, &srt.name, &t.stack.secrets)?;
        if let Some(w) = resolved.warning(&self.paths.config, &srt.name) {
            self.event(&srt.name, t.release, &id, "secret-missing", &w);
        }
        let secrets = resolved.values;
        let spec = InstanceSpec {
            id: id.clone(),
            image: t.image.clone(),
            data,
            env: t
                .stack
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            secrets,
            port: instance::free_port()?,
        };
        let child = instance::spawn(&spec, &srt.log)?;
        let inst = Arc::new(Instance {
            id: id.clone(),
            release: AtomicI64::new(t.release),
            warm: AtomicBool::new(false),
            port: spec.port,
            pid: child.id(),
            started_at: now_rfc3339(),
            backend: Backend::new(&id, t.release, spec.port),
            state: Mutex::new(InstState {
                last_check: "no check yet".into(),
                ..Default::default()
            }),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
        });
        self.event(
            &srt.name,
            t.release,
            &id,
            "started",
            &started_detail(inst.pid, spec.port),
        );
        tokio::spawn(supervise(self.clone(), srt.clone(), inst.clone(), child));
        tokio::spawn(health_loop(
            self.clone(),
            srt.clone(),
            inst.clone(),
            t.stack.health.clone(),
        ));
        Ok(inst)
    }

    /// An instance of the live set exited: take it out of the route and start a
    /// replacement after the backoff.
    fn replace(self: &Arc<Self>, srt: &Arc<StackRt>, inst: &Arc<Instance>) {
        {
            let mut live = lock(&srt.live);
            let before = live.instances.len();
            live.instances.retain(|i| !Arc::ptr_eq(i, inst));
            if live.instances.len() == before {
                return; // not wanted any more (drained, or never went live)
            }
            srt.publish(&live);
        }
        let delay = srt.backoff();
        self.event(
            &srt.name,
            inst.release(),
            &inst.id,
            "replacing",
            &format!("a replacement starts in {delay:?}"),
        );
        let (agent, srt, release) = (self.clone(), srt.clone(), inst.release());
        tokio::spawn(async move { agent.refill(srt, release, delay).await });
    }

    /// After `delay`, start instances until the live release has its replica count. New
    /// instances wait in `live.joining` and join the route only once their health check
    /// passed, as in a deploy ([`Agent::join`], [`Agent::join_when_healthy`]); after a start failure, an
    /// exit or a missed health deadline the next try waits a backoff.
    async fn refill(self: Arc<Self>, srt: Arc<StackRt>, release: i64, delay: Duration) {
        tokio::time::sleep(delay).await;
        loop {
            let (t, missing) = {
                let live = lock(&srt.live);
                match &live.template {
                    Some(t) if t.release == release => {
                        let have = live.instances.len() + live.joining.len();
                        if have >= live.replicas {
                            return;
                        }
                        (t.clone(), live.replicas - have)
                    }
                    _ => return,
                }
            };
            let mut batch = Vec::new();
            let mut ok = true;
            for _ in 0..missing {
                match self.start_instance(&srt, &t) {
                    Ok(i) => {
                        lock(&srt.live).joining.push(i.clone());
                        batch.push(i);
                    }
                    Err(e) => {
                        self.event(&srt.name, release, "-", "start-failed", &format!("{e:#}"));
                        ok = false;
                        break;
                    }
                }
            }
            ok &= self.join_when_healthy(&srt, release, batch).await;
            if !ok {
                tokio::time::sleep(srt.backoff()).await;
            }
        }
    }

    /// Wait until each of `batch` (instances in `live.joining`) has left it: joined the
    /// route once its health check passed ([`Agent::join`], called by the health loop), or
    /// taken by a deploy. One that exits or is not healthy within
    /// [`super::api::DEFAULT_HEALTH_TIMEOUT`] is stopped. True when none failed.
    async fn join_when_healthy(
        &self,
        srt: &StackRt,
        release: i64,
        mut batch: Vec<Arc<Instance>>,
    ) -> bool {
        let deadline = Instant::now() + super::api::DEFAULT_HEALTH_TIMEOUT;
        let mut all = true;
        while !batch.is_empty() {
            let late = Instant::now() >= deadline;
            let mut waiting = Vec::new();
            for i in batch {
                let (exited, last_check) = {
                    let st = lock(&i.state);
                    (st.exited.is_some(), st.last_check.clone())
                };
                let joining = lock(&srt.live).joining.iter().any(|j| Arc::ptr_eq(j, &i));
                if !joining {
                    continue;
                }
                if exited || late {
                    all = false;
                    lock(&srt.live).joining.retain(|j| !Arc::ptr_eq(j, &i));
                    if !exited {
                        self.event(
                            &srt.name,
                            release,
                            &i.id,
                            "never-healthy",
                            &format!(
                                "not healthy within {:?}; last check: {last_check}",
                                super::api::DEFAULT_HEALTH_TIMEOUT
                            ),
                        );
                    }
                    i.request_stop();
                } else {
                    waiting.push(i);
                }
            }
            batch = waiting;
            if !batch.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        all
    }

    /// Move `i` from `live.joining` into the route (stopped instead when another release
    /// went live meanwhile). Does nothing for an instance not in `live.joining` (a deploy's
    /// or a warm one, or one a deploy took).
    fn join(&self, srt: &StackRt, i: &Arc<Instance>) {
        let release = i.release();
        let mut live = lock(&srt.live);
        let Some(pos) = live.joining.iter().position(|j| Arc::ptr_eq(j, i)) else {
            return;
        };
        live.joining.remove(pos);
        if live.template.as_ref().map(|t| t.release) == Some(release) {
            live.instances.push(i.clone());
            srt.publish(&live);
            drop(live);
            self.event(
                &srt.name,
                release,
                &i.id,
                "replaced",
                "joined the route after its health check passed",
            );
        } else {
            drop(live);
            i.request_stop();
        }
    }

    /// Start the instances of the warm release `w` again (unrouted), as a restarted agent
    /// does after restoring the live release; forgets it when the stack no longer has
    /// `[deploy] keep_warm` or its build is gone.
    async fn restore_warm(
        self: &Arc<Self>,
        srt: &Arc<StackRt>,
        stack: &Stack,
        w: &crate::store::deploys::ReleaseRecord,
    ) {
        // Bound first: the store's lock must be released before the arms take it again.
        let found = lock(&self.store).build(w.build_id);
        let build = match found {
            Ok(Some(b)) if stack.deploy.keep_warm => b,
            _ => {
                let _ = lock(&self.store).set_warm_release(&srt.name, None);
                return;
            }
        };
        let image = match self.unpack_build(stack, &build).await {
            Ok(i) => i,
            Err((_, e)) => {
                eprintln!(
                    "drover agent: cannot restore the warm release of {}: {e}",
                    srt.name
                );
                let _ = lock(&self.store).set_warm_release(&srt.name, None);
                return;
            }
        };
        let template = Template {
            stack: stack.clone(),
            image,
            release: w.release,
        };
        let mut instances = Vec::new();
        for _ in 0..w.replicas.max(1) {
            match self.start_instance(srt, &template) {
                Ok(i) => {
                    i.warm.store(true, Ordering::SeqCst);
                    instances.push(i);
                }
                Err(e) => {
                    self.event(&srt.name, w.release, "-", "start-failed", &format!("{e:#}"));
                }
            }
        }
        let _ = lock(&self.store).audit(
            "restore",
            Some(&srt.name),
            &format!(
                "agent restored {} warm instance(s) of release {}",
                instances.len(),
                w.release
            ),
        );
        *lock(&srt.warm) = Some(WarmSet {
            template,
            build_id: w.build_id,
            instances,
        });
    }

    /// Drop unpacked images no release needs any more (all but the live releases, the
    /// newest [`KEEP_UNPACKED`] previous ones per stack and anything unpacked in the last
    /// hour), in the background.
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
            if n > 0 {
                eprintln!("drover agent: removed {n} unpacked image(s) no release needs");
            }
        });
    }

    async fn stop_everything(&self) {
        let stacks: Vec<Arc<StackRt>> = lock(&self.stacks).values().cloned().collect();
        let mut all = Vec::new();
        for s in stacks {
            let mut live = lock(&s.live);
            let insts = std::mem::take(&mut live.instances);
            s.publish(&live);
            all.extend(insts);
            all.append(&mut live.joining);
            all.extend(lock(&s.pending).drain(..));
            all.extend(lock(&s.warm).take().into_iter().flat_map(|w| w.instances));
        }
        for i in &all {
            i.request_stop();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && all.iter().any(|i| lock(&i.state).exited.is_none()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Deploy (or roll back) as `req` says. Errors carry the HTTP status for the API.
    async fn deploy(self: Arc<Self>, req: DeployRequest) -> ApiResult<DeployReport> {
        let t0 = Instant::now();
        let stack = self.load_stack(&req.stack)?;
        let srt = self.stack_rt(&stack).await.map_err(internal)?;
        let _guard = match srt.deploy_lock.try_lock() {
            Ok(g) => g,
            Err(_) => {
                let holder = lock(&srt.holder).clone().unwrap_or_default();
                return Err((
                    StatusCode::CONFLICT,
                    format!(
                        "another deploy of {} is running ({holder}); wait for it to finish \
                         (see `drover status`)",
                        stack.name
                    ),
                ));
            }
        };
        let action = if req.rollback { "rollback" } else { "deploy" };
        *lock(&srt.holder) = Some(format!("{action} by {} since {}", req.by, now_rfc3339()));
        let result = self.deploy_locked(&req, &stack, &srt, t0).await;
        *lock(&srt.holder) = None;
        lock(&srt.pending).clear();
        result
    }

    async fn deploy_locked(
        self: &Arc<Self>,
        req: &DeployRequest,
        stack: &Stack,
        srt: &Arc<StackRt>,
        t0: Instant,
    ) -> ApiResult<DeployReport> {
        let action = if req.rollback { "rollback" } else { "deploy" };
        let (current, current_build, current_replicas) = {
            let live = lock(&srt.live);
            (
                live.template.as_ref().map(|t| t.release),
                live.build_id,
                live.replicas,
            )
        };
        // Which build, as which rollback, with how many replicas: the same decision the
        // CLI and the console make before they call.
        let (build_id, rollback_of, replicas) = {
            let store = lock(&self.store);
            let releases = store.releases(&stack.name).map_err(internal)?;
            let wanted = super::plan::request_build(&store, req).map_err(internal)?;
            let cur = current.map(|release| super::plan::Current {
                release,
                build_id: current_build,
                replicas: current_replicas,
            });
            let t = super::plan::resolve(req, &releases, cur, wanted.as_ref()).map_err(
                |e| match e {
                    super::plan::Rejection::NotFound(m) => (StatusCode::NOT_FOUND, m),
                    super::plan::Rejection::BadInput(m) => (StatusCode::BAD_REQUEST, m),
                },
            )?;
            (t.build_id, t.rollback_of, t.replicas)
        };
        let build = lock(&self.store)
            .build(build_id)
            .map_err(internal)?
            .ok_or((StatusCode::NOT_FOUND, format!("build {build_id} is gone")))?;
        let digest = build.image_digest.clone().unwrap_or_default();
        let image = self.unpack_build(stack, &build).await?;
        let warnings: Vec<String> =
            super::secrets::resolve(&self.paths.config, &stack.name, &stack.secrets)
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("{e:#}")))?
                .warning(&self.paths.config, &stack.name)
                .into_iter()
                .collect();
        let release = lock(&self.store)
            .create_release(
                &stack.name,
                build_id,
                &digest,
                replicas as i64,
                &req.by,
                rollback_of,
            )
            .map_err(internal)?;
        let template = Template {
            stack: stack.clone(),
            image,
            release,
        };
        let rt = LocalRuntime {
            agent: self.clone(),
            srt: srt.clone(),
            template: template.clone(),
            build_id,
            replicas,
            replaced: Mutex::new(None),
        };
        let plan = Plan {
            replicas,
            healthy_timeout: req
                .timeout_secs
                .map(Duration::from_secs)
                .unwrap_or(super::api::DEFAULT_HEALTH_TIMEOUT),
            drain_grace: Duration::from_secs(req.grace_secs.unwrap_or(30)),
            poll: Duration::from_millis(10),
            keep_warm: stack.deploy.keep_warm,
        };
        let result = if req.rollback {
            let warm = warm_instances(srt, stack, build_id);
            machine::rollback(&rt, plan, warm).await
        } else {
            machine::deploy(&rt, plan).await
        };
        match result {
            Ok(out) => {
                srt.failures.store(0, Ordering::SeqCst);
                self.collect_unpacked();
                let store = &mut lock(&self.store);
                store
                    .mark_release_live(&stack.name, release)
                    .map_err(internal)?;
                let how = match (&out.cold_reason, out.warm) {
                    (_, true) => " to its warm instances".to_string(),
                    (Some(why), false) => format!(" with new instances ({why})"),
                    (None, false) => String::new(),
                };
                let detail = format!(
                    "release {release} (build {build_id}, {digest}) live with {replicas} instance(s){how}; \
                     route switched in {:?}, previous release {} drained in {:?}{}{}",
                    out.switch_time,
                    or_dash(current),
                    out.drain_time,
                    if out.drained_cleanly { "" } else { " (grace ran out)" },
                    if out.kept_warm > 0 { " and kept warm" } else { "" }
                );
                let _ = store.audit(action, Some(&stack.name), &detail);
                Ok(DeployReport {
                    stack: stack.name.clone(),
                    release,
                    build_id,
                    image_digest: digest,
                    previous_release: current,
                    rollback_of,
                    route_port: srt.port,
                    instances: out.instances.iter().map(|i| i.id.clone()).collect(),
                    switch_ms: out.switch_time.as_secs_f64() * 1e3,
                    drain_ms: out.drain_time.as_secs_f64() * 1e3,
                    total_ms: t0.elapsed().as_secs_f64() * 1e3,
                    warm: out.warm,
                    cold_reason: out.cold_reason,
                    kept_warm: out.kept_warm,
                    warnings,
                })
            }
            Err(e) => {
                let tail = rt.last_log_lines();
                let mut msg = format!(
                    "{action} of {} release {release} (build {build_id}) failed: {e}",
                    stack.name
                );
                if let Some(c) = current {
                    msg.push_str(&format!("\nrelease {c} keeps serving"));
                }
                if !tail.is_empty() {
                    msg.push_str("\nlast instance log lines:\n");
                    msg.push_str(&tail.join("\n"));
                }
                let store = lock(&self.store);
                let _ = store.mark_release_failed(&stack.name, release, &e.to_string());
                let _ = store.audit(
                    &format!("{action}-failed"),
                    Some(&stack.name),
                    &e.to_string(),
                );
                Err((StatusCode::UNPROCESSABLE_ENTITY, msg))
            }
        }
    }

    async fn unpack_build(
        &self,
        stack: &Stack,
        build: &crate::store::builds::BuildRecord,
    ) -> ApiResult<UnpackedImage> {
        let digest = build.image_digest.clone().unwrap_or_default();
        let archive = build
            .image_path
            .clone()
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                self.paths
                    .images()
                    .join(&stack.name)
                    .join(format!("{}.oci.tar", build.id))
            });
        let state = self.paths.state.clone();
        let mounts: Vec<String> = stack.data.iter().map(|d| d.path.clone()).collect();
        let name = stack.name.clone();
        tokio::task::spawn_blocking(move || {
            let m: Vec<&str> = mounts.iter().map(String::as_str).collect();
            let t = Instant::now();
            let fresh = !unpack::rootfs_root(&state)
                .join(digest.trim_start_matches("sha256:"))
                .exists();
            let r = unpack::unpack(&state, &archive, &digest, &m);
            if fresh && r.is_ok() {
                eprintln!(
                    "drover agent: unpacked {name} image {digest} in {:?}",
                    t.elapsed()
                );
            }
            r
        })
        .await
        .map_err(|e| internal(e.into()))?
        .map_err(|e| {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{e:#}\n(was the image pruned? rebuild with `drover build {}`)",
                    stack.name
                ),
            )
        })
    }
}

/// Restore every live release from the store: route first, then instances.
async fn restore(agent: Arc<Agent>) {
    let live = match lock(&agent.store).live_releases() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("drover agent: cannot read the desired state: {e:#}");
            return;
        }
    };
    let warm = lock(&agent.store).warm_releases().unwrap_or_else(|e| {
        eprintln!("drover agent: cannot read the warm releases: {e:#}");
        Vec::new()
    });
    for r in live {
        let warm = warm.iter().find(|w| w.stack == r.stack).cloned();
        let agent2 = agent.clone();
        tokio::spawn(async move {
            let agent = agent2;
            let stack = match agent.load_stack(&r.stack) {
                Ok(s) => s,
                Err((_, e)) => {
                    eprintln!("drover agent: cannot restore {}: {e}", r.stack);
                    return;
                }
            };
            let srt = match agent.stack_rt(&stack).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!(
                        "drover agent: cannot restore the route of {}: {e:#}",
                        r.stack
                    );
                    return;
                }
            };
            let build = match lock(&agent.store).build(r.build_id) {
                Ok(Some(b)) => b,
                _ => {
                    eprintln!("drover agent: build {} of {} is gone", r.build_id, r.stack);
                    return;
                }
            };
            let image = match agent.unpack_build(&stack, &build).await {
                Ok(i) => i,
                Err((_, e)) => {
                    eprintln!("drover agent: cannot restore {}: {e}", r.stack);
                    return;
                }
            };
            {
                let mut live = lock(&srt.live);
                live.template = Some(Template {
                    stack: stack.clone(),
                    image,
                    release: r.release,
                });
                live.build_id = r.build_id;
                live.replicas = r.replicas.max(1) as usize;
                srt.publish(&live);
            }
            let _ = lock(&agent.store).audit(
                "restore",
                Some(&r.stack),
                &format!("agent restored release {} on port {}", r.release, srt.port),
            );
            agent
                .clone()
                .refill(srt.clone(), r.release, Duration::ZERO)
                .await;
            if let Some(w) = warm.filter(|w| w.release != r.release) {
                agent.restore_warm(&srt, &stack, &w).await;
            }
        });
    }
}

/// `value`, or `-` when there is none (event and audit text: never `Some(..)`).
fn or_dash(value: Option<impl std::fmt::Display>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// The detail of an instance's `started` event: `pid 2361, port 4000`.
fn started_detail(pid: Option<u32>, port: u16) -> String {
    format!("pid {}, port {port}", or_dash(pid))
}

/// Wait for the instance's sandbox; on a requested stop kill it (every process in it). An unexpected exit is
/// recorded and the instance replaced.
async fn supervise(
    agent: Arc<Agent>,
    srt: Arc<StackRt>,
    inst: Arc<Instance>,
    mut sandbox: instance::Sandbox,
) {
    let exited = tokio::select! {
        s = sandbox.wait() => Some(s),
        _ = inst.stop.notified() => None,
    };
    let status = match exited {
        Some(s) => s,
        None => sandbox.kill().await,
    };
    let desc = match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    };
    inst.backend.set_healthy(false);
    lock(&inst.state).exited = Some(desc.clone());
    if inst.stopping.load(Ordering::SeqCst) {
        agent.event(&srt.name, inst.release(), &inst.id, "stopped", &desc);
    } else {
        agent.event(&srt.name, inst.release(), &inst.id, "exited", &desc);
        // A warm instance that exits is not replaced: a rollback then starts new ones.
        if let Some(w) = lock(&srt.warm).as_mut() {
            w.instances.retain(|i| !Arc::ptr_eq(i, &inst));
        }
        agent.replace(&srt, &inst);
    }
}

/// Active health checks: every 100 ms until the first pass, then every `interval`.
async fn health_loop(
    agent: Arc<Agent>,
    srt: Arc<StackRt>,
    inst: Arc<Instance>,
    health: crate::stack::Health,
) {
    let mut fails = 0u32;
    let mut passes = 0u32;
    loop {
        if lock(&inst.state).exited.is_some() || inst.stopping.load(Ordering::SeqCst) {
            return;
        }
        let r = instance::check(inst.port, &health.path, health.timeout).await;
        let ever = {
            let mut st = lock(&inst.state);
            st.last_check = r.to_string();
            st.ever_healthy
        };
        if r.ok() {
            fails = 0;
            passes += 1;
            if !inst.backend.healthy() && passes >= health.healthy_threshold {
                agent.event(
                    &srt.name,
                    inst.release(),
                    &inst.id,
                    "healthy",
                    &r.to_string(),
                );
                // A restored or replacement instance joins the route now, before status
                // shows it healthy, so "healthy" in status means "routed" for the live set.
                agent.join(&srt, &inst);
                inst.backend.set_healthy(true);
                lock(&inst.state).ever_healthy = true;
            }
        } else {
            passes = 0;
            fails += 1;
            if ever && fails == health.unhealthy_threshold {
                inst.backend.set_healthy(false);
                agent.event(
                    &srt.name,
                    inst.release(),
                    &inst.id,
                    "unhealthy",
                    &r.to_string(),
                );
                let is_live = lock(&srt.live)
                    .instances
                    .iter()
                    .any(|i| Arc::ptr_eq(i, &inst));
                if is_live {
                    inst.kill_for_replacement();
                }
            }
        }
        let wait = if ever {
            health.interval
        } else {
            Duration::from_millis(100)
        };
        tokio::time::sleep(wait).await;
    }
}

/// The instances a rollback to `build_id` can switch to at once: the stack's warm set when
/// it runs that build with the stack file as it is now (the `[deploy]` table aside), else
/// why not.
fn warm_instances(
    srt: &StackRt,
    stack: &Stack,
    build_id: i64,
) -> std::result::Result<Vec<Arc<Instance>>, String> {
    let warm = lock(&srt.warm);
    let Some(w) = warm.as_ref() else {
        return Err(if stack.deploy.keep_warm {
            format!("no release of {} is kept warm", stack.name)
        } else {
            format!(
                "no release of {} is kept warm ([deploy] keep_warm is off)",
                stack.name
            )
        });
    };
    if w.build_id != build_id {
        return Err(format!(
            "the warm release {} runs build {}, not build {build_id}",
            w.template.release, w.build_id
        ));
    }
    let same_config = Stack {
        deploy: stack.deploy.clone(),
        ..w.template.stack.clone()
    } == *stack;
    if !same_config {
        return Err(format!(
            "{} changed since the warm release {} started",
            stack.file.display(),
            w.template.release
        ));
    }
    Ok(w.instances.clone())
}

/// The deploy state machine's view of the agent.
struct LocalRuntime {
    agent: Arc<Agent>,
    srt: Arc<StackRt>,
    template: Template,
    build_id: i64,
    replicas: usize,
    /// The live release's template and build, taken at the switch (parked warm after).
    replaced: Mutex<Option<(Template, i64)>>,
}

impl LocalRuntime {
    fn last_log_lines(&self) -> Vec<String> {
        let pending = lock(&self.srt.pending).clone();
        pending
            .iter()
            .take(1)
            .flat_map(|i| self.srt.log.tail(&i.id, 15))
            .collect()
    }
}

impl machine::Runtime for LocalRuntime {
    type Instance = Arc<Instance>;

    fn start(&self, _index: usize) -> Result<Arc<Instance>> {
        let i = self.agent.start_instance(&self.srt, &self.template)?;
        lock(&self.srt.pending).push(i.clone());
        Ok(i)
    }

    fn check(&self, i: &Arc<Instance>) -> Check {
        let st = lock(&i.state);
        if let Some(e) = &st.exited {
            Check::Exited(e.clone())
        } else if i.backend.healthy() {
            Check::Healthy
        } else {
            Check::Pending(st.last_check.clone())
        }
    }

    fn run_test(&self, i: &Arc<Instance>) -> Option<machine::TestFuture<'_>> {
        let script = self.template.stack.scripts.test.clone()?;
        let spec = InstanceSpec {
            id: i.id.clone(),
            image: self.template.image.clone(),
            data: None,
            env: self
                .template
                .stack
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            secrets: Vec::new(),
            port: i.port,
        };
        let log = self.srt.log.clone();
        Some(Box::pin(async move {
            instance::run_test(&spec, &script, &log).await
        }))
    }

    fn verified(&self, ok: bool, detail: &str) {
        let log = lock(&self.srt.pending)
            .first()
            .map(|i| self.srt.log.tail(&i.id, 30).join("\n"))
            .unwrap_or_default();
        let _ = lock(&self.agent.store).set_verification(
            self.build_id,
            ok,
            &format!("{detail}\n{log}"),
        );
    }

    fn switch(&self, new: &[Arc<Instance>]) -> Vec<Arc<Instance>> {
        // Warm instances a rollback promotes now serve the new release number.
        for i in new {
            i.release.store(self.template.release, Ordering::SeqCst);
            i.warm.store(false, Ordering::SeqCst);
        }
        let mut live = lock(&self.srt.live);
        let mut old = std::mem::replace(&mut live.instances, new.to_vec());
        // Instances still waiting to join the old release's route go with it.
        old.append(&mut live.joining);
        let replaced = live.template.replace(self.template.clone());
        let replaced_build = std::mem::replace(&mut live.build_id, self.build_id);
        live.replicas = self.replicas;
        self.srt.publish(&live);
        drop(live);
        *lock(&self.replaced) = replaced.map(|t| (t, replaced_build));
        if let Some(w) = lock(&self.srt.warm).as_mut() {
            w.instances
                .retain(|i| !new.iter().any(|n| Arc::ptr_eq(i, n)));
        }
        let mut pending = lock(&self.srt.pending);
        pending.clear();
        pending.extend(old.iter().cloned());
        old
    }

    fn in_flight(&self, i: &Arc<Instance>) -> usize {
        i.backend.in_flight()
    }

    fn stop(&self, i: &Arc<Instance>) {
        i.request_stop();
    }

    fn park(&self, keep: Vec<Arc<Instance>>) -> Vec<Arc<Instance>> {
        let replaced = lock(&self.replaced).take();
        let (set, mut stop) = match replaced {
            Some((template, build_id)) if !keep.is_empty() => {
                for i in &keep {
                    i.warm.store(true, Ordering::SeqCst);
                }
                lock(&self.srt.pending).retain(|p| !keep.iter().any(|k| Arc::ptr_eq(p, k)));
                let set = WarmSet {
                    template,
                    build_id,
                    instances: keep,
                };
                (Some(set), Vec::new())
            }
            _ => (None, keep),
        };
        let release = set.as_ref().map(|w| w.template.release);
        if let Err(e) = lock(&self.agent.store).set_warm_release(&self.srt.name, release) {
            eprintln!("drover agent: cannot record the warm release: {e:#}");
        }
        let previous = std::mem::replace(&mut *lock(&self.srt.warm), set);
        stop.extend(previous.into_iter().flat_map(|w| w.instances));
        stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_details_print_numbers_not_options() {
        assert_eq!(started_detail(Some(2361), 4000), "pid 2361, port 4000");
        assert_eq!(started_detail(None, 4000), "pid -, port 4000");
        assert_eq!(or_dash(Some(3)), "3");
        assert_eq!(or_dash(None::<i64>), "-");
    }
}
