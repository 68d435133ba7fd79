//! Instances: one running copy of a release, under bubblewrap.
//!
//! The sandbox: read-only root (the image: an overlayfs of its cached layers, mounted in
//! the sandbox's own mount namespace, see [`super::unpack::mount`]), fresh `/proc` and
//! `/dev`, tmpfs `/tmp`
//! and `/run`, the stack's data volume `STATE/data/STACK` bound read-write at its `[data]`
//! path, own PID/IPC/UTS namespaces, its own network namespace (the instance listens on
//! `PORT` inside it; only the agent reaches it, see [`super::netns`]; `pasta` gives it
//! outbound access), all capabilities dropped, `--die-with-parent`, and a
//! cleared environment holding only the image env, the stack's `[env]`, `PORT` and the
//! secrets. bubblewrap's arguments go through a pipe (`--args 3`), so secret values never
//! show in a process command line. stdout/stderr go line by line to the central runtime log
//! ([`super::runtime_log`], in the store), kept after the instance is gone.

use std::io::Write;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, BufReader};

pub use super::health::{check, CheckResult};
use super::unpack::UnpackedImage;

/// The entrypoint every drover image has: runs `boot`, then execs `run`.
pub const ENTRYPOINT: &str = "/etc/drover/entrypoint";

pub use super::runtime_log::LogSink;

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
    /// Loopback port the instance must listen on (`PORT`), inside its own network
    /// namespace (every instance may have the same one).
    pub port: u16,
    /// Outbound network access through `pasta` ([`super::netns::start_outbound`]).
    pub outbound: bool,
    /// Listeners the agent opens inside the instance's network namespace before its
    /// command starts, each piped to a linked stack's route ([`super::links`]).
    pub links: Vec<super::links::LinkPipe>,
}

/// The bubblewrap options for `spec`, secrets included, in a network namespace of its own
/// ([`super::netns`]). They go through `--args 3`; the command (`-- /etc/drover/entrypoint`)
/// follows on the real command line (bubblewrap takes only options from `--args`).
pub fn bwrap_args(spec: &InstanceSpec) -> Vec<String> {
    let mut a = vec!["--unshare-net".to_string()];
    a.extend(bwrap_args_shared_net(spec));
    a
}

/// [`bwrap_args`] without `--unshare-net`: for a sandbox that joins an existing namespace
/// before bubblewrap runs (the `test` step joins its instance's).
fn bwrap_args_shared_net(spec: &InstanceSpec) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&["--ro-bind", &spec.image.rootfs.to_string_lossy(), "/"]);
    push(&["--proc", "/proc", "--dev", "/dev"]);
    push(&["--tmpfs", "/tmp", "--tmpfs", "/run"]);
    if let Some((host, path)) = &spec.data {
        push(&["--bind", &host.to_string_lossy(), path]);
    }
    if let Some((uid, gid)) = spec.image.user.filter(|(u, _)| *u != 0) {
        // The image's `User`: a user namespace maps it to the agent's uid, so the data
        // volume (owned by the agent) is the instance's own, and the app is not root.
        push(&[
            "--unshare-user",
            "--uid",
            &uid.to_string(),
            "--gid",
            &gid.to_string(),
        ]);
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

/// A running sandbox: the bubblewrap process we started (the "monitor", outside the
/// sandbox) and the one it forks into the new PID namespace, where it is PID 1 and runs
/// the command.
///
/// Killing only the monitor is not enough: until its child has set up `--die-with-parent`
/// (a few ms after the start), the child outlives it, is reparented to the host's PID 1
/// and, being a namespace init, ignores SIGTERM. So [`Sandbox::kill`] kills the namespace
/// init itself (the kernel then kills every process in the namespace), found through
/// bubblewrap's `--info-fd`, and reaps the monitor.
#[derive(Debug)]
pub struct Sandbox {
    child: tokio::process::Child,
    /// The sandbox's init and network namespace, from `--info-fd` (`{"child-pid": N}`,
    /// written right after the fork).
    net: super::netns::InstanceNet,
    /// Dropped when the sandbox is over: stops its `pasta`.
    ended: Option<tokio::sync::oneshot::Sender<()>>,
}

/// How long [`Sandbox::kill`] waits for bubblewrap to report its child, and then for the
/// monitor to exit once its child is dead.
pub const KILL_WAIT: Duration = Duration::from_secs(2);

impl Sandbox {
    /// PID of the monitor bubblewrap process on the host (`None` once reaped).
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// The instance's network namespace: how the router, the health checks and the `test`
    /// step reach it.
    pub fn net(&self) -> &super::netns::InstanceNet {
        &self.net
    }

    /// Wait until the sandbox ends by itself: the monitor exits with its child's status.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let s = self.child.wait().await;
        self.ended.take();
        s
    }

    /// Stop the sandbox gracefully: send `signal` to the processes its init runs (the
    /// entrypoint, or the `run` command it exec'd), wait at most `timeout` for them to
    /// end, then [`Sandbox::kill`] whatever is left. Returns the monitor's exit status.
    pub async fn stop(
        &mut self,
        signal: i32,
        timeout: Duration,
    ) -> std::io::Result<std::process::ExitStatus> {
        if let Ok(Some(s)) = self.child.try_wait() {
            self.ended.take();
            return Ok(s);
        }
        let inner = self.net.joined(KILL_WAIT).await.map(|j| j.pid);
        if let (Some(init), Some(monitor)) = (inner, self.child.id()) {
            let children = children_of(init);
            if super::netns::parent_of(init) == Some(monitor) && !children.is_empty() {
                for c in children {
                    signal_child_of(c, init as u32, signal);
                }
                if let Ok(s) = tokio::time::timeout(timeout, self.child.wait()).await {
                    self.ended.take();
                    return s;
                }
            }
        }
        self.kill().await
    }

    /// Kill everything in the sandbox, at any moment of its life (even while bubblewrap
    /// still sets it up), and reap the monitor. Returns the monitor's exit status.
    pub async fn kill(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let ended = self.ended.take();
        if let Ok(Some(s)) = self.child.try_wait() {
            return Ok(s);
        }
        let _ended = ended;
        let inner = self.net.joined(KILL_WAIT).await.map(|j| j.pid);
        if let (Some(pid), Some(monitor)) = (inner, self.child.id()) {
            signal_child_of(pid, monitor, libc::SIGKILL);
            // The monitor reaps its child and exits on its own; SIGKILL it if it does not.
            if let Ok(s) = tokio::time::timeout(KILL_WAIT, self.child.wait()).await {
                return s;
            }
        }
        let _ = self.child.start_kill();
        self.child.wait().await
    }
}

