//! Newer versions of the language packages found in an image
//! ([`crate::manifest::lang`]), from their registries:
//!
//! - PyPI: the JSON API, `GET {pypi}/pypi/NAME/json`, field `info.version` (the newest
//!   release that is not a pre-release); compared as PEP 440 versions (`pep440_rs`).
//! - npm: the registry's abbreviated package document, `GET {npm}/NAME` with
//!   `Accept: application/vnd.npm.install-v1+json`, field `dist-tags.latest`; compared as
//!   SemVer 2.0 (`semver`).
//! - crates.io: the sparse index, `GET {crates}/PREFIX/NAME` (one JSON object per line,
//!   Cargo reference "Registry index"), the greatest version that is neither yanked nor a
//!   pre-release; compared as SemVer.
//!
//! RubyGems and Packagist are not queried (no client yet): their packages are reported as
//! not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub use crate::config::Registries;
use crate::manifest::lang::LangPackage;
pub use crate::store::lang::LangUpdate;

/// The outcome of [`check`]: updates sorted by ecosystem and package, and problems that
/// did not stop the check (an unreachable registry, an unknown package, a version that
/// does not parse), each naming the package and URL.
#[derive(Debug, Clone, Default)]
pub struct LangCheck {
    /// Packages with a newer version.
    pub updates: Vec<LangUpdate>,
    /// How many distinct (ecosystem, name, version) were compared.
    pub checked: usize,
    /// Problems, one line each.
    pub warnings: Vec<String>,
}

/// Ask the registries for the newest version of each distinct package in `pkgs`.
///
/// Runs up to 8 requests at a time (10 s timeout each). A registry that cannot be reached
/// is reported once and its remaining packages are skipped. Never fails as a whole: every
/// problem becomes a warning.
pub fn check(regs: &Registries, pkgs: &[LangPackage], checked_at: &str) -> LangCheck {
    let mut out = LangCheck::default();
    // (ecosystem, name, version) -> locations
    let mut wanted: BTreeMap<(&str, &str, &str), Vec<&str>> = BTreeMap::new();
    let mut unsupported: BTreeSet<&str> = BTreeSet::new();
    for p in pkgs {
        match p.ecosystem.as_str() {
            "pypi" | "npm" | "cargo" => wanted
                .entry((&p.ecosystem, &p.name, &p.version))
                .or_default()
                .push(&p.location),
            other => {
                unsupported.insert(other);
            }
        }
    }
    for eco in unsupported {
        let n = pkgs.iter().filter(|p| p.ecosystem == eco).count();
        out.warnings.push(format!(
            "{n} {eco} package(s) not checked: drover has no {eco} registry client yet"
        ));
    }
    let http = match crate::http::client_builder(Duration::from_secs(10)).build() {
        Ok(h) => h,
        Err(e) => {
            out.warnings
                .push(format!("cannot create an HTTP client: {e}"));
            return out;
        }
    };
    // One request per distinct (ecosystem, name).
    let names: Vec<(&str, &str)> = wanted
        .keys()
        .map(|(e, n, _)| (*e, *n))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let latest = fetch_all(&http, regs, &names);
    let mut down: BTreeSet<&str> = BTreeSet::new();
    for ((eco, name, version), locations) in &wanted {
        out.checked += 1;
        let Some((url, answer)) = latest.get(&(*eco, *name)) else {
            continue;
        };
        let latest = match answer {
            Ok(Some(v)) => v,
            Ok(None) => {
                out.warnings.push(format!(
                    "{eco} package {name}: the registry lists no released version ({url})"
                ));
                continue;
            }
            Err(Fetch::Unreachable(e)) => {
                if down.insert(eco) {
                    out.warnings.push(format!(
                        "{eco} registry unreachable, its packages were not checked: {e}"
                    ));
                }
                continue;
            }
            Err(Fetch::Failed(e)) => {
                out.warnings.push(format!("{eco} package {name}: {e}"));
                continue;
            }
        };
        match newer(eco, version, latest) {
            Ok(true) => out.updates.push(LangUpdate {
                ecosystem: eco.to_string(),
                package: name.to_string(),
                installed: version.to_string(),
                latest: latest.clone(),
                location: locations.join(", "),
                registry: url.clone(),
                checked_at: checked_at.to_string(),
            }),
            Ok(false) => {}
            Err(e) => out
                .warnings
                .push(format!("{eco} package {name} {version}: {e:#}")),
        }
    }
    out
}

