//! Running tools for a build: every child's output is streamed line by line into the build
//! log, and children that touch a root filesystem run in a private mount namespace so a
//! killed build never leaves mounts on the host.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::IMAGE_PATH_ENV;
use crate::jobs::{BuildEvent, CancelToken, Cancelled, Stream};
use crate::store::builds::LogLine;
use crate::store::{now_rfc3339, Store};

/// Where a build's log lines go: the store (batched) and the progress observer.
pub struct BuildLog<'a> {
    store: Option<&'a mut Store>,
    build_id: i64,
    seq: i64,
    pending: Vec<LogLine>,
    last_flush: Instant,
    observer: &'a mut dyn FnMut(&BuildEvent),
    cancel: CancelToken,
}

/// Batch size and age after which buffered log lines are written to the store.
const FLUSH_LINES: usize = 256;
const FLUSH_AGE: Duration = Duration::from_millis(250);

impl<'a> BuildLog<'a> {
    /// A log for `build_id` writing into `store` and reporting to `observer`.
    pub fn new(
        store: &'a mut Store,
        build_id: i64,
        observer: &'a mut dyn FnMut(&BuildEvent),
    ) -> Self {
        BuildLog {
            store: Some(store),
            build_id,
            seq: 0,
            pending: Vec::new(),
            last_flush: Instant::now(),
            observer,
            cancel: CancelToken::new(),
        }
    }

    /// A log kept by nobody: lines go to `observer` only (`drover lock`, which makes a
    /// base but records no build).
    pub fn detached(observer: &'a mut dyn FnMut(&BuildEvent)) -> Self {
        BuildLog {
            store: None,
            build_id: 0,
            seq: 0,
            pending: Vec::new(),
            last_flush: Instant::now(),
            observer,
            cancel: CancelToken::new(),
        }
    }

    /// Use `cancel` to stop running children and the pipeline.
    pub fn with_cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Fail with [`Cancelled`] if the build was cancelled.
    pub fn check_cancel(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            return Err(Cancelled.into());
        }
        Ok(())
    }

    /// Record one line. Trailing `\r`/`\n` are removed; invalid UTF-8 is replaced.
    pub fn line(&mut self, stream: Stream, text: &str) {
        let text = text.trim_end_matches(['\n', '\r']).to_string();
        let seq = self.seq;
        self.seq += 1;
        self.pending.push(LogLine {
            seq,
            ts: now_rfc3339(),
            stream: stream.as_str().to_string(),
            line: text.clone(),
        });
        if self.pending.len() >= FLUSH_LINES || self.last_flush.elapsed() >= FLUSH_AGE {
            self.flush();
        }
        (self.observer)(&BuildEvent::Log {
            build_id: self.build_id,
            seq,
            stream,
            line: text,
        });
    }

    /// A drover message (step headings, errors).
    pub fn say(&mut self, text: &str) {
        self.line(Stream::Drover, text);
    }

    /// Emit a non-log event.
    pub fn event(&mut self, e: BuildEvent) {
        (self.observer)(&e);
    }

    /// Write buffered lines to the store. A store error is reported on stderr once per
    /// batch: losing log lines must not fail the build itself.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Some(store) = self.store.as_deref_mut() {
            if let Err(e) = store.append_logs(self.build_id, &self.pending) {
                eprintln!("drover: cannot store build log lines: {e:#}");
            }
        }
        self.pending.clear();
        self.last_flush = Instant::now();
    }

    /// The store, for the pipeline's own writes.
    ///
    /// Errors: a [`BuildLog::detached`] log has none.
    pub fn store(&mut self) -> Result<&mut Store> {
        self.flush();
        self.store
            .as_deref_mut()
            .context("this step needs the store, and the log has none")
    }

    /// The build id.
    pub fn build_id(&self) -> i64 {
        self.build_id
    }
}

