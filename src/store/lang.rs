//! Language packages found in a build's image (see [`crate::manifest::lang`]).

use anyhow::Result;

use super::Store;
use crate::manifest::lang::LangPackage;

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
}
