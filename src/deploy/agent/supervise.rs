//! Instances: start, supervise (exit → replace with backoff), health checks, joining the route.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::Notify;

use super::model::*;
use super::*;

impl Agent {
    /// Start one instance of `t` and its supervision and health-check tasks.
    pub(super) fn start_instance(
        self: &Arc<Self>,
        srt: &Arc<StackRt>,
        t: &Template,
    ) -> Result<Arc<Instance>> {
        // One writer per data directory, whatever path asked for this start (a deploy, a
        // refill, a scale, a rollback): the last line of defence behind "recreate".
        let exclusive = t.stack.data.as_ref().is_some_and(|d| !d.shared);
        let others = srt.running.load(Ordering::SeqCst);
        if exclusive && others > 0 {
            anyhow::bail!(
                "an instance of {} still runs on its data volume ([data] is not `shared`): \
                 a second one is not started",
                srt.name
            );
        }
        let n = srt.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let id = format!("{}-r{}-{n}", srt.name, t.release);
        srt.log.set_health_path(t.release, &t.stack.health.path);
        let data = match &t.stack.data {
            Some(d) => {
                let host = self.paths.state.join("data").join(&srt.name);
                std::fs::create_dir_all(&host)
                    .with_context(|| format!("cannot create the data volume {}", host.display()))?;
                Some((host, d.path.clone()))
            }
            None => None,
        };
        let resolved =
            crate::deploy::secrets::resolve(&self.paths.config, &srt.name, &t.stack.secrets)?;
        if let Some(w) = resolved.warning(&self.paths.config, &srt.name) {
            self.event(&srt.name, t.release, &id, "secret-missing", &w);
        }
        let mut secrets = resolved.values;
        let mut env: Vec<(String, String)> = t
            .stack
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let links = self.resolve_links(&t.stack, &mut env, &mut secrets)?;
        let mut port = instance::free_port()?;
        while links.iter().any(|l| l.port == port) {
            port = instance::free_port()?;
        }
        let spec = InstanceSpec {
            id: id.clone(),
            image: t.image.clone(),
            data,
            env,
            secrets,
            port,
            links,
            outbound: outbound(
                &t.stack.name,
                t.stack.deploy.outbound,
                crate::deploy::netns::pasta_installed(),
            )?,
        };
        let child = instance::spawn(&spec, &srt.log)?;
        srt.running.fetch_add(1, Ordering::SeqCst);
        let inst = Arc::new(Instance {
            id: id.clone(),
            release: AtomicI64::new(t.release),
            warm: AtomicBool::new(false),
            port: spec.port,
            pid: child.id(),
            started_at: now_rfc3339(),
            backend: Backend::with_net(&id, t.release, spec.port, Some(child.net().clone())),
            net: child.net().clone(),
            state: Mutex::new(InstState {
                last_check: "no check yet".into(),
                ..Default::default()
            }),
            stop_with: (
                t.stack.deploy.stop_signal_number(),
                t.stack.deploy.stop_timeout,
            ),
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
        let probe = match (&t.stack.health.command, t.stack.protocol) {
            (Some(c), _) => Probe::Command(Box::new(spec.clone()), c.clone()),
            (None, crate::stack::Protocol::Tcp) => Probe::Tcp,
            (None, crate::stack::Protocol::Http) => Probe::Http(t.stack.health.path.clone()),
        };
        tokio::spawn(health_loop(
            self.clone(),
            srt.clone(),
            inst.clone(),
            t.stack.health.clone(),
            probe,
        ));
        Ok(inst)
    }

    /// The links of `stack` ([`crate::deploy::links`]): one listener each, their
    /// variables added to `env` and the linked stacks' secrets to `secrets`. Errors: a
    /// linked stack without a live release here (with the commands that fix it).
    pub(super) fn resolve_links(
        &self,
        stack: &Stack,
        env: &mut Vec<(String, String)>,
        secrets: &mut Vec<(String, String)>,
    ) -> Result<Vec<crate::deploy::links::LinkPipe>> {
        use crate::deploy::links;
        let mut pipes = Vec::new();
        for (alias, name) in &stack.links {
            let linked = lock(&self.stacks).get(name).cloned();
            let live = linked.as_ref().and_then(|l| {
                let live = lock(&l.live);
                live.template.as_ref().map(|t| t.stack.clone())
            });
            let (Some(lsrt), Some(lstack)) = (linked, live) else {
                anyhow::bail!(links::not_live(&stack.name, alias, name));
            };
            let target = links::route_target(*lock(&lsrt.listen), lsrt.port);
            let resolved =
                crate::deploy::secrets::resolve(&self.paths.config, name, &lstack.secrets)?;
            env.extend(links::link_env(alias, lsrt.port, &lstack, &[]));
            secrets.extend(resolved.values);
            pipes.push(links::LinkPipe {
                port: lsrt.port,
                target,
            });
        }
        Ok(pipes)
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
    pub(super) async fn refill(self: Arc<Self>, srt: Arc<StackRt>, release: i64, delay: Duration) {
        tokio::time::sleep(delay).await;
        let _one = srt.refill_lock.lock().await;
        // The live set this refill fills: once it is taken away (a deploy, stop or
        // recreate), the refill ends instead of filling the next one with this release.
        let epoch = lock(&srt.live).epoch;
        loop {
            if lock(&srt.stopped).is_some() {
                return;
            }
            let (t, missing) = {
                let live = lock(&srt.live);
                if live.epoch != epoch {
                    return;
                }
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
                        let mut live = lock(&srt.live);
                        if live.epoch != epoch {
                            // A deploy, stop or recreate took the live set meanwhile: this
                            // instance is not wanted (and must not share its data).
                            drop(live);
                            i.request_stop();
                            return;
                        }
                        live.joining.push(i.clone());
                        drop(live);
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
    /// [`crate::deploy::api::DEFAULT_HEALTH_TIMEOUT`] is stopped. True when none failed.
    pub(super) async fn join_when_healthy(
        &self,
        srt: &StackRt,
        release: i64,
        mut batch: Vec<Arc<Instance>>,
    ) -> bool {
        let deadline = Instant::now() + crate::deploy::api::DEFAULT_HEALTH_TIMEOUT;
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
                                crate::deploy::api::DEFAULT_HEALTH_TIMEOUT
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
}

/// `value`, or `-` when there is none (event and audit text: never `Some(..)`).
pub(super) fn or_dash(value: Option<impl std::fmt::Display>) -> String {
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
        // Asked to stop (drain, scale, shutdown): its stop signal first. An instance
        // replaced because it failed its checks is killed at once.
        None if inst.stopping.load(Ordering::SeqCst) => {
            sandbox.stop(inst.stop_with.0, inst.stop_with.1).await
        }
        None => sandbox.kill().await,
    };
    let desc = match status {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    };
    inst.backend.set_healthy(false);
    lock(&inst.state).exited = Some(desc.clone());
    srt.running.fetch_sub(1, Ordering::SeqCst);
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

/// Whether instances of stack `name` get outbound network: its `[deploy] outbound`
/// (`want`), else whether `pasta` is installed (`have`). Errors: `outbound = true` without
/// pasta (names the package).
fn outbound(name: &str, want: Option<bool>, have: bool) -> Result<bool> {
    match want {
        Some(true) if !have => anyhow::bail!(
            "{} sets `outbound = true` in [deploy] but pasta is not installed (Debian \
             package passt: bash .ci/setup, or apt-get install passt); or set \
             `outbound = false`",
            name
        ),
        Some(o) => Ok(o),
        None => Ok(have),
    }
}

/// What a health check of one instance does (from `[health]` and `protocol`).
enum Probe {
    /// `GET path` through the instance's network namespace.
    Http(String),
    /// `[health] command`, run in a sandbox of the instance (its spec).
    Command(Box<InstanceSpec>, String),
    /// A TCP connect (`protocol = "tcp"` without a command).
    Tcp,
}

impl Probe {
    async fn run(&self, inst: &Instance, timeout: Duration) -> instance::CheckResult {
        match self {
            Probe::Http(path) => instance::check(&inst.backend, path, timeout).await,
            Probe::Command(spec, command) => {
                instance::check_command(spec, &inst.net, command, timeout).await
            }
            Probe::Tcp => crate::deploy::health::check_tcp(&inst.backend, timeout).await,
        }
    }
}

/// One instance's health checks of the current minute, written to the store
/// ([`crate::store::Store::record_health_minute`]) when the minute changes and when the
/// loop ends: the health history of the release detail.
struct HealthTally(crate::store::health::HealthMinute);

impl HealthTally {
    fn new(stack: &str, release: i64, instance: &str) -> HealthTally {
        HealthTally(crate::store::health::HealthMinute {
            stack: stack.to_string(),
            release,
            instance: instance.to_string(),
            minute: 0,
            checks: 0,
            failures: 0,
            max_ms: 0.0,
            last_failure: None,
        })
    }

    fn add(&mut self, agent: &Agent, r: &instance::CheckResult, took: Duration) {
        let minute = chrono::Utc::now().timestamp() / 60 * 60;
        if minute != self.0.minute {
            self.flush(agent);
            self.0.minute = minute;
        }
        self.0.checks += 1;
        self.0.max_ms = self.0.max_ms.max(took.as_secs_f64() * 1e3);
        if !r.ok() {
            self.0.failures += 1;
            self.0.last_failure = Some(r.to_string());
        }
    }

    fn flush(&mut self, agent: &Agent) {
        if self.0.checks > 0 {
            if let Err(e) = lock(&agent.store).record_health_minute(&self.0) {
                eprintln!("drover agent: cannot record the health history: {e:#}");
            }
        }
        self.0.checks = 0;
        self.0.failures = 0;
        self.0.max_ms = 0.0;
        self.0.last_failure = None;
    }
}

/// Active health checks: every 100 ms until the first pass, then every `interval`.
async fn health_loop(
    agent: Arc<Agent>,
    srt: Arc<StackRt>,
    inst: Arc<Instance>,
    health: crate::stack::Health,
    probe: Probe,
) {
    let mut fails = 0u32;
    let mut passes = 0u32;
    let mut tally = HealthTally::new(&srt.name, inst.release(), &inst.id);
    loop {
        if lock(&inst.state).exited.is_some() || inst.stopping.load(Ordering::SeqCst) {
            tally.flush(&agent);
            return;
        }
        let started = std::time::Instant::now();
        let r = probe.run(&inst, health.timeout).await;
        let took = started.elapsed();
        let ever = {
            let mut st = lock(&inst.state);
            st.last_check = r.to_string();
            st.ever_healthy
        };
        // The startup probes (every 100 ms until the first pass) are not failures.
        if ever || r.ok() {
            tally.add(&agent, &r, took);
        }
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

    #[test]
    fn outbound_follows_the_setting_and_pasta() {
        assert!(outbound("s", None, true).unwrap());
        assert!(!outbound("s", None, false).unwrap());
        assert!(!outbound("s", Some(false), true).unwrap());
        assert!(outbound("s", Some(true), true).unwrap());
        let e = outbound("s", Some(true), false).unwrap_err().to_string();
        assert!(e.contains("passt") && e.contains("outbound = false"), "{e}");
    }
}
