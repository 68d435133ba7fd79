//! Health history: each instance's active health checks summed per minute (migration 17),
//! written by the agent's health loop, read by the release detail.

use anyhow::Result;
use rusqlite::params;
use serde::Serialize;

use super::Store;

/// How long health minutes are kept, seconds (7 days).
pub const HEALTH_KEEP_SECS: i64 = 7 * 86_400;

/// One instance's health checks in one minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthMinute {
    /// Stack name.
    pub stack: String,
    /// Release number.
    pub release: i64,
    /// Instance id, e.g. `hello-r3-a1`.
    pub instance: String,
    /// The minute's start, Unix seconds (UTC).
    pub minute: i64,
    /// Checks that ran.
    pub checks: i64,
    /// Of those, the failed ones.
    pub failures: i64,
    /// The slowest check, milliseconds.
    pub max_ms: f64,
    /// The last failed check's answer (status and body, or what happened).
    pub last_failure: Option<String>,
}

impl Store {
    /// Add `m` to its (stack, instance, minute) row: counts summed, the slowest kept, the
    /// newer failure kept. Rows of the stack older than [`HEALTH_KEEP_SECS`] before `m`
    /// are dropped.
    pub fn record_health_minute(&self, m: &HealthMinute) -> Result<()> {
        self.conn().execute(
            "INSERT INTO health_minutes (stack, release, instance, minute, checks, failures, \
             max_ms, last_failure) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (stack, instance, minute) DO UPDATE SET \
             checks = checks + excluded.checks, failures = failures + excluded.failures, \
             max_ms = MAX(max_ms, excluded.max_ms), \
             last_failure = COALESCE(excluded.last_failure, last_failure)",
            params![
                m.stack,
                m.release,
                m.instance,
                m.minute,
                m.checks,
                m.failures,
                m.max_ms,
                m.last_failure
            ],
        )?;
        self.conn().execute(
            "DELETE FROM health_minutes WHERE stack = ?1 AND minute < ?2",
            params![m.stack, m.minute - HEALTH_KEEP_SECS],
        )?;
        Ok(())
    }

    /// The newest `limit` health minutes of `release` of `stack`, oldest first (by minute,
    /// then instance).
    pub fn release_health(
        &self,
        stack: &str,
        release: i64,
        limit: usize,
    ) -> Result<Vec<HealthMinute>> {
        let mut st = self.conn().prepare(
            "SELECT stack, release, instance, minute, checks, failures, max_ms, last_failure \
             FROM health_minutes WHERE stack = ?1 AND release = ?2 \
             ORDER BY minute DESC, instance DESC LIMIT ?3",
        )?;
        let mut rows = st
            .query_map(params![stack, release, limit as i64], |r| {
                Ok(HealthMinute {
                    stack: r.get(0)?,
                    release: r.get(1)?,
                    instance: r.get(2)?,
                    minute: r.get(3)?,
                    checks: r.get(4)?,
                    failures: r.get(5)?,
                    max_ms: r.get(6)?,
                    last_failure: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.reverse();
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(instance: &str, at: i64, checks: i64, failures: i64, ms: f64) -> HealthMinute {
        HealthMinute {
            stack: "a".into(),
            release: 1,
            instance: instance.into(),
            minute: at,
            checks,
            failures,
            max_ms: ms,
            last_failure: (failures > 0).then(|| format!("HTTP 503 at {at}")),
        }
    }

    #[test]
    fn minutes_merge_and_old_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("d.db")).unwrap();
        s.record_health_minute(&minute("a-1", 60, 5, 1, 3.0))
            .unwrap();
        // The same minute again (a flush at the loop's end): summed, slowest and the
        // failure kept.
        s.record_health_minute(&minute("a-1", 60, 2, 0, 9.0))
            .unwrap();
        s.record_health_minute(&minute("a-2", 60, 4, 0, 1.0))
            .unwrap();
        let rows = s.release_health("a", 1, 10).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].checks, rows[0].failures), (7, 1));
        assert_eq!(rows[0].max_ms, 9.0);
        assert_eq!(rows[0].last_failure.as_deref(), Some("HTTP 503 at 60"));
        assert_eq!(rows[1].instance, "a-2");
        // A week and a minute later, the old minutes are gone.
        s.record_health_minute(&minute("a-1", 60 + HEALTH_KEEP_SECS + 60, 1, 0, 1.0))
            .unwrap();
        let rows = s.release_health("a", 1, 10).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(s.release_health("a", 2, 10).unwrap().is_empty());
    }
}
