//! Language packages an image really holds: Python distributions (`*.dist-info/METADATA`,
//! core metadata = RFC 822 headers `Name`/`Version`, PyPA "Core metadata specifications"),
//! npm packages (`node_modules/[@scope/]NAME/package.json`), and lockfiles under the app
//! directory (`Cargo.lock`, `package-lock.json`, `Gemfile.lock`, `composer.lock`).
//!
//! All of it is hostile input: files are size-capped, symlinks are not followed, the walk is
//! bounded, and an unreadable or malformed file becomes a warning naming it (never a panic,
//! never a failed build).

use serde::{Deserialize, Serialize};

use super::rootfs::RootView;

/// Largest metadata file or lockfile read (bytes).
const MAX_FILE: u64 = 32 << 20;
/// Deepest directory level walked under a search root.
const MAX_DEPTH: usize = 12;
/// Most directory entries visited per search root.
const MAX_ENTRIES: usize = 200_000;

/// One language package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LangPackage {
    /// `pypi`, `npm`, `cargo`, `gem` or `composer` (the purl type).
    pub ecosystem: String,
    /// Package name as its ecosystem writes it (`@scope/name` for scoped npm packages,
    /// `vendor/name` for Composer).
    pub name: String,
    /// Version as recorded.
    pub version: String,
    /// Where it was found: the metadata file or lockfile, absolute in the image.
    pub location: String,
}

impl LangPackage {
    /// Package URL (purl spec): `pkg:pypi/NAME@V`, `pkg:npm/%40scope/NAME@V`, …
    pub fn purl(&self) -> String {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        };
        let name = match self.ecosystem.as_str() {
            // PyPI names are normalised: lowercase, `_` → `-` (purl spec).
            "pypi" => enc(&self.name.to_ascii_lowercase().replace('_', "-")),
            _ => self.name.split('/').map(enc).collect::<Vec<_>>().join("/"),
        };
        format!("pkg:{}/{}@{}", self.ecosystem, name, enc(&self.version))
    }
}

fn is_dir(root: &RootView, rel: &str) -> bool {
    root.resolve(rel)
        .and_then(|p| std::fs::symlink_metadata(p).ok())
        .is_some_and(|m| m.is_dir())
}

fn read_capped(root: &RootView, rel: &str, warnings: &mut Vec<String>) -> Option<String> {
    let path = root.resolve(rel)?;
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.len() > MAX_FILE {
        warnings.push(format!("/{rel}: larger than {MAX_FILE} bytes, not read"));
        return None;
    }
    match root.read(rel) {
        Ok(Some(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
        Ok(None) => None,
        Err(e) => {
            warnings.push(format!("/{rel}: cannot read: {e}"));
            None
        }
    }
}

/// Every directory under `start` (itself included), breadth-first, bounded.
fn walk_dirs(root: &RootView, start: &str) -> Vec<String> {
    let mut out = Vec::new();
    if !is_dir(root, start) {
        return out;
    }
    let mut queue = vec![(start.trim_end_matches('/').to_string(), 0usize)];
    let mut seen = 0usize;
    while let Some((dir, depth)) = queue.pop() {
        out.push(dir.clone());
        if depth >= MAX_DEPTH {
            continue;
        }
        for name in root.list(&dir) {
            seen += 1;
            if seen > MAX_ENTRIES {
                return out;
            }
            let rel = format!("{dir}/{name}");
            if is_dir(root, &rel) {
                queue.push((rel, depth + 1));
            }
        }
    }
    out
}

/// `Name:` and `Version:` of Python core metadata (headers end at the first blank line).
fn python_metadata(text: &str) -> Option<(String, String)> {
    let (mut name, mut version) = (None, None);
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Name:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version:") {
            version = Some(v.trim().to_string());
        }
    }
    Some((
        name.filter(|n| !n.is_empty())?,
        version.filter(|v| !v.is_empty())?,
    ))
}

fn push(out: &mut Vec<LangPackage>, eco: &str, name: &str, version: &str, rel: &str) {
    out.push(LangPackage {
        ecosystem: eco.into(),
        name: name.into(),
        version: version.into(),
        location: format!("/{rel}"),
    });
}

