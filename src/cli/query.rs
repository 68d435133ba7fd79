//! Read-mostly commands: `stacks`, `validate`, `builds`, `logs`, `manifest`, `prune`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

use super::build::load_stack;
use super::output::{age, print_json, short_digest, table};
use super::{CliError, CliResult, Format};
use crate::build::select::Need;
use crate::paths::Paths;
use crate::stack::{self, Diagnostic, Diagnostics};
use crate::store::builds::BuildRecord;
use crate::store::Store;
use crate::text::sanitize_for_terminal;

pub(super) fn open_store(paths: &Paths) -> Result<Store, CliError> {
    Ok(crate::build::select::open_store(paths)?)
}

/// One entry of `stacks --json`.
#[derive(Debug, Serialize)]
struct StackRow {
    name: String,
    description: String,
    file: String,
    suite: String,
    packages: usize,
    port: Option<u16>,
    last_build: Option<BuildRecord>,
}

pub fn stacks(paths: &Paths, json: bool) -> CliResult {
    let (stacks, diags) = stack::load_all(&paths.config);
    let store = open_store(paths)?;
    let mut rows = Vec::new();
    for s in &stacks {
        rows.push(StackRow {
            name: s.name.clone(),
            description: s.description.clone(),
            file: s.file.display().to_string(),
            suite: s.base.suite.clone(),
            packages: s.packages.len(),
            port: s.port,
            last_build: store.latest_build(&s.name)?,
        });
    }
    if json {
        print_json(&rows)?;
    } else if rows.is_empty() && diags.is_empty() {
        println!(
            "no stacks in {}; add one as stacks/NAME.toml (see config/stacks/hello.toml)",
            paths.stacks_dir().display()
        );
    } else {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let (status, when, image) = match &r.last_build {
                    None => ("never built".to_string(), String::new(), String::new()),
                    Some(b) => (
                        format!("#{} {}", b.id, b.status.as_str()),
                        age(b.finished_at.as_deref().unwrap_or(&b.started_at)),
                        b.image_digest
                            .as_deref()
                            .map(short_digest)
                            .unwrap_or_default(),
                    ),
                };
                vec![
                    r.name.clone(),
                    r.suite.clone(),
                    status,
                    when,
                    image,
                    r.description.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "STACK",
                    "SUITE",
                    "LAST BUILD",
                    "AGE",
                    "IMAGE",
                    "DESCRIPTION"
                ],
                &cells
            )
        );
    }
    report_diagnostics(&diags)
}

fn report_diagnostics(diags: &[Diagnostic]) -> CliResult {
    if diags.is_empty() {
        return Ok(());
    }
    Err(CliError::input(Diagnostics::from(diags).to_string()))
}

/// Result of `validate --json`.
#[derive(Debug, Serialize)]
struct ValidateRow {
    file: String,
    ok: bool,
    errors: Vec<DiagJson>,
    /// Legitimate but risky values: they do not make `ok` false.
    warnings: Vec<DiagJson>,
}

#[derive(Debug, Serialize)]
struct DiagJson {
    line: usize,
    col: usize,
    message: String,
    hint: Option<String>,
}

