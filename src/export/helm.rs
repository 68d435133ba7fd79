//! The Helm driver: install or upgrade a stack's exported chart with the real `helm` CLI,
//! and roll it back.
//!
//! Helm 3 and Helm 4 differ in the flag that undoes a failed upgrade: `--atomic` (v3) was
//! renamed `--rollback-on-failure` (v4). [`upgrade_args`] picks it from the major version
//! that `helm version --short` reports. Commands always carry `--wait`, an explicit
//! `--namespace` and `--kube-context`, so nothing depends on ambient defaults.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{render, write_dir, ExportInput, Target};
use crate::store::pushes::NewHelmRelease;
use crate::store::Store;

/// The installed Helm, as reported by `helm version --short` (e.g. `v3.14.2+gc309b6f`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HelmVersion {
    /// Major version: 3 or 4.
    pub major: u32,
    /// The version text, e.g. `v3.14.2+gc309b6f`.
    pub text: String,
}

/// Where to install: the cluster context, namespace and release name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmTarget {
    /// kubeconfig context name (`--kube-context`).
    pub kube_context: String,
    /// Namespace (`--namespace`); created when missing.
    pub namespace: String,
    /// Helm release name (DNS-1123 label, at most 53 characters).
    pub release: String,
}

/// Find `helm`: `$DROVER_HELM` when set, else the first `helm` on `PATH`.
///
/// # Errors
/// Helm is not installed (the message says how to install it).
pub fn find_helm() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("DROVER_HELM") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!(
            "DROVER_HELM is {} but that file does not exist",
            p.display()
        );
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("helm"))
            .find(|c| c.is_file())
    });
    found.context(
        "`helm` is not installed (not on PATH): install Helm 3 or 4 (the `helm` binary) or set \
         DROVER_HELM to its path; `drover export STACK --target helm --out DIR` writes the chart \
         without it",
    )
}

/// Parse `helm version --short` output (`v3.14.2+gc309b6f`, `v4.0.1`).
///
/// # Errors
/// The text is not a `vMAJOR.MINOR.PATCH` version, or the major version is not 3 or 4.
pub fn parse_version(out: &str) -> Result<HelmVersion> {
    let text = out.trim().to_string();
    let major = text
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok())
        .with_context(|| format!("cannot read Helm's version from {text:?}"))?;
    if !(3..=4).contains(&major) {
        bail!("Helm {text} is not supported: drover drives Helm 3 and 4");
    }
    Ok(HelmVersion { major, text })
}

