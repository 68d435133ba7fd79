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
        let mut st = self.conn().prepare(
            "SELECT at, who, action, stack, detail FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = st
            .query_map([limit], |r| {
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
    #[test]
    fn current_user_is_a_name() {
        let u = super::current_user();
        assert!(!u.is_empty() && !u.starts_with("uid:"), "{u}");
    }
}
