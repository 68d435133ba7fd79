//! Template targets: a stack's built image handed to platforms that already exist.
//!
//! [`render`] fills the templates kept under `assets/templates/` (embedded in the binary,
//! rendered with minijinja) from the stack and one of its builds; [`write_dir`] publishes the
//! files atomically. Targets:
//! - [`Target::Helm`]: a Helm chart (chart `apiVersion: v2`, Helm 3/4): `Chart.yaml`,
//!   `values.yaml`, `templates/{deployment,service,pvc}.yaml`;
//! - [`Target::Kubernetes`]: the same objects as plain manifests (Kubernetes `apps/v1`
//!   Deployment, `v1` Service and PersistentVolumeClaim). The chart's templates and these
//!   manifests come from the *same* template files: rendering the chart with its
//!   `values.yaml` gives exactly the kubernetes output;
//! - [`Target::Cloudformation`]: one AWS CloudFormation template (`template.yaml`);
//! - [`Target::Terraform`]: a Terraform module for DigitalOcean (`main.tf`,
//!   `cloud-init.yaml`).
//!
//! `[links]` carry over as each platform expresses them (see [`links`]). Secrets are only
//! ever referenced by name (a Kubernetes Secret's keys, a list of names
//! for the instance's boot script); drover never holds their values.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;
use serde_json::json;

use crate::stack::Stack;

pub mod helm;
pub mod links;

pub use links::ExportLink;

/// Where an export goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// A Helm chart (apiVersion v2).
    Helm,
    /// Plain Kubernetes manifests.
    Kubernetes,
    /// An AWS CloudFormation template.
    Cloudformation,
    /// A Terraform module for DigitalOcean.
    Terraform,
}

impl Target {
    /// The target's name as used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Helm => "helm",
            Target::Kubernetes => "kubernetes",
            Target::Cloudformation => "cloudformation",
            Target::Terraform => "terraform",
        }
    }
}

/// Everything an export is filled from besides the stack.
#[derive(Debug, Clone)]
pub struct ExportInput<'a> {
    /// The validated stack.
    pub stack: &'a Stack,
    /// The build whose image is exported.
    pub build_id: i64,
    /// `sha256:…` manifest digest of that build's image.
    pub digest: String,
    /// Image repository without tag or digest, e.g. `registry.example.com/team/hello`.
    pub repository: String,
    /// Instances to run (Kubernetes replicas, the Auto Scaling group's desired capacity).
    pub replicas: u32,
    /// Size of the data volume, a Kubernetes quantity (e.g. `1Gi`).
    pub data_size: String,
    /// The stack's `[links]`, resolved from the linked stacks' files (see [`links`]).
    pub links: Vec<ExportLink>,
}

impl ExportInput<'_> {
    /// `REPOSITORY@sha256:…`.
    pub fn image_reference(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// The repository an exported image is pulled from, without tag or digest.
///
/// `explicit` (`HOST[:PORT]/REPO`) wins; else the repository of the build's newest push
/// (table `pushes`); else the local name `drover/STACK`, returned with a note saying how to
/// get a pullable reference.
///
/// # Errors
/// `explicit` carries a tag or a digest or an empty path component; the store fails.
pub fn image_repository(
    store: &crate::store::Store,
    stack: &str,
    build_id: i64,
    explicit: Option<&str>,
) -> Result<(String, Option<String>)> {
    if let Some(r) = explicit {
        // Same grammar as a push destination (explicit registry host, distribution-spec
        // repository path), without the tag.
        let checked = if r.contains('@') || r.rsplit('/').next().unwrap_or("").contains(':') {
            Err(anyhow::anyhow!("it carries a tag or digest"))
        } else {
            crate::registry::Destination::parse(&format!("{r}:latest")).map(|_| ())
        };
        if let Err(e) = checked {
            bail!(
                "--repo {r:?} must be HOST[:PORT]/REPO without tag or digest (drover adds \
                 @sha256:…): {}",
                format!("{e:#}").replace(&format!("{r}:latest"), r)
            );
        }
        return Ok((r.to_string(), None));
    }
    if let Some(p) = store.latest_push_of_build(build_id)? {
        let repo = p
            .reference
            .rsplit_once(':')
            .map(|(r, _)| r.to_string())
            .unwrap_or(p.reference.clone());
        return Ok((repo, None));
    }
    Ok((
        format!("drover/{stack}"),
        Some(format!(
            "note: build {build_id} was never pushed, so the image is referenced as \
             drover/{stack}@…; push it (`drover push {stack} --to HOST/REPO:TAG`) or pass \
             --repo HOST/REPO"
        )),
    ))
}

/// The [`MARKER`] contents for an export of `input` as `target`.
pub fn marker(target: Target, input: &ExportInput<'_>) -> serde_json::Value {
    json!({
        "target": target.as_str(),
        "stack": input.stack.name,
        "build_id": input.build_id,
        "image": input.image_reference(),
    })
}

/// One rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Path relative to the output directory, `/`-separated.
    pub path: String,
    /// Contents (UTF-8 text).
    pub contents: String,
}

