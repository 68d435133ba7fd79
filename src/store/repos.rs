//! The non-Debian apt repositories a build script configured in an image, with their keys
//! (table `image_repos`, one row per build, URI and suite).

use anyhow::{Context, Result};
use rusqlite::{params, Connection};

use super::Store;
use crate::debian::sources::{ImageRepo, RepoKey};

/// Insert `repos` for build `build_id` (inside the caller's transaction).
pub(crate) fn insert_image_repos(
    conn: &Connection,
    build_id: i64,
    repos: &[ImageRepo],
) -> Result<()> {
    let mut st = conn.prepare_cached(
        "INSERT OR REPLACE INTO image_repos (build_id, uri, suite, components, architectures, \
         key_from, fingerprints, key_data, trusted, file, line) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for r in repos {
        st.execute(params![
            build_id,
            r.uri,
            r.suite,
            serde_json::to_string(&r.components)?,
            serde_json::to_string(&r.architectures)?,
            r.key.from,
            serde_json::to_string(&r.key.fingerprints)?,
            r.key.data,
            r.trusted,
            r.file,
            r.line as i64
        ])
        .with_context(|| format!("cannot store the image repository {} {}", r.uri, r.suite))?;
    }
    Ok(())
}

impl Store {
    /// The apt repositories a build script configured in build `build_id`'s image, by URI
    /// and suite; empty for builds before this was recorded.
    ///
    /// Errors: a database error, or a row whose JSON columns are corrupt.
    pub fn image_repos(&self, build_id: i64) -> Result<Vec<ImageRepo>> {
        let mut st = self.conn().prepare_cached(
            "SELECT uri, suite, components, architectures, key_from, fingerprints, key_data, \
             trusted, file, line FROM image_repos WHERE build_id = ?1 ORDER BY uri, suite",
        )?;
        let rows = st
            .query_map([build_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Vec<u8>>(6)?,
                    r.get::<_, bool>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, i64>(9)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(uri, suite, comps, archs, from, fprs, data, trusted, file, line)| {
                let json = |t: &str| -> Result<Vec<String>> {
                    serde_json::from_str(t).with_context(|| {
                        format!("the stored image repository {uri} {suite} of build {build_id} is corrupt")
                    })
                };
                Ok(ImageRepo {
                    components: json(&comps)?,
                    architectures: json(&archs)?,
                    key: RepoKey {
                        from,
                        fingerprints: json(&fprs)?,
                        data,
                    },
                    trusted,
                    uri: uri.clone(),
                    suite: suite.clone(),
                    file,
                    line: line as usize,
                })
            })
            .collect()
    }
}