impl Drop for BuildLog<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Run `cmd` with stdin closed and stdout/stderr streamed into `log` line by line.
/// The child leads its own process group, so cancelling the build kills it and everything
/// it started (apt, dpkg, the sandboxed script).
///
/// Returns the exit status. Errors: the program cannot be started (names it and how to
/// install it); [`Cancelled`] when the build was cancelled meanwhile.
pub fn run_logged(mut cmd: Command, log: &mut BuildLog<'_>) -> Result<ExitStatus> {
    log.check_cancel()?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "`{program}` is not installed; install it with `apt-get install {}`",
                package_of(&program)
            )
        } else {
            anyhow::anyhow!("cannot start `{program}`: {e}")
        }
    })?;
    let (tx, rx) = mpsc::channel::<(Stream, String)>();
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(spawn_reader(out, Stream::Stdout, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(spawn_reader(err, Stream::Stderr, tx.clone()));
    }
    drop(tx);
    // Lines go to the store at least every FLUSH_AGE, also when the child goes quiet, so
    // another process (`drover logs`, the TUI) sees the latest line.
    let pgid = child.id() as i32;
    let mut killed = false;
    loop {
        if !killed && log.cancel.is_cancelled() {
            // SAFETY: plain syscall; a negative pid addresses the child's process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            killed = true;
            log.say(&format!("cancelled: stopped `{program}`"));
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((stream, line)) => log.line(stream, &line),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if log.last_flush.elapsed() >= FLUSH_AGE {
                    log.flush();
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for `{program}`"))?;
    log.flush();
    if killed {
        return Err(Cancelled.into());
    }
    Ok(status)
}

fn spawn_reader<R: Read + Send + 'static>(
    r: R,
    stream: Stream,
    tx: mpsc::Sender<(Stream, String)>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    // Progress bars redraw with \r: keep the last segment.
                    let text = String::from_utf8_lossy(&buf);
                    let text = text.trim_end_matches(['\n', '\r']);
                    let last = text.rsplit('\r').next().unwrap_or(text);
                    if tx.send((stream, last.to_string())).is_err() {
                        break;
                    }
                }
            }
        }
    })
}

fn package_of(program: &str) -> &str {
    match program {
        "bwrap" => "bubblewrap",
        "unshare" => "util-linux",
        other => other,
    }
}

/// Where the host's CA bundle appears to a build script (under the sandbox's own /tmp
/// tmpfs: never part of the image).
pub const HOST_CA_IN_BUILD: &str = "/tmp/drover-host-ca.crt";

/// Variables that point TLS clients of a build script at [`HOST_CA_IN_BUILD`]: OpenSSL
/// (Python's ssl, curl, git), pip, requests, Node.js (added to its own roots).
const CA_VARIABLES: &[&str] = &[
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
];

/// The host's CA bundle: `$SSL_CERT_FILE` when it names a file, else Debian's
/// `/etc/ssl/certs/ca-certificates.crt` (`update-ca-certificates`, which holds the
/// operator's own CAs, e.g. a TLS-inspecting proxy's); `None` when neither exists.
pub fn host_ca_bundle() -> Option<std::path::PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| {
            let debian = Path::new("/etc/ssl/certs/ca-certificates.crt");
            debian.is_file().then(|| debian.to_path_buf())
        })
}

/// The bubblewrap command that runs a stack's `[scripts].build` (bound read-only at
/// `script`) as `/bin/sh -e` inside the image root `merged`, with a fresh /proc, /dev,
/// /tmp and /run, the host's resolv.conf, private PID/IPC/UTS namespaces, and an
/// environment of only PATH ([`super::IMAGE_PATH_ENV`]), HOME, LANG, DEBIAN_FRONTEND and the
/// stack's `env`. The host's CA bundle ([`host_ca_bundle`]) is bound at
/// [`HOST_CA_IN_BUILD`] and named by the usual variables, so downloads the script makes
/// (pip, npm) trust what the host trusts, a TLS-inspecting proxy included; the stack's
/// `env` may override them. The caller adds [`private_mounts`] (for the overlay at
/// `merged`).
pub fn build_script_command(
    merged: &Path,
    script: &Path,
    env: &BTreeMap<String, String>,
) -> Command {
    let mut cmd = Command::new("bwrap");
    cmd.arg("--bind")
        .arg(merged)
        .arg("/")
        // /tmp world-writable and sticky like on a real system: apt drops to the `_apt`
        // user, which must write its temporary files there.
        .args([
            "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp", "--tmpfs",
            "/run",
        ])
        .args(["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"])
        .arg("--ro-bind")
        .arg(script)
        .arg("/tmp/drover-build")
        .args([
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--hostname",
            "drover-build",
        ])
        .args(["--die-with-parent", "--new-session", "--clearenv"])
        .args(["--setenv", "PATH", IMAGE_PATH_ENV])
        .args(["--setenv", "HOME", "/root"])
        .args(["--setenv", "LANG", "C.UTF-8"])
        .args(["--setenv", "DEBIAN_FRONTEND", "noninteractive"]);
    if let Some(bundle) = host_ca_bundle() {
        cmd.arg("--ro-bind").arg(bundle).arg(HOST_CA_IN_BUILD);
        for v in CA_VARIABLES {
            cmd.args(["--setenv", v, HOST_CA_IN_BUILD]);
        }
    }
    for (k, v) in env {
        cmd.arg("--setenv").arg(k).arg(v);
    }
    cmd.args(["--chdir", "/", "/bin/sh", "-e", "/tmp/drover-build"]);
    cmd
}