/// The children of `pid` (`/proc/PID/task/PID/children`, Linux ≥ 3.5 with
/// CONFIG_PROC_CHILDREN); empty when it cannot be read.
fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Send `signal` to `pid` if it is still a child of `parent` (so a recycled PID is never
/// hit): a pidfd pins the process, then its parent is checked in `/proc`.
fn signal_child_of(pid: i32, parent: u32, signal: i32) {
    // SAFETY: pidfd_open takes a pid and flags; the returned fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return; // already gone
    }
    // SAFETY: fd is a fresh pidfd we own.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    if super::netns::parent_of(pid) == Some(parent) {
        // SAFETY: pidfd_send_signal on a pidfd we own, no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: plain pipe2 call with a valid array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot create a pipe");
    }
    // SAFETY: pipe2 just returned these two fds; nothing else owns them.
    Ok(unsafe {
        use std::os::fd::FromRawFd;
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// Start `spec` under bubblewrap, running the image's [`ENTRYPOINT`]. stdout/stderr lines
/// go to `log` (tagged with the instance id). [`Sandbox::kill`] ends the instance and every
/// process in it.
///
/// Must be called from a long-lived runtime thread: `--die-with-parent` follows the
/// spawning thread.
pub fn spawn(spec: &InstanceSpec, log: &LogSink) -> Result<Sandbox> {
    spawn_command(spec, log, &[ENTRYPOINT])
}

/// [`spawn`] with another `command` (absolute path inside the image, then arguments).
/// The real command line is `bwrap --args 3 --info-fd 4 --block-fd 5 --hostname ID --
/// COMMAND...` (the command starts once its network is ready, see
/// [`super::netns::InstanceNet::follow`]): the
/// instance id shows in `ps`; everything else (secrets too) goes through the pipe on fd 3.
pub fn spawn_command(spec: &InstanceSpec, log: &LogSink, command: &[&str]) -> Result<Sandbox> {
    let mut payload = Vec::new();
    // `--hostname ID` goes on the real command line (for `ps`), not twice.
    let mut args = bwrap_args(spec);
    if let Some(i) = args.iter().position(|a| a == "--hostname") {
        args.drain(i..(i + 2).min(args.len()));
    }
    for a in args {
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
    let (args_r, args_w) = pipe()?;
    // The payload fits in the pipe buffer (64 KiB), so this never blocks.
    std::fs::File::from(args_w)
        .write_all(&payload)
        .context("cannot write bubblewrap's arguments")?;
    let (info_r, info_w) = pipe()?;
    // bubblewrap waits on fd 5 before it runs the command: the agent writes once the
    // instance's network is ready (pasta attached).
    let (block_r, block_w) = pipe()?;
    let (r, w, b) = {
        use std::os::fd::AsRawFd;
        (args_r.as_raw_fd(), info_w.as_raw_fd(), block_r.as_raw_fd())
    };
    let mut cmd = std::process::Command::new("bwrap");
    cmd.args([
        "--args",
        "3",
        "--info-fd",
        "4",
        "--block-fd",
        "5",
        "--hostname",
        &spec.id,
        "--",
    ])
    .args(command)
    .env_clear()
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    super::unpack::mount::prepare(&mut cmd, &spec.image)?;
    let open_files = super::instance_open_files();
    // SAFETY: only async-signal-safe calls (fcntl, dup2, prctl, setrlimit) between fork
    // and exec.
    unsafe {
        cmd.pre_exec(move || {
            let check = |rc: i32| {
                if rc < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(rc)
                }
            };
            // Move both ends out of the way first (either may be 3 or 4), then into place;
            // dup2 clears close-on-exec on the copies.
            let r2 = check(libc::fcntl(r, libc::F_DUPFD_CLOEXEC, 10))?;
            let w2 = check(libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 10))?;
            let b2 = check(libc::fcntl(b, libc::F_DUPFD_CLOEXEC, 10))?;
            check(libc::dup2(r2, 3))?;
            check(libc::dup2(w2, 4))?;
            check(libc::dup2(b2, 5))?;
            // The monitor dies with the agent (its child has `--die-with-parent`).
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
            // The open-file limit the agent started with, not the one it raised.
            if let Some(l) = &open_files {
                check(libc::setrlimit(libc::RLIMIT_NOFILE, l))?;
            }
            Ok(())
        });
    }
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start the sandbox of {} (bwrap, from the bubblewrap package: bash \
                 .ci/setup; or the overlay mount of its image on {})",
                spec.id,
                spec.image.rootfs.display()
            )
        })?;
    drop((args_r, info_w, block_r));
    let info = tokio::net::unix::pipe::Receiver::from_owned_fd(info_r).ok();
    let (ended, end) = tokio::sync::oneshot::channel();
    let net = super::netns::InstanceNet::follow(
        &spec.id,
        child.id(),
        info,
        spec.outbound,
        spec.links.clone(),
        log,
        end,
        block_w,
    );
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
    Ok(Sandbox {
        child,
        net,
        ended: Some(ended),
    })
}

