//! Components manifest entries, per build.

use anyhow::Result;

use super::Store;
use crate::manifest::Component;

impl Store {
    /// The manifest of a build, sorted by package name then architecture.
    pub fn manifest(&self, build_id: i64) -> Result<Vec<Component>> {
        let mut st = self.conn().prepare_cached(
            "SELECT name, version, arch, source, source_version, suite, origin, installed_size_kib \
             FROM manifest_entries WHERE build_id = ?1 ORDER BY name, arch",
        )?;
        let rows = st
            .query_map([build_id], |r| {
                Ok(Component {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    arch: r.get(2)?,
                    source: r.get(3)?,
                    source_version: r.get(4)?,
                    suite: r.get(5)?,
                    origin: r.get(6)?,
                    installed_size_kib: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