pub fn validate(paths: &Paths, files: &[PathBuf], json: bool) -> CliResult {
    let mut targets: Vec<PathBuf> = files.to_vec();
    let mut config_diags = Vec::new();
    let mut rows = Vec::new();
    if targets.is_empty() {
        // drover.toml first, as a row of its own (when there is one).
        let file = paths.config_file();
        if let Err(d) = crate::config::lint(&file) {
            config_diags = d;
        }
        if file.exists() {
            rows.push(validate_row(&file, &config_diags, &[]));
            if config_diags.is_empty() && !json {
                println!("ok  {}", file.display());
            }
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(paths.stacks_dir())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        if found.is_empty() {
            return Err(CliError::input(format!(
                "no stack files in {}; pass files to check or set --config",
                paths.stacks_dir().display()
            )));
        }
        targets = found;
    }
    let mut all: Vec<Diagnostic> = config_diags;
    for f in &targets {
        let (res, warnings) = stack::lint_file(f, &paths.config);
        let errors = res.as_ref().err().cloned().unwrap_or_default();
        rows.push(validate_row(f, &errors, &warnings));
        if !json {
            if errors.is_empty() {
                let n = warnings.len();
                match n {
                    0 => println!("ok  {}", f.display()),
                    1 => println!("ok  {} (1 warning)", f.display()),
                    _ => println!("ok  {} ({n} warnings)", f.display()),
                }
            }
            // Warnings go to stderr with the errors, so `ok` lines stay parseable.
            for w in &warnings {
                eprintln!("{w}");
            }
        }
        all.extend(errors);
    }
    if json {
        print_json(&rows)?;
        return if all.is_empty() {
            Ok(())
        } else {
            Err(CliError::input(String::new()))
        };
    }
    report_diagnostics(&all)
}

fn validate_row(
    file: &std::path::Path,
    errors: &[Diagnostic],
    warnings: &[Diagnostic],
) -> ValidateRow {
    let json = |ds: &[Diagnostic]| {
        ds.iter()
            .map(|d| DiagJson {
                line: d.line,
                col: d.col,
                message: d.message.clone(),
                hint: d.hint.clone(),
            })
            .collect()
    };
    ValidateRow {
        file: file.display().to_string(),
        ok: errors.is_empty(),
        errors: json(errors),
        warnings: json(warnings),
    }
}

pub(super) fn known_stack(paths: &Paths, store: &Store, name: &str) -> Result<(), CliError> {
    // A stack whose file was removed still has history; only a name with neither is unknown.
    if !store.builds(name)?.is_empty() {
        return Ok(());
    }
    load_stack(paths, name).map(|_| ())
}

pub fn builds(paths: &Paths, name: &str, json: bool) -> CliResult {
    let store = open_store(paths)?;
    known_stack(paths, &store, name)?;
    let rows = store.builds(name)?;
    let live = crate::deploy::plan::Current::from_releases(&store.releases(name)?);
    let live_of = |id: i64| live.filter(|c| c.build_id == id).map(|c| c.release);
    let applied = store.applied_updates(name)?;
    if json {
        /// A `builds --json` row: the build, its live release when it runs now, and how
        /// many packages it updated when it applied updates (its lock moved).
        #[derive(Serialize)]
        struct Row<'b> {
            #[serde(flatten)]
            build: &'b BuildRecord,
            live_release: Option<i64>,
            applied_updates: Option<usize>,
        }
        let out: Vec<Row<'_>> = rows
            .iter()
            .map(|b| Row {
                build: b,
                live_release: live_of(b.id),
                applied_updates: applied.get(&b.id).copied(),
            })
            .collect();
        return print_json(&out);
    }
    if rows.is_empty() {
        println!("{name} has no builds yet; run `drover build {name}`");
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|b| {
            let dur = match (
                &b.finished_at,
                chrono::DateTime::parse_from_rfc3339(&b.started_at),
            ) {
                (Some(f), Ok(s)) => chrono::DateTime::parse_from_rfc3339(f)
                    .map(|f| format!("{:.1}s", (f - s).num_milliseconds() as f64 / 1000.0))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            vec![
                b.id.to_string(),
                b.status.as_str().to_string(),
                age(&b.started_at),
                dur,
                match b.base_cached {
                    Some(true) => "cached".into(),
                    Some(false) => "built".into(),
                    None => String::new(),
                },
                b.image_digest
                    .as_deref()
                    .map(short_digest)
                    .unwrap_or_default(),
                live_of(b.id).map(|r| format!("#{r}")).unwrap_or_default(),
                applied
                    .get(&b.id)
                    .map(|n| format!("applied {n}"))
                    .unwrap_or_default(),
                b.failed_step
                    .as_ref()
                    .map(|s| format!("{s}: {}", first_line(b.error.as_deref().unwrap_or(""))))
                    .or_else(|| b.error.as_deref().map(first_line))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["BUILD", "STATUS", "AGE", "TIME", "BASE", "IMAGE", "LIVE", "UPDATES", "ERROR"],
            &cells
        )
    );
    Ok(())
}

fn first_line(s: &str) -> String {
    let l = s.lines().next().unwrap_or("");
    if l.chars().count() > 80 {
        format!("{}…", l.chars().take(79).collect::<String>())
    } else {
        l.to_string()
    }
}

/// The build a command acts on (see [`crate::build::select::pick_build`]).
pub(super) fn pick_build(
    store: &Store,
    name: &str,
    id: Option<i64>,
    need: Need,
) -> Result<BuildRecord, CliError> {
    Ok(crate::build::select::pick_build(store, name, id, need)?)
}

pub fn logs(paths: &Paths, name: &str, id: Option<i64>, json: bool) -> CliResult {
    let store = open_store(paths)?;
    known_stack(paths, &store, name)?;
    let b = pick_build(&store, name, id, Need::Any)?;
    let mut from = 0;
    let mut all = Vec::new();
    loop {
        let chunk = store.logs(b.id, from, 10_000)?;
        if chunk.is_empty() {
            break;
        }
        from = chunk.last().map(|l| l.seq + 1).unwrap_or(from);
        if json {
            all.extend(chunk);
        } else {
            let mut out = String::new();
            for l in chunk {
                let ts = l.ts.get(11..23).unwrap_or(&l.ts);
                out.push_str(&format!(
                    "{ts} {:<6} {}\n",
                    l.stream,
                    sanitize_for_terminal(&l.line)
                ));
            }
            print!("{out}");
        }
    }
    if json {
        print_json(&all)?;
    }
    Ok(())
}

/// What `drover manifest` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestView {
    /// The Debian packages (the default).
    Debian,
    /// Counts per suite and origin, and language packages per ecosystem (`--summary`).
    Summary,
    /// The language packages (`--lang`).
    Lang,
    /// The VM image's packages: the image's and the boot layer's (`--vm`).
    Vm,
}

/// One package of a VM image in `manifest --vm`.
#[derive(Debug, Serialize)]
struct VmPackage {
    name: String,
    version: String,
    /// `image` (in the OCI image too) or `boot` (added by the boot layer).
    layer: &'static str,
}

pub fn manifest(
    paths: &Paths,
    name: &str,
    id: Option<i64>,
    format: Format,
    view: ManifestView,
) -> CliResult {
    let store = open_store(paths)?;
    known_stack(paths, &store, name)?;
    let b = pick_build(&store, name, id, Need::Manifest)?;
    let comps = store.manifest(b.id)?;
    let lang = store.language_packages(b.id)?;
    if view == ManifestView::Vm {
        let Some(vm) = crate::build::vm::VmImage::of_build(&store, b.id)? else {
            return Err(CliError::input(format!(
                "build {} of {name} has no VM image; make one with `drover build {name} --vm`",
                b.id
            )));
        };
        let boot: Vec<(String, String)> = vm
            .boot_packages
            .iter()
            .filter_map(|p| p.split_once(' '))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        // A boot package that replaced an image package (a newer version apt needed)
        // is listed once, as boot.
        let mut rows: Vec<VmPackage> = comps
            .iter()
            .filter(|c| !boot.iter().any(|(n, _)| *n == c.name))
            .map(|c| VmPackage {
                name: c.name.clone(),
                version: c.version.clone(),
                layer: "image",
            })
            .chain(boot.iter().map(|(n, v)| VmPackage {
                name: n.clone(),
                version: v.clone(),
                layer: "boot",
            }))
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        if format == Format::Json {
            return print_json(&rows);
        }
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|r| vec![r.name.clone(), r.version.clone(), r.layer.to_string()])
            .collect();
        print!("{}", table(&["PACKAGE", "VERSION", "LAYER"], &cells));
        println!(
            "{} packages in the VM image of build {} ({name}): {} from the boot layer, \
             kernel {}",
            rows.len(),
            b.id,
            boot.len(),
            vm.kernel
        );
        return Ok(());
    }
    if view == ManifestView::Lang {
        if format == Format::Json {
            return print_json(&lang);
        }
        let cells: Vec<Vec<String>> = lang
            .iter()
            .map(|p| {
                vec![
                    p.ecosystem.clone(),
                    p.name.clone(),
                    p.version.clone(),
                    p.location.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["ECOSYSTEM", "PACKAGE", "VERSION", "LOCATION"], &cells)
        );
        println!(
            "{} language packages in build {} ({})",
            lang.len(),
            b.id,
            name
        );
        return Ok(());
    }
    let mut by_ecosystem: BTreeMap<String, usize> = BTreeMap::new();
    for p in &lang {
        *by_ecosystem.entry(p.ecosystem.clone()).or_default() += 1;
    }
    if view == ManifestView::Summary {
        let mut by_suite: BTreeMap<String, usize> = BTreeMap::new();
        let sources: BTreeSet<&str> = comps.iter().map(|c| c.source.as_str()).collect();
        let kib: i64 = comps.iter().filter_map(|c| c.installed_size_kib).sum();
        for c in &comps {
            let k = if c.suite.is_empty() {
                c.origin.clone()
            } else {
                format!("{} ({})", c.suite, c.origin)
            };
            *by_suite.entry(k).or_default() += 1;
        }
        if format == Format::Json {
            return print_json(&serde_json::json!({
                "build_id": b.id,
                "packages": comps.len(),
                "source_packages": sources.len(),
                "installed_size_kib": kib,
                "by_origin": by_suite,
                "language_packages": by_ecosystem,
            }));
        }
        println!(
            "build {}: {} packages from {} source packages, {:.1} MiB installed",
            b.id,
            comps.len(),
            sources.len(),
            kib as f64 / 1024.0
        );
        for (k, n) in by_suite {
            println!("  {n:>5}  {k}");
        }
        for (k, n) in by_ecosystem {
            println!("  {n:>5}  {k} language packages (drover manifest {name} --lang)");
        }
        return Ok(());
    }
    if format == Format::Json {
        return print_json(&comps);
    }
    let cells: Vec<Vec<String>> = comps
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.version.clone(),
                c.arch.clone(),
                if c.source_version == c.version {
                    c.source.clone()
                } else {
                    format!("{} ({})", c.source, c.source_version)
                },
                if c.suite.is_empty() {
                    c.origin.clone()
                } else {
                    c.suite.clone()
                },
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["PACKAGE", "VERSION", "ARCH", "SOURCE", "SUITE"], &cells)
    );
    println!("{} packages in build {} ({})", comps.len(), b.id, name);
    if !lang.is_empty() {
        println!(
            "{} language packages: drover manifest {name} --lang",
            lang.len()
        );
    }
    Ok(())
}