macro_rules! template {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/assets/templates/",
                $name
            )),
        )
    };
}

/// The embedded templates, by their path under `assets/templates/`.
const TEMPLATES: &[(&str, &str)] = &[
    template!("kubernetes/deployment.yaml"),
    template!("kubernetes/service.yaml"),
    template!("kubernetes/pvc.yaml"),
    template!("helm/Chart.yaml"),
    template!("helm/values.yaml"),
    template!("cloudformation/template.yaml"),
    template!("terraform/main.tf"),
    template!("cloud-init.yaml"),
];

/// How `v("a", "b")` in the shared Kubernetes templates renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueMode {
    /// The value itself, as a JSON (hence YAML) literal.
    Inline,
    /// A Helm reference: `{{ index .Values "a" "b" }}`, `| quote` for strings.
    HelmRef,
}

fn environment(values: serde_json::Value, mode: ValueMode) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .context("template syntax configuration")?,
    );
    for (name, src) in TEMPLATES {
        env.add_template(name, src)
            .with_context(|| format!("built-in template assets/templates/{name}"))?;
    }
    env.add_filter("hcl", hcl_string);
    env.add_function(
        "v",
        move |path: minijinja::value::Rest<String>| -> Result<Value, minijinja::Error> {
            let mut cur = &values;
            for p in path.iter() {
                cur = cur.get(p.as_str()).ok_or_else(|| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::UndefinedError,
                        format!("no value {:?}", path.join(".")),
                    )
                })?;
            }
            let text = match mode {
                ValueMode::Inline => serde_json::to_string(cur).map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
                })?,
                ValueMode::HelmRef => {
                    let keys: Vec<String> = path
                        .iter()
                        .map(|k| serde_json::to_string(k).unwrap_or_default())
                        .collect();
                    let quote = if cur.is_string() { " | quote" } else { "" };
                    format!("{{{{ index .Values {}{quote} }}}}", keys.join(" "))
                }
            };
            Ok(Value::from(text))
        },
    );
    Ok(env)
}

/// A string as an HCL quoted template literal: JSON escapes, plus `${` → `$${` and
/// `%{` → `%%{` so no interpolation happens (HCL native syntax spec, "Template Literals").
fn hcl_string(s: String) -> String {
    let json = serde_json::to_string(&s).unwrap_or_default();
    json.replace("${", "$${").replace("%{", "%%{")
}