/// Run a stack script (`[scripts].deps` or `.build`, its text) in the build sandbox
/// ([`build_script_command`]) on `overlay`, mounted in a private mount namespace
/// ([`private_mounts`]), its output streamed into `log`. The script is written to
/// `script_path` first (outside the image; bound read-only).
///
/// Returns the exit status. Errors: those of [`private_mounts`] and [`run_logged`].
pub fn run_stack_script(
    script: &str,
    script_path: &Path,
    overlay: Overlay<'_>,
    env: &BTreeMap<String, String>,
    log: &mut BuildLog<'_>,
) -> Result<ExitStatus> {
    std::fs::write(script_path, super::app::build_script_text(script))
        .with_context(|| format!("cannot write {}", script_path.display()))?;
    let mut cmd = build_script_command(overlay.merged, script_path, env);
    private_mounts(&mut cmd, Some(overlay))?;
    run_logged(cmd, log)
}

/// An overlayfs to mount for a child: `lowers` top first (e.g. the deps layer's tree, then
/// the base's), changes going to `upper` (with overlayfs' `work` directory on the same
/// filesystem), seen at `merged`.
#[derive(Debug, Clone, Copy)]
pub struct Overlay<'a> {
    /// Read-only lower trees, the topmost first (overlayfs(5) `lowerdir=TOP:…:BOTTOM`).
    pub lowers: &'a [&'a Path],
    /// The upper directory that receives every change.
    pub upper: &'a Path,
    /// overlayfs' work directory (empty, on the upper's filesystem).
    pub work: &'a Path,
    /// The mount point.
    pub merged: &'a Path,
}

/// Make `cmd` run in a private mount namespace (mounts it makes vanish with it) and die
/// with drover (`PR_SET_PDEATHSIG`). If `overlay` is given, mount it at its `merged`
/// inside that namespace before exec.
///
/// Errors: paths that overlayfs options cannot express (containing `,`, `:` or `\`), or
/// an overlay without a lower tree.
pub fn private_mounts(cmd: &mut Command, overlay: Option<Overlay<'_>>) -> Result<()> {
    let mount_args = match overlay {
        None => None,
        Some(o) => {
            if o.lowers.is_empty() {
                bail!("an overlay needs at least one lower tree");
            }
            for p in o.lowers.iter().chain([&o.upper, &o.work, &o.merged]) {
                let s = p.to_string_lossy();
                if s.contains([',', ':', '\\']) {
                    bail!(
                        "path {} contains ',', ':' or '\\', which overlayfs cannot mount; \
                         use a --state directory without them",
                        p.display()
                    );
                }
            }
            let lowers: Vec<String> = o.lowers.iter().map(|p| p.display().to_string()).collect();
            let opts = format!(
                // redirect_dir/metacopy off: the upper dir must hold every change as a
                // whole file, or the layer written from it would be incomplete.
                "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off",
                lowers.join(":"),
                o.upper.display(),
                o.work.display()
            );
            Some((
                CString::new(o.merged.to_string_lossy().as_bytes())?,
                CString::new(opts)?,
            ))
        }
    };
    // SAFETY: the closure runs between fork and exec and only makes raw syscalls on
    // pre-built C strings (async-signal-safe).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if let Some((merged, opts)) = &mount_args {
                if libc::mount(
                    c"overlay".as_ptr(),
                    merged.as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    opts.as_ptr() as *const libc::c_void,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_script_sees_the_host_ca_bundle_under_tmp_and_its_variables() {
        let mut env = BTreeMap::new();
        env.insert("PIP_CERT".to_string(), "/etc/my.crt".to_string());
        let cmd = build_script_command(Path::new("/m"), Path::new("/s"), &env);
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let pos = |seq: &[&str]| args.windows(seq.len()).position(|w| w == seq);
        match host_ca_bundle() {
            Some(b) => {
                let b = b.to_string_lossy().into_owned();
                assert!(
                    pos(&["--ro-bind", &b, HOST_CA_IN_BUILD]).is_some(),
                    "{args:?}"
                );
                assert!(pos(&["--setenv", "SSL_CERT_FILE", HOST_CA_IN_BUILD]).is_some());
                // The stack's own value comes later and wins.
                let ours = pos(&["--setenv", "PIP_CERT", HOST_CA_IN_BUILD]).unwrap();
                let theirs = pos(&["--setenv", "PIP_CERT", "/etc/my.crt"]).unwrap();
                assert!(ours < theirs);
                assert!(
                    pos(&["--tmpfs", "/tmp"]).unwrap() < ours,
                    "bound inside the tmpfs"
                );
            }
            None => assert!(!args.iter().any(|a| a == HOST_CA_IN_BUILD), "{args:?}"),
        }
    }
}
