//! `drover export` (template targets) and `drover helm deploy|rollback|history`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::build::load_stack;
use super::output::{print_json, table};
use super::query::{open_store, pick_build};
use super::{CliError, CliResult};
use crate::export::{self, helm, ExportInput, Target};
use crate::paths::Paths;
use crate::store::builds::{BuildRecord, BuildStatus};
use crate::store::pushes::NewHelmRelease;
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

fn succeeded_build(store: &Store, stack: &str, id: Option<i64>) -> Result<BuildRecord, CliError> {
    let b = pick_build(store, stack, id, true)?;
    if b.status != BuildStatus::Succeeded || b.image_digest.is_none() {
        return Err(CliError::input(format!(
            "build {} of {stack} is {}, it has no image; `drover builds {stack}` lists the succeeded ones",
            b.id,
            b.status.as_str()
        )));
    }
    Ok(b)
}

/// The repository the image is pulled from, and a note when it is only a local name.
fn repository(
    store: &Store,
    stack: &str,
    b: &BuildRecord,
    repo: Option<&str>,
) -> Result<(String, Option<String>), CliError> {
    if let Some(r) = repo {
        let valid = !r.is_empty()
            && !r.contains('@')
            && !r.rsplit('/').next().unwrap_or("").contains(':')
            && r.split('/').all(|c| !c.is_empty());
        if !valid {
            return Err(CliError::input(format!(
                "--repo {r:?} must be HOST[:PORT]/REPO without tag or digest (drover adds @sha256:…)"
            )));
        }
        return Ok((r.to_string(), None));
    }
    if let Some(p) = store.latest_push_of_build(b.id)? {
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
            "note: build {} was never pushed, so the image is referenced as drover/{stack}@…; \
             push it (`drover push {stack} --to HOST/REPO:TAG`) or pass --repo HOST/REPO",
            b.id
        )),
    ))
}

fn render(
    paths: &Paths,
    store: &Store,
    stack_name: &str,
    target: Target,
    args: &ExportArgs,
) -> Result<
    (
        BuildRecord,
        String,
        Vec<export::RenderedFile>,
        Option<String>,
    ),
    CliError,
> {
    let stack = load_stack(paths, stack_name)?;
    let b = succeeded_build(store, stack_name, args.build)?;
    let (repo, note) = repository(store, stack_name, &b, args.repo.as_deref())?;
    let input = ExportInput {
        stack: &stack,
        build_id: b.id,
        digest: b.image_digest.clone().unwrap_or_default(),
        repository: repo,
        replicas: args.replicas,
        data_size: args.data_size.clone(),
    };
    let image = input.image_reference();
    let files = export::render(target, &input).map_err(|e| CliError::input(format!("{e:#}")))?;
    Ok((b, image, files, note))
}

fn marker(stack: &str, target: Target, build_id: i64, image: &str) -> serde_json::Value {
    serde_json::json!({
        "target": target.as_str(),
        "stack": stack,
        "build_id": build_id,
        "image": image,
    })
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
    let (b, image, files, note) = render(paths, &store, stack, target, args)?;
    export::write_dir(out, &files, &marker(stack, target, b.id, &image))
        .map_err(|e| CliError::failed(format!("cannot write the export: {e:#}")))?;
    store.audit(
        "export",
        Some(stack),
        &format!("build {} as {} to {}", b.id, target.as_str(), out.display()),
    )?;
    if let Some(n) = &note {
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
    let (b, image, files, note) = render(paths, &store, stack, Target::Helm, args)?;
    let d = driver(stack, h)?;
    let chart: PathBuf = paths.state.join("helm").join(stack).join("chart");
    export::write_dir(&chart, &files, &marker(stack, Target::Helm, b.id, &image))
        .map_err(|e| CliError::failed(format!("cannot write the chart: {e:#}")))?;
    if let Some(n) = &note {
        eprintln!("{n}");
    }
    let rev = d
        .upgrade(&chart)
        .map_err(|e| CliError::failed(format!("helm deploy of {stack} failed: {e:#}")))?;
    finish(
        &store,
        stack,
        "upgrade",
        &d,
        rev,
        Some(b.id),
        Some(image),
        json,
    )
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
    let rev = d
        .rollback(revision)
        .map_err(|e| CliError::failed(format!("helm rollback of {stack} failed: {e:#}")))?;
    finish(&store, stack, "rollback", &d, rev, None, None, json)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    store: &Store,
    stack: &str,
    action: &'static str,
    d: &helm::Driver,
    rev: helm::Revision,
    build_id: Option<i64>,
    image: Option<String>,
    json: bool,
) -> CliResult {
    store.record_helm_release(&NewHelmRelease {
        stack,
        build_id,
        action,
        kube_context: &d.target.kube_context,
        namespace: &d.target.namespace,
        release: &d.target.release,
        revision: i64::from(rev.revision),
        image: image.as_deref(),
    })?;
    store.audit(
        &format!("helm-{action}"),
        Some(stack),
        &format!(
            "release {} in {}/{} now at revision {}",
            d.target.release, d.target.kube_context, d.target.namespace, rev.revision
        ),
    )?;
    if json {
        print_json(&HelmJson {
            stack: stack.to_string(),
            action,
            helm: d.version.text.clone(),
            kube_context: d.target.kube_context.clone(),
            namespace: d.target.namespace.clone(),
            release: d.target.release.clone(),
            revision: rev.revision,
            status: rev.status,
            build_id,
            image,
        })?;
    } else {
        println!(
            "helm {action} of {stack}: release {} in {}/{} is at revision {} ({})",
            d.target.release, d.target.kube_context, d.target.namespace, rev.revision, rev.status
        );
        if let Some(i) = image {
            println!("image     {i}");
        }
    }
    Ok(())
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