/// One pruned image in `prune --json`.
#[derive(Debug, Serialize)]
struct Pruned {
    stack: String,
    build_id: i64,
    image_path: String,
    bytes: u64,
}

pub fn prune(paths: &Paths, keep: Option<usize>, json: bool) -> CliResult {
    let cfg = crate::config::load_text(&paths.config_file()).map_err(CliError::input)?;
    let keep = keep.unwrap_or(cfg.keep_images);
    if keep == 0 {
        return Err(CliError::input("--keep must be at least 1"));
    }
    let store = open_store(paths)?;
    let report = crate::build::prune::prune(paths, &store, keep)?;
    let rows: Vec<Pruned> = report
        .removed
        .iter()
        .map(|r| Pruned {
            stack: r.stack.clone(),
            build_id: r.build_id,
            image_path: r.image_path.clone(),
            bytes: r.bytes,
        })
        .collect();
    if json {
        return print_json(&serde_json::json!({
            "keep": keep,
            "removed": rows,
            "bases_removed": report.bases_removed,
            "deps_removed": report.deps_removed,
            "vm_boot_removed": report.vm_boot_removed,
            "debs_removed": report.debs_removed,
            "bytes_freed": rows.iter().map(|r| r.bytes).sum::<u64>() + report.base_bytes + report.deps_bytes + report.deb_bytes,
        }));
    }
    for r in &rows {
        println!(
            "removed {} build {} ({:.1} MiB)",
            r.stack,
            r.build_id,
            r.bytes as f64 / 1048576.0
        );
    }
    let total: u64 = rows.iter().map(|r| r.bytes).sum::<u64>()
        + report.base_bytes
        + report.deps_bytes
        + report.deb_bytes;
    println!(
        "kept the newest {keep} image(s) per stack; removed {} image(s), {} unused base(s), {} \
         unused deps layer(s) and {} cached .deb(s), {:.1} MiB freed",
        rows.len(),
        report.bases_removed.len(),
        report.deps_removed.len(),
        report.debs_removed,
        total as f64 / 1048576.0
    );
    store.audit(
        "prune",
        None,
        &format!("keep {keep}: removed {} images", rows.len()),
    )?;
    Ok(())
}

