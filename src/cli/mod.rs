//! The headless CLI: commands for scripts and CI, with progress on a TTY, plain lines
//! otherwise, and `--json` machine output.
//!
//! Exit codes: 0 success, 1 the operation failed, 2 bad input (arguments, stack files).

use crate::deploy::api::LifecycleAction;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::paths::Paths;

mod audit;
mod build;
mod deploy;
mod diff;
mod export;
mod lifecycle;
mod logs;
mod metrics;
mod output;
mod push;
mod query;
mod updates;

/// A CLI failure with its exit code.
#[derive(Debug)]
pub struct CliError {
    /// 1: the operation failed; 2: bad input.
    pub code: i32,
    /// Already formatted message (may hold several lines).
    pub message: String,
}

impl CliError {
    /// Bad input (exit 2).
    pub fn input(message: impl Into<String>) -> Self {
        CliError {
            code: 2,
            message: message.into(),
        }
    }
    /// The operation failed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::failed(format!("{e:#}"))
    }
}

// The one place where typed library errors become exit codes.
impl From<crate::build::select::PickError> for CliError {
    fn from(e: crate::build::select::PickError) -> Self {
        let message = match &e {
            crate::build::select::PickError::Store(inner) => format!("{inner:#}"),
            other => other.to_string(),
        };
        CliError {
            code: if e.is_bad_input() { 2 } else { 1 },
            message,
        }
    }
}

/// The longest `--timeout`/`--grace` accepted, in seconds, checked at parse time (exit 2):
/// [`crate::deploy::plan::MAX_WAIT_SECS`], which the agent checks again.
pub const MAX_WAIT_SECS: u64 = crate::deploy::plan::MAX_WAIT_SECS;

/// Result of a command.
pub type CliResult = Result<(), CliError>;