/// Run `helm version --short` and parse it.
///
/// # Errors
/// helm cannot run or fails, or reports an unsupported version.
pub fn detect_version(helm: &Path) -> Result<HelmVersion> {
    let out = Command::new(helm)
        .args(["version", "--short"])
        .output()
        .with_context(|| format!("cannot run {} version --short", helm.display()))?;
    if !out.status.success() {
        bail!(
            "{} version --short failed: {}",
            helm.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_version(&String::from_utf8_lossy(&out.stdout))
}

/// The kube context to use: `explicit` when given, else the `current-context` of the first
/// kubeconfig file (`$KUBECONFIG`'s first entry, else `~/.kube/config`).
///
/// # Errors
/// No kubeconfig exists, or it names no current context; the message says how to set one.
pub fn kube_context(explicit: Option<&str>) -> Result<String> {
    if let Some(c) = explicit {
        if c.is_empty() {
            bail!("--kube-context is empty");
        }
        return Ok(c.to_string());
    }
    let file = match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(v) => std::env::split_paths(&v).next().unwrap_or_default(),
        None => match std::env::var_os("HOME") {
            Some(h) => Path::new(&h).join(".kube/config"),
            None => bail!("no Kubernetes cluster configured: HOME and KUBECONFIG are unset"),
        },
    };
    let text = std::fs::read_to_string(&file).map_err(|e| {
        anyhow::anyhow!(
            "no Kubernetes cluster configured: cannot read kubeconfig {} ({e}); point KUBECONFIG \
             at a kubeconfig file or pass --kube-context",
            file.display()
        )
    })?;
    // kubeconfig is YAML; `current-context` is a top-level scalar key.
    let ctx = text.lines().find_map(|l| {
        l.strip_prefix("current-context:")
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
    });
    match ctx {
        Some(c) if !c.is_empty() => Ok(c),
        _ => bail!(
            "no Kubernetes context selected in {}: run `kubectl config use-context NAME` or pass \
             --kube-context NAME",
            file.display()
        ),
    }
}

/// The `helm upgrade --install` command line (without the program name):
/// `upgrade --install RELEASE CHART --namespace NS --create-namespace --kube-context CTX
/// --wait --timeout 5m0s --atomic` on Helm 3, `… --rollback-on-failure` on Helm 4.
pub fn upgrade_args(version: &HelmVersion, target: &HelmTarget, chart: &Path) -> Vec<String> {
    let undo = if version.major >= 4 {
        "--rollback-on-failure"
    } else {
        "--atomic"
    };
    vec![
        "upgrade".into(),
        "--install".into(),
        target.release.clone(),
        chart.display().to_string(),
        "--namespace".into(),
        target.namespace.clone(),
        "--create-namespace".into(),
        "--kube-context".into(),
        target.kube_context.clone(),
        "--wait".into(),
        "--timeout".into(),
        "5m0s".into(),
        undo.into(),
    ]
}

/// The `helm rollback` command line: `rollback RELEASE [REVISION] --namespace NS
/// --kube-context CTX --wait --timeout 5m0s` (no revision: the previous one).
pub fn rollback_args(target: &HelmTarget, revision: Option<u32>) -> Vec<String> {
    let mut v = vec!["rollback".into(), target.release.clone()];
    if let Some(r) = revision {
        v.push(r.to_string());
    }
    v.extend([
        "--namespace".into(),
        target.namespace.clone(),
        "--kube-context".into(),
        target.kube_context.clone(),
        "--wait".into(),
        "--timeout".into(),
        "5m0s".into(),
    ]);
    v
}

/// The `helm history` command line: `history RELEASE --namespace NS --kube-context CTX
/// --output json`.
pub fn history_args(target: &HelmTarget) -> Vec<String> {
    vec![
        "history".into(),
        target.release.clone(),
        "--namespace".into(),
        target.namespace.clone(),
        "--kube-context".into(),
        target.kube_context.clone(),
        "--output".into(),
        "json".into(),
    ]
}

/// One entry of `helm history --output json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    /// Helm's revision number, from 1.
    pub revision: u32,
    /// Time of the revision as Helm prints it.
    #[serde(default)]
    pub updated: String,
    /// `deployed`, `superseded`, `failed`, …
    #[serde(default)]
    pub status: String,
    /// `NAME-VERSION` of the chart.
    #[serde(default)]
    pub chart: String,
    /// The chart's appVersion (drover puts the image digest there).
    #[serde(default)]
    pub app_version: String,
    /// Helm's description, e.g. `Upgrade complete`.
    #[serde(default)]
    pub description: String,
}

