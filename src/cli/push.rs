//! `drover push STACK [--build ID] --to HOST[:PORT]/REPO:TAG [--insecure]`.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::output::print_json;
use super::query::{open_store, pick_build};
use super::{interactive, CliError, CliResult};
use crate::build::select::Need;
use crate::paths::Paths;
use crate::registry::{self, Destination, PushEvent, PushOptions};

/// The `push --json` shape.
#[derive(Debug, Serialize)]
struct PushJson {
    push_id: i64,
    build_id: i64,
    stack: String,
    #[serde(flatten)]
    report: registry::PushReport,
    pushed_at: String,
}

/// Push a build's image (default: the newest succeeded build) to `to`.
pub fn push(
    paths: &Paths,
    stack: &str,
    build: Option<i64>,
    to: &str,
    insecure: bool,
    json: bool,
) -> CliResult {
    let dest = Destination::parse(to).map_err(|e| CliError::input(format!("--to: {e:#}")))?;
    let store = open_store(paths)?;
    let b = pick_build(&store, stack, build, Need::ImageArchive)?;
    // pick_build checked that the archive is on disk.
    let path = b.image_path.clone().unwrap_or_default();
    let bar = interactive().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} push {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(dest.reference());
        bar
    });
    let mut on_event = |e: PushEvent| match e {
        PushEvent::Started { total } => {
            if let Some(b) = &bar {
                b.set_length(total);
            } else if !json {
                eprintln!("pushing {} bytes of blobs to {}", total, dest.reference());
            }
        }
        PushEvent::BlobExists { digest, size } => {
            if let Some(b) = &bar {
                b.inc(size);
                b.set_message("skipped an existing blob");
            } else if !json {
                eprintln!("  exists  {digest}");
            }
        }
        PushEvent::Sent { bytes } => {
            if let Some(b) = &bar {
                b.inc(bytes);
            }
        }
        PushEvent::ManifestPushed => {
            if let Some(b) = &bar {
                b.set_message("manifest");
            }
        }
    };
    let result = registry::push(
        Path::new(&path),
        &dest,
        &PushOptions { insecure },
        &mut on_event,
    );
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = result.map_err(|e| CliError::failed(format!("push failed: {e:#}")))?;
    if report.digest != b.image_digest.clone().unwrap_or_default() {
        return Err(CliError::failed(format!(
            "build {} records image {} but its archive holds {}; the archive was changed, rebuild",
            b.id,
            b.image_digest.unwrap_or_default(),
            report.digest
        )));
    }
    let rec = store.record_push(
        b.id,
        stack,
        &report.reference,
        &report.registry,
        &report.digest,
    )?;
    store.audit(
        "push",
        Some(stack),
        &format!("build {} -> {} ({})", b.id, report.reference, report.digest),
    )?;
    if json {
        print_json(&PushJson {
            push_id: rec.id,
            build_id: b.id,
            stack: stack.to_string(),
            report,
            pushed_at: rec.pushed_at,
        })?;
    } else {
        println!("pushed build {} of {stack} to {}", b.id, report.reference);
        println!("digest    {}", report.digest);
        println!("pull      {}", report.reference_by_digest);
        println!(
            "blobs     {} uploaded ({} bytes), {} already there",
            report.blobs_uploaded, report.bytes_uploaded, report.blobs_skipped
        );
    }
    Ok(())
}