/// drover: build, track, deploy and roll back immutable Debian-based images.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, long_about = None)]
pub struct Cli {
    /// Config directory (drover.toml, stacks/*.toml). Default: ./config if it exists,
    /// else $XDG_CONFIG_HOME/drover.
    #[arg(long, global = true, env = "DROVER_CONFIG", value_name = "DIR")]
    pub config: Option<PathBuf>,
    /// State directory (database, base cache, images, logs). Default: $XDG_STATE_HOME/drover.
    #[arg(long, global = true, env = "DROVER_STATE", value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command; none opens the interactive console (TUI).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Output format of `manifest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// A JSON array (the documented contract).
    Json,
    /// CycloneDX 1.6 JSON SBOM (with the CVEs of pending updates as vulnerabilities).
    Cyclonedx,
    /// SPDX 2.3 JSON SBOM.
    Spdx,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the stacks with their last build.
    Stacks,
    /// Check stack files (all of them when none is given) without building.
    Validate {
        /// Stack files to check.
        files: Vec<PathBuf>,
    },
    /// Build a stack's image from the Debian mirror.
    Build {
        /// Stack name.
        stack: String,
        /// Rebuild the base layer even if it is cached.
        #[arg(long)]
        refresh_base: bool,
        /// Move the lock to the pending updates first (`drover lock STACK --update`), then
        /// build it.
        #[arg(long, conflicts_with_all = ["locked", "reproduce"])]
        apply_updates: bool,
        /// Build the lock as it is; fail when it is missing or the stack file's package
        /// inputs changed since it was written (for CI, like `cargo build --locked`).
        #[arg(long, conflicts_with = "reproduce")]
        locked: bool,
        /// Rebuild build N from the lock it recorded: the same packages, every version
        /// (from the local .deb cache when the repositories dropped them); the lock file is
        /// not touched.
        #[arg(long, value_name = "N")]
        reproduce: Option<i64>,
        /// Make the bootable VM disk image too (qcow2 or raw, `[vm]` in the stack file),
        /// as `[vm] enabled = true` does for every build.
        #[arg(long)]
        vm: bool,
    },
    /// Create or refresh a stack's lock (`CONFIG/stacks/NAME.lock`): packages added to the
    /// stack file are resolved, removed ones dropped, the rest stays pinned; `--update`
    /// moves it to the pending updates.
    Lock {
        /// Stack name.
        stack: String,
        /// Move the locked packages to the newest versions the base and tracked suites hold.
        #[arg(long)]
        update: bool,
        /// With --update: only the source packages with a security update in the newest
        /// check (`drover updates STACK`).
        #[arg(long, requires = "update")]
        security_only: bool,
        /// With --update: only these source (or binary) packages.
        #[arg(requires = "update")]
        packages: Vec<String>,
    },
    /// List a stack's builds, newest first.
    Builds {
        /// Stack name.
        stack: String,
    },
    /// Print a build's log (default: the newest build), or with --runtime what the
    /// stack's instances printed.
    Logs {
        /// Stack name.
        stack: String,
        /// Build id.
        #[arg(long, conflicts_with = "runtime")]
        build: Option<i64>,
        /// The runtime log (instances' stdout/stderr, kept after they die).
        #[arg(long)]
        runtime: bool,
        /// With --runtime: only this release's instances.
        #[arg(long, requires = "runtime")]
        release: Option<i64>,
        /// With --runtime: only this instance (e.g. hello-r3-2).
        #[arg(long, requires = "runtime")]
        instance: Option<String>,
        /// With --runtime: only lines newer than this (e.g. 30s, 10m, 2h).
        #[arg(long, requires = "runtime")]
        since: Option<String>,
        /// With --runtime: leave out the health check's own requests.
        #[arg(long, requires = "runtime")]
        hide_health: bool,
        /// With --runtime: keep printing new lines until interrupted.
        #[arg(long, short = 'f', requires = "runtime")]
        follow: bool,
    },
    /// Print a build's components manifest (default: the newest succeeded build).
    Manifest {
        /// Stack name.
        stack: String,
        /// Build id.
        #[arg(long)]
        build: Option<i64>,
        /// Output format (`--json` implies json).
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Only the summary: counts per suite and origin, and language packages per
        /// ecosystem.
        #[arg(long)]
        summary: bool,
        /// The language packages (PyPI, npm, crates.io, …) found in the image instead of
        /// the Debian packages (JSON: an array of `ecosystem`, `name`, `version`, `location`).
        #[arg(long, conflicts_with = "summary")]
        lang: bool,
        /// The VM image's packages: the OCI image's plus the boot layer's, each marked
        /// `image` or `boot` (JSON: an array of `name`, `version`, `layer`); with
        /// `--format cyclonedx|spdx`, the VM disk image's SBOM.
        #[arg(long, conflicts_with_all = ["summary", "lang"])]
        vm: bool,
    },
    /// Pending updates of a stack's newest build (all stacks when none given), with the CVEs
    /// they fix, riskiest first.
    Updates {
        /// Stack name.
        stack: Option<String>,
        /// Fetch the tracked repositories anew (conditional requests) instead of the cache.
        #[arg(long)]
        refresh: bool,
        /// Print the language packages (PyPI, npm, crates.io) with newer versions instead
        /// of the Debian updates (JSON: an array of `ecosystem`, `package`, `installed`,
        /// `latest`, `location`, `registry`, `checked_at`).
        #[arg(long)]
        lang: bool,
        /// Print the pending updates of the live release's build instead of the newest
        /// build's (the same when the newest build is live).
        #[arg(long, conflicts_with = "lang")]
        live: bool,
        /// Print the pending updates of the newest build's VM image's boot packages (the
        /// kernel, systemd, …) instead: they need a new VM image, made by `drover build
        /// STACK --vm --refresh-base` (JSON rows: `against` is `vm build N`).
        #[arg(long, conflicts_with_all = ["lang", "live"])]
        vm: bool,
    },
    /// Delete old images, keeping the newest N per stack (default: drover.toml's images.keep).
    Prune {
        /// How many images to keep per stack.
        #[arg(long)]
        keep: Option<usize>,
    },
    /// Push a build's image to a registry (OCI distribution API).
    Push {
        /// Stack name.
        stack: String,
        /// Build id (default: the newest succeeded build).
        #[arg(long)]
        build: Option<i64>,
        /// Destination `HOST[:PORT]/REPO:TAG`.
        #[arg(long, value_name = "HOST[:PORT]/REPO:TAG")]
        to: String,
        /// Plain HTTP (a local registry without TLS).
        #[arg(long)]
        insecure: bool,
    },
    /// Render a build as a Helm chart, Kubernetes manifests, CloudFormation or Terraform.
    Export {
        /// Stack name.
        stack: String,
        /// What to write.
        #[arg(long, value_enum)]
        target: crate::export::Target,
        /// Output directory (created; replaced only if it is an earlier drover export).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Replicas, repository and data size of the export.
        #[command(flatten)]
        opts: export::ExportOpts,
    },
    /// Deploy to Kubernetes with Helm, roll back, show history.
    Helm {
        /// What to do.
        #[command(subcommand)]
        action: export::HelmAction,
    },
    /// Deploy a build behind the stack's route: blue-green, or recreate for a stack whose
    /// `[data]` is not shared (starts the agent if needed).
    Deploy {
        /// Stack name.
        stack: String,
        /// Build id (default: the newest succeeded build).
        #[arg(long)]
        build: Option<i64>,
        /// Instances of the new release (default: as many as now, else 1).
        #[arg(long)]
        replicas: Option<usize>,
        /// Seconds the new instances get to become healthy.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=MAX_WAIT_SECS))]
        timeout: u64,
        /// Seconds old instances get to finish in-flight requests.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=MAX_WAIT_SECS))]
        grace: u64,
        /// Deploy even when the build has older packages than the live release (a
        /// downgrade undoes the fixes those versions brought; the refusal names them).
        #[arg(long)]
        allow_downgrade: bool,
        /// Deploy the stacks of its `[links]` first (their newest builds, links of links
        /// before them), then this one.
        #[arg(long)]
        with_links: bool,
    },
    /// Redeploy the previous (or a named) release through the same health-checked path.
    Rollback {
        /// Stack name.
        stack: String,
        /// Release number to go back to (default: the previous one).
        #[arg(long)]
        to: Option<i64>,
        /// Seconds the instances get to become healthy.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=MAX_WAIT_SECS))]
        timeout: u64,
        /// Seconds old instances get to finish in-flight requests.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=MAX_WAIT_SECS))]
        grace: u64,
    },
    /// Drain and stop the stack's instances; the route answers 503 saying it is stopped
    /// and the release history stays (kept across agent restarts).
    Stop {
        /// Stack name.
        stack: String,
        /// Seconds instances get to finish in-flight requests.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=MAX_WAIT_SECS))]
        grace: u64,
    },
    /// Start the last live release of a stopped stack again, health-checked.
    Start {
        /// Stack name.
        stack: String,
    },
    /// Add or drain instances of the live release (new ones join once healthy).
    Scale {
        /// Stack name.
        stack: String,
        /// Instances wanted (1-64).
        replicas: usize,
        /// Seconds drained instances get to finish in-flight requests.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=MAX_WAIT_SECS))]
        grace: u64,
    },
    /// Replace every instance of the live release, one at a time: the new one joins once
    /// healthy before the old one drains, so the healthy count never drops.
    Restart {
        /// Stack name.
        stack: String,
        /// Seconds old instances get to finish in-flight requests.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=MAX_WAIT_SECS))]
        grace: u64,
    },
    /// What changes from A to B: packages by source (added, removed, upgraded,
    /// downgraded), the CVEs fixed and the fixes undone, language packages, image config
    /// and app files. A and B are build ids (`12`), releases (`r3`), `live` or `newest`;
    /// default: the live release to the newest build.
    Diff {
        /// Stack name.
        stack: String,
        /// The side compared from (default: `live`).
        a: Option<String>,
        /// The side compared to (default: `newest`).
        b: Option<String>,
        /// Output format (`--json` implies json; `openvex` writes an OpenVEX v0.2.0
        /// document with a `fixed` statement per CVE that B fixes).
        #[arg(long, value_enum, default_value_t = diff::DiffFormat::Table)]
        format: diff::DiffFormat,
    },
    /// List the stack templates `drover new` can start from.
    Templates,
    /// Start a stack from a template: writes `CONFIG/stacks/NAME.toml` (commented) and,
    /// without `--app`, a working app skeleton under `CONFIG/../apps/NAME/`, then
    /// validates it.
    New {
        /// The new stack's name (`[a-z0-9][a-z0-9-]*`).
        name: String,
        /// The template (`drover templates` lists them).
        #[arg(long, short = 't', default_value = "generic")]
        template: String,
        /// Use this existing app directory instead of a skeleton.
        #[arg(long, value_name = "DIR")]
        app: Option<PathBuf>,
    },
    /// Who did what, when, and how it ended (builds, lock changes, deploys, rollbacks,
    /// auto-rebuilds, notifications, pushes, exports, prunes), newest first.
    Audit {
        /// Only this stack's records.
        stack: Option<String>,
        /// Only records this recent: a duration (`10m`, `2h`, `1d`) or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// At most this many records.
        #[arg(long, default_value_t = 200)]
        limit: i64,
    },
    /// The route's figures per release and minute: requests, responses by class,
    /// upstream errors and latency percentiles (p50/p95/p99), with a total per release.
    Metrics {
        /// The stack.
        stack: String,
        /// Only this release.
        #[arg(long)]
        release: Option<i64>,
        /// Only minutes this recent: a duration (`10m`, `2h`, `1d`) or an RFC 3339 time.
        #[arg(long, default_value = "1h")]
        since: String,
    },
    /// Print a shell completion script (e.g. `drover completions bash >
    /// /etc/bash_completion.d/drover`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff; e.g. `drover man > /usr/local/share/man/man1/drover.1`).
    Man,
    /// A stack's releases, newest first.
    Releases {
        /// Stack name.
        stack: String,
        /// Print one release in detail: who, when, build, image, verification output, the
        /// error of a failed deploy, and each instance's history.
        #[arg(long)]
        release: Option<i64>,
    },
    /// Routes, live releases and instances with health (starts the agent if needed).
    Status,
    /// Run the agent (router + instance supervisor) in the foreground, or manage it.
    Agent {
        /// `status` or `stop`; none runs the agent.
        #[command(subcommand)]
        command: Option<deploy::AgentCommand>,
    },
}

