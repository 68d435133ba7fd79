//! Stack definitions: `config/stacks/NAME.toml`, parsed and validated with precise
//! `FILE:LINE:COL` diagnostics.
//!
//! The types here are the *validated* form: every path is resolved, every script is read,
//! every default is filled in. Parsing and validation live in [`parse`] (one validator per
//! table under `sections/`), diagnostics in [`diag`], and loading from disk in `load`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub mod diag;
mod load;
pub mod parse;
mod sections;
pub mod templates;
pub(crate) mod toml_check;

pub use diag::{Diagnostic, Diagnostics, Severity};
pub use load::{lint_file, load_all, load_file, load_named, load_stack};

/// A validated stack: one service, from its Debian base to its health check.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    /// Stack name, `[a-z0-9][a-z0-9-]*`, equal to the file stem.
    pub name: String,
    /// One-line human description.
    pub description: String,
    /// The Debian base the image is built from.
    pub base: Base,
    /// System packages to install into the base (valid Debian package names, Policy §5.6.1).
    pub packages: Vec<String>,
    /// The application payload, if any.
    pub app: Option<App>,
    /// Lifecycle scripts, already read from their files when given as paths.
    pub scripts: Scripts,
    /// Non-secret environment defaults baked into the image config.
    pub env: BTreeMap<String, String>,
    /// Names of secrets; values are supplied at deploy time, never at build time.
    pub secrets: Vec<String>,
    /// TCP port the service listens on inside the instance.
    pub port: Option<u16>,
    /// `protocol = "http" | "tcp"`: what the route speaks (default HTTP).
    pub protocol: Protocol,
    /// `user = "postgres"` (a name from the image's `/etc/passwd`, or a numeric uid): who
    /// `boot`, `run`, `test` and a health `command` run as. Resolved at build time into the
    /// image config's `User` (`UID:GID`); instances then run in a user namespace that maps
    /// it to the agent's uid. `None`: root inside the sandbox (with no capabilities).
    pub user: Option<String>,
    /// Health check (HTTP `path`, a `command`, or a TCP connect).
    pub health: Health,
    /// Persistent data volume, if the stack has one.
    pub data: Option<Data>,
    /// How releases of the stack are deployed (the `[deploy]` table).
    pub deploy: Deploy,
    /// Repositories watched for updates.
    pub track: Track,
    /// `[links]`: alias → the name of another stack whose route this one's instances
    /// reach (`ALIAS_HOST`, `ALIAS_PORT`, see [`crate::deploy::links`]).
    pub links: BTreeMap<String, String>,
    /// `[deps] files`: the dependency manifests (e.g. `requirements.txt`,
    /// `package-lock.json`), as paths relative to the `[app]` directory; they are copied
    /// to the same path under `[app].dest` in the deps layer before `[scripts].deps` runs.
    /// Empty when the stack has no `[deps]` table.
    pub deps: Vec<String>,
    /// `[vm]`: the bootable disk image made beside the OCI image.
    pub vm: Vm,
    /// The file the stack was loaded from.
    pub file: PathBuf,
}

/// The `[vm]` table: a bootable disk image of the stack (raw or qcow2), made beside its
/// OCI image from the same lock plus a kernel, systemd and a first-boot unit (issue #15,
/// see [`crate::build::vm`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Vm {
    /// `enabled = true`: every build makes the disk too (`drover build --vm` makes it for
    /// one build without the key).
    pub enabled: bool,
    /// `size`: the disk's size in bytes (rounded up to whole MiB when written). `None`:
    /// the tree's size plus room ([`crate::build::vm`] says how much).
    pub size: Option<u64>,
    /// `format = "qcow2" | "raw"` (default qcow2).
    pub format: VmFormat,
    /// `kernel`: the kernel package. `None`: `linux-image-cloud-ARCH` for the build's
    /// architecture.
    pub kernel: Option<String>,
}

/// The disk image format of [`Vm::format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VmFormat {
    /// QEMU's copy-on-write format (`qemu-img convert -O qcow2`): small, what Proxmox and
    /// OpenStack import. The default.
    #[default]
    Qcow2,
    /// A plain disk image: what `aws ec2 import-image` and DigitalOcean custom images take.
    Raw,
}

