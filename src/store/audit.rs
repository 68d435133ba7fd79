//! The audit trail: who ran what, when.

use anyhow::Result;
use rusqlite::params;
use serde::Serialize;

use super::{now_rfc3339, Store};

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC time.
    pub at: String,
    /// The operator (`$USER`, else the numeric uid).
    pub who: String,
    /// What was done, e.g. `build`, `prune`.
    pub action: String,
    /// The stack concerned, if any.
    pub stack: Option<String>,
    /// Free text: the outcome and ids.
    pub detail: String,
}

impl AuditRecord {
    /// Column names of [`AuditRecord::cells`].
    pub const HEADER: [&'static str; 5] = ["TIME", "WHO", "ACTION", "STACK", "DETAIL"];

    /// The record as table cells (time to the second, `-` for no stack), for
    /// [`crate::text::table`] in the CLI and the console alike.
    pub fn cells(&self) -> Vec<String> {
        vec![
            self.at.get(..19).unwrap_or(&self.at).replace('T', " "),
            self.who.clone(),
            self.action.clone(),
            self.stack.clone().unwrap_or_else(|| "-".into()),
            crate::text::sanitize_for_terminal(&self.detail),
        ]
    }
}

/// The current operator's name: `$USER`, else the password database's name for the uid,
/// else `uid:N`; with `$SUDO_USER` (another user), `ALICE (sudo as root)`.
pub fn current_user() -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|u| !u.is_empty());
    let uid = nix::unistd::getuid();
    let name = var("USER")
        .or_else(|| {
            nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| format!("uid:{uid}"));
    // Over SSH operators often act through sudo: keep who it really was.
    match var("SUDO_USER") {
        Some(s) if s != name => format!("{s} (sudo as {name})"),
        _ => name,
    }
}

impl Store {
    /// Record that the current operator did `action` on `stack`.
    pub fn audit(&self, action: &str, stack: Option<&str>, detail: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO audit (at, who, action, stack, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now_rfc3339(), current_user(), action, stack, detail],
        )?;
        Ok(())
    }

    /// The newest `limit` audit records, newest first.
    pub fn audit_log(&self, limit: i64) -> Result<Vec<AuditRecord>> {
        self.audit_query(None, None, limit)
    }

    /// The newest `limit` audit records of `stack` (all stacks and stack-less records when
    /// `None`) at or after `since` (an RFC 3339 UTC time as [`now_rfc3339`] writes it),
    /// newest first.
    pub fn audit_query(
        &self,
        stack: Option<&str>,
        since: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>> {
        let mut st = self.conn().prepare(
            "SELECT at, who, action, stack, detail FROM audit \
             WHERE (?1 IS NULL OR stack = ?1) AND (?2 IS NULL OR at >= ?2) \
             ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = st
            .query_map(params![stack, since, limit], |r| {
                Ok(AuditRecord {
                    at: r.get(0)?,
                    who: r.get(1)?,
                    action: r.get(2)?,
                    stack: r.get(3)?,
                    detail: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_query_filters_by_stack_and_time() {
        let s = Store::open_in_memory().unwrap();
        s.audit("build", Some("hello"), "build 1 succeeded")
            .unwrap();
        s.audit("prune", None, "freed 1 MB").unwrap();
        s.audit("deploy", Some("web"), "release 1 live").unwrap();
        let all = s.audit_query(None, None, 10).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].action, "deploy", "newest first");
        let hello = s.audit_query(Some("hello"), None, 10).unwrap();
        assert_eq!(hello.len(), 1);
        assert_eq!(hello[0].detail, "build 1 succeeded");
        assert!(s
            .audit_query(None, Some("2999-01-01T00:00:00.000Z"), 10)
            .unwrap()
            .is_empty());
        assert_eq!(s.audit_query(None, None, 1).unwrap().len(), 1);
    }

    #[test]
    fn current_user_is_a_name() {
        let u = super::current_user();
        assert!(!u.is_empty() && !u.starts_with("uid:"), "{u}");
    }
}
