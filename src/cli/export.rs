//! `drover export` (template targets) and `drover helm deploy|rollback|history`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde::Serialize;

use super::build::load_stack;
use super::output::{print_json, table};
use super::query::{open_store, pick_build};
use super::{CliError, CliResult};
use crate::build::select::Need;
use crate::export::{self, helm, ExportInput, Target};
use crate::paths::Paths;
use crate::store::builds::BuildRecord;
use crate::store::Store;

/// Options shared by `export` and `helm deploy`.
#[derive(Debug, Clone)]
pub struct ExportArgs {
    /// Build id (default: newest succeeded).
    pub build: Option<i64>,
    /// `HOST[:PORT]/REPO` to pull from (default: where the build was last pushed).
    pub repo: Option<String>,
    /// Replicas.
    pub replicas: u32,
    /// Data volume size (Kubernetes quantity).
    pub data_size: String,
}

/// The `export --json` shape.
#[derive(Debug, Serialize)]
struct ExportJson {
    stack: String,
    build_id: i64,
    target: Target,
    out: String,
    image: String,
    files: Vec<String>,
}

/// A stack, its build and the image repository, checked; the input of every export.
struct Prepared {
    stack: crate::stack::Stack,
    build: BuildRecord,
    repository: String,
    note: Option<String>,
    replicas: u32,
    data_size: String,
    links: Vec<export::ExportLink>,
}

impl Prepared {
    fn input(&self) -> ExportInput<'_> {
        ExportInput {
            stack: &self.stack,
            build_id: self.build.id,
            digest: self.build.image_digest.clone().unwrap_or_default(),
            repository: self.repository.clone(),
            replicas: self.replicas,
            data_size: self.data_size.clone(),
            links: self.links.clone(),
        }
    }
}

/// Load and check everything an export needs; bad input is exit 2.
fn prepare(
    paths: &Paths,
    store: &Store,
    stack_name: &str,
    target: Target,
    args: &ExportArgs,
) -> Result<(Prepared, Vec<export::RenderedFile>), CliError> {
    let stack = load_stack(paths, stack_name)?;
    let build = pick_build(store, stack_name, args.build, Need::Image)?;
    let (repository, note) =
        export::image_repository(store, stack_name, build.id, args.repo.as_deref())
            .map_err(|e| CliError::input(format!("{e:#}")))?;
    let mut links = Vec::new();
    for (alias, linked) in &stack.links {
        let linked_stack = load_stack(paths, linked)?;
        links.push(
            export::ExportLink::new(alias, &linked_stack)
                .map_err(|e| CliError::input(format!("{e:#}")))?,
        );
    }
    let p = Prepared {
        stack,
        build,
        repository,
        note,
        replicas: args.replicas,
        data_size: args.data_size.clone(),
        links,
    };
    let files =
        export::render(target, &p.input()).map_err(|e| CliError::input(format!("{e:#}")))?;
    Ok((p, files))
}

/// `drover export STACK --target T --out DIR`.
pub fn export(
    paths: &Paths,
    stack: &str,
    target: Target,
    out: &Path,
    args: &ExportArgs,
    json: bool,
) -> CliResult {
    let store = open_store(paths)?;
    let (p, files) = prepare(paths, &store, stack, target, args)?;
    let input = p.input();
    let image = input.image_reference();
    let b = &p.build;
    export::write_dir(out, &files, &export::marker(target, &input))
        .map_err(|e| CliError::failed(format!("cannot write the export: {e:#}")))?;
    store.audit(
        "export",
        Some(stack),
        &format!("build {} as {} to {}", b.id, target.as_str(), out.display()),
    )?;
    if let Some(n) = &p.note {
        eprintln!("{n}");
    }
    if json {
        print_json(&ExportJson {
            stack: stack.to_string(),
            build_id: b.id,
            target,
            out: out.display().to_string(),
            image,
            files: files.iter().map(|f| f.path.clone()).collect(),
        })?;
    } else {
        println!(
            "exported build {} of {stack} as {} to {}",
            b.id,
            target.as_str(),
            out.display()
        );
        println!("image     {image}");
        for f in &files {
            println!("  {}", f.path);
        }
        println!("next      {}", next_step(target, out));
    }
    Ok(())
}

