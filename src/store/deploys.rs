//! Releases, route ports, instance events and build verifications (issue #5).
//!
//! The agent's desired state is the `live` release of each stack (with its replica count):
//! a restarted agent reads [`Store::live_releases`] and brings every route and instance
//! back.

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{now_rfc3339, Store};

/// Lifecycle of a release row: `deploying` → `live` | `failed`; a live release becomes
/// `superseded` when the next one goes live. Serialised (JSON, the `status` column) as
/// the lowercase word of [`ReleaseStatus::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    /// Its deploy is running (or its agent died; marked failed at the next agent start).
    Deploying,
    /// Behind the route now.
    Live,
    /// Was live; replaced by a newer release (a rollback target).
    Superseded,
    /// Never went live; `error` says why.
    Failed,
}

impl ReleaseStatus {
    /// The word stored in the `status` column and shown by `releases`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Deploying => "deploying",
            ReleaseStatus::Live => "live",
            ReleaseStatus::Superseded => "superseded",
            ReleaseStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `status` word that is not a [`ReleaseStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown release status `{0}`")]
pub struct UnknownReleaseStatus(
    /// The word read.
    pub String,
);

impl std::str::FromStr for ReleaseStatus {
    type Err = UnknownReleaseStatus;
    /// The inverse of [`ReleaseStatus::as_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deploying" => Ok(ReleaseStatus::Deploying),
            "live" => Ok(ReleaseStatus::Live),
            "superseded" => Ok(ReleaseStatus::Superseded),
            "failed" => Ok(ReleaseStatus::Failed),
            _ => Err(UnknownReleaseStatus(s.to_string())),
        }
    }
}

/// One row of `releases` (the `releases --json` shape, plus details).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseRecord {
    /// Stack name.
    pub stack: String,
    /// Release number, from 1, per stack.
    pub release: i64,
    /// The build deployed.
    pub build_id: i64,
    /// `sha256:…` image digest of that build.
    pub image_digest: String,
    /// Where it is in its lifecycle.
    pub status: ReleaseStatus,
    /// Instances wanted.
    pub replicas: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC, when the deploy finished (either way).
    pub finished_at: Option<String>,
    /// The operator who deployed it.
    pub by: String,
    /// For a rollback: the release number whose build was redeployed.
    pub rollback_of: Option<i64>,
    /// Why a failed release failed.
    pub error: Option<String>,
}

#[cfg(test)]
impl ReleaseRecord {
    /// Release `n` of stack `hello` (build `build`, 2 replicas) for tests.
    pub(crate) fn sample(n: i64, build: i64, status: &str) -> ReleaseRecord {
        ReleaseRecord {
            stack: "hello".into(),
            release: n,
            build_id: build,
            image_digest: format!("sha256:{build:064}"),
            status: status.parse().expect("a release status"),
            replicas: 2,
            created_at: "2026-01-01T00:00:00Z".into(),
            finished_at: None,
            by: "op".into(),
            rollback_of: None,
            error: None,
        }
    }
}

const COLUMNS: &str = "stack, release, build_id, image_digest, status, replicas, created_at, \
                       finished_at, by, rollback_of, error";

/// An `instance_events` row (`at, stack, release, instance, event, detail`).
fn event_row(r: &Row<'_>) -> rusqlite::Result<InstanceEvent> {
    Ok(InstanceEvent {
        at: r.get(0)?,
        stack: r.get(1)?,
        release: r.get(2)?,
        instance: r.get(3)?,
        event: r.get(4)?,
        detail: r.get(5)?,
    })
}

