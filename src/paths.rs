//! The two places drover reads and writes: the config directory and the state directory.
//!
//! Config: `--config DIR` / `DROVER_CONFIG`, else `./config` when it exists, else
//! `$XDG_CONFIG_HOME/drover`. State: `--state DIR` / `DROVER_STATE`, else
//! `$XDG_STATE_HOME/drover` (`~/.local/state/drover`). Nothing is written anywhere else:
//! even mmdebstrap's temporary files go under `STATE/tmp`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Resolved config and state directories, with the well-known locations inside them.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Holds `drover.toml` and `stacks/*.toml`.
    pub config: PathBuf,
    /// Holds the database, base cache, images, logs and temporary build trees.
    pub state: PathBuf,
}

impl Paths {
    /// Resolve from explicit values (flags or environment, already merged by clap) or defaults.
    pub fn resolve(config: Option<PathBuf>, state: Option<PathBuf>) -> Result<Paths> {
        let config = match config {
            Some(c) => c,
            None if Path::new("config").is_dir() => PathBuf::from("config"),
            None => xdg("XDG_CONFIG_HOME", ".config")?.join("drover"),
        };
        let state = match state {
            Some(s) => s,
            None => xdg("XDG_STATE_HOME", ".local/state")?.join("drover"),
        };
        let config = absolute(&config)?;
        let state = absolute(&state)?;
        Ok(Paths { config, state })
    }

