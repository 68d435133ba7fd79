//! The headless CLI: commands for scripts and CI, with progress on a TTY, plain lines
//! otherwise, and `--json` machine output.
//!
//! Exit codes: 0 success, 1 the operation failed, 2 bad input (arguments, stack files).

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::paths::Paths;

mod build;
mod output;
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
    /// The command.
    #[command(subcommand)]
    pub command: Command,
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
        /// Build with the tracked suites added to the base's sources, so pending updates
        /// get installed (a different base key).
        #[arg(long)]
        apply_updates: bool,
    },
    /// List a stack's builds, newest first.
    Builds {
        /// Stack name.
        stack: String,
    },
    /// Print a build's log (default: the newest build).
    Logs {
        /// Stack name.
        stack: String,
        /// Build id.
        #[arg(long)]
        build: Option<i64>,
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
        /// Only the summary: counts per suite and origin.
        #[arg(long)]
        summary: bool,
    },
    /// Pending updates of a stack's newest build (all stacks when none given), with the CVEs
    /// they fix, riskiest first.
    Updates {
        /// Stack name.
        stack: Option<String>,
        /// Fetch the tracked repositories anew (conditional requests) instead of the cache.
        #[arg(long)]
        refresh: bool,
    },
    /// Delete old images, keeping the newest N per stack (default: drover.toml's images.keep).
    Prune {
        /// How many images to keep per stack.
        #[arg(long)]
        keep: Option<usize>,
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
    match cli.command {
        Command::Stacks => query::stacks(&paths, json),
        Command::Validate { files } => query::validate(&paths, &files, json),
        Command::Build {
            stack,
            refresh_base,
            apply_updates,
        } => build::build(&paths, &stack, refresh_base, apply_updates, json),
        Command::Builds { stack } => query::builds(&paths, &stack, json),
        Command::Logs { stack, build } => query::logs(&paths, &stack, build, json),
        Command::Manifest {
            stack,
            build,
            format,
            summary,
        } => {
            let format = match format {
                Format::Cyclonedx | Format::Spdx => {
                    return updates::sbom(&paths, &stack, build, format)
                }
                _ if json => Format::Json,
                f => f,
            };
            query::manifest(&paths, &stack, build, format, summary)
        }
        Command::Prune { keep } => query::prune(&paths, keep, json),
        Command::Updates { stack, refresh } => {
            updates::updates(&paths, stack.as_deref(), refresh, json)
        }
    }
}

/// Whether progress should be drawn (stderr is a terminal).
fn interactive() -> bool {
    std::io::stderr().is_terminal()
}