/// The purl ecosystem of a `[track] registries` name (`pypi`, `npm`, `crates`), as
/// [`LangPackage::ecosystem`] writes it; `None` for a name drover does not know.
pub fn ecosystem_of_registry(name: &str) -> Option<&'static str> {
    match name {
        "pypi" => Some("pypi"),
        "npm" => Some("npm"),
        "crates" => Some("cargo"),
        _ => None,
    }
}

/// Keep the packages of the registries a stack's `[track] registries` names; an empty
/// list keeps every package (all registries are asked by default).
pub fn keep_tracked(pkgs: &mut Vec<LangPackage>, tracked: &[String]) {
    if tracked.is_empty() {
        return;
    }
    pkgs.retain(|p| {
        tracked
            .iter()
            .any(|r| ecosystem_of_registry(r).is_some_and(|e| e == p.ecosystem))
    });
}

/// Whether `latest` is a greater version than `installed` in the ecosystem's ordering
/// (PEP 440 for `pypi`, SemVer 2.0 for `npm` and `cargo`).
///
/// Errors: a version that does not parse in that ordering (the message quotes it).
pub fn newer(ecosystem: &str, installed: &str, latest: &str) -> Result<bool> {
    match ecosystem {
        "pypi" => {
            let p = |v: &str| {
                pep440_rs::Version::from_str(v)
                    .map_err(|e| anyhow::anyhow!("`{v}` is not a PEP 440 version: {e}"))
            };
            Ok(p(latest)? > p(installed)?)
        }
        "npm" | "cargo" => {
            let p = |v: &str| {
                // npm tolerates a leading `v` and `=` in lockfiles.
                let t = v.trim().trim_start_matches(['v', '=']);
                semver::Version::parse(t).with_context(|| format!("`{v}` is not a SemVer version"))
            };
            Ok(p(latest)? > p(installed)?)
        }
        other => bail!("no version ordering for ecosystem {other}"),
    }
}

enum Fetch {
    /// Connection-level failure: the whole registry is down or unreachable.
    Unreachable(String),
    /// This package's answer was unusable (404, bad JSON, …).
    Failed(String),
}

type Answers<'a> = BTreeMap<(&'a str, &'a str), (String, Result<Option<String>, Fetch>)>;

fn fetch_all<'a>(
    http: &reqwest::blocking::Client,
    regs: &Registries,
    names: &[(&'a str, &'a str)],
) -> Answers<'a> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..8.min(names.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&(eco, name)) = names.get(i) else {
                    break;
                };
                let url = package_url(regs, eco, name);
                let answer = fetch_latest(http, eco, &url);
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((eco, name), (url, answer));
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// The URL holding the versions of `name` in `ecosystem`'s registry.
pub fn package_url(regs: &Registries, ecosystem: &str, name: &str) -> String {
    let base = |b: &str| b.trim_end_matches('/').to_string();
    match ecosystem {
        "pypi" => format!("{}/pypi/{name}/json", base(&regs.pypi)),
        // Scoped names keep the `@` and encode the slash (npm registry API).
        "npm" => format!("{}/{}", base(&regs.npm), name.replace('/', "%2f")),
        _ => format!("{}/{}", base(&regs.crates), crates_index_path(name)),
    }
}

/// Path of a crate in the sparse index (Cargo reference, "Index files"): `1/NAME`,
/// `2/NAME`, `3/F/NAME` (F its first letter), else `AB/CD/NAME`; lowercase.
pub fn crates_index_path(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    match n.len() {
        0 => n,
        1 => format!("1/{n}"),
        2 => format!("2/{n}"),
        3 => format!("3/{}/{n}", &n[..1]),
        _ => format!("{}/{}/{n}", &n[..2], &n[2..4]),
    }
}

fn fetch_latest(
    http: &reqwest::blocking::Client,
    ecosystem: &str,
    url: &str,
) -> Result<Option<String>, Fetch> {
    let mut req = http.get(url);
    if ecosystem == "npm" {
        req = req.header(
            reqwest::header::ACCEPT,
            "application/vnd.npm.install-v1+json",
        );
    }
    let resp = req
        .send()
        .map_err(|e| Fetch::Unreachable(format!("GET {url}: {:#}", anyhow::Error::new(e))))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(Fetch::Failed(format!(
            "not found in the registry (GET {url}: 404); a private or renamed package?"
        )));
    }
    if !status.is_success() {
        return Err(Fetch::Failed(format!("GET {url}: HTTP {status}")));
    }
    let body = resp
        .text()
        .map_err(|e| Fetch::Failed(format!("GET {url}: reading the body: {e}")))?;
    latest_from(ecosystem, &body).map_err(|e| Fetch::Failed(format!("{url}: {e:#}")))
}