impl VmFormat {
    /// `qcow2` or `raw`: the key's value and the file extension.
    pub fn as_str(self) -> &'static str {
        match self {
            VmFormat::Qcow2 => "qcow2",
            VmFormat::Raw => "raw",
        }
    }
}

impl Stack {
    /// What this stack gives a stack that links to it as `alias`, besides its address:
    /// its `[env]` values whose names start with `ALIAS_` (the alias uppercased, e.g.
    /// `DB_USER` for `db`), in name order. Its secrets are given by name too (their values
    /// come from wherever the platform keeps them).
    pub fn env_for_link(&self, alias: &str) -> Vec<(String, String)> {
        let prefix = format!("{}_", alias.to_ascii_uppercase());
        self.env
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// How releases replace each other: `[deploy] strategy` when given, else
    /// [`Strategy::Recreate`] for a stack with a `[data]` volume that is not
    /// `shared = true` (two releases must never write one data directory at once), else
    /// [`Strategy::BlueGreen`].
    pub fn strategy(&self) -> Strategy {
        self.deploy.strategy.unwrap_or(match &self.data {
            Some(d) if !d.shared => Strategy::Recreate,
            _ => Strategy::BlueGreen,
        })
    }
}

/// The top-level `protocol`: what a stack's route and health check speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 through the router (status classes, metrics, 503 bodies). The default.
    #[default]
    Http,
    /// Plain TCP: each client connection is piped to one healthy instance (databases,
    /// caches); health by `[health] command`, else by a TCP connect.
    Tcp,
}

impl Protocol {
    /// The spelling in stack files: `http`, `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Tcp => "tcp",
        }
    }
}

/// `[deploy] strategy`: how a new release replaces the live one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Start the new release beside the old one, switch the route once it is healthy,
    /// drain the old one: no downtime, both run for a moment. The default without `[data]`.
    #[default]
    BlueGreen,
    /// Drain and stop the old release first, then start the new one on the same data:
    /// never two writers, unavailable from the stop until the new release is healthy; on
    /// failure the previous release starts again on the same data.
    Recreate,
}

impl Strategy {
    /// `blue-green` or `recreate`, as in the stack file.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::BlueGreen => "blue-green",
            Strategy::Recreate => "recreate",
        }
    }
}

/// Supported base distributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distro {
    /// Debian, built with mmdebstrap.
    Debian,
}

/// One apt source: a mirror URL, a suite and its components
/// (a `deb` line: `deb MIRROR SUITE COMPONENT...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AptSource {
    /// Mirror base URL without trailing slash, e.g. `http://deb.debian.org/debian`.
    pub mirror: String,
    /// Suite or codename, e.g. `bookworm`, `bookworm-security`.
    pub suite: String,
    /// Components, e.g. `["main"]`.
    pub components: Vec<String>,
}

/// The `[base]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Base {
    /// Distribution (only Debian today).
    pub distro: Distro,
    /// The primary suite, e.g. `bookworm`.
    pub suite: String,
    /// Primary mirror URL (no trailing slash).
    pub mirror: String,
    /// Components of the primary suite.
    pub components: Vec<String>,
    /// mmdebstrap variant (`apt`, `minbase`, `required`, `important`, `standard`, `essential`).
    pub variant: String,
    /// Extra suites enabled while building the base (e.g. the security suite).
    pub extra_suites: Vec<AptSource>,
}

impl Base {
    /// Every apt source used to build the base: the primary suite first, then the extras.
    pub fn sources(&self) -> Vec<AptSource> {
        let mut v = vec![AptSource {
            mirror: self.mirror.clone(),
            suite: self.suite.clone(),
            components: self.components.clone(),
        }];
        v.extend(self.extra_suites.iter().cloned());
        v
    }
}

/// Where the app's files come from.
#[derive(Debug, Clone, PartialEq)]
pub enum AppSource {
    /// A local directory (absolute, resolved against the config dir).
    Dir(PathBuf),
    /// A tarball (`.tar`, `.tar.gz`, `.tgz`) or single file at a URL, checked against its SHA-256.
    Url {
        /// http(s) URL.
        url: String,
        /// Lowercase hex SHA-256 (64 characters).
        sha256: String,
        /// The most bytes the download may have (`[app] max_size`, default
        /// [`DEFAULT_APP_MAX_SIZE`]): it stops, and the build fails, at the first byte over.
        max_size: u64,
    },
}

