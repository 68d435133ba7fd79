//! The route table of one stack: which instances (backends) of the live release take
//! requests. The router holds it in an [`arc_swap::ArcSwap`]: a deploy builds a new table
//! and swaps it in one atomic store, so every request sees either the old release or the
//! new one, never a mix. Requests already on an old backend keep their [`InFlight`] guard
//! and finish (drain).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

/// One instance as the router sees it.
#[derive(Debug)]
pub struct Backend {
    /// Instance id.
    pub instance: String,
    /// Release number the instance runs.
    pub release: i64,
    /// Loopback port the instance listens on, inside its network namespace.
    pub port: u16,
    /// The instance's network namespace; `None`: a listener on the host's loopback.
    net: Option<crate::deploy::netns::InstanceNet>,
    /// Unique per backend in this process: names it to the router's connection pool.
    key: u64,
    healthy: AtomicBool,
    in_flight: AtomicUsize,
}

impl Backend {
    /// A backend listening on the host's `127.0.0.1:port`, initially unhealthy (it takes
    /// traffic after its first passed check).
    pub fn new(instance: &str, release: i64, port: u16) -> Arc<Backend> {
        Self::with_net(instance, release, port, None)
    }

    /// A backend listening on `127.0.0.1:port` inside the network namespace `net` (an
    /// instance's), or on the host's loopback when `None`.
    pub fn with_net(
        instance: &str,
        release: i64,
        port: u16,
        net: Option<crate::deploy::netns::InstanceNet>,
    ) -> Arc<Backend> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Arc::new(Backend {
            instance: instance.to_string(),
            release,
            port,
            net,
            key: NEXT.fetch_add(1, Ordering::Relaxed),
            healthy: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
        })
    }
    /// A new TCP connection to the instance (no delay set): in its namespace, or on the
    /// host's loopback.
    pub async fn connect(&self) -> std::io::Result<tokio::net::TcpStream> {
        let s = match &self.net {
            Some(n) => n.connect(self.port).await?,
            None => tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?,
        };
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    /// The URI authority the router's connection pool knows this backend by,
    /// `bKEY.invalid:PORT` (RFC 6761's reserved name: never resolved, only matched by
    /// the router's connector).
    pub fn authority(&self) -> String {
        format!("b{}.invalid:{}", self.key, self.port)
    }

    /// Whether `host` (of a URI) is this backend's [`Backend::authority`].
    pub fn is_host(&self, host: &str) -> bool {
        host.strip_prefix('b')
            .and_then(|h| h.strip_suffix(".invalid"))
            .and_then(|k| k.parse::<u64>().ok())
            == Some(self.key)
    }

    /// Whether the active health checks currently pass.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }
    /// Set by the health checker.
    pub fn set_healthy(&self, h: bool) {
        self.healthy.store(h, Ordering::Release)
    }
    /// Requests being proxied to this backend right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
    /// Count one request until the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }
}

/// Marks one request in flight on a backend; dropping it ends the request.
#[derive(Debug)]
pub struct InFlight(Arc<Backend>);

impl InFlight {
    /// The backend.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An immutable route table: the live release and its backends.
#[derive(Debug, Default)]
pub struct RouteTable {
    /// The live release (0 before the first deploy).
    pub release: i64,
    /// Backends of that release.
    pub backends: Vec<Arc<Backend>>,
    /// `Some("by alice at TIME")`: the stack was stopped (`drover stop`), the route
    /// answers `503` saying so.
    pub stopped: Option<String>,
    next: AtomicUsize,
}

impl RouteTable {
    /// A table for `release` over `backends`.
    pub fn new(release: i64, backends: Vec<Arc<Backend>>) -> RouteTable {
        RouteTable {
            release,
            backends,
            stopped: None,
            next: AtomicUsize::new(0),
        }
    }

    /// The table of a stopped stack: `release` stays the live one, no backends.
    pub fn stopped(release: i64, note: String) -> RouteTable {
        RouteTable {
            stopped: Some(note),
            ..RouteTable::new(release, Vec::new())
        }
    }

    /// Pick a backend round-robin among the healthy ones, skipping those in `exclude`
    /// (already tried for this request). When none is healthy, any not excluded is tried
    /// rather than failing outright. `None` when there is nothing left.
    pub fn pick(&self, exclude: &[String]) -> Option<Arc<Backend>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let pick = |want_healthy: bool| {
            let c: Vec<&Arc<Backend>> = self
                .backends
                .iter()
                .filter(|b| (!want_healthy || b.healthy()) && !exclude.contains(&b.instance))
                .collect();
            (!c.is_empty()).then(|| c[start % c.len()].clone())
        };
        pick(true).or_else(|| pick(false))
    }
}

/// The router's handle on a stack's current table.
pub type SharedTable = Arc<ArcSwap<RouteTable>>;

/// A shared, empty table.
pub fn empty_table() -> SharedTable {
    Arc::new(ArcSwap::from_pointee(RouteTable::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy(id: &str, release: i64) -> Arc<Backend> {
        let b = Backend::new(id, release, 1);
        b.set_healthy(true);
        b
    }

    #[test]
    fn picks_round_robin_among_healthy_backends() {
        let (a, b, c) = (healthy("a", 1), healthy("b", 1), Backend::new("c", 1, 1));
        let t = RouteTable::new(1, vec![a, b, c]);
        let picks: Vec<String> = (0..6)
            .map(|_| t.pick(&[]).unwrap().instance.clone())
            .collect();
        assert!(!picks.contains(&"c".to_string()), "{picks:?}");
        assert_eq!(picks.iter().filter(|p| *p == "a").count(), 3, "{picks:?}");
        assert_eq!(t.pick(&["a".into(), "b".into()]).unwrap().instance, "c");
        assert!(t.pick(&["a".into(), "b".into(), "c".into()]).is_none());
        assert!(RouteTable::default().pick(&[]).is_none());
    }

    #[test]
    fn swap_is_atomic_and_old_requests_drain() {
        let shared = empty_table();
        let old = healthy("old", 1);
        shared.store(Arc::new(RouteTable::new(1, vec![old.clone()])));
        let guard = shared.load().pick(&[]).unwrap().begin();
        assert_eq!(old.in_flight(), 1);
        shared.store(Arc::new(RouteTable::new(2, vec![healthy("new", 2)])));
        let t = shared.load();
        assert_eq!(t.release, 2);
        for _ in 0..5 {
            assert_eq!(t.pick(&[]).unwrap().instance, "new");
        }
        // The request that started on the old release still counts until it ends.
        assert_eq!(guard.backend().instance, "old");
        assert_eq!(old.in_flight(), 1);
        drop(guard);
        assert_eq!(old.in_flight(), 0);
    }

    #[test]
    fn concurrent_readers_never_see_a_mixed_table() {
        let shared = empty_table();
        shared.store(Arc::new(RouteTable::new(
            1,
            vec![healthy("a1", 1), healthy("a2", 1)],
        )));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut r = 2;
                while !stop.load(Ordering::Relaxed) {
                    shared.store(Arc::new(RouteTable::new(
                        r,
                        vec![healthy("x", r), healthy("y", r)],
                    )));
                    r += 1;
                }
                r
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let t = shared.load();
                        assert!(t.backends.iter().all(|b| b.release == t.release));
                        assert_eq!(t.pick(&[]).unwrap().release, t.release);
                    }
                })
            })
            .collect();
        for r in readers {
            r.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(
            writer.join().unwrap() > 2,
            "the writer swapped tables meanwhile"
        );
    }
}