fn next_step(target: Target, out: &Path) -> String {
    let d = out.display();
    match target {
        Target::Helm => format!("helm lint {d}   |   drover helm deploy STACK"),
        Target::Kubernetes => format!("kubernetes-validate --strict {d}/*.yaml   |   kubectl apply -f {d}"),
        Target::Cloudformation => format!("cfn-lint {d}/template.yaml   |   aws cloudformation deploy --template-file {d}/template.yaml ..."),
        Target::Terraform => format!("terraform -chdir={d} init && terraform -chdir={d} plan -var image_id=SNAPSHOT"),
    }
}

/// Where the Helm driver and the chart live.
#[derive(Debug, Clone)]
pub struct HelmArgs {
    /// Release name (default: the stack name).
    pub release: Option<String>,
    /// Namespace.
    pub namespace: String,
    /// kubeconfig context (default: the current one).
    pub kube_context: Option<String>,
}

/// The `helm deploy|rollback --json` shape.
#[derive(Debug, Serialize)]
struct HelmJson {
    stack: String,
    action: &'static str,
    helm: String,
    kube_context: String,
    namespace: String,
    release: String,
    revision: u32,
    status: String,
    build_id: Option<i64>,
    image: Option<String>,
}

fn driver(stack: &str, h: &HelmArgs) -> Result<helm::Driver, CliError> {
    let release = h.release.clone().unwrap_or_else(|| stack.to_string());
    helm::Driver::new(&release, &h.namespace, h.kube_context.as_deref())
        .map_err(|e| CliError::failed(format!("cannot deploy with Helm: {e:#}")))
}

/// `drover helm deploy STACK`: export the chart to `STATE/helm/STACK/chart`, then
/// `helm upgrade --install … --wait --atomic|--rollback-on-failure`.
pub fn helm_deploy(
    paths: &Paths,
    stack: &str,
    args: &ExportArgs,
    h: &HelmArgs,
    json: bool,
) -> CliResult {
    let store = open_store(paths)?;
    let (p, _files) = prepare(paths, &store, stack, Target::Helm, args)?;
    let d = driver(stack, h)?;
    let chart: PathBuf = paths.state.join("helm").join(stack).join("chart");
    if let Some(n) = &p.note {
        eprintln!("{n}");
    }
    let input = p.input();
    let rev = helm::deploy(&d, &store, &input, &chart)
        .map_err(|e| CliError::failed(format!("helm deploy of {stack} failed: {e:#}")))?;
    let out = HelmOut {
        stack,
        action: "upgrade",
        d: &d,
        rev,
        build_id: Some(p.build.id),
        image: Some(input.image_reference()),
    };
    out.print(json)
}

/// `drover helm rollback STACK [--revision N]`.
pub fn helm_rollback(
    paths: &Paths,
    stack: &str,
    revision: Option<u32>,
    h: &HelmArgs,
    json: bool,
) -> CliResult {
    let store = open_store(paths)?;
    load_stack(paths, stack)?;
    let d = driver(stack, h)?;
    let rev = helm::rollback(&d, &store, stack, revision)
        .map_err(|e| CliError::failed(format!("helm rollback of {stack} failed: {e:#}")))?;
    let out = HelmOut {
        stack,
        action: "rollback",
        d: &d,
        rev,
        build_id: None,
        image: None,
    };
    out.print(json)
}

/// What `helm deploy|rollback` prints.
struct HelmOut<'a> {
    stack: &'a str,
    action: &'static str,
    d: &'a helm::Driver,
    rev: helm::Revision,
    build_id: Option<i64>,
    image: Option<String>,
}