/// Default `[app] max_size` of a `url` app: 2 GiB.
pub const DEFAULT_APP_MAX_SIZE: u64 = 2 << 30;

/// The `[app]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// Source of the files.
    pub source: AppSource,
    /// Absolute destination path inside the image (default `/opt/app`).
    pub dest: String,
}

/// Lifecycle scripts (contents, not paths).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scripts {
    /// Installs the app's dependencies into the deps (framework) layer, between the base
    /// and the app: runs as root in the sandbox with only the `[deps] files` of the app, and
    /// its result is cached under a key of the base, those files, this script and `[env]`
    /// (see `crate::build::deps`).
    pub deps: Option<String>,
    /// Runs once at build time inside the image, as root; may use apt.
    pub build: Option<String>,
    /// Runs at every instance start before the service; must be idempotent.
    pub boot: Option<String>,
    /// The service's foreground command.
    pub run: Option<String>,
    /// Optional check run at deploy time against the first instance of a new release,
    /// inside the same image (read-only), with `TARGET_URL=http://127.0.0.1:PORT`; exit 0
    /// passes. A failure fails the deploy.
    pub test: Option<String>,
}

/// The `[health]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// HTTP path probed, e.g. `/up` (default `/up`; unused with a `command` or
    /// `protocol = "tcp"`).
    pub path: String,
    /// `command = "pg_isready -h 127.0.0.1 -p \"$PORT\""`: a shell command run inside the
    /// instance's image and network namespace, as its `user`, with `PORT` set; exit 0
    /// within `timeout` passes. Replaces the HTTP probe.
    pub command: Option<String>,
    /// Time between probes (default 1 s).
    pub interval: Duration,
    /// Probe timeout (default 5 s).
    pub timeout: Duration,
    /// Consecutive passed checks before an instance takes traffic (default 1).
    pub healthy_threshold: u32,
    /// Consecutive failed checks before a healthy instance is unhealthy and replaced
    /// (default 3).
    pub unhealthy_threshold: u32,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            path: "/up".into(),
            command: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
            healthy_threshold: 1,
            unhealthy_threshold: 3,
        }
    }
}

/// The `[deploy]` table: how the agent deploys and rolls back releases of the stack.
#[derive(Debug, Clone, PartialEq)]
pub struct Deploy {
    /// `keep_warm = true`: after a deploy switches the route and drains, the previous
    /// release's instances keep running (not routed, still health-checked), so a rollback
    /// to that release switches the route to them at once. Only the one previous release
    /// is kept warm. Default `false` (the previous release's instances are stopped).
    pub keep_warm: bool,
    /// `listen = "127.0.0.1"`: the IP address (v4 or v6, no port) the stack's route
    /// listens on. Default [`Deploy::DEFAULT_LISTEN`], `0.0.0.0` (every IPv4 address of
    /// this machine); `"::"` is every address, IPv6 and (dual-stack) IPv4.
    pub listen: std::net::IpAddr,
    /// `outbound = true|false`: whether instances get outbound network access (NAT'd by
    /// Debian's `pasta`, from the `passt` package, into their own network namespace).
    /// `None` (unset): on when `pasta` is installed. Inbound, an instance is reachable
    /// only through its route either way.
    pub outbound: Option<bool>,
    /// `watch = "2m"` (with `max_error_rate`, `max_p99`): after a deploy, the agent
    /// compares the new release's route metrics with the previous release's for this
    /// long and rolls back by itself past the limits. `None`: no watch.
    pub watch: Option<Watch>,
    /// `strategy = "blue-green" | "recreate"`; `None`: [`Stack::strategy`]'s default.
    pub strategy: Option<Strategy>,
    /// `stop_signal = "SIGINT"`: the signal that asks an instance's process to stop
    /// (the OCI config's `StopSignal`; e.g. PostgreSQL's fast shutdown is SIGINT). One of
    /// [`Deploy::STOP_SIGNALS`]; default `SIGTERM`.
    pub stop_signal: &'static str,
    /// `stop_timeout = "10s"`: how long a stopping instance may take after its stop
    /// signal before it is killed (SIGKILL). Default 10 s, at most 5 min.
    pub stop_timeout: Duration,
}

