//! Route metrics in the store: one row per stack, release and minute (migration 11) with
//! the counts of [`Bucket`] and its latency histogram (HdrHistogram V2 encoding). Written
//! by the agent's flush ([`Store::add_route_metrics`], which merges a minute flushed
//! twice), read by `drover metrics`, the console's Releases pane and the deploy watch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use hdrhistogram::Histogram;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::Store;

/// Highest latency a histogram tracks (microseconds; 10 minutes). Longer ones are
/// recorded as this.
const MAX_LATENCY_US: u64 = 600_000_000;

/// One minute of one release's requests.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Requests answered (by an instance or by the router).
    pub requests: u64,
    /// Responses by class: index 0 = 1xx, 1 = 2xx, 2 = 3xx, 3 = 4xx, 4 = 5xx.
    pub by_class: [u64; 5],
    /// Answers the router made because no instance could (`502`, `503`); also counted in
    /// `by_class`.
    pub upstream_errors: u64,
    /// Time from the request head to the response head, microseconds.
    pub latency: Histogram<u64>,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            requests: 0,
            by_class: [0; 5],
            upstream_errors: 0,
            latency: new_histogram(),
        }
    }
}

/// An empty latency histogram: 1 µs to [`MAX_LATENCY_US`], 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Fails only for low < 1, high < 2 × low or more than 5 digits: not these constants.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .unwrap_or_else(|e| panic!("HdrHistogram bounds 1..{MAX_LATENCY_US} µs, 3 digits: {e}"))
}

impl Bucket {
    /// Count one response with `status` after `latency`; `upstream_error`: the router made
    /// it because no instance could answer.
    pub fn record(&mut self, status: u16, upstream_error: bool, latency: Duration) {
        self.requests += 1;
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.by_class[class] += 1;
        if upstream_error {
            self.upstream_errors += 1;
        }
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        self.latency.saturating_record(us);
    }

    /// Add `other`'s counts and samples to this bucket.
    pub fn merge(&mut self, other: &Bucket) {
        self.requests += other.requests;
        for (a, b) in self.by_class.iter_mut().zip(other.by_class) {
            *a += b;
        }
        self.upstream_errors += other.upstream_errors;
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    /// Responses of class 5xx.
    pub fn server_errors(&self) -> u64 {
        self.by_class[4]
    }

    /// The share of 5xx responses (0.0 to 1.0; 0.0 without requests).
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.server_errors() as f64 / self.requests as f64
        }
    }

    /// The latency at `quantile` (0.0 to 1.0) in milliseconds; `None` without requests.
    pub fn latency_ms(&self, quantile: f64) -> Option<f64> {
        (!self.latency.is_empty()).then(|| self.latency.value_at_quantile(quantile) as f64 / 1000.0)
    }
}

/// The start of the minute `t` falls in, in seconds since the Unix epoch.
pub fn minute_of(t: SystemTime) -> i64 {
    let s = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    s - s % 60
}

/// Serialise a histogram for the store (HdrHistogram's V2 encoding, uncompressed).
pub fn encode(h: &Histogram<u64>) -> Vec<u8> {
    use hdrhistogram::serialization::{Serializer, V2Serializer};
    let mut out = Vec::new();
    // Writing into a Vec cannot fail for a histogram of valid bounds.
    let _ = V2Serializer::new().serialize(h, &mut out);
    out
}

/// Read a histogram [`encode`] wrote; an unreadable one (a damaged row) is empty.
pub fn decode(bytes: &[u8]) -> Histogram<u64> {
    use hdrhistogram::serialization::Deserializer;
    let mut r = bytes;
    match Deserializer::new().deserialize::<u64, _>(&mut r) {
        Ok(h) => {
            let mut out = new_histogram();
            match out.add(&h) {
                Ok(()) => out,
                Err(_) => new_histogram(),
            }
        }
        Err(_) => new_histogram(),
    }
}