/// Run the CLI with the process arguments; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 2,
            };
        }
    };
    // One-shot commands die quietly on a closed pipe (`drover stacks --json | head`), as Unix
    // tools do, instead of panicking in println!. The agent and the console keep Rust's
    // default (SIGPIPE ignored): they write to sockets and a terminal and handle errors.
    if !matches!(cli.command, None | Some(Command::Agent { .. })) {
        // SAFETY: setting a signal disposition before any thread is started.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("{}", e.message.trim_end());
            }
            e.code
        }
    }
}

/// Dispatch one parsed command.
pub fn run(cli: Cli) -> CliResult {
    let paths = Paths::resolve(cli.config.clone(), cli.state.clone())?;
    let json = cli.json;
    let Some(command) = cli.command else {
        return crate::tui::run(&paths).map_err(CliError::from);
    };
    match command {
        Command::Stacks => query::stacks(&paths, json),
        Command::Validate { files } => query::validate(&paths, &files, json),
        Command::Build {
            stack,
            refresh_base,
            apply_updates,
            locked,
            reproduce,
            vm,
        } => {
            let lock = build::lock_mode(&paths, &stack, apply_updates, locked, reproduce)?;
            build::build(&paths, &stack, (refresh_base, vm), lock, json)
        }
        Command::Lock {
            stack,
            update,
            security_only,
            packages,
        } => build::lock(&paths, &stack, update, security_only, packages, json),
        Command::Builds { stack } => query::builds(&paths, &stack, json),
        Command::Logs {
            stack,
            build,
            runtime: false,
            ..
        } => query::logs(&paths, &stack, build, json),
        Command::Logs {
            stack,
            release,
            instance,
            since,
            hide_health,
            follow,
            ..
        } => {
            let args = logs::RuntimeArgs {
                release,
                instance,
                since,
                hide_health,
                follow,
            };
            logs::runtime(&paths, &stack, &args, json)
        }
        Command::Manifest {
            stack,
            build,
            format,
            summary,
            lang,
            vm,
        } => {
            let format = match format {
                Format::Cyclonedx | Format::Spdx => {
                    return updates::sbom(&paths, &stack, build, format, vm)
                }
                _ if json => Format::Json,
                f => f,
            };
            let view = if vm {
                query::ManifestView::Vm
            } else if lang {
                query::ManifestView::Lang
            } else if summary {
                query::ManifestView::Summary
            } else {
                query::ManifestView::Debian
            };
            query::manifest(&paths, &stack, build, format, view)
        }
        Command::Prune { keep } => query::prune(&paths, keep, json),
        Command::Push {
            stack,
            build,
            to,
            insecure,
        } => push::push(&paths, &stack, build, &to, insecure, json),
        Command::Export {
            stack,
            target,
            out,
            opts,
        } => export::export(&paths, &stack, target, &out, &opts.args(), json),
        Command::Helm { action } => export::helm(&paths, action, json),
        Command::Deploy {
            stack,
            build,
            replicas,
            timeout,
            grace,
            allow_downgrade,
            with_links,
        } => {
            let a = deploy::DeployArgs {
                build,
                replicas,
                to: None,
                timeout: Some(timeout),
                grace: Some(grace),
                allow_downgrade,
            };
            if with_links {
                deploy::deploy_links_first(&paths, &stack, timeout, grace)?;
            }
            deploy::deploy(&paths, &stack, false, a, json)
        }
        Command::Stop { stack, grace } => {
            lifecycle::run(&paths, &stack, LifecycleAction::Stop, None, grace, json)
        }
        Command::Start { stack } => {
            lifecycle::run(&paths, &stack, LifecycleAction::Start, None, 30, json)
        }
        Command::Scale {
            stack,
            replicas,
            grace,
        } => lifecycle::run(
            &paths,
            &stack,
            LifecycleAction::Scale,
            Some(replicas),
            grace,
            json,
        ),
        Command::Restart { stack, grace } => {
            lifecycle::run(&paths, &stack, LifecycleAction::Restart, None, grace, json)
        }
        Command::Rollback {
            stack,
            to,
            timeout,
            grace,
        } => {
            let a = deploy::DeployArgs {
                to,
                timeout: Some(timeout),
                grace: Some(grace),
                ..Default::default()
            };
            deploy::deploy(&paths, &stack, true, a, json)
        }
        Command::Releases {
            stack,
            release: Some(n),
        } => deploy::release_detail(&paths, &stack, n, json),
        Command::Releases { stack, .. } => deploy::releases(&paths, &stack, json),
        Command::Templates => query::templates(json),
        Command::New {
            name,
            template,
            app,
        } => query::new_stack(&paths, &name, &template, app.as_deref(), json),
        Command::Audit {
            stack,
            since,
            limit,
        } => audit::audit(&paths, stack.as_deref(), since.as_deref(), limit, json),
        Command::Metrics {
            stack,
            release,
            since,
        } => metrics::metrics(&paths, &stack, release, &since, json),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "drover", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .map_err(|e| CliError::failed(format!("cannot write the man page: {e}")))
        }
        Command::Diff {
            stack,
            a,
            b,
            format,
        } => diff::diff(&paths, &stack, a.as_deref(), b.as_deref(), format, json),
        Command::Status => deploy::status(&paths, json),
        Command::Agent { command } => deploy::agent(&paths, command, json),
        Command::Updates {
            stack,
            refresh,
            lang,
            live,
            vm,
        } => {
            let which = match (lang, live, vm) {
                (true, _, _) => updates::Which::Lang,
                (_, true, _) => updates::Which::Live,
                (_, _, true) => updates::Which::Vm,
                _ => updates::Which::Newest,
            };
            updates::updates(&paths, stack.as_deref(), refresh, which, json)
        }
    }
}

/// Whether progress should be drawn (stderr is a terminal).
fn interactive() -> bool {
    std::io::stderr().is_terminal()
}