/// Longest a `test` script may run.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Run the stack's `test` script inside the image of `spec` (same sandbox, but no data
/// volume and no secrets), in the network namespace `net` of the instance under test, with
/// `TARGET_URL=http://127.0.0.1:PORT` pointing at it. Output goes to `log` as `ID-test`.
/// `Err` holds the exit status and the last output lines.
pub async fn run_test(
    spec: &InstanceSpec,
    net: &super::netns::InstanceNet,
    script: &str,
    log: &LogSink,
) -> Result<(), String> {
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
    let out = run_joined(&test_spec, net, script, TEST_TIMEOUT).await?;
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

/// Run `script` with `/bin/sh -c` in a sandbox of `spec`'s image (no `--unshare-net`)
/// that joins the network namespace `net` before bubblewrap runs, for at most `timeout`.
/// `Err`: the instance is gone, bubblewrap could not start, or the timeout passed.
async fn run_joined(
    spec: &InstanceSpec,
    net: &super::netns::InstanceNet,
    script: &str,
    timeout: Duration,
) -> Result<std::process::Output, String> {
    let joined = net
        .joined(super::netns::READY_WAIT)
        .await
        .ok_or_else(|| "the instance is gone".to_string())?;
    let mut std_cmd = std::process::Command::new("bwrap");
    std_cmd
        .args(bwrap_args_shared_net(spec))
        .args(["--", "/bin/sh", "-c", script])
        .env_clear()
        .stdin(Stdio::null());
    let ns = std::os::fd::AsRawFd::as_raw_fd(&joined.ns);
    // SAFETY: join_in_child makes one async-signal-safe syscall; `joined` (and so `ns`)
    // lives until the command has run.
    unsafe {
        std_cmd.pre_exec(move || super::netns::join_in_child(ns));
    }
    super::unpack::mount::prepare(&mut std_cmd, &spec.image).map_err(|e| format!("{e:#}"))?;
    let mut cmd = tokio::process::Command::from(std_cmd);
    cmd.kill_on_drop(true);
    match tokio::time::timeout(timeout, cmd.output()).await {
        Err(_) => Err(format!("timed out after {timeout:?}")),
        Ok(Err(e)) => Err(format!("cannot run bwrap: {e}")),
        Ok(Ok(o)) => Ok(o),
    }
}

/// A `[health] command` check of the instance `spec` runs: the command in the same image,
/// as the same user, in the instance's network namespace `net`, without its data volume
/// or secrets, with `PORT` set; passed when it exits 0 within `timeout`. The detail is
/// the exit status and the last line of its output (at most 200 characters).
pub async fn check_command(
    spec: &InstanceSpec,
    net: &super::netns::InstanceNet,
    command: &str,
    timeout: Duration,
) -> CheckResult {
    let probe = InstanceSpec {
        id: format!("{}-health", spec.id),
        data: None,
        secrets: Vec::new(),
        ..spec.clone()
    };
    match run_joined(&probe, net, command, timeout).await {
        Err(e) => CheckResult::failed(None, e),
        Ok(out) => {
            let text = [&out.stdout[..], &out.stderr[..]].concat();
            let last = String::from_utf8_lossy(&text)
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .chars()
                .take(200)
                .collect::<String>();
            let detail = format!("`{command}` {}: {last}", out.status);
            if out.status.success() {
                CheckResult::passed(detail)
            } else {
                CheckResult::failed(None, detail)
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
                layers: vec![],
                env: vec![("PATH".into(), "/usr/bin".into()), ("A".into(), "1".into())],
                working_dir: "/opt/app".into(),
                user: None,
                command: vec![ENTRYPOINT.into()],
            },
            data: Some(("/state/data/s".into(), "/var/lib/s".into())),
            env: vec![("A".into(), "2".into())],
            secrets: vec![("TOKEN".into(), "v".into())],
            port: 4000,
            outbound: false,
            links: Vec::new(),
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
            a.starts_with("--unshare-net "),
            "own network namespace: {a}"
        );
        assert!(!bwrap_args_shared_net(&spec())
            .join(" ")
            .contains("--unshare-net"));
    }

    /// PIDs of host processes that belong to instance `id`: its id on their command line
    /// (the bubblewrap processes) or `DROVER_INSTANCE=id` in their environment (the
    /// command). Zombies have neither, so only live processes count.
    fn processes_of(id: &str) -> Vec<(u32, String)> {
        let marker = format!("DROVER_INSTANCE={id}");
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let read = |f: &str| std::fs::read(e.path().join(f)).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&read("cmdline")).replace('\0', " ");
            let env = read("environ");
            let in_env = env.split(|b| *b == 0).any(|v| v == marker.as_bytes());
            if cmdline.split(' ').any(|a| a == id) || in_env {
                found.push((pid, cmdline));
            }
        }
        found
    }

    /// A sandbox of the host's own root running `sleep`: no image needed.
    fn host_spec(id: &str) -> InstanceSpec {
        InstanceSpec {
            id: id.into(),
            image: UnpackedImage {
                digest: "sha256:host".into(),
                rootfs: "/".into(),
                layers: vec![],
                env: vec![("PATH".into(), "/usr/bin:/bin".into())],
                working_dir: "/".into(),
                user: None,
                command: vec![],
            },
            data: None,
            env: Vec::new(),
            secrets: Vec::new(),
            port: 0,
            outbound: false,
            links: Vec::new(),
        }
    }

    /// Stop sandboxes at every moment of their start (at once, and after 0.5..8 ms): no
    /// process of any of them may remain. Needs bubblewrap (root or user namespaces).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sandbox_stopped_at_any_moment_leaves_no_process() {
        let dir = tempfile::tempdir().unwrap();
        let log = super::super::runtime_log::LogWriter::start(&dir.path().join("state.db"), 1000)
            .unwrap()
            .sink("leaktest");
        let tag = format!("leaktest{}", std::process::id());
        let mut ids = Vec::new();
        for n in 0..40u64 {
            let id = format!("{tag}-{n}");
            let mut sb = spawn_command(&host_spec(&id), &log, &["/bin/sleep", "300"]).unwrap();
            if n % 2 == 1 {
                tokio::time::sleep(Duration::from_micros(500 * (n % 17))).await;
            }
            sb.kill().await.unwrap();
            ids.push(id);
        }
        // One that got to run its command, to show the marker finds a live sandbox.
        let id = format!("{tag}-live");
        let mut sb = spawn_command(&host_spec(&id), &log, &["/bin/sleep", "300"]).unwrap();
        let t = std::time::Instant::now();
        while processes_of(&id).len() < 3 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{:?}",
                processes_of(&id)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sb.kill().await.unwrap();
        ids.push(id);
        let leaked: Vec<_> = ids.iter().flat_map(|id| processes_of(id)).collect();
        for (pid, _) in &leaked {
            // SAFETY: plain kill of a process this test started.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        assert!(leaked.is_empty(), "leaked sandbox processes: {leaked:?}");
    }
}