/// The figures of a [`Bucket`] as the CLI's JSON prints them.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Requests answered.
    pub requests: u64,
    /// Responses 2xx.
    pub status_2xx: u64,
    /// Responses 3xx.
    pub status_3xx: u64,
    /// Responses 4xx.
    pub status_4xx: u64,
    /// Responses 5xx (upstream errors included).
    pub status_5xx: u64,
    /// Answers the router made because no instance could (`502`/`503`).
    pub upstream_errors: u64,
    /// Latency percentiles to the response head, milliseconds (null without requests).
    pub p50_ms: Option<f64>,
    /// 95th percentile, milliseconds.
    pub p95_ms: Option<f64>,
    /// 99th percentile, milliseconds.
    pub p99_ms: Option<f64>,
}

impl From<&Bucket> for Figures {
    fn from(b: &Bucket) -> Figures {
        Figures {
            requests: b.requests,
            status_2xx: b.by_class[1],
            status_3xx: b.by_class[2],
            status_4xx: b.by_class[3],
            status_5xx: b.by_class[4],
            upstream_errors: b.upstream_errors,
            p50_ms: b.latency_ms(0.50),
            p95_ms: b.latency_ms(0.95),
            p99_ms: b.latency_ms(0.99),
        }
    }
}

/// One stored minute of one release, as `drover metrics --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct MinuteRow {
    /// Release number (0: requests while the route had no live release).
    pub release: i64,
    /// Start of the minute, RFC 3339 UTC.
    pub minute: String,
    /// Start of the minute, Unix seconds.
    #[serde(skip)]
    pub minute_unix: i64,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
}

impl MinuteRow {
    fn from_bucket(release: i64, minute: i64, b: &Bucket) -> MinuteRow {
        MinuteRow {
            release,
            minute: chrono::DateTime::from_timestamp(minute, 0)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default(),
            minute_unix: minute,
            figures: b.into(),
        }
    }
}

fn bucket_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, i64, Bucket)> {
    let blob: Vec<u8> = row.get(9)?;
    let n = |i: usize| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(i)?.max(0) as u64) };
    Ok((
        row.get(0)?,
        row.get(1)?,
        Bucket {
            requests: n(2)?,
            by_class: [n(3)?, n(4)?, n(5)?, n(6)?, n(7)?],
            upstream_errors: n(8)?,
            latency: decode(&blob),
        },
    ))
}

const COLUMNS: &str = "release, minute, requests, status_1xx, status_2xx, status_3xx, \
                       status_4xx, status_5xx, upstream_errors, latency";

/// How long route metrics are kept (older minutes are deleted at each flush).
pub const RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

impl Store {
    /// Add `buckets` (`(release, minute start in Unix seconds, bucket)`) of `stack` to the
    /// stored minutes, merging counts and histograms with a row already there, in one
    /// transaction; then drop minutes older than [`RETENTION`].
    pub fn add_route_metrics(&mut self, stack: &str, buckets: &[(i64, i64, Bucket)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for (release, minute, b) in buckets {
            let mut sum = b.clone();
            let old = tx
                .query_row(
                    &format!(
                        "SELECT {COLUMNS} FROM route_metrics \
                         WHERE stack = ?1 AND release = ?2 AND minute = ?3"
                    ),
                    params![stack, release, minute],
                    bucket_of,
                )
                .optional()?;
            if let Some((_, _, old)) = old {
                sum.merge(&old);
            }
            tx.execute(
                "INSERT OR REPLACE INTO route_metrics (stack, release, minute, requests, \
                 status_1xx, status_2xx, status_3xx, status_4xx, status_5xx, upstream_errors, \
                 latency) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    stack,
                    release,
                    minute,
                    sum.requests as i64,
                    sum.by_class[0] as i64,
                    sum.by_class[1] as i64,
                    sum.by_class[2] as i64,
                    sum.by_class[3] as i64,
                    sum.by_class[4] as i64,
                    sum.upstream_errors as i64,
                    encode(&sum.latency),
                ],
            )?;
        }
        let cutoff = minute_of(SystemTime::now()) - RETENTION.as_secs() as i64;
        tx.execute(
            "DELETE FROM route_metrics WHERE stack = ?1 AND minute < ?2",
            params![stack, cutoff],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The stored minutes of `stack` from `since` (Unix seconds, inclusive) on, oldest
    /// first; only `release`'s when given.
    pub fn route_metrics(
        &self,
        stack: &str,
        release: Option<i64>,
        since: i64,
    ) -> Result<Vec<MinuteRow>> {
        let mut q = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM route_metrics WHERE stack = ?1 AND minute >= ?2 \
             AND (?3 IS NULL OR release = ?3) ORDER BY minute, release"
        ))?;
        let rows = q.query_map(params![stack, since, release], bucket_of)?;
        let mut out = Vec::new();
        for r in rows {
            let (release, minute, b) = r?;
            out.push(MinuteRow::from_bucket(release, minute, &b));
        }
        Ok(out)
    }

