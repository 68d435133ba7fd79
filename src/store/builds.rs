//! Builds and their log lines.

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{now_rfc3339, Store};
use crate::debian::sources::ImageRepo;
use crate::manifest::Component;

/// Lifecycle of a build row: `running` → `succeeded` | `failed` | `interrupted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    /// In progress (or its process died; see [`Store::running_builds`]).
    Running,
    /// Produced an image and a manifest.
    Succeeded,
    /// A step failed; the log and error are kept, there is no image.
    Failed,
    /// The process running it was killed; found and marked at the next start.
    Interrupted,
    /// Stopped on the operator's request (Ctrl-C, or `x` on the job in the TUI).
    Cancelled,
}

impl BuildStatus {
    /// The word stored in the `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Running => "running",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Interrupted => "interrupted",
            BuildStatus::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> BuildStatus {
        match s {
            "succeeded" => BuildStatus::Succeeded,
            "failed" => BuildStatus::Failed,
            "interrupted" => BuildStatus::Interrupted,
            "cancelled" => BuildStatus::Cancelled,
            _ => BuildStatus::Running,
        }
    }
}

/// One row of `builds` (the `builds --json` shape).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildRecord {
    /// Build id, increasing across all stacks.
    pub id: i64,
    /// Stack name.
    pub stack: String,
    /// Status.
    pub status: BuildStatus,
    /// RFC 3339 UTC start time.
    pub started_at: String,
    /// RFC 3339 UTC end time, null while running.
    pub finished_at: Option<String>,
    /// Base-layer cache key (hex SHA-256), once computed.
    pub base_key: Option<String>,
    /// Whether the base came from the cache.
    pub base_cached: Option<bool>,
    /// `sha256:…` manifest digest of the image (succeeded builds only).
    pub image_digest: Option<String>,
    /// Path of the OCI archive; null for failed builds and pruned images.
    pub image_path: Option<String>,
    /// The step that failed (`base`, `app`, `image`, `manifest`, `publish`).
    pub failed_step: Option<String>,
    /// Error text of a failed or interrupted build.
    pub error: Option<String>,
    /// Path of the build's VM image (`build::vm`); null without one.
    pub vm_path: Option<String>,
}

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Sequence number within the build, from 0.
    pub seq: i64,
    /// RFC 3339 UTC timestamp.
    pub ts: String,
    /// `stdout`, `stderr` or `drover` (drover's own step messages).
    pub stream: String,
    /// The line, without its newline, as lossy UTF-8.
    pub line: String,
}

#[cfg(test)]
impl BuildRecord {
    /// A finished build of stack `hello` for tests, digest derived from `id`.
    pub(crate) fn sample(id: i64, status: BuildStatus) -> BuildRecord {
        BuildRecord {
            id,
            stack: "hello".into(),
            status,
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: Some("2026-01-01T00:01:00Z".into()),
            base_key: None,
            base_cached: None,
            image_digest: Some(format!("sha256:{id:064}")),
            image_path: None,
            failed_step: None,
            error: None,
            vm_path: None,
        }
    }
}

const COLUMNS: &str = "id, stack, status, started_at, finished_at, base_key, base_cached, \
                       image_digest, image_path, failed_step, error, json_extract(vm, '$.path')";

fn record(r: &Row<'_>) -> rusqlite::Result<BuildRecord> {
    Ok(BuildRecord {
        id: r.get(0)?,
        stack: r.get(1)?,
        status: BuildStatus::parse(&r.get::<_, String>(2)?),
        started_at: r.get(3)?,
        finished_at: r.get(4)?,
        base_key: r.get(5)?,
        base_cached: r.get(6)?,
        image_digest: r.get(7)?,
        image_path: r.get(8)?,
        failed_step: r.get(9)?,
        error: r.get(10)?,
        vm_path: r.get(11)?,
    })
}

/// Everything written when a build succeeds, in one transaction.
pub struct Success<'a> {
    /// `sha256:…` image digest.
    pub image_digest: &'a str,
    /// Published archive path.
    pub image_path: &'a str,
    /// The components manifest.
    pub components: &'a [Component],
}