impl HelmOut<'_> {
    fn print(self, json: bool) -> CliResult {
        let t = &self.d.target;
        if json {
            return print_json(&HelmJson {
                stack: self.stack.to_string(),
                action: self.action,
                helm: self.d.version.text.clone(),
                kube_context: t.kube_context.clone(),
                namespace: t.namespace.clone(),
                release: t.release.clone(),
                revision: self.rev.revision,
                status: self.rev.status,
                build_id: self.build_id,
                image: self.image,
            });
        }
        println!(
            "helm {} of {}: release {} in {}/{} is at revision {} ({})",
            self.action,
            self.stack,
            t.release,
            t.kube_context,
            t.namespace,
            self.rev.revision,
            self.rev.status
        );
        if let Some(i) = self.image {
            println!("image     {i}");
        }
        Ok(())
    }
}

/// `drover helm history STACK`: the Helm actions drover ran, with Helm's revisions.
pub fn helm_history(paths: &Paths, stack: &str, json: bool) -> CliResult {
    let store = open_store(paths)?;
    let rows = store.helm_releases(stack)?;
    if json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!("{stack} was never deployed with Helm; run `drover helm deploy {stack}`");
        return Ok(());
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.revision.to_string(),
                r.action.clone(),
                r.build_id
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "-".into()),
                format!("{}/{}/{}", r.kube_context, r.namespace, r.release),
                r.at.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "REVISION",
                "ACTION",
                "BUILD",
                "CONTEXT/NAMESPACE/RELEASE",
                "AT"
            ],
            &body
        )
    );
    Ok(())
}

/// Options of `export` and `helm deploy`.
#[derive(Debug, clap::Args)]
pub struct ExportOpts {
    /// Build id (default: the newest succeeded build).
    #[arg(long)]
    pub build: Option<i64>,
    /// Image repository `HOST[:PORT]/REPO` (default: where the build was last pushed).
    #[arg(long, value_name = "HOST[:PORT]/REPO")]
    pub repo: Option<String>,
    /// Number of instances.
    #[arg(long, default_value_t = 2)]
    pub replicas: u32,
    /// Size of the data volume (Kubernetes quantity).
    #[arg(long, default_value = "1Gi")]
    pub data_size: String,
}

/// Where Helm installs.
#[derive(Debug, clap::Args)]
pub struct HelmOpts {
    /// Release name (default: the stack name).
    #[arg(long)]
    pub release: Option<String>,
    /// Kubernetes namespace.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// kubeconfig context (default: the current context).
    #[arg(long)]
    pub kube_context: Option<String>,
}

/// `drover helm ...`.
#[derive(Debug, Subcommand)]
pub enum HelmAction {
    /// Export the chart and `helm upgrade --install` it (waits; undone on failure).
    Deploy {
        /// Stack name.
        stack: String,
        #[command(flatten)]
        opts: ExportOpts,
        #[command(flatten)]
        helm: HelmOpts,
    },
    /// `helm rollback` the stack's release.
    Rollback {
        /// Stack name.
        stack: String,
        /// Helm revision to return to (default: the previous one).
        #[arg(long)]
        revision: Option<u32>,
        #[command(flatten)]
        helm: HelmOpts,
    },
    /// Helm actions drover ran on the stack, with Helm's revisions.
    History {
        /// Stack name.
        stack: String,
    },
}

impl ExportOpts {
    pub(super) fn args(self) -> ExportArgs {
        ExportArgs {
            build: self.build,
            repo: self.repo,
            replicas: self.replicas,
            data_size: self.data_size,
        }
    }
}

impl HelmOpts {
    pub(super) fn args(self) -> HelmArgs {
        HelmArgs {
            release: self.release,
            namespace: self.namespace,
            kube_context: self.kube_context,
        }
    }
}

/// Dispatch `drover helm ...`.
pub fn helm(paths: &Paths, action: HelmAction, json: bool) -> CliResult {
    match action {
        HelmAction::Deploy { stack, opts, helm } => {
            helm_deploy(paths, &stack, &opts.args(), &helm.args(), json)
        }
        HelmAction::Rollback {
            stack,
            revision,
            helm,
        } => helm_rollback(paths, &stack, revision, &helm.args(), json),
        HelmAction::History { stack } => helm_history(paths, &stack, json),
    }
}
