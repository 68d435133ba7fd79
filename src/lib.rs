//! drover: build, track, deploy and roll back immutable Debian-based images.
//!
//! The library holds all behaviour; `main.rs` (CLI) and, later, the TUI are thin front ends.
//! Module map (see `DESIGN.md`): [`stack`] definitions, [`config`] global settings,
//! [`paths`] the config and state directories, [`store`] SQLite, [`build`] the pipeline,
//! base cache, sandbox and OCI writer, [`manifest`] the components manifest, [`jobs`] typed
//! progress events, [`deploy`] the local target (agent, router, instances, releases),
//! [`text`] display helpers, [`tui`] the operator console, [`debian`] apt repositories,
//! [`updates`] pending updates and CVEs.

pub mod build;
pub mod cli;
pub mod config;
pub mod debian;
pub mod deploy;
pub mod diff;
pub mod export;
pub mod http;
pub mod jobs;
pub mod lock;
pub mod manifest;
pub mod paths;
pub mod registry;
pub mod stack;
pub mod store;
pub mod text;
pub mod tui;
pub mod updates;