    /// One release's minutes from `from` to `to` (Unix seconds, both inclusive) merged into
    /// one bucket (counts added, histograms merged, so the percentiles are exact over the
    /// span, not averages of minutes).
    pub fn route_metrics_total(
        &self,
        stack: &str,
        release: i64,
        from: i64,
        to: i64,
    ) -> Result<Bucket> {
        let mut q = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM route_metrics WHERE stack = ?1 AND release = ?2 \
             AND minute >= ?3 AND minute <= ?4"
        ))?;
        let mut sum = Bucket::default();
        for r in q.query_map(params![stack, release, from, to], bucket_of)? {
            sum.merge(&r?.2);
        }
        Ok(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_classes_and_percentiles_and_survive_the_store_encoding() {
        let mut b = Bucket::default();
        for i in 1..=100u64 {
            b.record(200, false, Duration::from_millis(i));
        }
        b.record(503, true, Duration::from_micros(10));
        b.record(404, false, Duration::from_millis(1));
        assert_eq!(b.requests, 102);
        assert_eq!(b.by_class, [0, 100, 0, 1, 1]);
        assert_eq!(b.upstream_errors, 1);
        assert!((b.error_rate() - 1.0 / 102.0).abs() < 1e-9);
        let p99 = b.latency_ms(0.99).unwrap();
        assert!((98.0..=100.5).contains(&p99), "{p99}");
        let back = decode(&encode(&b.latency));
        assert_eq!(back.len(), b.latency.len());
        assert_eq!(
            back.value_at_quantile(0.5),
            b.latency.value_at_quantile(0.5)
        );
        assert_eq!(decode(b"not a histogram").len(), 0);
        let mut sum = Bucket::default();
        sum.merge(&b);
        sum.merge(&b);
        assert_eq!(sum.requests, 204);
        assert_eq!(sum.latency.len(), 204);
        assert_eq!(Bucket::default().latency_ms(0.5), None);
    }

    #[test]
    fn stored_minutes_merge_and_read_back_by_release_and_span() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("d.db")).unwrap();
        let m = minute_of(SystemTime::now());
        let mut ok = Bucket::default();
        ok.record(200, false, Duration::from_millis(3));
        let mut bad = Bucket::default();
        bad.record(500, false, Duration::from_millis(40));
        store
            .add_route_metrics("s", &[(1, m - 60, ok.clone()), (2, m, bad.clone())])
            .unwrap();
        // The same minute flushed again adds up.
        store
            .add_route_metrics("s", &[(2, m, bad.clone())])
            .unwrap();
        store
            .add_route_metrics("other", &[(2, m, ok.clone())])
            .unwrap();
        let rows = store.route_metrics("s", None, 0).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].release, rows[0].figures.requests), (1, 1));
        assert_eq!((rows[1].release, rows[1].figures.status_5xx), (2, 2));
        assert!(rows[1].minute.ends_with(":00Z"), "{}", rows[1].minute);
        let p99 = rows[1].figures.p99_ms.unwrap();
        assert!((39.0..=41.0).contains(&p99), "{p99}");
        assert_eq!(store.route_metrics("s", Some(1), 0).unwrap().len(), 1);
        assert_eq!(store.route_metrics("s", None, m).unwrap().len(), 1);
        let total = store.route_metrics_total("s", 2, m - 600, m).unwrap();
        assert_eq!((total.requests, total.server_errors()), (2, 2));
        assert_eq!(
            store
                .route_metrics_total("s", 2, 0, m - 60)
                .unwrap()
                .requests,
            0
        );
        // Minutes past the retention go at the next flush.
        store
            .add_route_metrics("s", &[(1, m - RETENTION.as_secs() as i64 - 60, ok)])
            .unwrap();
        assert_eq!(store.route_metrics("s", None, 0).unwrap().len(), 2);
    }
}