    /// Create the state directory layout if missing, private to its owner: the state
    /// directory is made 0700 (so no other local user reads build logs, manifests, the
    /// audit or image tars, or runs the setuid binaries of unpacked bases below it), and so
    /// is every directory in it that holds such trees ([`Paths::private_dirs`]): created
    /// 0700, tightened to 0700 when an older drover left it open. That holds even when the
    /// state directory itself is not yours to tighten (root running on another user's
    /// `--state`): the setuid-root binaries of `bases/*/rootfs` and `rootfs/*/rootfs` stay
    /// behind a 0700 parent. (Their setuid bits are kept: the image needs them, and inside
    /// bubblewrap `no_new_privs` makes them inert.)
    ///
    /// Errors: a directory cannot be created; the state directory is group- or
    /// world-writable (another user could replace images or the database); it belongs to
    /// another user and you are not root ("permission denied", naming its owner's uid); a
    /// directory of [`Paths::private_dirs`] is open to others and not yours. Each message
    /// names the directory and the fix.
    pub fn ensure_state(&self) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        let private_dir = |d: &Path| {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .with_context(|| format!("cannot create state directory {}", d.display()))
        };
        private_dir(&self.state)?;
        let meta = std::fs::metadata(&self.state)
            .with_context(|| format!("cannot read state directory {}", self.state.display()))?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            anyhow::bail!(
                "the state directory {} is group- or world-writable (mode {mode:04o}): another \
                 user could replace its images and database; run `chmod 700 {}`",
                self.state.display(),
                self.state.display()
            );
        }
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if meta.uid() != euid && euid != 0 {
            anyhow::bail!(
                "permission denied: the state directory {} belongs to uid {} (you are uid \
                 {euid}); run drover as that user, or give it a state directory of your own \
                 with --state DIR",
                self.state.display(),
                meta.uid()
            );
        }
        if mode & 0o077 != 0 && meta.uid() == euid {
            std::fs::set_permissions(&self.state, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot make {} private", self.state.display()))?;
        }
        for d in self.private_dirs() {
            private_dir(&d)?;
            // Followed if it is a symlink (e.g. to a bigger disk): the target is what counts.
            let m =
                std::fs::metadata(&d).with_context(|| format!("cannot read {}", d.display()))?;
            if m.mode() & 0o077 == 0 {
                continue;
            }
            if m.uid() != euid {
                anyhow::bail!(
                    "{} is open to other users (mode {:04o}) and belongs to uid {}: another \
                     user could read its images or run their setuid binaries; run `chmod 700 {}`",
                    d.display(),
                    m.mode() & 0o7777,
                    m.uid(),
                    d.display()
                );
            }
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot make {} private", d.display()))?;
        }
        Ok(())
    }

    /// The directories of the state directory that [`Paths::ensure_state`] keeps 0700
    /// whatever the state directory's own mode: those holding unpacked root filesystems
    /// (with their setuid binaries), image archives, build trees, instance data, the
    /// repository cache and logs.
    pub fn private_dirs(&self) -> [PathBuf; 12] {
        [
            self.bases(),
            self.deps(),
            self.vm(),
            self.images(),
            self.tmp(),
            self.builds(),
            self.debs(),
            self.state.join("layers"),
            self.rootfs(),
            self.data(),
            self.repos(),
            self.logs(),
        ]
    }

    /// `CONFIG/stacks`.
    pub fn stacks_dir(&self) -> PathBuf {
        self.config.join("stacks")
    }
    /// `CONFIG/drover.toml`.
    pub fn config_file(&self) -> PathBuf {
        self.config.join("drover.toml")
    }
    /// `STATE/drover.db`: the SQLite store.
    pub fn database(&self) -> PathBuf {
        self.state.join("drover.db")
    }
    /// `STATE/bases`: the base-layer cache, one directory per base key.
    pub fn bases(&self) -> PathBuf {
        self.state.join("bases")
    }
    /// `STATE/deps`: the deps (framework) layer cache, one directory per layer key
    /// (`crate::build::deps`).
    pub fn deps(&self) -> PathBuf {
        self.state.join("deps")
    }
    /// `STATE/vm`: the boot layers of VM images (kernel, systemd: `crate::build::vm`), one
    /// directory per key under `vm/boot/`.
    pub fn vm(&self) -> PathBuf {
        self.state.join("vm")
    }
    /// `STATE/debs`: the local .deb cache, one file per SHA-256 (`debs/HEX.deb`), so a base
    /// that changes one package downloads one package and a past lock builds again.
    pub fn debs(&self) -> PathBuf {
        self.state.join("debs")
    }
    /// `STATE/images`: published OCI archives, `images/STACK/BUILD.oci.tar`.
    pub fn images(&self) -> PathBuf {
        self.state.join("images")
    }
    /// `STATE/builds`: per-build working trees while a build runs (removed afterwards).
    pub fn builds(&self) -> PathBuf {
        self.state.join("builds")
    }
    /// `STATE/rootfs`: images unpacked for instances, `rootfs/HEX/rootfs` per image digest
    /// (`deploy::unpack`).
    pub fn rootfs(&self) -> PathBuf {
        self.state.join("rootfs")
    }
    /// `STATE/data`: each stack's data volume, `data/STACK`, bound into its instances.
    pub fn data(&self) -> PathBuf {
        self.state.join("data")
    }
    /// `STATE/repos`: the apt repository cache (Release, Packages, keys).
    pub fn repos(&self) -> PathBuf {
        self.state.join("repos")
    }
    /// `STATE/tmp`: TMPDIR for every tool drover runs.
    pub fn tmp(&self) -> PathBuf {
        self.state.join("tmp")
    }
    /// `STATE/agent.sock`: the agent's Unix socket (its HTTP/JSON API, `deploy::api`).
    pub fn agent_socket(&self) -> PathBuf {
        self.state.join("agent.sock")
    }
    /// `STATE/agent.lock`: held (`flock`, exclusive) by the one agent of this state directory.
    pub fn agent_lock(&self) -> PathBuf {
        self.state.join("agent.lock")
    }
    /// `STATE/agent.pid`: the running agent's PID, in decimal.
    pub fn agent_pid(&self) -> PathBuf {
        self.state.join("agent.pid")
    }
    /// `STATE/logs`: the agent's log (runtime logs are in the store).
    pub fn logs(&self) -> PathBuf {
        self.state.join("logs")
    }
    /// `STATE/logs/agent.log`: the detached agent's stdout and stderr.
    pub fn agent_log(&self) -> PathBuf {
        self.logs().join("agent.log")
    }
}

fn xdg(var: &str, fallback: &str) -> Result<PathBuf> {
    if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(v));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither $DROVER_STATE/--state nor $HOME is set; pass --state DIR")?;
    Ok(PathBuf::from(home).join(fallback))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .context("cannot read the current directory")?
            .join(p))
    }
}