impl Store {
    /// Insert a `running` build for `stack`, owned by process `pid`. Returns its id.
    pub fn create_build(&self, stack: &str, pid: u32) -> Result<i64> {
        self.conn().execute(
            "INSERT INTO builds (stack, status, started_at, pid) VALUES (?1, 'running', ?2, ?3)",
            params![stack, now_rfc3339(), pid],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Record the base key and whether the cache was hit.
    pub fn set_build_base(&self, id: i64, base_key: &str, cached: bool) -> Result<()> {
        self.conn().execute(
            "UPDATE builds SET base_key = ?2, base_cached = ?3 WHERE id = ?1",
            params![id, base_key, cached],
        )?;
        Ok(())
    }

    /// Record the deps layer build `id` uses (`crate::build::deps`) and whether it came
    /// from the cache.
    pub fn set_build_deps(&self, id: i64, deps_key: &str, cached: bool) -> Result<()> {
        self.conn().execute(
            "UPDATE builds SET deps_key = ?2, deps_cached = ?3 WHERE id = ?1",
            params![id, deps_key, cached],
        )?;
        Ok(())
    }

    /// The deps layer keys of builds that keep an image, and of each stack's newest build
    /// that has one (what `prune` must not remove).
    pub fn deps_keys_in_use(&self) -> Result<Vec<String>> {
        let mut st = self.conn().prepare(
            "SELECT deps_key FROM builds WHERE deps_key IS NOT NULL AND image_path IS NOT NULL \
             UNION SELECT deps_key FROM builds b WHERE deps_key IS NOT NULL AND id = \
             (SELECT MAX(id) FROM builds c WHERE c.stack = b.stack AND c.deps_key IS NOT NULL)",
        )?;
        let rows = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    /// Record the lock (TOML text, `crate::lock::Lock::to_toml`) build `id` installs.
    pub fn set_build_lock(&self, id: i64, lock: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE builds SET lock = ?2 WHERE id = ?1",
            params![id, lock],
        )?;
        Ok(())
    }

    /// The lock text build `id` installed; `None` for builds made before locks (or that
    /// failed before the lock step).
    pub fn build_lock(&self, id: i64) -> Result<Option<String>> {
        let v: Option<Option<String>> = self
            .conn()
            .query_row("SELECT lock FROM builds WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(v.flatten())
    }

    /// The builds of `stack` that applied updates, with how many packages each moved:
    /// a build whose recorded lock has a package (same name and architecture) at another
    /// version than the build before it with a lock (`build --apply-updates`, the
    /// console's `r`, `auto_rebuild`, or a build after `lock --update`; a stack whose
    /// `packages` changed is re-locked minimally, keeping every other version, so that
    /// alone moves nothing). Builds without a lock, or with an unreadable one, are skipped.
    pub fn applied_updates(&self, stack: &str) -> Result<std::collections::BTreeMap<i64, usize>> {
        let mut stmt = self.conn().prepare(
            "SELECT id, lock FROM builds WHERE stack = ?1 AND lock IS NOT NULL ORDER BY id",
        )?;
        let rows = stmt
            .query_map(params![stack], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = std::collections::BTreeMap::new();
        let mut prev: Option<crate::lock::Lock> = None;
        for (id, text) in rows {
            let Ok(lock) = crate::lock::Lock::parse(&text, std::path::Path::new("(stored lock)"))
            else {
                continue;
            };
            if let Some(p) = &prev {
                let n = crate::lock::moved(p, &lock);
                if n > 0 {
                    out.insert(id, n);
                }
            }
            prev = Some(lock);
        }
        Ok(out)
    }

    /// The lock texts of every build that still has an image (what `prune` keeps).
    pub fn locks_of_kept_builds(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn()
            .prepare("SELECT lock FROM builds WHERE lock IS NOT NULL AND image_path IS NOT NULL")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Append log lines (one transaction; `seq` must continue the build's sequence).
    pub fn append_logs(&mut self, build_id: i64, lines: &[LogLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let tx = self.conn_mut().transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO build_logs (build_id, seq, ts, stream, line) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for l in lines {
                st.execute(params![build_id, l.seq, l.ts, l.stream, l.line])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Mark a build succeeded and store its manifest, atomically.
    pub fn finish_build_success(&mut self, id: i64, s: &Success<'_>) -> Result<()> {
        self.finish_build_success_with_repos(id, s, &[])
    }

    /// Record the VM image of build `id` (`vm_json`: a `build::vm::VmImage` as JSON).
    pub fn set_build_vm(&self, id: i64, vm_json: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE builds SET vm = ?2 WHERE id = ?1",
            params![id, vm_json],
        )?;
        Ok(())
    }

    /// The VM image of build `id` as recorded ([`Store::set_build_vm`]); `None` without one.
    pub fn build_vm(&self, id: i64) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT vm FROM builds WHERE id = ?1", [id], |r| r.get(0))
            .optional()?
            .flatten())
    }

    /// [`Store::finish_build_success`], also recording the apt repositories a build script
    /// configured in the image, in the same transaction.
    pub fn finish_build_success_with_repos(
        &mut self,
        id: i64,
        s: &Success<'_>,
        repos: &[ImageRepo],
    ) -> Result<()> {
        let tx = self.conn_mut().transaction()?;
        super::repos::insert_image_repos(&tx, id, repos)?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO manifest_entries (build_id, name, version, arch, source, source_version, \
                 suite, origin, installed_size_kib) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for c in s.components {
                st.execute(params![
                    id,
                    c.name,
                    c.version,
                    c.arch,
                    c.source,
                    c.source_version,
                    c.suite,
                    c.origin,
                    c.installed_size_kib
                ])
                .with_context(|| format!("cannot store manifest entry {}:{}", c.name, c.arch))?;
            }
            tx.execute(
                "UPDATE builds SET status = 'succeeded', finished_at = ?2, image_digest = ?3, \
                 image_path = ?4 WHERE id = ?1",
                params![id, now_rfc3339(), s.image_digest, s.image_path],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Mark a build failed at `step` with `error`. No image, no manifest.
    pub fn finish_build_failure(&self, id: i64, step: &str, error: &str) -> Result<()> {
        self.finish_build_unsuccessful(id, BuildStatus::Failed, step, error)
    }

    /// Mark a build `failed` or `cancelled` at `step` with `error`. No image, no manifest.
    pub fn finish_build_unsuccessful(
        &self,
        id: i64,
        status: BuildStatus,
        step: &str,
        error: &str,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE builds SET status = ?5, finished_at = ?2, failed_step = ?3, error = ?4 \
             WHERE id = ?1",
            params![id, now_rfc3339(), step, error, status.as_str()],
        )?;
        Ok(())
    }

    /// Mark a build whose process died as `interrupted`, at the step it was in and at the
    /// time of its last log line (when it was killed, not when the death was noticed);
    /// the step is the last `== STEP: …` line drover logged.
    pub fn mark_interrupted(&self, id: i64) -> Result<()> {
        let last_ts: Option<String> = self.conn().query_row(
            "SELECT MAX(ts) FROM build_logs WHERE build_id = ?1",
            params![id],
            |r| r.get(0),
        )?;
        let last_step: Option<String> = self
            .conn()
            .query_row(
                "SELECT line FROM build_logs WHERE build_id = ?1 AND stream = 'drover' \
                 AND line LIKE '== %' ORDER BY seq DESC LIMIT 1",
                params![id],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .and_then(|l| {
                l.strip_prefix("== ")
                    .and_then(|rest| rest.split(':').next())
                    .map(str::to_string)
            });
        self.conn().execute(
            "UPDATE builds SET status = 'interrupted', finished_at = ?2, failed_step = ?3, \
             error = 'the build process stopped before finishing (killed or crashed)' \
             WHERE id = ?1 AND status = 'running'",
            params![id, last_ts.unwrap_or_else(now_rfc3339), last_step],
        )?;
        Ok(())
    }

    /// Builds still marked `running`: `(id, owning process id, started_at RFC 3339)`,
    /// oldest first. The pid is `None` for rows written before it was recorded.
    pub fn running_builds(&self) -> Result<Vec<(i64, Option<u32>, String)>> {
        let mut st = self.conn().prepare(
            "SELECT id, pid, started_at FROM builds WHERE status = 'running' ORDER BY id",
        )?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// One build by id.
    pub fn build(&self, id: i64) -> Result<Option<BuildRecord>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM builds WHERE id = ?1"),
                [id],
                record,
            )
            .optional()?)
    }

    /// Builds of `stack`, newest first.
    pub fn builds(&self, stack: &str) -> Result<Vec<BuildRecord>> {
        let mut st = self.conn().prepare(&format!(
            "SELECT {COLUMNS} FROM builds WHERE stack = ?1 ORDER BY id DESC"
        ))?;
        let rows = st
            .query_map([stack], record)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The newest build of `stack` (any status).
    pub fn latest_build(&self, stack: &str) -> Result<Option<BuildRecord>> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM builds WHERE stack = ?1 ORDER BY id DESC LIMIT 1"),
                [stack],
                record,
            )
            .optional()?)
    }

    /// The newest succeeded build of `stack`.
    pub fn latest_succeeded(&self, stack: &str) -> Result<Option<BuildRecord>> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM builds WHERE stack = ?1 AND status = 'succeeded' \
                     ORDER BY id DESC LIMIT 1"
                ),
                [stack],
                record,
            )
            .optional()?)
    }

