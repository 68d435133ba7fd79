//! Update checks (one row per `drover updates` run per stack, with its time), their pending
//! updates, and parsed changelogs cached per (source package, version).

use anyhow::{Context, Result};
use rusqlite::OptionalExtension;

use super::Store;
use crate::debian::changelog::Entry;
use crate::manifest::pending::{attach_open, FeedCve, PendingUpdate};

/// A stored check: its time, its pending updates (risk order) and its open CVEs.
pub type StoredCheck = (String, Vec<PendingUpdate>, Vec<FeedCve>);

impl Store {
    /// Record one check of `stack`'s build `build_id` and its pending updates, atomically.
    /// Returns the check id.
    pub fn record_update_check(
        &self,
        stack: &str,
        build_id: i64,
        checked_at: &str,
        updates: &[PendingUpdate],
        open_cves: &[FeedCve],
        warnings: &[String],
    ) -> Result<i64> {
        let tx = self.conn().unchecked_transaction()?;
        tx.execute(
            "INSERT INTO update_checks (stack, build_id, checked_at, pending, warnings, open_cves) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![
                stack,
                build_id,
                checked_at,
                updates.len() as i64,
                serde_json::to_string(warnings)?,
                serde_json::to_string(open_cves)?
            ],
        )?;
        let id = tx.last_insert_rowid();
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO pending_updates (check_id, package, arch, installed, candidate, \
                 suite, source, source_installed, source_candidate, cves, urgency, feed_cves) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
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
                    u.urgency,
                    serde_json::to_string(&u.feed_cves)?
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
    /// that check's time; `None` when the stack was never checked. Each update carries the
    /// open CVEs of its source package recorded by that check.
    pub fn latest_update_check(&self, stack: &str) -> Result<Option<(String, Vec<PendingUpdate>)>> {
        Ok(self
            .latest_update_check_full(stack)?
            .map(|(at, mut updates, open)| {
                attach_open(&mut updates, &open);
                (at, updates)
            }))
    }

    /// The build the newest update check of `stack` looked at, if it was ever checked.
    pub fn latest_checked_build(&self, stack: &str) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT build_id FROM update_checks WHERE stack = ?1 ORDER BY id DESC LIMIT 1",
                [stack],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The time (RFC 3339 UTC) of the newest check of `stack`, if any.
    pub fn last_update_check_at(&self, stack: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT checked_at FROM update_checks WHERE stack = ?1 ORDER BY id DESC LIMIT 1",
                [stack],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Like [`Store::latest_update_check`], plus the check's open CVEs (all source
    /// packages, also those without a pending update).
    pub fn latest_update_check_full(&self, stack: &str) -> Result<Option<StoredCheck>> {
        self.check_full(stack, None)
    }

    /// The pending updates of the newest check of build `build_id` of `stack` (for the live
    /// release's build), with that check's time; `None` when that build was never checked.
    pub fn update_check_of_build(
        &self,
        stack: &str,
        build_id: i64,
    ) -> Result<Option<(String, Vec<PendingUpdate>)>> {
        Ok(self
            .check_full(stack, Some(build_id))?
            .map(|(at, mut updates, open)| {
                attach_open(&mut updates, &open);
                (at, updates)
            }))
    }

    fn check_full(&self, stack: &str, build_id: Option<i64>) -> Result<Option<StoredCheck>> {
        let row: Option<(i64, String, String)> = self
            .conn()
            .query_row(
                "SELECT id, checked_at, open_cves FROM update_checks WHERE stack = ?1 \
                 AND (?2 IS NULL OR build_id = ?2) ORDER BY id DESC LIMIT 1",
                rusqlite::params![stack, build_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((id, at, open)) = row else {
            return Ok(None);
        };
        let open: Vec<FeedCve> = serde_json::from_str(&open)
            .with_context(|| format!("the open CVEs of check {id} of {stack} are corrupt"))?;
        let mut st = self.conn().prepare_cached(
            "SELECT package, arch, installed, candidate, suite, source, source_installed, \
             source_candidate, cves, urgency, feed_cves FROM pending_updates \
             WHERE check_id = ?1 ORDER BY rowid",
        )?;
        let rows = st
            .query_map([id], |r| {
                let cves: String = r.get(8)?;
                let feed_cves: String = r.get(10)?;
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
                    feed_cves: serde_json::from_str(&feed_cves).unwrap_or_default(),
                    open_cves: Vec::new(),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some((at, rows, open)))
    }

    /// Whether `action` (`notify-command`, `notify-webhook`, `rebuild`) was already done
    /// for (stack, source package, candidate source version).
    pub fn update_action_done(
        &self,
        stack: &str,
        source: &str,
        candidate: &str,
        action: &str,
    ) -> Result<bool> {
        Ok(self
            .conn()
            .query_row(
                "SELECT 1 FROM update_actions WHERE stack = ?1 AND source = ?2 \
                 AND candidate = ?3 AND action = ?4",
                [stack, source, candidate, action],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Remember that `action` was done for each (source, candidate) of `stack`, atomically
    /// (already remembered pairs are left as they are).
    pub fn record_update_actions(
        &self,
        stack: &str,
        pairs: &[(String, String)],
        action: &str,
        detail: &str,
    ) -> Result<()> {
        let tx = self.conn().unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO update_actions (stack, source, candidate, action, at, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let at = super::now_rfc3339();
            for (source, candidate) in pairs {
                st.execute(rusqlite::params![
                    stack, source, candidate, action, at, detail
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written by a drover with schema 4 (before the feeds) keeps its checks: they
    /// load with no feed or open CVEs, and new actions can be recorded.
    #[test]
    fn a_schema_4_store_migrates_and_keeps_its_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drover.db");
        {
            let mut conn = rusqlite::Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            for sql in &super::super::MIGRATIONS[..4] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 4).unwrap();
            tx.execute_batch(
                "INSERT INTO builds (id, stack, status, started_at, pid) \
                 VALUES (1, 'hello', 'succeeded', '2026-01-01T00:00:00Z', 1);
                 INSERT INTO update_checks (id, stack, build_id, checked_at, pending, warnings) \
                 VALUES (1, 'hello', 1, '2026-01-01T00:00:00.000Z', 1, '[]');
                 INSERT INTO pending_updates (check_id, package, arch, installed, candidate, \
                 suite, source, source_installed, source_candidate, cves, urgency) VALUES \
                 (1, 'libssl3', 'amd64', '1', '2', 'bookworm-security', 'openssl', '1', '2', \
                 '[\"CVE-2026-1\"]', 'high');",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        let (at, updates, open) = store.latest_update_check_full("hello").unwrap().unwrap();
        assert_eq!(at, "2026-01-01T00:00:00.000Z");
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].cves, vec!["CVE-2026-1"]);
        assert!(updates[0].feed_cves.is_empty() && open.is_empty());
        assert!(!store
            .update_action_done("hello", "openssl", "2", "rebuild")
            .unwrap());
        let pair = [("openssl".to_string(), "2".to_string())];
        store
            .record_update_actions("hello", &pair, "rebuild", "test")
            .unwrap();
        store
            .record_update_actions("hello", &pair, "rebuild", "again")
            .unwrap();
        assert!(store
            .update_action_done("hello", "openssl", "2", "rebuild")
            .unwrap());
        assert!(!store
            .update_action_done("hello", "openssl", "3", "rebuild")
            .unwrap());
    }
}
