//! Image pushes to registries (`pushes`) and Helm actions (`helm_releases`): which build went
//! where, with which digest or revision.

use anyhow::Result;
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{now_rfc3339, Store};

/// One row of `pushes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushRecord {
    /// Push id, increasing.
    pub id: i64,
    /// The build whose image was pushed.
    pub build_id: i64,
    /// Stack name.
    pub stack: String,
    /// `HOST[:PORT]/REPO:TAG` pushed to.
    pub reference: String,
    /// `HOST[:PORT]`.
    pub registry: String,
    /// `sha256:…` manifest digest in the registry.
    pub digest: String,
    /// RFC 3339 UTC time of the push.
    pub pushed_at: String,
}

fn record(r: &Row<'_>) -> rusqlite::Result<PushRecord> {
    Ok(PushRecord {
        id: r.get(0)?,
        build_id: r.get(1)?,
        stack: r.get(2)?,
        reference: r.get(3)?,
        registry: r.get(4)?,
        digest: r.get(5)?,
        pushed_at: r.get(6)?,
    })
}

const COLUMNS: &str = "id, build_id, stack, reference, registry, digest, pushed_at";

impl Store {
    /// Record a successful push; returns the new row.
    pub fn record_push(
        &self,
        build_id: i64,
        stack: &str,
        reference: &str,
        registry: &str,
        digest: &str,
    ) -> Result<PushRecord> {
        self.conn().execute(
            "INSERT INTO pushes (build_id, stack, reference, registry, digest, pushed_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![build_id, stack, reference, registry, digest, now_rfc3339()],
        )?;
        let id = self.conn().last_insert_rowid();
        Ok(self.conn().query_row(
            &format!("SELECT {COLUMNS} FROM pushes WHERE id = ?1"),
            [id],
            record,
        )?)
    }

    /// Pushes of `stack`, newest first.
    pub fn pushes(&self, stack: &str) -> Result<Vec<PushRecord>> {
        let mut st = self.conn().prepare(&format!(
            "SELECT {COLUMNS} FROM pushes WHERE stack = ?1 ORDER BY id DESC"
        ))?;
        let rows = st
            .query_map([stack], record)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The newest push of build `build_id`, if it was pushed.
    pub fn latest_push_of_build(&self, build_id: i64) -> Result<Option<PushRecord>> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM pushes WHERE build_id = ?1 ORDER BY id DESC LIMIT 1"
                ),
                [build_id],
                record,
            )
            .optional()?)
    }
}

/// One row of `helm_releases`: a `helm upgrade --install` or `helm rollback` drover ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HelmReleaseRecord {
    /// Row id, increasing.
    pub id: i64,
    /// Stack name.
    pub stack: String,
    /// The build installed (null for a rollback).
    pub build_id: Option<i64>,
    /// `upgrade` or `rollback`.
    pub action: String,
    /// kubeconfig context.
    pub kube_context: String,
    /// Namespace.
    pub namespace: String,
    /// Helm release name.
    pub release: String,
    /// Helm's revision after the action.
    pub revision: i64,
    /// Image reference by digest (upgrades).
    pub image: Option<String>,
    /// RFC 3339 UTC time.
    pub at: String,
}

/// What [`Store::record_helm_release`] stores.
#[derive(Debug, Clone)]
pub struct NewHelmRelease<'a> {
    /// Stack name.
    pub stack: &'a str,
    /// Build installed (upgrades).
    pub build_id: Option<i64>,
    /// `upgrade` or `rollback`.
    pub action: &'a str,
    /// kubeconfig context.
    pub kube_context: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Release name.
    pub release: &'a str,
    /// Helm's revision after the action.
    pub revision: i64,
    /// Image reference by digest.
    pub image: Option<&'a str>,
}

impl Store {
    /// Record a Helm action; returns the row id.
    pub fn record_helm_release(&self, r: &NewHelmRelease<'_>) -> Result<i64> {
        self.conn().execute(
            "INSERT INTO helm_releases (stack, build_id, action, kube_context, namespace, release, \
             revision, image, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                r.stack,
                r.build_id,
                r.action,
                r.kube_context,
                r.namespace,
                r.release,
                r.revision,
                r.image,
                now_rfc3339()
            ],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    /// Helm actions on `stack`, newest first.
    pub fn helm_releases(&self, stack: &str) -> Result<Vec<HelmReleaseRecord>> {
        let mut st = self.conn().prepare(
            "SELECT id, stack, build_id, action, kube_context, namespace, release, revision, \
             image, at FROM helm_releases WHERE stack = ?1 ORDER BY id DESC",
        )?;
        let rows = st
            .query_map([stack], |r| {
                Ok(HelmReleaseRecord {
                    id: r.get(0)?,
                    stack: r.get(1)?,
                    build_id: r.get(2)?,
                    action: r.get(3)?,
                    kube_context: r.get(4)?,
                    namespace: r.get(5)?,
                    release: r.get(6)?,
                    revision: r.get(7)?,
                    image: r.get(8)?,
                    at: r.get(9)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