fn record(r: &Row<'_>) -> rusqlite::Result<ReleaseRecord> {
    Ok(ReleaseRecord {
        stack: r.get(0)?,
        release: r.get(1)?,
        build_id: r.get(2)?,
        image_digest: r.get(3)?,
        status: r
            .get::<_, String>(4)?
            .parse()
            .map_err(|e: UnknownReleaseStatus| {
                rusqlite::Error::FromSqlConversionFailure(
                    4,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
        replicas: r.get(5)?,
        created_at: r.get(6)?,
        finished_at: r.get(7)?,
        by: r.get(8)?,
        rollback_of: r.get(9)?,
        error: r.get(10)?,
    })
}

/// One instance event (`started`, `healthy`, `exited`, `unhealthy`, `replaced`, `stopped`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceEvent {
    /// RFC 3339 UTC.
    pub at: String,
    /// Stack name.
    pub stack: String,
    /// Release number.
    pub release: i64,
    /// Instance id, e.g. `hello-3-a1`.
    pub instance: String,
    /// Event word.
    pub event: String,
    /// Free text (exit status, health-check status and body).
    pub detail: String,
}

impl Store {
    /// Insert a `deploying` release of `build_id` for `stack`, numbered one above the
    /// stack's highest release. Returns the new number.
    pub fn create_release(
        &mut self,
        stack: &str,
        build_id: i64,
        image_digest: &str,
        replicas: i64,
        by: &str,
        rollback_of: Option<i64>,
    ) -> Result<i64> {
        let tx = self.conn_mut().transaction()?;
        let next: i64 = tx.query_row(
            "SELECT COALESCE(MAX(release), 0) + 1 FROM releases WHERE stack = ?1",
            [stack],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO releases (stack, release, build_id, image_digest, status, replicas, \
             created_at, by, rollback_of) VALUES (?1, ?2, ?3, ?4, 'deploying', ?5, ?6, ?7, ?8)",
            params![
                stack,
                next,
                build_id,
                image_digest,
                replicas,
                now_rfc3339(),
                by,
                rollback_of
            ],
        )?;
        tx.commit()?;
        Ok(next)
    }

    /// Keep `text`, the stack file's TOML that `release` of `stack` is deployed with, so
    /// the release can be rolled back, restored or scaled when the file breaks later.
    pub fn set_release_stack_toml(&self, stack: &str, release: i64, text: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE releases SET stack_toml = ?3 WHERE stack = ?1 AND release = ?2",
            params![stack, release, text],
        )?;
        Ok(())
    }

    /// The live release of `stack` and the stack file's text it was deployed with
    /// ([`Store::set_release_stack_toml`]): `None` without a live release, `Some((N, None))`
    /// for one deployed before the text was kept (migration 16).
    pub fn live_stack_toml(&self, stack: &str) -> Result<Option<(i64, Option<String>)>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT release, stack_toml FROM releases WHERE stack = ?1 AND status = 'live'",
                [stack],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Make `release` the live one of `stack` in one transaction: the previous live release
    /// becomes `superseded`.
    pub fn mark_release_live(&mut self, stack: &str, release: i64) -> Result<()> {
        let tx = self.conn_mut().transaction()?;
        tx.execute(
            "UPDATE releases SET status = 'superseded' WHERE stack = ?1 AND status = 'live'",
            [stack],
        )?;
        tx.execute(
            "UPDATE releases SET status = 'live', finished_at = ?3 WHERE stack = ?1 AND release = ?2",
            params![stack, release, now_rfc3339()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Record that putting `release` live by a recreate left `stack`'s route without a
    /// release for `ms` milliseconds (from the old instances' stop to the new ones taking
    /// the route).
    pub fn set_release_unavailable_ms(&self, stack: &str, release: i64, ms: f64) -> Result<()> {
        self.conn().execute(
            "UPDATE releases SET unavailable_ms = ?3 WHERE stack = ?1 AND release = ?2",
            params![stack, release, ms],
        )?;
        Ok(())
    }

    /// The unavailability, in milliseconds, of `stack`'s newest release that was put live
    /// by a recreate (see [`Store::set_release_unavailable_ms`]); `None` before the first.
    pub fn last_unavailable_ms(&self, stack: &str) -> Result<Option<f64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT unavailable_ms FROM releases WHERE stack = ?1 AND unavailable_ms \
                 IS NOT NULL ORDER BY release DESC LIMIT 1",
                [stack],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Mark a deploying release `failed` with its error.
    pub fn mark_release_failed(&self, stack: &str, release: i64, error: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE releases SET status = 'failed', finished_at = ?3, error = ?4 \
             WHERE stack = ?1 AND release = ?2",
            params![stack, release, now_rfc3339(), error],
        )?;
        Ok(())
    }

    /// Record `stack` as stopped by `by` now (`Some`), or started again (`None`).
    pub fn set_stack_stopped(&self, stack: &str, by: Option<&str>) -> Result<()> {
        match by {
            Some(by) => self.conn().execute(
                "INSERT OR REPLACE INTO stopped_stacks (stack, at, by) VALUES (?1, ?2, ?3)",
                params![stack, now_rfc3339(), by],
            )?,
            None => self
                .conn()
                .execute("DELETE FROM stopped_stacks WHERE stack = ?1", [stack])?,
        };
        Ok(())
    }

    /// `Some("by alice at TIME")` when `stack` is stopped.
    pub fn stack_stopped(&self, stack: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT by, at FROM stopped_stacks WHERE stack = ?1",
                [stack],
                |r| {
                    Ok(format!(
                        "by {} at {}",
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?
                    ))
                },
            )
            .optional()?)
    }

    /// Set the replica count of `release` (`drover scale`), so a restarted agent
    /// restores that many.
    pub fn set_release_replicas(&self, stack: &str, release: i64, replicas: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE releases SET replicas = ?3 WHERE stack = ?1 AND release = ?2",
            params![stack, release, replicas],
        )?;
        Ok(())
    }

    /// Set the error note of `release` without changing its status (a release that went
    /// live and was rolled back by the watch window keeps `superseded`, with the reason).
    pub fn note_release_error(&self, stack: &str, release: i64, error: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE releases SET error = ?3 WHERE stack = ?1 AND release = ?2",
            params![stack, release, error],
        )?;
        Ok(())
    }

    /// The release of `stack` still `deploying`, if any (at most one: deploys of a stack
    /// are serialised by the agent).
    pub fn deploying_release(&self, stack: &str) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT release FROM releases WHERE stack = ?1 AND status = 'deploying' \
                 ORDER BY release DESC LIMIT 1",
                [stack],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Releases left `deploying` by an agent that died are marked failed. Returns how many.
    pub fn fail_unfinished_releases(&self) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE releases SET status = 'failed', finished_at = ?1, \
             error = 'interrupted: the agent stopped during the deploy' WHERE status = 'deploying'",
            [now_rfc3339()],
        )?)
    }

    /// A stack's releases, newest first.
    pub fn releases(&self, stack: &str) -> Result<Vec<ReleaseRecord>> {
        let mut st = self.conn().prepare(&format!(
            "SELECT {COLUMNS} FROM releases WHERE stack = ?1 ORDER BY release DESC"
        ))?;
        let rows = st
            .query_map([stack], record)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// One release.
    pub fn release(&self, stack: &str, release: i64) -> Result<Option<ReleaseRecord>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM releases WHERE stack = ?1 AND release = ?2"),
                params![stack, release],
                record,
            )
            .optional()?)
    }

    /// The live release of every stack: the agent's desired state.
    pub fn live_releases(&self) -> Result<Vec<ReleaseRecord>> {
        let mut st = self.conn().prepare(&format!(
            "SELECT {COLUMNS} FROM releases WHERE status = 'live' ORDER BY stack"
        ))?;
        let rows = st
            .query_map([], record)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Record `release` as the warm release of `stack` (its instances run unrouted for an
    /// immediate rollback), or clear it with `None`.
    pub fn set_warm_release(&self, stack: &str, release: Option<i64>) -> Result<()> {
        match release {
            Some(r) => self.conn().execute(
                "INSERT INTO warm_releases (stack, release) VALUES (?1, ?2) \
                 ON CONFLICT (stack) DO UPDATE SET release = excluded.release",
                params![stack, r],
            )?,
            None => self
                .conn()
                .execute("DELETE FROM warm_releases WHERE stack = ?1", [stack])?,
        };
        Ok(())
    }

    /// The warm release of every stack (part of the agent's desired state, restored after
    /// its live release), joined with its release row.
    pub fn warm_releases(&self) -> Result<Vec<ReleaseRecord>> {
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("r.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut st = self.conn().prepare(&format!(
            "SELECT {cols} FROM warm_releases w JOIN releases r \
             ON r.stack = w.stack AND r.release = w.release ORDER BY r.stack"
        ))?;
        let rows = st
            .query_map([], record)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Image digests worth keeping unpacked: every live or deploying release's, plus the
    /// newest `keep_previous` superseded releases' of each stack (rollback targets).
    pub fn digests_to_keep(&self, keep_previous: i64) -> Result<Vec<String>> {
        let mut st = self.conn().prepare(
            "SELECT DISTINCT image_digest FROM releases r WHERE status IN ('live','deploying') \
             OR (status = 'superseded' AND (SELECT COUNT(*) FROM releases n WHERE n.stack = r.stack \
                 AND n.status = 'superseded' AND n.release > r.release) < ?1)",
        )?;
        let rows = st
            .query_map([keep_previous], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    /// The remembered route port of `stack`.
    pub fn route_port(&self, stack: &str) -> Result<Option<u16>> {
        let p: Option<i64> = self
            .conn()
            .query_row("SELECT port FROM routes WHERE stack = ?1", [stack], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(p.map(|p| p as u16))
    }

    /// Remember `port` as the route port of `stack`.
    pub fn set_route_port(&self, stack: &str, port: u16) -> Result<()> {
        self.conn().execute(
            "INSERT INTO routes (stack, port) VALUES (?1, ?2) \
             ON CONFLICT (stack) DO UPDATE SET port = excluded.port",
            params![stack, port as i64],
        )?;
        Ok(())
    }

    /// Record an instance event.
    pub fn instance_event(
        &self,
        stack: &str,
        release: i64,
        instance: &str,
        event: &str,
        detail: &str,
    ) -> Result<()> {
        self.conn()
            .execute(
                "INSERT INTO instance_events (at, stack, release, instance, event, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![now_rfc3339(), stack, release, instance, event, detail],
            )
            .context("cannot record an instance event")?;
        Ok(())
    }

    /// How many instances of `stack` were ever started (seeds instance numbering, so ids
    /// stay unique across agent restarts).
    pub fn instances_started(&self, stack: &str) -> Result<u64> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM instance_events WHERE stack = ?1 AND event = 'started'",
            [stack],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// The newest `limit` instance events of `stack`, newest first.
    pub fn instance_events(&self, stack: &str, limit: i64) -> Result<Vec<InstanceEvent>> {
        let mut st = self.conn().prepare(
            "SELECT at, stack, release, instance, event, detail FROM instance_events \
             WHERE stack = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st
            .query_map(params![stack, limit], event_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Store the verification result of a build (`verified` or `verify-failed`) with its
    /// detail (health-check outcome and the instance's log tail).
    pub fn set_verification(&self, build_id: i64, verified: bool, detail: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO verifications (build_id, status, at, detail) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (build_id) DO UPDATE SET status = excluded.status, at = excluded.at, \
             detail = excluded.detail",
            params![
                build_id,
                if verified {
                    "verified"
                } else {
                    "verify-failed"
                },
                now_rfc3339(),
                detail
            ],
        )?;
        Ok(())
    }

    /// The verification of a build: `(status, at, detail)` (status `verified` or
    /// `verify-failed`; the detail holds the test script's output or the health check's
    /// outcome), if it was verified.
    pub fn verification_detail(&self, build_id: i64) -> Result<Option<(String, String, String)>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT status, at, detail FROM verifications WHERE build_id = ?1",
                [build_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    /// The instance events of release `release` of `stack`, oldest first (at most
    /// `limit`, the newest kept).
    pub fn release_instance_events(
        &self,
        stack: &str,
        release: i64,
        limit: i64,
    ) -> Result<Vec<InstanceEvent>> {
        let mut st = self.conn().prepare(
            "SELECT at, stack, release, instance, event, detail FROM instance_events \
             WHERE stack = ?1 AND release = ?2 ORDER BY id DESC LIMIT ?3",
        )?;
        let mut rows = st
            .query_map(params![stack, release, limit], event_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.reverse();
        Ok(rows)
    }

    /// The verification status of a build (`verified`, `verify-failed`), if it was verified.
    pub fn verification(&self, build_id: i64) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT status FROM verifications WHERE build_id = ?1",
                [build_id],
                |r| r.get(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_unpacked_images_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::deploy::unpack::rootfs_root(dir.path());
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        std::fs::create_dir_all(root.join(&a).join("rootfs")).unwrap();
        std::fs::create_dir_all(root.join(&b).join("rootfs")).unwrap();
        let keep = [format!("sha256:{a}")];
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(
            crate::deploy::unpack::remove_unused(dir.path(), &keep, hour).images,
            0
        );
        assert!(root.join(&b).is_dir(), "a fresh unpack is never removed");
        let n = crate::deploy::unpack::remove_unused(dir.path(), &keep, Default::default());
        assert_eq!(n.images, 1);
        assert!(root.join(&a).is_dir() && !root.join(&b).exists());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 1);
    }

    #[test]
    fn releases_are_numbered_per_stack_and_one_is_live() {
        let mut s = Store::open_in_memory().unwrap();
        let r1 = s.create_release("a", 1, "sha256:1", 1, "op", None).unwrap();
        let r2 = s.create_release("a", 2, "sha256:2", 2, "op", None).unwrap();
        let b1 = s.create_release("b", 3, "sha256:3", 1, "op", None).unwrap();
        assert_eq!((r1, r2, b1), (1, 2, 1));
        s.mark_release_live("a", 1).unwrap();
        s.mark_release_live("a", 2).unwrap();
        let rel = s.releases("a").unwrap();
        assert_eq!(rel[0].status, ReleaseStatus::Live);
        assert_eq!(rel[1].status, ReleaseStatus::Superseded);
        s.mark_release_failed("b", 1, "never healthy").unwrap();
        let live = s.live_releases().unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!((live[0].stack.as_str(), live[0].release), ("a", 2));
        assert_eq!(
            s.release("b", 1).unwrap().unwrap().error.as_deref(),
            Some("never healthy")
        );
        s.set_route_port("a", 8080).unwrap();
        s.set_route_port("a", 8081).unwrap();
        assert_eq!(s.route_port("a").unwrap(), Some(8081));
        assert_eq!(s.route_port("b").unwrap(), None);
        // Live and the newest superseded are kept; failed releases are not.
        let mut keep = s.digests_to_keep(1).unwrap();
        keep.sort();
        assert_eq!(keep, vec!["sha256:1".to_string(), "sha256:2".to_string()]);
        assert_eq!(s.digests_to_keep(0).unwrap(), vec!["sha256:2".to_string()]);
        s.instance_event("a", 2, "a-r2-1", "started", "pid 1")
            .unwrap();
        s.instance_event("a", 2, "a-r2-1", "exited", "signal 9")
            .unwrap();
        assert_eq!(s.instances_started("a").unwrap(), 1);
        assert_eq!(s.instance_events("a", 10).unwrap()[0].event, "exited");
    }

    #[test]
    fn the_newest_recreate_window_is_remembered_per_stack() {
        let mut s = Store::open_in_memory().unwrap();
        for b in 1..=3 {
            s.create_release("db", b, "sha256:x", 1, "op", None)
                .unwrap();
        }
        assert_eq!(s.last_unavailable_ms("db").unwrap(), None);
        s.set_release_unavailable_ms("db", 1, 2100.0).unwrap();
        s.set_release_unavailable_ms("db", 2, 900.5).unwrap();
        // Release 3 was not a recreate: the newest measured window is still release 2's.
        assert_eq!(s.last_unavailable_ms("db").unwrap(), Some(900.5));
        assert_eq!(s.last_unavailable_ms("other").unwrap(), None);
    }

    #[test]
    fn one_warm_release_per_stack_is_remembered_and_cleared() {
        let mut s = Store::open_in_memory().unwrap();
        for b in 1..=3 {
            s.create_release("a", b, &format!("sha256:{b}"), 2, "op", None)
                .unwrap();
            s.mark_release_live("a", b).unwrap();
        }
        assert!(s.warm_releases().unwrap().is_empty());
        s.set_warm_release("a", Some(1)).unwrap();
        s.set_warm_release("a", Some(2)).unwrap();
        let w = s.warm_releases().unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(
            (w[0].stack.as_str(), w[0].release, w[0].build_id),
            ("a", 2, 2)
        );
        assert_eq!((w[0].replicas, w[0].status.as_str()), (2, "superseded"));
        s.set_warm_release("a", None).unwrap();
        assert!(s.warm_releases().unwrap().is_empty());
    }
}
