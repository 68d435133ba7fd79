//! The lock: `CONFIG/stacks/NAME.lock`, the exact set of packages an image of a stack
//! installs, resolved by apt (inside mmdebstrap) against the stack's suites, committed
//! beside the stack file and reviewed in a diff like `Cargo.lock`.
//!
//! A build installs exactly its lock; freshness is an explicit step that moves the lock
//! (`drover lock STACK --update`, the console's `r`); nothing moves backwards silently.
//! The base cache key is [`Lock::base_key`], a hash of the locked package set, so a new lock
//! gives a new base and an app-only change reuses the cached one.
//!
//! File format (TOML, stable order, one line per repository and per package):
//!
//! ```toml
//! version = 1
//! stack = "hello"
//! arch = "amd64"
//! variant = "apt"
//! inputs = "<hex SHA-256 of the stack's package inputs>"
//! include = ["ca-certificates", "python3-minimal"]
//! repository = [
//!   { mirror = "http://deb.debian.org/debian", suite = "bookworm", components = ["main"], date = "Sat, 08 Nov 2025 09:43:56 UTC" },
//! ]
//! package = [
//!   { name = "adduser", arch = "all", version = "3.134", source = "adduser", source_version = "3.134", mirror = "http://deb.debian.org/debian", suite = "bookworm", sha256 = "…", size = 1234 },
//! ]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::stack::{AptSource, Diagnostic, Diagnostics, Stack};

pub mod diff;
pub mod resolve;

pub use diff::{diff, ChangeKind, LockChange};

/// The lock file format version this drover writes and reads.
pub const LOCK_VERSION: u32 = 1;

/// Bumped whenever the way a base is made from a lock changes (mmdebstrap options,
/// excludes), so old cache entries are not reused for the new recipe.
pub const RECIPE_VERSION: u32 = 2;

/// A repository a lock was resolved against: one apt source and the `Date` of the signed
/// Release it was resolved with (RFC 2822, as in the Release file; empty when unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedRepo {
    /// Mirror URL without trailing slash.
    pub mirror: String,
    /// Suite, e.g. `bookworm-security`.
    pub suite: String,
    /// Components, e.g. `["main"]`.
    pub components: Vec<String>,
    /// `Date:` of the Release file the lock was resolved against.
    #[serde(default)]
    pub date: String,
}

impl LockedRepo {
    /// The apt source this repository is.
    pub fn source(&self) -> AptSource {
        AptSource {
            mirror: self.mirror.clone(),
            suite: self.suite.clone(),
            components: self.components.clone(),
        }
    }
}

/// One installed binary package, pinned: what the signed Packages index said about the
/// exact .deb (Debian Repository Format, "Packages Indices": `SHA256`, `Size`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPackage {
    /// Binary package name.
    pub name: String,
    /// Debian architecture (`amd64`, `all`, …).
    pub arch: String,
    /// Exact version (Debian Policy §5.6.12).
    pub version: String,
    /// Source package name.
    pub source: String,
    /// Source package version.
    pub source_version: String,
    /// Mirror it comes from.
    pub mirror: String,
    /// Suite it comes from.
    pub suite: String,
    /// Lowercase hex SHA-256 of the .deb.
    pub sha256: String,
    /// Size of the .deb in bytes.
    pub size: u64,
}

/// A stack's lock: see the module documentation for the file format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// [`LOCK_VERSION`].
    pub version: u32,
    /// The stack's name.
    pub stack: String,
    /// Debian architecture the lock was resolved for.
    pub arch: String,
    /// mmdebstrap variant.
    pub variant: String,
    /// [`inputs_hash`] of the stack when the lock was resolved.
    pub inputs: String,
    /// The stack's `packages` the lock was resolved for (sorted), given to mmdebstrap as
    /// `--include` when the base is made again from the lock.
    #[serde(default)]
    pub include: Vec<String>,
    /// The repositories used, in apt source order.
    #[serde(default, rename = "repository")]
    pub repositories: Vec<LockedRepo>,
    /// Every installed package, sorted by (name, arch).
    #[serde(default, rename = "package")]
    pub packages: Vec<LockedPackage>,
}

/// Where the lock of `stack` lives: beside its stack file, `NAME.lock`.
pub fn path_of(stack: &Stack) -> PathBuf {
    stack.file.with_extension("lock")
}

/// The stack's package-related inputs as canonical JSON: suite, mirrors, components,
/// variant, sorted `packages`, extra suites, tracked suites, architecture. When they change,
/// the lock must be resolved again (minimally: what is still wanted stays pinned).
pub fn inputs_json(stack: &Stack, arch: &str) -> serde_json::Value {
    let source = |s: &AptSource| serde_json::json!({"mirror": s.mirror, "suite": s.suite, "components": s.components});
    serde_json::json!({
        "arch": arch,
        "variant": stack.base.variant,
        "sources": stack.base.sources().iter().map(source).collect::<Vec<_>>(),
        "tracked": stack.track.apt.iter().map(source).collect::<Vec<_>>(),
        "packages": sorted_include(stack),
    })
}