/// `drover templates`: name and description of each stack template.
pub fn templates(json: bool) -> CliResult {
    use crate::stack::templates::TEMPLATES;
    if json {
        let rows: Vec<serde_json::Value> = TEMPLATES
            .iter()
            .map(|t| serde_json::json!({"name": t.name, "description": t.about.trim()}))
            .collect();
        return print_json(&rows);
    }
    let rows: Vec<Vec<String>> = TEMPLATES
        .iter()
        .map(|t| vec![t.name.to_string(), t.about.trim().to_string()])
        .collect();
    print!("{}", table(&["TEMPLATE", "WHAT"], &rows));
    Ok(())
}

/// `drover new NAME --template T [--app DIR]`: write the stack (and app skeleton), then
/// validate it; a stack that does not validate is reported as by `drover validate`.
pub fn new_stack(
    paths: &Paths,
    name: &str,
    template: &str,
    app: Option<&std::path::Path>,
    json: bool,
) -> CliResult {
    let c = crate::stack::templates::create(&paths.config, name, template, app).map_err(|e| {
        if e.is_bad_input() {
            CliError::input(e.to_string())
        } else {
            CliError::failed(e.to_string())
        }
    })?;
    let loaded = match stack::load_file(&c.stack_file, &paths.config) {
        Ok(s) => s,
        Err(diags) => return report_diagnostics(&diags),
    };
    if json {
        return print_json(&c);
    }
    println!("wrote {}", c.stack_file.display());
    for f in &c.files {
        println!("wrote {}", f.display());
    }
    println!("{name} validates; next: `drover build {name}`, then `drover deploy {name}`");
    if !loaded.secrets.is_empty() {
        let file = crate::deploy::secrets::secrets_file(&paths.config, name);
        let have = std::fs::read_to_string(&file).unwrap_or_default();
        let missing: Vec<&str> = loaded
            .secrets
            .iter()
            .map(String::as_str)
            .filter(|s| !have.lines().any(|l| l.starts_with(&format!("{s}="))))
            .collect();
        if !missing.is_empty() {
            println!(
                "before deploying, put {} in {} (one NAME=value per line, mode 0600)",
                missing
                    .iter()
                    .map(|s| format!("{s}=…"))
                    .collect::<Vec<_>>()
                    .join(", "),
                file.display()
            );
        }
    }
    Ok(())
}