fn secs_ceil(d: std::time::Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// The values tree (also the Helm chart's `values.yaml`).
fn values_tree(input: &ExportInput<'_>) -> serde_json::Value {
    let s = input.stack;
    let mut v = json!({
        "replicas": input.replicas,
        "image": { "reference": input.image_reference() },
        "env": s.env,
    });
    // Every free-form string the stack supplies goes through values, never into the
    // chart's template text, so Helm never interprets it.
    if s.port.is_some() {
        v["service"] = json!({ "type": "ClusterIP" });
        v["health"] = json!({ "path": s.health.path });
    }
    if let Some(d) = &s.data {
        v["persistence"] = json!({ "size": input.data_size, "mountPath": d.path });
    }
    if !s.secrets.is_empty() {
        v["secrets"] = json!({ "name": format!("{}-secrets", s.name) });
    }
    if !input.links.is_empty() {
        v["links"] = links::values(&input.links);
    }
    v
}

fn context(input: &ExportInput<'_>, values: &serde_json::Value) -> serde_json::Value {
    let s = input.stack;
    let period = secs_ceil(s.health.interval);
    let timeout = secs_ceil(s.health.timeout);
    // ALB target groups: interval 5..=300 s, timeout 2..=120 s and below the interval.
    let alb_interval = period.clamp(5, 300);
    let alb_timeout = timeout.clamp(2, 120).min(alb_interval - 1);
    let mut env_file = String::new();
    for (k, v) in &s.env {
        env_file.push_str(&format!("{k}={}\n", shell_quote(v)));
    }
    // The linked stacks' secrets are fetched at boot like the stack's own.
    let secret_names_file: String = s
        .secrets
        .iter()
        .chain(input.links.iter().flat_map(|l| l.secrets.iter()))
        .map(|n| format!("{n}\n"))
        .collect();
    let ctx = json!({
        "stack": { "name": s.name, "description": s.description },
        "build_id": input.build_id,
        "image": {
            "reference": input.image_reference(),
            "repository": input.repository,
            "digest": input.digest,
        },
        "chart_version": format!("0.1.{}", input.build_id),
        "port": s.port,
        "health": {
            "path": s.health.path,
            "period_s": period,
            "liveness_period_s": period.max(10),
            "timeout_s": timeout,
            "alb_interval_s": alb_interval,
            "alb_timeout_s": alb_timeout,
        },
        "env": s.env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
        "secrets": s.secrets,
        "links": links::context(&input.links),
        "host_pattern": links::HOST_PATTERN,
        "data": s.data.as_ref().map(|d| json!({"path": d.path})),
        "replicas": input.replicas,
        "values": values,
        "env_file": env_file,
        "secret_names_file": secret_names_file,
    });
    ctx
}

/// POSIX shell single-quoting for a value in `/etc/drover/env` (`KEY='value'`).
fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

fn render_one(env: &Environment<'_>, name: &str, ctx: &Value) -> Result<String> {
    let t = env.get_template(name)?;
    t.render(ctx)
        .with_context(|| format!("rendering template assets/templates/{name}"))
}

/// Render `target` for `input`: the files of the output directory, in a fixed order.
///
/// # Errors
/// The stack lacks what the target needs (CloudFormation needs a `port` for its load
/// balancer), `replicas` is 0, or a template fails to render (a bug: the message names the
/// template).
pub fn render(target: Target, input: &ExportInput<'_>) -> Result<Vec<RenderedFile>> {
    let s = input.stack;
    if input.replicas == 0 {
        bail!("replicas must be at least 1");
    }
    if s.data.is_some() && !valid_quantity(&input.data_size) {
        bail!(
            "data volume size {:?} is not a Kubernetes quantity; use e.g. 512Mi, 1Gi, 20Gi",
            input.data_size
        );
    }
    let values = values_tree(input);
    let json_ctx = context(input, &values);
    let ctx = Value::from(minijinja::value::Serde(&json_ctx));
    let mut files = Vec::new();
    let kube = |mode: ValueMode, prefix: &str, files: &mut Vec<RenderedFile>| -> Result<()> {
        let env = environment(values.clone(), mode)?;
        let mut names = vec!["deployment.yaml"];
        if s.port.is_some() {
            names.push("service.yaml");
        }
        if s.data.is_some() {
            names.push("pvc.yaml");
        }
        for n in names {
            files.push(RenderedFile {
                path: format!("{prefix}{n}"),
                contents: render_one(&env, &format!("kubernetes/{n}"), &ctx)?,
            });
        }
        Ok(())
    };
    match target {
        Target::Kubernetes => kube(ValueMode::Inline, "", &mut files)?,
        Target::Helm => {
            let env = environment(values.clone(), ValueMode::Inline)?;
            for n in ["Chart.yaml", "values.yaml"] {
                files.push(RenderedFile {
                    path: n.into(),
                    contents: render_one(&env, &format!("helm/{n}"), &ctx)?,
                });
            }
            kube(ValueMode::HelmRef, "templates/", &mut files)?;
        }
        Target::Cloudformation => {
            if s.port.is_none() {
                bail!(
                    "stack {} has no `port`; the cloudformation target puts the service behind \
                     a load balancer and needs one: add `port = N` to {}",
                    s.name,
                    s.file.display()
                );
            }
            let env = environment(values.clone(), ValueMode::Inline)?;
            let cloud_init = cloud_init(&env, input, &json_ctx, links::VmTarget::Cloudformation)?;
            let mut with_ci = json_ctx.clone();
            with_ci["cloud_init"] = json!(cloud_init);
            let merged = Value::from(minijinja::value::Serde(&with_ci));
            files.push(RenderedFile {
                path: "template.yaml".into(),
                contents: render_one(&env, "cloudformation/template.yaml", &merged)?,
            });
        }
        Target::Terraform => {
            let env = environment(values.clone(), ValueMode::Inline)?;
            files.push(RenderedFile {
                path: "main.tf".into(),
                contents: render_one(&env, "terraform/main.tf", &ctx)?,
            });
            files.push(RenderedFile {
                path: "cloud-init.yaml".into(),
                contents: cloud_init(&env, input, &json_ctx, links::VmTarget::Terraform)?,
            });
        }
    }
    Ok(files)
}

/// The cloud-init user data of a VM target. With links, the env file gets their
/// `ALIAS_HOST`/`ALIAS_PORT` from the target's parameters and the text is escaped for its
/// substitution (see [`links`]); without, it is the plain rendering.
fn cloud_init(
    env: &Environment<'_>,
    input: &ExportInput<'_>,
    json_ctx: &serde_json::Value,
    target: links::VmTarget,
) -> Result<String> {
    if input.links.is_empty() {
        return render_one(
            env,
            "cloud-init.yaml",
            &Value::from(minijinja::value::Serde(json_ctx)),
        );
    }
    let p = links::Placeholders::new(&json_ctx.to_string());
    let mut ctx = json_ctx.clone();
    let own = ctx["env_file"].as_str().unwrap_or_default().to_string();
    ctx["env_file"] = json!(own + &p.env_lines(&input.links, shell_quote));
    let text = render_one(
        env,
        "cloud-init.yaml",
        &Value::from(minijinja::value::Serde(&ctx)),
    )?;
    Ok(p.fill(&text, &input.links, target))
}

/// A Kubernetes resource quantity as used for storage: digits with an optional binary or
/// decimal suffix (`Ki Mi Gi Ti Pi Ei`, `k M G T P E`).
fn valid_quantity(q: &str) -> bool {
    let digits = q.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &q[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && [
            "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
        ]
        .contains(&suffix)
}

/// The marker file in every export directory: what was exported (`{target, stack, build_id,
/// image}`). Its presence lets a later export replace the directory.
pub const MARKER: &str = ".drover-export.json";

/// Write `files` into `dir` atomically: everything goes to a sibling temporary directory
/// (`.DIR.tmp-PID`), is fsynced, then renamed into place. An existing `dir` is replaced only
/// when it is empty or a previous drover export (it holds [`MARKER`]); the old one is
/// removed after the rename. `marker` is written as [`MARKER`].
///
/// # Errors
/// `dir` exists and is not a directory, or holds other files; a file path is absolute or
/// climbs out (`..`); I/O errors. On error nothing is left behind but a removed temp dir.
pub fn write_dir(dir: &Path, files: &[RenderedFile], marker: &serde_json::Value) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!("--out {} exists and is not a directory", dir.display());
        }
        let mut entries = fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .peekable();
        if entries.peek().is_some() && !dir.join(MARKER).is_file() {
            bail!(
                "--out {} already holds files that drover did not write; choose an empty or new \
                 directory (drover replaces only its own earlier exports)",
                dir.display()
            );
        }
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let base = dir
        .file_name()
        .with_context(|| format!("--out {} has no directory name", dir.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = parent.join(format!(".{base}.tmp-{}", std::process::id()));
    let old = parent.join(format!(".{base}.old-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let result = (|| -> Result<()> {
        fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut all: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|f| (f.path.clone(), f.contents.clone().into_bytes()))
            .collect();
        let mut m = serde_json::to_vec_pretty(marker)?;
        m.push(b'\n');
        all.push((MARKER.to_string(), m));
        for (rel, bytes) in &all {
            let relp = Path::new(rel);
            if relp.is_absolute()
                || relp
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                bail!("refusing to write {rel:?} outside the output directory");
            }
            let path = tmp.join(relp);
            if let Some(p) = path.parent() {
                fs::create_dir_all(p)?;
            }
            let mut f = fs::File::create(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        fs::rename(dir, &old).with_context(|| format!("cannot move {} aside", dir.display()))?;
    }
    if let Err(e) = fs::rename(&tmp, dir) {
        if old.exists() {
            let _ = fs::rename(&old, dir);
        }
        let _ = fs::remove_dir_all(&tmp);
        return Err(e).with_context(|| format!("cannot rename the export into {}", dir.display()));
    }
    if old.exists() {
        fs::remove_dir_all(&old).with_context(|| format!("cannot remove {}", old.display()))?;
    }
    if let Ok(d) = fs::File::open(&parent) {
        let _ = d.sync_all();
    }
    Ok(())
}
