//! Update checks (one row per `drover updates` run per stack, with its time), their pending
//! updates, and parsed changelogs cached per (source package, version).

use anyhow::{Context, Result};
use rusqlite::OptionalExtension;

use super::Store;
use crate::debian::changelog::Entry;
use crate::updates::PendingUpdate;

impl Store {
    /// Record one check of `stack`'s build `build_id` and its pending updates, atomically.
    /// Returns the check id.
    pub fn record_update_check(
        &self,
        stack: &str,
        build_id: i64,
        checked_at: &str,
        updates: &[PendingUpdate],
        warnings: &[String],
    ) -> Result<i64> {
        let tx = self.conn().unchecked_transaction()?;
        tx.execute(
            "INSERT INTO update_checks (stack, build_id, checked_at, pending, warnings) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                stack,
                build_id,
                checked_at,
                updates.len() as i64,
                serde_json::to_string(warnings)?
            ],
        )?;
        let id = tx.last_insert_rowid();
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO pending_updates (check_id, package, arch, installed, candidate, \
                 suite, source, source_installed, source_candidate, cves, urgency) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for u in updates {
                st.execute(rusqlite::params![
                    id,
                    u.package,
                    u.arch,
                    u.installed,
                    u.candidate,
                    u.suite,
                    u.source,
                    u.source_installed,
                    u.source_candidate,
                    serde_json::to_string(&u.cves)?,
                    u.urgency
                ])?;
            }
        }
        tx.commit()?;
        Ok(id)
    }

    /// Id of the newest update check of `stack` that checked build `build_id`, if any.
    pub fn latest_check_of_build(&self, stack: &str, build_id: i64) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id FROM update_checks WHERE stack = ?1 AND build_id = ?2 \
                 ORDER BY id DESC LIMIT 1",
                rusqlite::params![stack, build_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The pending updates of the newest check of `stack`, in stored (risk) order, with
    /// that check's time; `None` when the stack was never checked.
    pub fn latest_update_check(&self, stack: &str) -> Result<Option<(String, Vec<PendingUpdate>)>> {
        let row: Option<(i64, String)> = self
            .conn()
            .query_row(
                "SELECT id, checked_at FROM update_checks WHERE stack = ?1 ORDER BY id DESC LIMIT 1",
                [stack],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, at)) = row else {
            return Ok(None);
        };
        let mut st = self.conn().prepare_cached(
            "SELECT package, arch, installed, candidate, suite, source, source_installed, \
             source_candidate, cves, urgency FROM pending_updates WHERE check_id = ?1 ORDER BY rowid",
        )?;
        let rows = st
            .query_map([id], |r| {
                let cves: String = r.get(8)?;
                Ok(PendingUpdate {
                    package: r.get(0)?,
                    arch: r.get(1)?,
                    installed: r.get(2)?,
                    candidate: r.get(3)?,
                    suite: r.get(4)?,
                    source: r.get(5)?,
                    source_installed: r.get(6)?,
                    source_candidate: r.get(7)?,
                    cves: serde_json::from_str(&cves).unwrap_or_default(),
                    urgency: r.get(9)?,
                    checked_at: at.clone(),
                    advisories: Vec::new(),
                    dates: Vec::new(),
                    deb: None,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some((at, rows)))
    }

    /// The cached changelog entries of (source, version), if parsed before.
    pub fn cached_changelog(&self, source: &str, version: &str) -> Result<Option<Vec<Entry>>> {
        let text: Option<String> = self
            .conn()
            .query_row(
                "SELECT entries FROM changelogs WHERE source = ?1 AND version = ?2",
                [source, version],
                |r| r.get(0),
            )
            .optional()?;
        match text {
            None => Ok(None),
            Some(t) => Ok(Some(serde_json::from_str(&t).with_context(|| {
                format!("the cached changelog of {source} {version} is corrupt")
            })?)),
        }
    }

    /// Cache the parsed changelog entries of (source, version).
    pub fn put_changelog(&self, source: &str, version: &str, entries: &[Entry]) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO changelogs (source, version, fetched_at, entries) \
             VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                source,
                version,
                super::now_rfc3339(),
                serde_json::to_string(entries)?
            ],
        )?;
        Ok(())
    }
}