fn lockfile(
    out: &mut Vec<LangPackage>,
    warnings: &mut Vec<String>,
    file: &str,
    rel: &str,
    text: &str,
) {
    let bad = |w: &mut Vec<String>, e: String| w.push(format!("/{rel}: malformed {file}: {e}"));
    match file {
        "Cargo.lock" => match text.parse::<toml::Table>() {
            Ok(t) => {
                for p in t
                    .get("package")
                    .and_then(|p| p.as_array())
                    .into_iter()
                    .flatten()
                {
                    if let (Some(n), Some(v)) = (
                        p.get("name").and_then(|v| v.as_str()),
                        p.get("version").and_then(|v| v.as_str()),
                    ) {
                        push(out, "cargo", n, v, rel);
                    }
                }
            }
            Err(e) => bad(warnings, e.to_string()),
        },
        "package-lock.json" => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => {
                if let Some(pkgs) = v.get("packages").and_then(|p| p.as_object()) {
                    for (path, p) in pkgs {
                        let Some(idx) = path.rfind("node_modules/") else {
                            continue;
                        };
                        let name = &path[idx + "node_modules/".len()..];
                        if let Some(ver) = p.get("version").and_then(|v| v.as_str()) {
                            push(out, "npm", name, ver, rel);
                        }
                    }
                } else if let Some(deps) = v.get("dependencies").and_then(|d| d.as_object()) {
                    for (name, p) in deps {
                        if let Some(ver) = p.get("version").and_then(|v| v.as_str()) {
                            push(out, "npm", name, ver, rel);
                        }
                    }
                }
            }
            Err(e) => bad(warnings, e.to_string()),
        },
        "composer.lock" => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => {
                for key in ["packages", "packages-dev"] {
                    for p in v.get(key).and_then(|p| p.as_array()).into_iter().flatten() {
                        if let (Some(n), Some(ver)) = (
                            p.get("name").and_then(|v| v.as_str()),
                            p.get("version").and_then(|v| v.as_str()),
                        ) {
                            push(out, "composer", n, ver.trim_start_matches('v'), rel);
                        }
                    }
                }
            }
            Err(e) => bad(warnings, e.to_string()),
        },
        "Gemfile.lock" => {
            // Bundler: under `GEM` → `  specs:`, gems are `    name (version)` (4 spaces).
            let mut in_specs = false;
            for line in text.lines() {
                if !line.starts_with(' ') {
                    in_specs = false;
                } else if line.trim() == "specs:" {
                    in_specs = true;
                } else if in_specs && line.starts_with("    ") && !line.starts_with("     ") {
                    if let Some((name, rest)) = line.trim().split_once(" (") {
                        push(out, "gem", name, rest.trim_end_matches(')'), rel);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Find the language packages in `root`: Python distributions in the system and local
/// site directories and anywhere under `app_dir`; npm packages and lockfiles under
/// `app_dir` (e.g. `/opt/app`). Returns the packages (sorted, unique) and warnings.
pub fn scan(root: &RootView, app_dir: Option<&str>) -> (Vec<LangPackage>, Vec<String>) {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut site_dirs = Vec::new();
    for base in ["usr/lib", "usr/local/lib"] {
        for py in root
            .list(base)
            .into_iter()
            .filter(|n| n.starts_with("python3"))
        {
            for sub in ["dist-packages", "site-packages"] {
                site_dirs.push(format!("{base}/{py}/{sub}"));
            }
        }
    }
    let app = app_dir.map(|a| a.trim_matches('/').to_string());
    let app_dirs = app
        .as_deref()
        .map(|a| walk_dirs(root, a))
        .unwrap_or_default();
    // Under the app directory, a distribution may sit anywhere (`pip install --target`,
    // vendored `site/` dirs), not only in `*-packages`; skip the `.dist-info` dirs themselves.
    site_dirs.extend(
        app_dirs
            .iter()
            .filter(|d| !d.ends_with(".dist-info"))
            .cloned(),
    );
    for dir in &site_dirs {
        for name in root
            .list(dir)
            .into_iter()
            .filter(|n| n.ends_with(".dist-info"))
        {
            let rel = format!("{dir}/{name}/METADATA");
            if let Some(text) = read_capped(root, &rel, &mut warnings) {
                match python_metadata(&text) {
                    Some((n, v)) => push(&mut out, "pypi", &n, &v, &rel),
                    None => warnings.push(format!("/{rel}: no Name/Version header")),
                }
            }
        }
    }
    for dir in &app_dirs {
        if dir.ends_with("/node_modules") || dir == "node_modules" {
            for name in root.list(dir) {
                let mut pkgs = Vec::new();
                if name.starts_with('@') {
                    for sub in root.list(&format!("{dir}/{name}")) {
                        pkgs.push(format!("{name}/{sub}"));
                    }
                } else if !name.starts_with('.') {
                    pkgs.push(name);
                }
                for p in pkgs {
                    let rel = format!("{dir}/{p}/package.json");
                    let Some(text) = read_capped(root, &rel, &mut warnings) else {
                        continue;
                    };
                    match serde_json::from_str::<serde_json::Value>(&text) {
                        Ok(v) => {
                            if let (Some(n), Some(ver)) = (
                                v.get("name").and_then(|x| x.as_str()),
                                v.get("version").and_then(|x| x.as_str()),
                            ) {
                                push(&mut out, "npm", n, ver, &rel);
                            }
                        }
                        Err(e) => warnings.push(format!("/{rel}: malformed package.json: {e}")),
                    }
                }
            }
        }
        if dir.split('/').any(|c| c == "node_modules") {
            continue;
        }
        for file in [
            "Cargo.lock",
            "package-lock.json",
            "Gemfile.lock",
            "composer.lock",
        ] {
            let rel = format!("{dir}/{file}");
            if let Some(text) = read_capped(root, &rel, &mut warnings) {
                lockfile(&mut out, &mut warnings, file, &rel, &text);
            }
        }
    }
    out.sort();
    out.dedup();
    (out, warnings)
}