    /// Builds that still have an image, newest first.
    pub fn builds_with_images(&self) -> Result<Vec<BuildRecord>> {
        let mut st = self.conn().prepare(&format!(
            "SELECT {COLUMNS} FROM builds WHERE image_path IS NOT NULL ORDER BY id DESC"
        ))?;
        let rows = st
            .query_map([], record)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The base key of each stack's newest build that has one.
    pub fn latest_base_keys(&self) -> Result<Vec<String>> {
        let mut st = self.conn().prepare(
            "SELECT base_key FROM builds b WHERE base_key IS NOT NULL AND id = \
             (SELECT MAX(id) FROM builds c WHERE c.stack = b.stack AND c.base_key IS NOT NULL)",
        )?;
        let rows = st
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    /// Forget a pruned image's path (the build row, log and manifest stay).
    pub fn clear_image_path(&self, id: i64) -> Result<()> {
        self.conn().execute(
            "UPDATE builds SET image_path = NULL, vm = NULL WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    /// Log lines of a build with `seq >= from`, at most `limit`, in order.
    pub fn logs(&self, build_id: i64, from: i64, limit: i64) -> Result<Vec<LogLine>> {
        let mut st = self.conn().prepare_cached(
            "SELECT seq, ts, stream, line FROM build_logs WHERE build_id = ?1 AND seq >= ?2 \
             ORDER BY seq LIMIT ?3",
        )?;
        let rows = st
            .query_map(params![build_id, from, limit], |r| {
                Ok(LogLine {
                    seq: r.get(0)?,
                    ts: r.get(1)?,
                    stream: r.get(2)?,
                    line: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Number of log lines of a build.
    pub fn log_len(&self, build_id: i64) -> Result<i64> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM build_logs WHERE build_id = ?1",
            [build_id],
            |r| r.get(0),
        )?)
    }

    /// The first log line of a build containing `needle` (case-sensitive) at or after
    /// `from` (`forward`) or at or before it (backward); its `seq`, or `None`.
    pub fn find_log(
        &self,
        build_id: i64,
        from: i64,
        needle: &str,
        forward: bool,
    ) -> Result<Option<i64>> {
        let sql = if forward {
            "SELECT seq FROM build_logs WHERE build_id = ?1 AND seq >= ?2 \
             AND instr(line, ?3) > 0 ORDER BY seq LIMIT 1"
        } else {
            "SELECT seq FROM build_logs WHERE build_id = ?1 AND seq <= ?2 \
             AND instr(line, ?3) > 0 ORDER BY seq DESC LIMIT 1"
        };
        Ok(self
            .conn()
            .query_row(sql, params![build_id, from, needle], |r| r.get(0))
            .optional()?)
    }
}
