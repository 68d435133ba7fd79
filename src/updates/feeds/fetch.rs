//! Reading a feed's bytes from where `[feeds]` of `drover.toml` says it is.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config::FeedLocation;

/// Read a feed's bytes: a file, or (for OSV) every `*.json` file of a directory in name
/// order, or an http(s) URL. Returns `(name, bytes)` pairs, `name` used in errors.
pub(super) fn read_feed(loc: &FeedLocation) -> Result<Vec<(String, Vec<u8>)>> {
    match loc {
        FeedLocation::Url(url) => {
            let client = crate::http::client_builder(Duration::from_secs(120)).build()?;
            let resp = client
                .get(url)
                .send()
                .with_context(|| format!("cannot fetch {url}"))?;
            if !resp.status().is_success() {
                bail!("cannot fetch {url}: HTTP {}", resp.status());
            }
            let body = resp
                .bytes()
                .with_context(|| format!("cannot read the answer of {url}"))?;
            Ok(vec![(url.clone(), body.to_vec())])
        }
        FeedLocation::Path(p) if p.is_dir() => {
            let mut files: Vec<_> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            files.sort();
            files
                .into_iter()
                .map(|f| {
                    let data = std::fs::read(&f)
                        .with_context(|| format!("cannot read {}", f.display()))?;
                    Ok((f.display().to_string(), data))
                })
                .collect()
        }
        FeedLocation::Path(p) => {
            let data = std::fs::read(p).with_context(|| {
                format!(
                    "cannot read {} (check the path in [feeds] of drover.toml)",
                    p.display()
                )
            })?;
            Ok(vec![(p.display().to_string(), data)])
        }
    }
}
