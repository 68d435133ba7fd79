//! Instances: one running copy of a release, under bubblewrap.
//!
//! The sandbox: read-only root (the unpacked image), fresh `/proc` and `/dev`, tmpfs `/tmp`
//! and `/run`, the stack's data volume `STATE/data/STACK` bound read-write at its `[data]`
//! path, own PID/IPC/UTS namespaces, the host network namespace (the instance listens on a
//! loopback port chosen by the agent), all capabilities dropped, `--die-with-parent`, and a
//! cleared environment holding only the image env, the stack's `[env]`, `PORT` and the
//! secrets. bubblewrap's arguments go through a pipe (`--args 3`), so secret values never
//! show in a process command line. stdout/stderr go line by line to the central log
//! `STATE/logs/STACK.log`, kept after the instance is gone.

use std::io::Write;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::unpack::UnpackedImage;

/// The entrypoint every drover image has: runs `boot`, then execs `run`.
pub const ENTRYPOINT: &str = "/etc/drover/entrypoint";

/// An append-only central log file shared by the instances of one stack.
#[derive(Debug, Clone)]
pub struct LogSink {
    path: PathBuf,
    file: Arc<Mutex<std::fs::File>>,
}

impl LogSink {
    /// Open (creating) `STATE/logs/STACK.log` for appending.
    pub fn open(state: &Path, stack: &str) -> Result<LogSink> {
        let dir = state.join("logs");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{stack}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open the log {}", path.display()))?;
        Ok(LogSink {
            path,
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one line: `TIME INSTANCE STREAM: text`.
    pub fn line(&self, instance: &str, stream: &str, text: &str) {
        let text: String = text
            .trim_end_matches(['\n', '\r'])
            .chars()
            .map(|c| {
                if c.is_control() && c != '\t' {
                    '\u{fffd}'
                } else {
                    c
                }
            })
            .collect();
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            f,
            "{} {instance} {stream}: {text}",
            crate::store::now_rfc3339()
        );
    }

    /// The last `n` lines of the log written by `instance`.
    pub fn tail(&self, instance: &str, n: usize) -> Vec<String> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        let needle = format!(" {instance} ");
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains(&needle))
            .map(String::from)
            .collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }
}

/// Everything needed to start one instance.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Instance id, e.g. `hello-r3-2` (stack, release, sequence).
    pub id: String,
    /// The unpacked image.
    pub image: UnpackedImage,
    /// Host directory of the data volume and its path inside the instance.
    pub data: Option<(PathBuf, String)>,
    /// The stack's `[env]` (overrides the image env of the same name).
    pub env: Vec<(String, String)>,
    /// Secret values (never logged).
    pub secrets: Vec<(String, String)>,
    /// Loopback port the instance must listen on (`PORT`).
    pub port: u16,
}

/// The bubblewrap options for `spec`, secrets included. They go through `--args 3`; the
/// command (`-- /etc/drover/entrypoint`) follows on the real command line (bubblewrap takes
/// only options from `--args`).
pub fn bwrap_args(spec: &InstanceSpec) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&["--ro-bind", &spec.image.rootfs.to_string_lossy(), "/"]);
    push(&["--proc", "/proc", "--dev", "/dev"]);
    push(&["--tmpfs", "/tmp", "--tmpfs", "/run"]);
    if let Some((host, path)) = &spec.data {
        push(&["--bind", &host.to_string_lossy(), path]);
    }
    push(&[
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--hostname",
        &spec.id,
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
    ]);
    let mut env: Vec<(String, String)> = spec.image.env.clone();
    let mut set = |k: &str, v: &str| {
        env.retain(|(ek, _)| ek != k);
        env.push((k.to_string(), v.to_string()));
    };
    for (k, v) in &spec.env {
        set(k, v);
    }
    set("PORT", &spec.port.to_string());
    set("DROVER_INSTANCE", &spec.id);
    for (k, v) in &spec.secrets {
        set(k, v);
    }
    for (k, v) in &env {
        push(&["--setenv", k, v]);
    }
    push(&["--chdir", &spec.image.working_dir]);
    a
}

/// A free TCP port on 127.0.0.1 (bound then released; the kernel does not hand it out
/// again right away).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(l.local_addr()?.port())
}

/// Start `spec` under bubblewrap. stdout/stderr lines go to `log` (tagged with the
/// instance id). The returned child is the bubblewrap process; killing it ends the
/// instance (its PID namespace dies with it).
///
/// Must be called from a long-lived runtime thread: `--die-with-parent` follows the
/// spawning thread.
pub fn spawn(spec: &InstanceSpec, log: &LogSink) -> Result<tokio::process::Child> {
    let mut payload = Vec::new();
    for a in bwrap_args(spec) {
        if a.contains('\0') {
            bail!(
                "an argument or environment value for {} holds a NUL byte",
                spec.id
            );
        }
        payload.extend_from_slice(a.as_bytes());
        payload.push(0);
    }
    if payload.len() > 60_000 {
        bail!("the environment of {} is too large (over 60 kB)", spec.id);
    }
    let mut fds = [0i32; 2];
    // SAFETY: plain pipe2 call with a valid array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot create a pipe");
    }
    let (r, w) = (fds[0], fds[1]);
    // SAFETY: we own `w`; the payload fits in the pipe buffer (64 KiB), so this never blocks.
    let mut wf = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(w) };
    let written = wf.write_all(&payload);
    drop(wf);
    let rf = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(r) };
    written.context("cannot write bubblewrap's arguments")?;
    let mut cmd = std::process::Command::new("bwrap");
    cmd.args(["--args", "3", "--", ENTRYPOINT])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if r == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(r, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .context("cannot run bwrap (install the bubblewrap package: bash .ci/setup)")?;
    drop(rf);
    for (stream, name) in [
        (
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            "stdout",
        ),
        (
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            "stderr",
        ),
    ] {
        if let Some(s) = stream {
            let log = log.clone();
            let id = spec.id.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(s).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    log.line(&id, name, &l);
                }
            });
        }
    }
    Ok(child)
}

