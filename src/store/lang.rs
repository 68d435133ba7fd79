//! Language packages found in a build's image (see [`crate::manifest::lang`]).

use anyhow::Result;
use rusqlite::OptionalExtension;
use serde::Serialize;

use super::Store;
use crate::manifest::lang::LangPackage;

/// A language package with a newer version in its registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LangUpdate {
    /// `pypi`, `npm` or `cargo` (the purl type).
    pub ecosystem: String,
    /// Package name as the image records it.
    pub package: String,
    /// Installed (or locked) version.
    pub installed: String,
    /// Newest version in the registry.
    pub latest: String,
    /// Where the installed version was found in the image (metadata file or lockfile);
    /// several locations are joined with `, `.
    pub location: String,
    /// The URL the latest version was read from.
    pub registry: String,
    /// RFC 3339 UTC time of the check.
    pub checked_at: String,
}

impl Store {
    /// Store the language packages of build `build_id` (one transaction).
    pub fn put_language_packages(&self, build_id: i64, pkgs: &[LangPackage]) -> Result<()> {
        let tx = self.conn().unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO language_packages (build_id, ecosystem, name, version, \
                 location) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for p in pkgs {
                st.execute(rusqlite::params![
                    build_id,
                    p.ecosystem,
                    p.name,
                    p.version,
                    p.location
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The language packages of a build, sorted by ecosystem, name, version, location.
    pub fn language_packages(&self, build_id: i64) -> Result<Vec<LangPackage>> {
        let mut st = self.conn().prepare_cached(
            "SELECT ecosystem, name, version, location FROM language_packages \
             WHERE build_id = ?1 ORDER BY ecosystem, name, version, location",
        )?;
        let rows = st
            .query_map([build_id], |r| {
                Ok(LangPackage {
                    ecosystem: r.get(0)?,
                    name: r.get(1)?,
                    version: r.get(2)?,
                    location: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Store the language updates found by update check `check_id` (one transaction).
    pub fn put_language_updates(&self, check_id: i64, updates: &[LangUpdate]) -> Result<()> {
        let tx = self.conn().unchecked_transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO language_updates (check_id, ecosystem, package, \
                 installed, latest, location, registry) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for u in updates {
                st.execute(rusqlite::params![
                    check_id,
                    u.ecosystem,
                    u.package,
                    u.installed,
                    u.latest,
                    u.location,
                    u.registry
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The language updates of update check `check_id`, sorted by ecosystem and package;
    /// `checked_at` is that check's time.
    pub fn language_updates(&self, check_id: i64) -> Result<Vec<LangUpdate>> {
        let mut st = self.conn().prepare_cached(
            "SELECT l.ecosystem, l.package, l.installed, l.latest, l.location, l.registry, \
             c.checked_at FROM language_updates l JOIN update_checks c ON c.id = l.check_id \
             WHERE l.check_id = ?1 ORDER BY l.ecosystem, l.package, l.installed",
        )?;
        let rows = st
            .query_map([check_id], |r| {
                Ok(LangUpdate {
                    ecosystem: r.get(0)?,
                    package: r.get(1)?,
                    installed: r.get(2)?,
                    latest: r.get(3)?,
                    location: r.get(4)?,
                    registry: r.get(5)?,
                    checked_at: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// The language updates of the newest update check of `stack` (empty when never
    /// checked).
    pub fn latest_language_updates(&self, stack: &str) -> Result<Vec<LangUpdate>> {
        let id: Option<i64> = self
            .conn()
            .query_row(
                "SELECT id FROM update_checks WHERE stack = ?1 ORDER BY id DESC LIMIT 1",
                [stack],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => self.language_updates(id),
            None => Ok(Vec::new()),
        }
    }
}