/// The newest released version in a registry answer (see the module docs for each
/// format); `None` when the answer lists none.
///
/// Errors: JSON that does not parse (with line and column) or lacks the field.
pub fn latest_from(ecosystem: &str, body: &str) -> Result<Option<String>> {
    match ecosystem {
        "pypi" => {
            let v: serde_json::Value =
                serde_json::from_str(body).context("the PyPI answer is not JSON")?;
            let ver = v
                .pointer("/info/version")
                .and_then(|x| x.as_str())
                .context("the PyPI answer has no info.version")?;
            Ok(Some(ver.to_string()))
        }
        "npm" => {
            let v: serde_json::Value =
                serde_json::from_str(body).context("the npm answer is not JSON")?;
            Ok(v.pointer("/dist-tags/latest")
                .and_then(|x| x.as_str())
                .map(str::to_string))
        }
        _ => {
            let mut best: Option<semver::Version> = None;
            for (i, line) in body
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                #[derive(serde::Deserialize)]
                struct Entry {
                    vers: String,
                    #[serde(default)]
                    yanked: bool,
                }
                let e: Entry = serde_json::from_str(line)
                    .with_context(|| format!("index line {}: not a crate version entry", i + 1))?;
                let Ok(v) = semver::Version::parse(&e.vers) else {
                    continue;
                };
                if e.yanked || !v.pre.is_empty() {
                    continue;
                }
                if best.as_ref().is_none_or(|b| v > *b) {
                    best = Some(v);
                }
            }
            Ok(best.map(|v| v.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_paths_follow_cargo() {
        assert_eq!(crates_index_path("a"), "1/a");
        assert_eq!(crates_index_path("ab"), "2/ab");
        assert_eq!(crates_index_path("abc"), "3/a/abc");
        assert_eq!(crates_index_path("Serde"), "se/rd/serde");
    }

    #[test]
    fn track_registries_narrow_the_check() {
        let pkg = |eco: &str| LangPackage {
            ecosystem: eco.into(),
            name: "x".into(),
            version: "1".into(),
            location: "/x".into(),
        };
        let all = vec![pkg("pypi"), pkg("npm"), pkg("cargo"), pkg("gem")];
        let mut p = all.clone();
        keep_tracked(&mut p, &[]);
        assert_eq!(p, all);
        keep_tracked(&mut p, &["crates".into(), "npm".into()]);
        let ecos: Vec<&str> = p.iter().map(|p| p.ecosystem.as_str()).collect();
        assert_eq!(ecos, ["npm", "cargo"]);
    }

    #[test]
    fn orderings() {
        assert!(newer("pypi", "2.0.0", "2.32.3").unwrap());
        assert!(newer("pypi", "1.0rc1", "1.0").unwrap());
        assert!(!newer("pypi", "1.0.post1", "1.0").unwrap());
        assert!(newer("npm", "1.2.3", "1.10.0").unwrap());
        assert!(!newer("cargo", "1.0.0", "1.0.0-alpha").unwrap());
        assert!(newer("npm", "not a version", "1.0.0").is_err());
    }

    #[test]
    fn sparse_index_skips_yanked_and_prereleases() {
        let body = concat!(
            r#"{"name":"x","vers":"1.0.0","yanked":false}"#,
            "\n",
            r#"{"name":"x","vers":"1.2.0","yanked":true}"#,
            "\n",
            r#"{"name":"x","vers":"1.1.0"}"#,
            "\n",
            r#"{"name":"x","vers":"2.0.0-beta.1","yanked":false}"#,
            "\n"
        );
        assert_eq!(
            latest_from("cargo", body).unwrap().as_deref(),
            Some("1.1.0")
        );
        let e = latest_from("cargo", "{\"vers\": 1}\n").unwrap_err();
        assert!(format!("{e:#}").contains("index line 1"), "{e:#}");
    }

    #[test]
    fn pypi_and_npm_answers() {
        assert_eq!(
            latest_from("pypi", r#"{"info":{"version":"2.32.3"}}"#)
                .unwrap()
                .as_deref(),
            Some("2.32.3")
        );
        assert!(latest_from("pypi", "{}").is_err());
        assert_eq!(
            latest_from("npm", r#"{"dist-tags":{"latest":"1.3.0"}}"#)
                .unwrap()
                .as_deref(),
            Some("1.3.0")
        );
        assert!(format!("{:#}", latest_from("npm", "<html>").unwrap_err()).contains("not JSON"));
    }
}