/// Longest a `test` script may run.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Run the stack's `test` script inside the image of `spec` (same sandbox, but no data
/// volume and no secrets), with `TARGET_URL=http://127.0.0.1:PORT` pointing at the
/// instance under test. Output goes to `log` as `ID-test`. `Err` holds the exit status and
/// the last output lines.
pub async fn run_test(spec: &InstanceSpec, script: &str, log: &LogSink) -> Result<(), String> {
    let test_spec = InstanceSpec {
        id: format!("{}-test", spec.id),
        data: None,
        secrets: Vec::new(),
        env: {
            let mut e = spec.env.clone();
            e.push((
                "TARGET_URL".into(),
                format!("http://127.0.0.1:{}", spec.port),
            ));
            e
        },
        ..spec.clone()
    };
    let mut cmd = tokio::process::Command::new("bwrap");
    cmd.args(bwrap_args(&test_spec))
        .args(["--", "/bin/sh", "-c", script])
        .env_clear()
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(TEST_TIMEOUT, cmd.output()).await {
        Err(_) => return Err(format!("timed out after {TEST_TIMEOUT:?}")),
        Ok(Err(e)) => return Err(format!("cannot run bwrap: {e}")),
        Ok(Ok(o)) => o,
    };
    let mut lines = Vec::new();
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        for l in String::from_utf8_lossy(bytes).lines() {
            log.line(&test_spec.id, stream, l);
            lines.push(l.to_string());
        }
    }
    if out.status.success() {
        Ok(())
    } else {
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        Err(format!("{}; output: {tail}", out.status))
    }
}

/// The outcome of one health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// HTTP status, if a response came back.
    pub status: Option<u16>,
    /// What happened: the body's first 200 characters, or the connection error.
    pub detail: String,
}

impl CheckResult {
    /// 2xx within the timeout.
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl std::fmt::Display for CheckResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "HTTP {s}, body {:?}", self.detail),
            None => write!(f, "no response: {}", self.detail),
        }
    }
}

/// One active health check: `GET path` on `127.0.0.1:port` with `timeout`.
pub async fn check(port: u16, path: &str, timeout: Duration) -> CheckResult {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: drover-health\r\n\
                 Connection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
        let mut buf = Vec::new();
        s.take(65536).read_to_end(&mut buf).await?;
        Ok::<Vec<u8>, std::io::Error>(buf)
    };
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => CheckResult {
            status: None,
            detail: format!("timed out after {timeout:?}"),
        },
        Ok(Err(e)) => CheckResult {
            status: None,
            detail: e.to_string(),
        },
        Ok(Ok(buf)) => {
            let text = String::from_utf8_lossy(&buf);
            let status = text
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|s| s.parse().ok());
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            CheckResult {
                status,
                detail: body.trim().chars().take(200).collect(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> InstanceSpec {
        InstanceSpec {
            id: "s-r1-1".into(),
            image: UnpackedImage {
                digest: "sha256:x".into(),
                rootfs: "/state/rootfs/x/rootfs".into(),
                env: vec![("PATH".into(), "/usr/bin".into()), ("A".into(), "1".into())],
                working_dir: "/opt/app".into(),
                command: vec![ENTRYPOINT.into()],
            },
            data: Some(("/state/data/s".into(), "/var/lib/s".into())),
            env: vec![("A".into(), "2".into())],
            secrets: vec![("TOKEN".into(), "v".into())],
            port: 4000,
        }
    }

    #[test]
    fn sandbox_arguments_hold_the_isolation_flags_and_env() {
        let a = bwrap_args(&spec()).join(" ");
        for f in [
            "--ro-bind /state/rootfs/x/rootfs /",
            "--proc /proc --dev /dev",
            "--tmpfs /tmp --tmpfs /run",
            "--bind /state/data/s /var/lib/s",
            "--unshare-pid --unshare-ipc --unshare-uts",
            "--die-with-parent",
            "--clearenv",
            "--setenv PATH /usr/bin",
            "--setenv A 2",
            "--setenv PORT 4000",
            "--setenv TOKEN v",
            "--chdir /opt/app",
        ] {
            assert!(a.contains(f), "missing {f:?} in {a}");
        }
        assert!(!a.contains("--setenv A 1"));
        assert!(
            !a.contains("--unshare-net"),
            "instances share the host network"
        );
    }

    #[tokio::test]
    async fn checks_report_status_body_and_refusals() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b).await;
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\n\r\nnot ready")
                .await
                .unwrap();
        });
        let r = check(port, "/up", Duration::from_secs(2)).await;
        assert_eq!(r.status, Some(503));
        assert_eq!(r.detail, "not ready");
        assert!(!r.ok());
        let r = check(free_port().unwrap(), "/up", Duration::from_secs(2)).await;
        assert_eq!(r.status, None);
        assert!(!r.ok());
    }
}
