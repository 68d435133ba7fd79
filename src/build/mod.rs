//! The build pipeline (`drover build STACK`):
//!
//! 1. **base**: OS + system packages from mmdebstrap exactly as the stack's lock says
//!    ([`locking::prepare`] settles the lock first), cached by [`crate::lock::Lock::base_key`];
//! 2. **deps**: when the stack has `[scripts].deps`, the framework layer made from its
//!    `[deps]` files over the base, cached by [`deps::layer_key`] (see [`deps`]);
//! 3. **app**: the app's files and lifecycle scripts written into an overlayfs upper
//!    directory over the base (and the deps layer), then the `build` script run inside the
//!    merged tree under bubblewrap (never on the host);
//! 4. **manifest**: the dpkg database of the merged tree, with origins, and the non-Debian
//!    apt repositories (with their keys) the build script configured, to track them;
//! 5. **image**: the base blob (cached), the deps blob (cached) and the app layer (the
//!    upper directory, whiteouts and all) written as an OCI archive;
//! 6. **publish**: the archive renamed into `STATE/images/STACK/ID.oci.tar` and the result
//!    recorded in one transaction.
//!
//! Everything happens under `STATE/builds/ID/`, removed at the end. A build whose process
//! died is found by [`recover_interrupted`] (its `lock` file is no longer held) and marked
//! `interrupted`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::jobs::{BuildEvent, CancelToken, Cancelled, Step};
use crate::manifest::{self, rootfs::RootView, Component};
use crate::paths::Paths;
use crate::stack::Stack;
use crate::store::builds::{BuildStatus, Success};
use crate::store::Store;

pub mod app;
pub mod base;
pub mod debcache;
pub mod deps;
pub mod keyrings;
pub mod locking;
pub mod oci;
pub mod prune;
pub mod sandbox;
pub mod select;
pub mod spec;
pub mod user;
pub mod vm;

use sandbox::{BuildLog, Overlay};
pub use spec::{debian_mirrors, image_spec};

/// Paths left out of the app layer: apt's lists and caches, and the tmpfs mount points.
pub const APP_LAYER_EXCLUDES: &[&str] = &["var/lib/apt/lists", "var/cache/apt", "tmp", "run"];

/// `PATH` inside images and the build sandbox.
pub const IMAGE_PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Options of one build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Rebuild the base even when the cache has it (`--refresh-base`).
    pub refresh_base: bool,
    /// Stops the build when cancelled; the build is then recorded as `cancelled`.
    pub cancel: CancelToken,
    /// How the build gets its lock (`--locked`, `--apply-updates`, `--reproduce`).
    pub lock: locking::LockMode,
    /// Make the VM image too (`--vm`), as `[vm] enabled = true` does for every build.
    pub vm: bool,
}

/// The outcome of a build: the `drover build --json` contract.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// Build id.
    pub build_id: i64,
    /// Stack name.
    pub stack: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub status: BuildStatus,
    /// `sha256:…` manifest digest; null when failed.
    pub image_digest: Option<String>,
    /// Path of the OCI archive; null when failed.
    pub image_path: Option<String>,
    /// Base cache key; null if the build failed before computing it.
    pub base_key: Option<String>,
    /// Whether the base came from the cache.
    pub base_cached: bool,
    /// Deps layer key ([`deps::layer_key`]); null when the stack has no `[scripts].deps`
    /// or the build failed before it.
    pub deps_key: Option<String>,
    /// Whether the deps layer came from the cache (false without one).
    pub deps_cached: bool,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Error text; null on success.
    pub error: Option<String>,
    /// The step that failed; null on success.
    pub failed_step: Option<Step>,
    /// Number of packages in the components manifest (0 when failed).
    pub packages: usize,
    /// Things the operator should know about a build that still succeeded (e.g. packages
    /// older than in the previous build); also in the build log.
    pub warnings: Vec<String>,
    /// Whether the build wrote the stack's lock (created, re-locked for changed inputs, or
    /// moved to the updates).
    pub lock_changed: bool,
    /// What the lock step did; null if the build failed before it.
    pub lock: Option<locking::LockOutcome>,
    /// The VM image (`[vm] enabled` or `--vm`); null without one or when the build failed.
    pub vm: Option<vm::VmImage>,
}

/// Map a Debian architecture to the OCI/Go name used in image configs.
pub fn oci_arch(debian_arch: &str) -> &str {
    match debian_arch {
        "armhf" | "armel" => "arm",
        "i386" => "386",
        "ppc64el" => "ppc64le",
        "mips64el" => "mips64le",
        other => other,
    }
}