/// Hex SHA-256 of the compact text of [`inputs_json`] (object keys are sorted by
/// serde_json, so the text is canonical).
pub fn inputs_hash(stack: &Stack, arch: &str) -> String {
    let text = serde_json::to_string(&inputs_json(stack, arch)).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The stack's `packages`, sorted and without duplicates.
pub fn sorted_include(stack: &Stack) -> Vec<String> {
    let set: BTreeSet<&String> = stack.packages.iter().collect();
    set.into_iter().cloned().collect()
}

impl Lock {
    /// The base cache key of this lock: hex SHA-256 over the recipe version, architecture,
    /// variant, repositories (mirror, suite, components), the included packages and every
    /// locked (name, arch, version, sha256). Two stacks with the same lock share a base.
    pub fn base_key(&self) -> String {
        let repos: Vec<_> = self
            .repositories
            .iter()
            .map(|r| serde_json::json!([r.mirror, r.suite, r.components]))
            .collect();
        let pkgs: Vec<_> = self
            .packages
            .iter()
            .map(|p| serde_json::json!([p.name, p.arch, p.version, p.sha256]))
            .collect();
        let v = serde_json::json!({
            "recipe": RECIPE_VERSION,
            "arch": self.arch,
            "variant": self.variant,
            "repositories": repos,
            "include": self.include,
            "packages": pkgs,
        });
        let text = serde_json::to_string(&v).unwrap_or_default();
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// The locked package `name` of architecture `arch`.
    pub fn get(&self, name: &str, arch: &str) -> Option<&LockedPackage> {
        self.packages
            .iter()
            .find(|p| p.name == name && p.arch == arch)
    }

    /// (name, arch) → version of every locked package.
    pub fn versions(&self) -> BTreeMap<(&str, &str), &str> {
        self.packages
            .iter()
            .map(|p| ((p.name.as_str(), p.arch.as_str()), p.version.as_str()))
            .collect()
    }

    /// The apt sources of the lock's repositories, in order.
    pub fn sources(&self) -> Vec<AptSource> {
        self.repositories.iter().map(LockedRepo::source).collect()
    }

    /// The lock as TOML text in its stable layout (see the module documentation): sorted
    /// packages, one inline table per line, so a change is one line in a diff.
    pub fn to_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let list = |v: &[String]| {
            let items: Vec<String> = v.iter().map(|s| q(s)).collect();
            format!("[{}]", items.join(", "))
        };
        let mut out = String::new();
        out.push_str(&format!(
            "# The lock of stack `{}`: the exact packages its image installs, resolved by apt.\n\
             # Written by drover (`drover lock {0}`, `drover build {0}`); commit it with the stack\n\
             # file. `drover lock {0} --update` moves it to the pending updates.\n",
            self.stack
        ));
        out.push_str(&format!("version = {}\n", self.version));
        out.push_str(&format!("stack = {}\n", q(&self.stack)));
        out.push_str(&format!("arch = {}\n", q(&self.arch)));
        out.push_str(&format!("variant = {}\n", q(&self.variant)));
        out.push_str(&format!("inputs = {}\n", q(&self.inputs)));
        out.push_str(&format!("include = {}\n", list(&self.include)));
        out.push_str("repository = [\n");
        for r in &self.repositories {
            out.push_str(&format!(
                "  {{ mirror = {}, suite = {}, components = {}, date = {} }},\n",
                q(&r.mirror),
                q(&r.suite),
                list(&r.components),
                q(&r.date)
            ));
        }
        out.push_str("]\npackage = [\n");
        let mut pkgs: Vec<&LockedPackage> = self.packages.iter().collect();
        pkgs.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        for p in pkgs {
            out.push_str(&format!(
                "  {{ name = {}, arch = {}, version = {}, source = {}, source_version = {}, \
                 mirror = {}, suite = {}, sha256 = {}, size = {} }},\n",
                q(&p.name),
                q(&p.arch),
                q(&p.version),
                q(&p.source),
                q(&p.source_version),
                q(&p.mirror),
                q(&p.suite),
                q(&p.sha256),
                p.size
            ));
        }
        out.push_str("]\n");
        out
    }

    /// Parse lock text. `file` names the file in diagnostics.
    ///
    /// Errors: every problem as a [`Diagnostic`] at its `FILE:LINE:COL` with a hint: TOML
    /// syntax, unknown or missing keys, a wrong type, an unsupported `version`, a SHA-256
    /// that is not 64 hex digits, a version that is not a Debian version (Policy §5.6.12),
    /// a package naming a repository the lock does not list, a package locked twice.
    pub fn parse(text: &str, file: &Path) -> Result<Lock, Diagnostics> {
        use crate::stack::toml_check::Checker;
        let mut checker = Checker::new(file, text);
        let fix = format!(
            "the lock is written by drover: undo the hand edit, or delete {} and run \
             `drover lock STACK` to resolve it again",
            file.display()
        );
        let raw: RawLock = match toml::from_str(text) {
            Ok(l) => l,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                checker.error(&span, e.message().trim().to_string(), fix);
                return Err(Diagnostics::from(checker.into_diagnostics()));
            }
        };
        if raw.version.get_ref() != &LOCK_VERSION {
            checker.error(
                &raw.version.span(),
                format!(
                    "lock format version {} is not supported (this drover reads version {LOCK_VERSION})",
                    raw.version.get_ref()
                ),
                "use the drover that wrote it, or delete the lock and run `drover lock STACK`",
            );
        }
        let repos: BTreeSet<(String, String)> = raw
            .repositories
            .iter()
            .map(|r| (r.mirror.clone(), r.suite.clone()))
            .collect();
        let mut seen = BTreeSet::new();
        let mut packages = Vec::with_capacity(raw.packages.len());
        for sp in raw.packages {
            let span = sp.span();
            let p = sp.into_inner();
            if p.sha256.len() != 64 || !p.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                checker.error(
                    &span,
                    format!(
                        "package {} {}: sha256 `{}` is not 64 hex digits",
                        p.name, p.version, p.sha256
                    ),
                    fix.clone(),
                );
            }
            if crate::debian::packages::parse_version(&p.version).is_none() {
                checker.error(
                    &span,
                    format!(
                        "package {}: `{}` is not a Debian version (Policy §5.6.12)",
                        p.name, p.version
                    ),
                    fix.clone(),
                );
            }
            if !repos.contains(&(p.mirror.clone(), p.suite.clone())) {
                checker.error(
                    &span,
                    format!(
                        "package {} comes from {} {}, which is not in the lock's repository list",
                        p.name, p.mirror, p.suite
                    ),
                    fix.clone(),
                );
            }
            if !seen.insert((p.name.clone(), p.arch.clone())) {
                checker.error(
                    &span,
                    format!("package {}:{} is locked twice", p.name, p.arch),
                    fix.clone(),
                );
            }
            packages.push(p);
        }
        if checker.has_errors() {
            return Err(Diagnostics::from(checker.into_diagnostics()));
        }
        Ok(Lock {
            version: *raw.version.get_ref(),
            stack: raw.stack,
            arch: raw.arch,
            variant: raw.variant,
            inputs: raw.inputs,
            include: raw.include,
            repositories: raw.repositories,
            packages,
        })
    }

    /// Read the lock at `path`; `Ok(None)` when there is none.
    ///
    /// Errors: an unreadable file or one that does not parse (see [`Lock::parse`]).
    pub fn read(path: &Path) -> Result<Option<Lock>, Diagnostics> {
        match std::fs::read_to_string(path) {
            Ok(text) => Lock::parse(&text, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Diagnostics::from(vec![Diagnostic::whole_file(
                path,
                format!("cannot read the lock: {e}"),
                "check the file's permissions",
            )])),
        }
    }

    /// Write the lock to `path` atomically (a temporary file in the same directory, synced,
    /// then renamed), so a kill leaves the previous lock or the new one, never half of one.
    ///
    /// Errors: the directory is not writable; the message names the path.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        crate::debian::client::write_atomic(path, self.to_toml().as_bytes())
    }
}

/// Fail early, naming `path`, when a lock could not be written there (read-only config).
///
/// Errors: the directory does not exist or a file cannot be created in it.
pub fn check_writable(path: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::NamedTempFile::new_in(dir).with_context(|| {
        format!(
            "cannot write the lock {}: its directory is not writable; make it writable, or \
             build with --locked from a committed lock",
            path.display()
        )
    })?;
    Ok(())
}

/// The lock file as read, with the span of each package entry (for diagnostics).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLock {
    version: toml::Spanned<u32>,
    stack: String,
    arch: String,
    variant: String,
    inputs: String,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default, rename = "repository")]
    repositories: Vec<LockedRepo>,
    #[serde(default, rename = "package")]
    packages: Vec<toml::Spanned<LockedPackage>>,
}

/// How many packages of `next` are locked at another version than in `prev` (same name and
/// architecture; packages added or removed do not count): what moving a lock to the
/// updates changes.
pub fn moved(prev: &Lock, next: &Lock) -> usize {
    let before = prev.versions();
    next.packages
        .iter()
        .filter(|p| {
            before
                .get(&(p.name.as_str(), p.arch.as_str()))
                .is_some_and(|v| *v != p.version)
        })
        .count()
}

#[cfg(test)]
mod tests;