/// The deploy watch window of `[deploy]` (see [`crate::deploy::watch`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    /// How long the new release is watched after the route switched (5 s to 1 h).
    pub window: std::time::Duration,
    /// `max_error_rate = 0.05`: the share of 5xx responses (0.0 to 1.0) above which the
    /// release is rolled back, when it is also above the previous release's. Default
    /// [`Watch::DEFAULT_MAX_ERROR_RATE`].
    pub max_error_rate: f64,
    /// `max_p99 = "500ms"`: the 99th-percentile latency above which the release is rolled
    /// back, when it is also above the previous release's. `None`: latency is not judged.
    pub max_p99: Option<std::time::Duration>,
}

impl Watch {
    /// The default `max_error_rate`: 5 % of responses 5xx.
    pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.05;
}

impl Deploy {
    /// The stop signals `stop_signal` accepts, with their numbers (signal(7)).
    pub const STOP_SIGNALS: &'static [(&'static str, i32)] = &[
        ("SIGTERM", libc::SIGTERM),
        ("SIGINT", libc::SIGINT),
        ("SIGQUIT", libc::SIGQUIT),
        ("SIGHUP", libc::SIGHUP),
        ("SIGUSR1", libc::SIGUSR1),
        ("SIGUSR2", libc::SIGUSR2),
        ("SIGWINCH", libc::SIGWINCH),
    ];

    /// The number of [`Deploy::stop_signal`].
    pub fn stop_signal_number(&self) -> i32 {
        Self::STOP_SIGNALS
            .iter()
            .find(|(n, _)| *n == self.stop_signal)
            .map_or(libc::SIGTERM, |(_, v)| *v)
    }

    /// The route's default listen address: `0.0.0.0`, every IPv4 address of this machine.
    pub const DEFAULT_LISTEN: std::net::IpAddr =
        std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
}

impl Default for Deploy {
    fn default() -> Self {
        Deploy {
            keep_warm: false,
            listen: Deploy::DEFAULT_LISTEN,
            outbound: None,
            watch: None,
            strategy: None,
            stop_signal: "SIGTERM",
            stop_timeout: Duration::from_secs(10),
        }
    }
}

/// The `[data]` table: the persistent volume.
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    /// Absolute mount path inside instances.
    pub path: String,
    /// `shared = true`: instances of two releases (and several replicas) may use the
    /// volume at once (the app locks or never writes), so blue-green and replicas > 1
    /// are allowed. Default `false`: the stack deploys by [`Strategy::Recreate`] with
    /// one instance.
    pub shared: bool,
}

/// The `[track]` table: what is watched for updates.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Track {
    /// apt suites to watch. Default: `SUITE-security` (on the security mirror) and
    /// `SUITE-updates` (on the base mirror).
    pub apt: Vec<AptSource>,
    /// How each entry of `apt` is trusted, same order and length as `apt`.
    pub trust: Vec<RepoTrust>,
    /// Language registries to watch (`pypi`, `npm`, `crates`).
    pub registries: Vec<String>,
    /// `auto_rebuild`: which new updates found by a check start a rebuild applying updates
    /// (default `off`). A rebuild never deploys.
    pub auto_rebuild: AutoRebuild,
}

/// The `[track] auto_rebuild` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoRebuild {
    /// Never rebuild on its own (the default).
    #[default]
    Off,
    /// Rebuild when a check finds new security updates (see
    /// [`crate::updates::is_security`]).
    Security,
    /// Rebuild when a check finds any new update.
    All,
}

impl AutoRebuild {
    /// The spelling in stack files: `off`, `security`, `all`.
    pub const NAMES: &'static [&'static str] = &["off", "security", "all"];

    /// Parse the stack-file spelling.
    pub fn parse(s: &str) -> Option<AutoRebuild> {
        match s {
            "off" => Some(AutoRebuild::Off),
            "security" => Some(AutoRebuild::Security),
            "all" => Some(AutoRebuild::All),
            _ => None,
        }
    }

    /// The stack-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoRebuild::Off => "off",
            AutoRebuild::Security => "security",
            AutoRebuild::All => "all",
        }
    }
}

/// How a tracked apt repository's `InRelease` is verified (apt's `Trusted` / `Signed-By`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepoTrust {
    /// `trusted = true`: accept the repository without a valid signature (warned about
    /// on every use). Default `false`.
    pub trusted: bool,
    /// `signed_by = "FILE"`: the keyring that signs this repository (absolute path), instead
    /// of the Debian archive keyring.
    pub signed_by: Option<PathBuf>,
}