/// Build `stack`, streaming progress to `observer`. Returns the report for succeeded and
/// failed builds alike; `Err` only when the build could not be recorded at all (the store
/// or the state directory is unusable).
pub fn run(
    paths: &Paths,
    stack: &Stack,
    opts: &BuildOptions,
    observer: &mut dyn FnMut(&BuildEvent),
) -> Result<BuildReport> {
    let started = Instant::now();
    let mut store = select::open_store(paths)?;
    let build_id = store.create_build(&stack.name, std::process::id())?;
    let work = paths.builds().join(build_id.to_string());
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    // Held for the whole build: a free lock on a `running` build means its process died.
    let lock = File::create(work.join("lock"))?;
    lock.lock()?;

    let mut state = Progress {
        step: Step::Prepare,
        base_key: None,
        base_cached: false,
        deps_key: None,
        deps_cached: false,
        warnings: Vec::new(),
        lock: None,
    };
    let outcome = {
        let mut log =
            BuildLog::new(&mut store, build_id, observer).with_cancel(opts.cancel.clone());
        log.event(BuildEvent::Started {
            build_id,
            stack: stack.name.clone(),
        });
        let r = steps(paths, stack, opts, &work, &mut log, &mut state);
        if let Err(e) = &r {
            log.say(&format!("error in step {}: {e:#}", state.step.as_str()));
        }
        log.event(BuildEvent::Finished {
            build_id,
            succeeded: r.is_ok(),
        });
        r
    };
    let mut report = BuildReport {
        build_id,
        stack: stack.name.clone(),
        status: BuildStatus::Failed,
        image_digest: None,
        image_path: None,
        base_key: state.base_key.clone(),
        base_cached: state.base_cached,
        deps_key: state.deps_key.clone(),
        deps_cached: state.deps_cached,
        duration_ms: 0,
        error: None,
        failed_step: None,
        packages: 0,
        warnings: std::mem::take(&mut state.warnings),
        lock_changed: state.lock.as_ref().is_some_and(|l| l.changed),
        lock: state.lock.take(),
        vm: None,
    };
    match outcome {
        Ok(done) => {
            report.status = BuildStatus::Succeeded;
            report.image_digest = Some(done.digest);
            report.image_path = Some(done.path.display().to_string());
            report.packages = done.packages;
            report.vm = done.vm;
        }
        Err(e) => {
            let text = format!("{e:#}");
            if e.downcast_ref::<Cancelled>().is_some() {
                report.status = BuildStatus::Cancelled;
            }
            store.finish_build_unsuccessful(build_id, report.status, state.step.as_str(), &text)?;
            report.error = Some(text);
            report.failed_step = Some(state.step);
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    drop(lock);
    report.duration_ms = started.elapsed().as_millis() as u64;
    store.audit(
        "build",
        Some(&stack.name),
        &format!(
            "build {build_id} {} in {} ms",
            report.status.as_str(),
            report.duration_ms
        ),
    )?;
    Ok(report)
}

struct Progress {
    step: Step,
    base_key: Option<String>,
    base_cached: bool,
    deps_key: Option<String>,
    deps_cached: bool,
    warnings: Vec<String>,
    lock: Option<locking::LockOutcome>,
}

struct Done {
    digest: String,
    path: PathBuf,
    packages: usize,
    vm: Option<vm::VmImage>,
}

/// A warning when this build installs older versions of packages than the stack's previous
/// succeeded build (typically: that one was built with `--apply-updates`, this one was
/// not, so it silently brings the fixed CVEs back). Compared in Debian version order.
fn older_than_previous(
    store: &Store,
    stack: &str,
    components: &[Component],
) -> Result<Option<String>> {
    use crate::debian::packages::parse_version;
    let Some(prev) = store.latest_succeeded(stack)? else {
        return Ok(None);
    };
    let prev_manifest = store.manifest(prev.id)?;
    let mut before: std::collections::HashMap<(&str, &str), &str> = Default::default();
    for c in &prev_manifest {
        before.insert((c.name.as_str(), c.arch.as_str()), c.version.as_str());
    }
    let mut older: Vec<String> = Vec::new();
    for c in components {
        let Some(old) = before.get(&(c.name.as_str(), c.arch.as_str())) else {
            continue;
        };
        if let (Some(now), Some(then)) = (parse_version(&c.version), parse_version(old)) {
            if now < then {
                older.push(format!("{} {} (was {})", c.name, c.version, old));
            }
        }
    }
    if older.is_empty() {
        return Ok(None);
    }
    let n = older.len();
    older.truncate(3);
    Ok(Some(format!(
        "{n} package(s) are older than in build #{}: {}{}. That build probably applied \
         updates from the tracked suites; rebuild with `drover build {stack} --apply-updates` \
         (console: r) to keep them",
        prev.id,
        older.join(", "),
        if n > 3 { ", …" } else { "" }
    )))
}

fn begin(log: &mut BuildLog<'_>, state: &mut Progress, step: Step, what: &str) -> Result<()> {
    log.check_cancel()?;
    state.step = step;
    log.event(BuildEvent::StepStarted {
        build_id: log.build_id(),
        step,
    });
    log.say(&format!("== {}: {what}", step.as_str()));
    Ok(())
}

fn steps(
    paths: &Paths,
    stack: &Stack,
    opts: &BuildOptions,
    work: &Path,
    log: &mut BuildLog<'_>,
    state: &mut Progress,
) -> Result<Done> {
    let build_id = log.build_id();
    begin(
        log,
        state,
        Step::Prepare,
        &format!("stack {} ({})", stack.name, stack.file.display()),
    )?;
    // The stack file's risky values, said at the top of every build (the file loaded).
    for w in crate::stack::lint_file(&stack.file, &paths.config).1 {
        for line in w.to_string().lines() {
            log.say(line);
        }
        state.warnings.push(format!(
            "{}:{}:{}: {}",
            w.file.display(),
            w.line,
            w.col,
            w.message
        ));
    }
    let arch = base::host_arch()?;
    if opts.vm || stack.vm.enabled {
        // What the VM image cannot carry is refused now, not after the OCI image.
        vm::kernel_for(stack, &arch).and_then(|_| vm::system::check(stack))?;
    }

    // 1. Base.
    begin(log, state, Step::Base, "OS and system packages")?;
    let t = Instant::now();
    let prepared = locking::prepare(paths, stack, &arch, &opts.lock, opts.refresh_base, log)?;
    let base = prepared.base;
    let key = base.key.clone();
    state.base_key = Some(key.clone());
    state.base_cached = base.cached;
    let lock = prepared.outcome.lock.clone();
    let lock_text = lock.to_toml();
    state.lock = Some(prepared.outcome);
    log.store()?.set_build_base(build_id, &key, base.cached)?;
    log.store()?.set_build_lock(build_id, &lock_text)?;
    log.event(BuildEvent::Base {
        build_id,
        key: key.clone(),
        cached: base.cached,
    });
    log.say(&format!(
        "base {} {} in {:.1} s",
        &key[..12],
        if base.cached {
            "reused from the cache"
        } else {
            "built"
        },
        t.elapsed().as_secs_f64()
    ));

    // 2. Deps layer.
    let deps_layer = if stack.scripts.deps.is_some() {
        begin(
            log,
            state,
            Step::Deps,
            "dependencies ([deps] files, [scripts].deps)",
        )?;
        let d = deps::ensure(paths, stack, &base, opts.refresh_base, work, log)?;
        if let Some(d) = &d {
            state.deps_key = Some(d.key.clone());
            state.deps_cached = d.cached;
            log.store()?.set_build_deps(build_id, &d.key, d.cached)?;
        }
        d
    } else {
        None
    };
    // The trees below the app layer, top first.
    let mut lowers: Vec<&Path> = Vec::new();
    lowers.extend(deps_layer.as_ref().map(|d| d.upper.as_path()));
    lowers.push(&base.rootfs);

    // 3. App layer.
    begin(log, state, Step::App, "app files and build script")?;
    let t = Instant::now();
    let upper = work.join("upper");
    let overlay_work = work.join("overlay-work");
    let merged = work.join("merged");
    for d in [&upper, &overlay_work, &merged] {
        std::fs::create_dir_all(d)?;
    }
    let files = app::stage_app(stack, &lowers, &upper, work)?;
    if let Some(a) = &stack.app {
        log.say(&format!("copied {files} app file(s) to {}", a.dest));
    }
    app::install_scripts(stack, &lowers, &upper)?;
    if let Some(script) = &stack.scripts.build {
        log.say("running the build script in the sandbox");
        let status = sandbox::run_stack_script(
            script,
            &work.join("build-script"),
            Overlay {
                lowers: &lowers,
                upper: &upper,
                work: &overlay_work,
                merged: &merged,
            },
            &stack.env,
            log,
        )?;
        if !status.success() {
            bail!(
                "the build script failed ({status}); its last lines are above. \
                 Fix [scripts].build in {}",
                stack.file.display()
            );
        }
    }
    log.say(&format!(
        "app layer staged in {:.1} s",
        t.elapsed().as_secs_f64()
    ));

    // 4. Manifest.
    begin(log, state, Step::Manifest, "reading the dpkg database")?;
    let view = RootView::stacked(
        base.rootfs.clone(),
        deps_layer
            .iter()
            .map(|d| d.upper.clone())
            .chain([upper.clone()]),
    );
    let (image_repos, repo_warnings) =
        crate::debian::sources::read_image_repos(&view, &debian_mirrors(stack))
            .context("reading the apt sources the build left in the image")?;
    for w in &repo_warnings {
        log.say(&format!("apt sources: {w}"));
    }
    for r in &image_repos {
        log.say(&format!(
            "tracking the repository {} {} ({}:{}), signed by {} ({})",
            r.uri,
            r.suite,
            r.file,
            r.line,
            r.key.fingerprints.join(", "),
            r.key.from
        ));
    }
    let mut sources = stack.base.sources();
    sources.extend(image_repos.iter().map(|r| r.source()));
    // What the lock installed comes from where the lock says (also when the tree was made
    // from the local .deb cache and holds no lists of the real repositories); the apt lists
    // are read only for what the build script installed.
    let locked: std::collections::HashMap<(&str, &str, &str), (&str, &str)> = lock
        .packages
        .iter()
        .map(|p| {
            (
                (p.name.as_str(), p.arch.as_str(), p.version.as_str()),
                (p.suite.as_str(), p.mirror.as_str()),
            )
        })
        .collect();
    let t = Instant::now();
    let components: Vec<Component> = manifest::capture_known(&view, &sources, &|n, a, v| {
        locked
            .get(&(n, a, v))
            .map(|(s, m)| (s.to_string(), m.to_string()))
    })?;
    let capture_ms = t.elapsed().as_secs_f64() * 1000.0;
    log.say(&format!(
        "{} installed package(s), read in {capture_ms:.0} ms",
        components.len()
    ));
    if let Some(w) = older_than_previous(log.store()?, &stack.name, &components)? {
        log.say(&format!("warning: {w}"));
        state.warnings.push(w);
    }
    let app_dest = stack.app.as_ref().map(|a| a.dest.as_str());
    let (lang_packages, lang_warnings) = manifest::lang::scan(&view, app_dest);
    for w in &lang_warnings {
        log.say(&format!("language packages: {w}"));
    }
    log.say(&format!("{} language package(s)", lang_packages.len()));

    let image_user = match &stack.user {
        Some(u) => {
            let resolved = user::resolve(&view, u, &stack.file)?;
            log.say(&format!("instances run as {u} ({resolved})"));
            resolved
        }
        None => String::new(),
    };

    // 5. Image.
    begin(log, state, Step::Image, "writing the OCI archive")?;
    let t = Instant::now();
    let app_layer = oci::write_layer(
        &upper,
        oci::LayerMode::OverlayUpper,
        APP_LAYER_EXCLUDES,
        &work.join("app-layer.tar.gz"),
    )?;
    log.say(&format!(
        "app layer {} ({} bytes)",
        app_layer.digest, app_layer.size
    ));
    let created = crate::store::now_rfc3339();
    let mut spec = image_spec(stack, build_id, &key, &created, oci_arch(&arch));
    spec.user = image_user;
    if let Some(d) = &deps_layer {
        spec.labels
            .insert("io.drover.deps-key".into(), d.key.clone());
    }
    let archive_tmp = work.join("image.oci.tar");
    let mut layers = vec![base.layer.clone()];
    layers.extend(deps_layer.as_ref().map(|d| d.layer.clone()));
    layers.push(app_layer);
    let info = oci::write_archive(&layers, &spec, &archive_tmp)?;
    log.say(&format!(
        "image {} ({} bytes) in {:.1} s",
        info.digest,
        info.size,
        t.elapsed().as_secs_f64()
    ));

    // 6. VM image.
    let vm_image = if opts.vm || stack.vm.enabled {
        begin(log, state, Step::Vm, "the bootable disk image ([vm])")?;
        let trees = vm::ImageTrees {
            app: &upper,
            deps: deps_layer.as_ref().map(|d| d.upper.as_path()),
        };
        Some(vm::make(
            paths,
            stack,
            build_id,
            &arch,
            &base,
            trees,
            &components,
            opts.refresh_base,
            work,
            log,
        )?)
    } else {
        None
    };

    // 7. Publish.
    begin(log, state, Step::Publish, "publishing the image")?;
    let dir = paths.images().join(&stack.name);
    std::fs::create_dir_all(&dir)?;
    let final_path = dir.join(format!("{build_id}.oci.tar"));
    std::fs::rename(&archive_tmp, &final_path)
        .with_context(|| format!("cannot publish {}", final_path.display()))?;
    if let Some((ready, image)) = &vm_image {
        if let Err(e) = vm::publish(ready, image) {
            let _ = std::fs::remove_file(&final_path);
            return Err(e);
        }
    }
    let vm_image = vm_image.map(|(_, image)| image);
    let remove_published = || {
        let _ = std::fs::remove_file(&final_path);
        if let Some(v) = &vm_image {
            let _ = std::fs::remove_file(&v.path);
        }
    };
    let path_text = final_path.display().to_string();
    // The VM image is recorded first: `succeeded` then describes every artifact.
    if let Some(v) = &vm_image {
        let recorded = serde_json::to_string(v)
            .map_err(anyhow::Error::from)
            .and_then(|json| log.store()?.set_build_vm(build_id, &json));
        if let Err(e) = recorded {
            remove_published();
            return Err(e.context("cannot record the VM image"));
        }
    }
    let stored = log.store()?.finish_build_success_with_repos(
        build_id,
        &Success {
            image_digest: &info.digest,
            image_path: &path_text,
            components: &components,
        },
        &image_repos,
    );
    if let Err(e) = stored {
        remove_published();
        return Err(e.context("cannot record the finished build"));
    }
    if let Err(e) = log.store()?.put_language_packages(build_id, &lang_packages) {
        log.say(&format!("cannot record the language packages: {e:#}"));
    }
    log.say(&format!("published {path_text}"));
    if let Some(v) = &vm_image {
        log.say(&format!("published {}", v.path));
    }
    Ok(Done {
        digest: info.digest,
        path: final_path,
        packages: components.len(),
        vm: vm_image,
    })
}

/// Find builds left `running` by a process that died, mark them `interrupted`, and remove
/// their temporary files and any half-published image. Also cleans stale base
/// directories. Returns the ids marked.
///
/// A build counts as dead only when its lock is free (or its directory is gone) **and** its
/// owning process is gone: between the row's insert and the lock's `flock` a live build
/// holds no lock yet, and a concurrent `drover builds` must not take it for dead.
pub fn recover_interrupted(paths: &Paths, store: &Store) -> Result<Vec<i64>> {
    let mut marked = Vec::new();
    let running = store.running_builds()?;
    for (id, pid, started_at) in &running {
        let (id, pid) = (*id, *pid);
        let work = paths.builds().join(id.to_string());
        let lock_free = match File::open(work.join("lock")) {
            Ok(f) => f.try_lock().is_ok(),
            Err(_) => true,
        };
        if !lock_free || pid.is_some_and(|pid| owner_alive(pid, started_at)) {
            continue;
        }
        store.mark_interrupted(id)?;
        let _ = std::fs::remove_dir_all(&work);
        if let Some(b) = store.build(id)? {
            for ext in ["oci.tar", "qcow2", "raw"] {
                let _ =
                    std::fs::remove_file(paths.images().join(&b.stack).join(format!("{id}.{ext}")));
            }
        }
        marked.push(id);
    }
    base::clean_stale(paths);
    deps::clean_stale(paths);
    vm::boot::clean_stale(paths);
    // mmdebstrap's temporary keyrings (`STATE/tmp/mmdebstrap.*`) outlive a killed build;
    // they can only be told apart from a live build's when no build runs at all.
    if marked.len() == running.len() {
        if let Ok(rd) = std::fs::read_dir(paths.tmp()) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("mmdebstrap.") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    Ok(marked)
}

/// Whether process `pid` exists and is the one that started a build at `started_at`
/// (RFC 3339): a process that started after the build cannot own it (the pid was reused,
/// e.g. after a reboot). Start time from `/proc/PID/stat` field 22 (clock ticks since boot,
/// proc(5)) and `btime` of `/proc/stat`.
fn owner_alive(pid: u32, started_at: &str) -> bool {
    let Ok(pid_t) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid_t, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    let (Some(proc_start), Ok(build_start)) = (
        process_start_unix(pid),
        chrono::DateTime::parse_from_rfc3339(started_at),
    ) else {
        // Cannot tell: keep the build rather than delete a live one's work.
        return true;
    };
    // One second of slack: btime and the tick count are coarse.
    proc_start <= build_start.timestamp() + 1
}

/// Start time of process `pid` in Unix seconds, from procfs (None when unreadable).
fn process_start_unix(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); starttime is field 22.
    let ticks: i64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let btime: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| btime + ticks / hz)
}