/// Run helm with `args`, returning stdout.
///
/// # Errors
/// helm cannot start, or exits non-zero: the message holds the command line and helm's
/// stderr.
pub fn run(helm: &Path, args: &[String]) -> Result<String> {
    let out = Command::new(helm)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", helm.display()))?;
    if !out.status.success() {
        bail!(
            "`helm {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Helm's release history (oldest first).
///
/// # Errors
/// helm fails, or its output is not the expected JSON.
pub fn history(helm: &Path, target: &HelmTarget) -> Result<Vec<Revision>> {
    let out = run(helm, &history_args(target))?;
    serde_json::from_str(&out).with_context(|| {
        format!(
            "cannot read `helm history {}` output as JSON",
            target.release
        )
    })
}

/// Everything needed to drive Helm: the binary, its version and the target, checked up
/// front so a missing piece is reported before anything runs.
#[derive(Debug, Clone)]
pub struct Driver {
    /// The helm binary.
    pub helm: PathBuf,
    /// Its version.
    pub version: HelmVersion,
    /// Cluster, namespace, release.
    pub target: HelmTarget,
}

impl Driver {
    /// Find helm and a kube context, and check the release name.
    ///
    /// # Errors
    /// What is missing: helm (see [`find_helm`]), a kube context (see [`kube_context`]); or
    /// an invalid release/namespace name.
    pub fn new(release: &str, namespace: &str, explicit_context: Option<&str>) -> Result<Driver> {
        for (what, v, max) in [("release", release, 53), ("namespace", namespace, 63)] {
            let ok = !v.is_empty()
                && v.len() <= max
                && v.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && v.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && v.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                bail!("{what} name {v:?} is invalid: lowercase letters, digits and `-`, at most {max} characters (DNS-1123 label)");
            }
        }
        let helm = find_helm()?;
        let version = detect_version(&helm)?;
        let kube_context = kube_context(explicit_context)?;
        Ok(Driver {
            helm,
            version,
            target: HelmTarget {
                kube_context,
                namespace: namespace.to_string(),
                release: release.to_string(),
            },
        })
    }

    /// `helm upgrade --install` the chart in `chart`, then read the new revision.
    ///
    /// # Errors
    /// helm fails (its stderr is in the message; the flag `--atomic`/`--rollback-on-failure`
    /// has already rolled the release back), or the history cannot be read.
    pub fn upgrade(&self, chart: &Path) -> Result<Revision> {
        run(
            &self.helm,
            &upgrade_args(&self.version, &self.target, chart),
        )?;
        self.current()
    }

    /// `helm rollback` to `revision` (default: the previous one), then read the new revision.
    ///
    /// # Errors
    /// helm fails, or the history cannot be read.
    pub fn rollback(&self, revision: Option<u32>) -> Result<Revision> {
        run(&self.helm, &rollback_args(&self.target, revision))?;
        self.current()
    }

    /// The newest revision in Helm's history.
    ///
    /// # Errors
    /// helm fails, or the release has no history.
    pub fn current(&self) -> Result<Revision> {
        history(&self.helm, &self.target)?
            .into_iter()
            .max_by_key(|r| r.revision)
            .with_context(|| format!("helm has no history for release {}", self.target.release))
    }
}

/// Export `input` as a Helm chart into `chart_dir` (atomically, see [`write_dir`]), run
/// `helm upgrade --install` on it, and record Helm's new revision in `store`
/// (`helm_releases`, plus an audit entry).
///
/// # Errors
/// Rendering or writing the chart fails, helm fails (the release was rolled back by
/// `--atomic`/`--rollback-on-failure`; nothing is recorded), or the store fails.
pub fn deploy(
    driver: &Driver,
    store: &Store,
    input: &ExportInput<'_>,
    chart_dir: &Path,
) -> Result<Revision> {
    let files = render(Target::Helm, input)?;
    write_dir(chart_dir, &files, &super::marker(Target::Helm, input))
        .context("cannot write the chart")?;
    let rev = driver.upgrade(chart_dir)?;
    let image = input.image_reference();
    record(
        store,
        driver,
        &input.stack.name,
        "upgrade",
        &rev,
        Some(input.build_id),
        Some(&image),
    )?;
    Ok(rev)
}

/// `helm rollback` the stack's release to `revision` (default: the previous one) and record
/// the resulting revision in `store`.
///
/// # Errors
/// helm fails (nothing is recorded), or the store fails.
pub fn rollback(
    driver: &Driver,
    store: &Store,
    stack: &str,
    revision: Option<u32>,
) -> Result<Revision> {
    let rev = driver.rollback(revision)?;
    record(store, driver, stack, "rollback", &rev, None, None)?;
    Ok(rev)
}

fn record(
    store: &Store,
    d: &Driver,
    stack: &str,
    action: &str,
    rev: &Revision,
    build_id: Option<i64>,
    image: Option<&str>,
) -> Result<()> {
    store.record_helm_release(&NewHelmRelease {
        stack,
        build_id,
        action,
        kube_context: &d.target.kube_context,
        namespace: &d.target.namespace,
        release: &d.target.release,
        revision: i64::from(rev.revision),
        image,
    })?;
    store.audit(
        &format!("helm-{action}"),
        Some(stack),
        &format!(
            "release {} in {}/{} now at revision {}",
            d.target.release, d.target.kube_context, d.target.namespace, rev.revision
        ),
    )?;
    Ok(())
}
