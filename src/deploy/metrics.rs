//! Route metrics: what the router saw per release, in one-minute buckets — requests,
//! responses by class (2xx/3xx/4xx/5xx), upstream errors (answers the router made itself
//! because no instance could: `502`/`503`) and the latency to the response head in an HDR
//! histogram (`hdrhistogram`, microseconds, 3 significant digits), from which p50/p95/p99
//! come without keeping every sample.
//!
//! The router records into [`RouteMetrics`] (one short mutex hold per request); the agent
//! takes the buckets every [`FLUSH_INTERVAL`] and adds them to the store
//! (`store::metrics`), which merges the histograms of the same minute. So the store is at
//! most one flush behind the router, and a killed agent loses at most that much.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::store::metrics::{minute_of, Bucket};

/// How often the agent moves the router's buckets into the store.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// One route's buckets not yet in the store, by (release, minute start in Unix seconds).
#[derive(Debug, Default)]
pub struct RouteMetrics {
    buckets: Mutex<HashMap<(i64, i64), Bucket>>,
}

impl RouteMetrics {
    /// Count one response of `release` (0: the route had no live release).
    pub fn record(&self, release: i64, status: u16, upstream_error: bool, latency: Duration) {
        let minute = minute_of(SystemTime::now());
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        b.entry((release, minute))
            .or_default()
            .record(status, upstream_error, latency);
    }

    /// Take every bucket recorded since the last call: `(release, minute, bucket)`.
    pub fn take(&self) -> Vec<(i64, i64, Bucket)> {
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *b)
            .into_iter()
            .map(|((r, m), b)| (r, m, b))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_metrics_split_by_release_and_take_empties() {
        let m = RouteMetrics::default();
        m.record(1, 200, false, Duration::from_millis(2));
        m.record(2, 500, false, Duration::from_millis(2));
        m.record(2, 502, true, Duration::from_millis(2));
        let mut t = m.take();
        t.sort_by_key(|(r, _, _)| *r);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].0, t[0].2.requests), (1, 1));
        assert_eq!(
            (t[1].0, t[1].2.server_errors(), t[1].2.upstream_errors),
            (2, 2, 1)
        );
        assert_eq!(t[0].1 % 60, 0);
        assert!(m.take().is_empty());
    }
}
