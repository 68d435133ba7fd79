//! The agent's runtime model: instances, the live and warm sets, one stack's route.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::*;
use crate::deploy::api::InstanceState;
use crate::deploy::runtime_log::LogSink;

/// What is needed to start instances of one release.
#[derive(Debug, Clone)]
pub(super) struct Template {
    pub(super) stack: Stack,
    pub(super) image: UnpackedImage,
    pub(super) release: i64,
}

#[derive(Debug, Default)]
pub(super) struct InstState {
    pub(super) last_check: String,
    pub(super) exited: Option<String>,
    pub(super) ever_healthy: bool,
}

/// One running instance.
pub(super) struct Instance {
    pub(super) id: String,
    /// The release it serves: the one it was started for, or the release a warm rollback
    /// promoted it to (its id keeps the release it was started for).
    pub(super) release: AtomicI64,
    /// Parked as the stack's warm release: running, health-checked, not routed.
    pub(super) warm: AtomicBool,
    pub(super) port: u16,
    pub(super) pid: Option<u32>,
    pub(super) started_at: String,
    pub(super) backend: Arc<Backend>,
    /// Its network namespace (the `test` step joins it).
    pub(super) net: crate::deploy::netns::InstanceNet,
    pub(super) state: Mutex<InstState>,
    /// `[deploy] stop_signal` (its number) and `stop_timeout` of its release.
    pub(super) stop_with: (i32, Duration),
    pub(super) stopping: AtomicBool,
    pub(super) stop: Notify,
}

impl Instance {
    pub(super) fn release(&self) -> i64 {
        self.release.load(Ordering::SeqCst)
    }
    pub(super) fn request_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.notify_one();
    }
    pub(super) fn kill_for_replacement(&self) {
        self.stop.notify_one();
    }
    pub(super) fn status(&self) -> InstanceStatus {
        let st = lock(&self.state);
        let state = if st.exited.is_some() {
            InstanceState::Exited
        } else if self.stopping.load(Ordering::SeqCst) {
            InstanceState::Stopping
        } else if self.warm.load(Ordering::SeqCst) {
            InstanceState::Warm
        } else if self.backend.healthy() {
            InstanceState::Healthy
        } else if st.ever_healthy {
            InstanceState::Unhealthy
        } else {
            InstanceState::Starting
        };
        InstanceStatus {
            id: self.id.clone(),
            release: self.release(),
            pid: self.pid,
            port: self.port,
            state,
            healthy: self.backend.healthy(),
            last_check: st.last_check.clone(),
            in_flight: self.backend.in_flight(),
            started_at: self.started_at.clone(),
        }
    }
}

#[derive(Default)]
pub(super) struct Live {
    pub(super) template: Option<Template>,
    pub(super) build_id: i64,
    pub(super) replicas: usize,
    pub(super) instances: Vec<Arc<Instance>>,
    /// Instances started for this release (restore, replacement) that have not passed a
    /// health check yet: not routed until they do.
    pub(super) joining: Vec<Arc<Instance>>,
    /// Bumped whenever the live set is taken away ([`StackRt::take_live_instances`]): a
    /// refill that began before must not add to it afterwards.
    pub(super) epoch: u64,
}

/// The stack's warm release (`[deploy] keep_warm`): the previous live release's
/// instances, running unrouted for an immediate rollback.
pub(super) struct WarmSet {
    pub(super) template: Template,
    pub(super) build_id: i64,
    pub(super) instances: Vec<Arc<Instance>>,
}

/// One stack's route and instances.
pub(super) struct StackRt {
    pub(super) name: String,
    pub(super) port: u16,
    /// The address the route listens on (`[deploy] listen` when it was opened).
    pub(super) listen: Mutex<std::net::IpAddr>,
    /// What the route speaks (the stack file's `protocol` when it was opened).
    pub(super) protocol: Mutex<crate::stack::Protocol>,
    /// The route's accept loop ([`crate::deploy::proxy::serve`]); aborted to listen
    /// elsewhere (connections it accepted keep being served).
    pub(super) router: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(super) table: SharedTable,
    /// What the router saw since the last flush into the store.
    pub(super) metrics: Arc<crate::deploy::metrics::RouteMetrics>,
    /// `Some("by alice at TIME")` while the stack is stopped (`drover stop`): no
    /// instances, the route answers 503 saying so, nothing is refilled.
    pub(super) stopped: Mutex<Option<String>>,
    /// The watch window of the newest deploy, while it runs: which release, until when.
    pub(super) watch: Mutex<Option<crate::deploy::watch::Watching>>,
    pub(super) log: LogSink,
    pub(super) live: Mutex<Live>,
    /// Instances of a deploy in progress (shown by status).
    pub(super) pending: Mutex<Vec<Arc<Instance>>>,
    /// The warm release, if one is kept.
    pub(super) warm: Mutex<Option<WarmSet>>,
    pub(super) deploy_lock: tokio::sync::Mutex<()>,
    /// Held by the one refill running (supervisor, start, scale), so two never both
    /// start the missing instances.
    pub(super) refill_lock: tokio::sync::Mutex<()>,
    pub(super) holder: Mutex<Option<String>>,
    pub(super) failures: AtomicU32,
    pub(super) seq: AtomicU64,
    /// Sandboxes of this stack started and not yet exited (any release, routed or not):
    /// with a data volume that is not `shared`, a new one starts only at 0.
    pub(super) running: std::sync::atomic::AtomicUsize,
}

impl StackRt {
    /// The next restart delay after a failure: 0.5 s doubling, at most 30 s.
    pub(super) fn backoff(&self) -> Duration {
        let n = self.failures.fetch_add(1, Ordering::SeqCst).min(6);
        Duration::from_millis(500 * (1u64 << n)).min(Duration::from_secs(30))
    }

    /// Take every instance of the live release (routed and joining) out of the route in
    /// one step; the caller drains and stops them.
    pub(super) fn take_live_instances(&self) -> Vec<Arc<Instance>> {
        let mut live = lock(&self.live);
        let mut out = std::mem::take(&mut live.instances);
        out.append(&mut live.joining);
        live.epoch += 1;
        self.publish(&live);
        out
    }

    pub(super) fn publish(&self, live: &Live) {
        let release = live.template.as_ref().map(|t| t.release).unwrap_or(0);
        if let Some(note) = lock(&self.stopped).clone() {
            self.table
                .store(Arc::new(RouteTable::stopped(release, note)));
            return;
        }
        let backends = live.instances.iter().map(|i| i.backend.clone()).collect();
        self.table
            .store(Arc::new(RouteTable::new(release, backends)));
    }
}
