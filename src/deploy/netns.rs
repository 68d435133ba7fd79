//! An instance's own network namespace, and how the agent reaches into it.
//!
//! Every instance runs under `bwrap --unshare-net`: a fresh network namespace holding only
//! a loopback interface (bubblewrap brings `lo` up), so whatever the app binds — `0.0.0.0`
//! included — is invisible from the host. The agent reaches it without any listening socket
//! on the host: a socket belongs for its whole life to the namespace it was *created* in,
//! so a [`Dialer`] thread that joined the instance's namespace (`setns(2)` on
//! `/proc/PID/ns/net` of the sandbox's init) creates unconnected TCP sockets there and hands
//! them back as file descriptors; the caller connects them to `127.0.0.1:PORT` on its own
//! tokio runtime. The router, the health checks and (by joining the same namespace before
//! it execs) the `test` step then talk to the instance as before. Cost: one channel round
//! trip to that thread per new upstream connection.
//!
//! Joining another network namespace takes `CAP_SYS_ADMIN` (the agent runs as root, as
//! builds and overlay mounts already need); without it every connection fails with a clear
//! error instead of falling back to the host network.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use std::io::Write as _;

use tokio::io::AsyncReadExt;
use tokio::sync::{oneshot, watch};

/// What a [`Dialer`] thread answers: a fresh socket of its namespace, or why not.
type Reply = oneshot::Sender<io::Result<OwnedFd>>;

/// A thread living in one network namespace that creates TCP sockets there on request.
/// It ends when the last clone of its `Dialer` is dropped.
#[derive(Debug, Clone)]
pub struct Dialer {
    tx: mpsc::Sender<Reply>,
}

impl Dialer {
    /// Start a thread (named `name`) that joins the network namespace `ns` (an open
    /// `/proc/PID/ns/net`). A failed join (no `CAP_SYS_ADMIN`) is not reported here but by
    /// every [`Dialer::socket`] call, with the errno and what it needs.
    pub fn start(ns: OwnedFd, name: &str) -> io::Result<Dialer> {
        let (tx, rx) = mpsc::channel::<Reply>();
        std::thread::Builder::new()
            .name(format!("netns {name}"))
            .spawn(move || {
                // SAFETY: setns on an fd we own; it only changes this thread's namespace.
                let joined = if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
                    Ok(())
                } else {
                    let e = io::Error::last_os_error();
                    Err((
                        e.kind(),
                        format!(
                            "cannot join the instance's network namespace: {e} (the agent needs \
                         CAP_SYS_ADMIN: run it as root)"
                        ),
                    ))
                };
                drop(ns);
                while let Ok(reply) = rx.recv() {
                    let _ = reply.send(match &joined {
                        Ok(()) => tcp_socket(),
                        Err((kind, msg)) => Err(io::Error::new(*kind, msg.clone())),
                    });
                }
            })?;
        Ok(Dialer { tx })
    }

    /// A new, unconnected, non-blocking, close-on-exec IPv4 TCP socket of the namespace.
    pub async fn socket(&self) -> io::Result<OwnedFd> {
        let (reply, answer) = oneshot::channel();
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the namespace thread ended");
        self.tx.send(reply).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// A TCP connection to `127.0.0.1:port` inside the namespace.
    pub async fn connect(&self, port: u16) -> io::Result<tokio::net::TcpStream> {
        let fd = self.socket().await?;
        let socket = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
        socket
            .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .await
    }
}

/// `socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC)` in the calling thread's
/// network namespace.
fn tcp_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket just returned this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The sandbox's init as found through bubblewrap's `--info-fd`: its host PID, its network
/// namespace (kept open, so it outlives the PID) and the dialer into it.
#[derive(Debug)]
pub struct Joined {
    /// Host PID of the sandbox's init (a child of the bubblewrap monitor).
    pub pid: i32,
    /// The namespace, `/proc/PID/ns/net` opened while `pid` was the monitor's child.
    pub ns: OwnedFd,
    /// Sockets inside it.
    pub dialer: Dialer,
}

/// One instance's network, shared by its sandbox, its route backend, its health checks and
/// its `test` step. Resolved in the background once bubblewrap reports its child.
#[derive(Debug, Clone)]
pub struct InstanceNet {
    state: watch::Receiver<Option<Option<Arc<Joined>>>>,
}

/// How long a connection waits for a sandbox that has not reported its child yet.
pub const READY_WAIT: Duration = Duration::from_secs(10);

impl InstanceNet {
    /// Follow the sandbox whose bubblewrap monitor is `monitor` and whose `--info-fd` is
    /// `info`: a task reads `{"child-pid": N}`, opens `/proc/N/ns/net` and checks that `N`
    /// is still the monitor's child (so a recycled PID is never joined). Needs a tokio
    /// runtime.
    ///
    /// With `outbound`, `pasta` is attached to the namespace as soon as it is known
    /// ([`start_outbound`]) and killed when `ended` fires or is dropped (the sandbox is
    /// over); a failure to start it goes to `log`. `go` (bubblewrap's `--block-fd`) gets a
    /// byte once the namespace is ready — with `outbound`, once pasta has set its default
    /// route, at most [`OUTBOUND_WAIT`] — so the instance's command never starts without
    /// its network; it is closed (bubblewrap then goes on too) when anything fails.
    /// Before that, each of `links` gets its listener inside the namespace
    /// ([`super::links`]), forwarding until the sandbox is over.
    #[allow(clippy::too_many_arguments)]
    pub fn follow(
        id: &str,
        monitor: Option<u32>,
        info: Option<tokio::net::unix::pipe::Receiver>,
        outbound: bool,
        links: Vec<super::links::LinkPipe>,
        log: &super::instance::LogSink,
        ended: oneshot::Receiver<()>,
        go: OwnedFd,
    ) -> InstanceNet {
        let (tx, rx) = watch::channel(None);
        let id = id.to_string();
        let log = log.clone();
        tokio::spawn(async move {
            let joined = match (monitor, info) {
                (Some(monitor), Some(info)) => match read_child_pid(info).await {
                    Some(pid) => join(&id, pid, monitor).map(Arc::new),
                    None => None,
                },
                _ => None,
            };
            let pid = joined.as_ref().map(|j| j.pid);
            let mut forwarders = tokio::task::JoinSet::new();
            if let Some(j) = &joined {
                for l in &links {
                    match link_listener(&j.dialer, l.port).await {
                        Ok(listener) => {
                            forwarders.spawn(super::proxy::tcp::forward(
                                listener,
                                l.target,
                                Default::default(),
                            ));
                        }
                        Err(e) => log.line(
                            &id,
                            "drover",
                            &format!(
                                "cannot open the link to {} on port {}: {e}",
                                l.target, l.port
                            ),
                        ),
                    }
                }
            }
            let _ = tx.send(Some(joined));
            let release = move || {
                let _ = std::fs::File::from(go).write_all(b"g");
            };
            let (Some(pid), true) = (pid, outbound) else {
                release();
                if !forwarders.is_empty() {
                    // The forwarders live as long as the sandbox; dropping the set ends them.
                    let _ = ended.await;
                }
                return;
            };
            match start_outbound(pid) {
                Ok(mut pasta) => {
                    let t = std::time::Instant::now();
                    while !has_default_route(pid) && t.elapsed() < OUTBOUND_WAIT {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    if !has_default_route(pid) {
                        log.line(&id, "drover", "pasta set no default route in time");
                    }
                    release();
                    tokio::select! {
                        _ = ended => {}
                        _ = pasta.wait() => {
                            log.line(&id, "drover", "pasta (outbound network) exited");
                            return;
                        }
                    }
                    let _ = pasta.start_kill();
                    let _ = pasta.wait().await;
                }
                Err(e) => {
                    log.line(&id, "drover", &format!("no outbound network: {e:#}"));
                    release();
                }
            }
        });
        InstanceNet { state: rx }
    }

    /// The host network (no namespace): for backends that are plain loopback listeners,
    /// as in the router's own tests.
    pub fn host() -> Option<InstanceNet> {
        None
    }

    /// The sandbox's init and namespace once known (waiting at most `wait`); `None` when
    /// the sandbox ended before it forked, or not within `wait`.
    pub async fn joined(&self, wait: Duration) -> Option<Arc<Joined>> {
        let mut rx = self.state.clone();
        let r = tokio::time::timeout(wait, rx.wait_for(|s| s.is_some())).await;
        match r {
            Ok(Ok(v)) => v.clone().flatten(),
            _ => None,
        }
    }

    /// A TCP connection to `127.0.0.1:port` inside the instance's namespace.
    pub async fn connect(&self, port: u16) -> io::Result<tokio::net::TcpStream> {
        match self.joined(READY_WAIT).await {
            Some(j) => j.dialer.connect(port).await,
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the instance's sandbox is gone (or never reported its network namespace)",
            )),
        }
    }
}

/// Longest an instance's start waits for pasta to configure its namespace.
pub const OUTBOUND_WAIT: Duration = Duration::from_secs(3);

/// Whether the network namespace of `pid` has an IPv4 default route
/// (`/proc/PID/net/route`, which shows the routes of that process's namespace).
fn has_default_route(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/net/route"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(1) == Some("00000000"))
}

/// Whether Debian's `pasta` (package `passt`) is on `PATH`.
pub fn pasta_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("pasta").is_file()))
}

/// Attach `pasta` to the network namespace of `pid`: a tap interface with the host's
/// address and default route (`--config-net`), NAT'd outbound TCP/UDP/ICMP through a
/// userspace stack, no inbound port forwarded into the namespace (`-t none -u none`), no
/// namespace port forwarded to the host (`-T none -U none`) and the gateway address not
/// mapped to the host's loopback (`--no-map-gw`: the host's own services stay private).
///
/// bookworm's pasta drops the capabilities it would need to open `/proc/PID/ns/net` of a
/// root-owned namespace, so the child first gets a private mount namespace with a tmpfs
/// on `/tmp` and the namespace bound onto `/tmp/netns` (as `ip netns` does in `/run/netns`),
/// which pasta opens as a plain file; the mounts die with pasta. `--runas 0`: it must stay
/// root to join a namespace of the host's user namespace. pasta dies with the agent
/// (`PR_SET_PDEATHSIG`).
///
/// Errors: pasta missing (names the package) or failing to start.
pub fn start_outbound(pid: i32) -> anyhow::Result<tokio::process::Child> {
    use anyhow::Context as _;
    use std::os::unix::process::CommandExt as _;
    let source = std::ffi::CString::new(format!("/proc/{pid}/ns/net"))?;
    let mut cmd = std::process::Command::new("pasta");
    cmd.args([
        "--runas",
        "0",
        "--config-net",
        "--foreground",
        "--quiet",
        "-t",
        "none",
        "-u",
        "none",
        "-T",
        "none",
        "-U",
        "none",
        "--no-map-gw",
        "--netns",
        "/tmp/netns",
    ])
    .env_clear()
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    // SAFETY: only raw syscalls on pre-built C strings between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let check = |rc: i32| {
                if rc < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(rc)
                }
            };
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
            crate::deploy::unpack::mount::private_mount_namespace()?;
            check(libc::mount(
                c"tmpfs".as_ptr(),
                c"/tmp".as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                c"size=4k,mode=0700".as_ptr().cast(),
            ))?;
            let fd = check(libc::open(
                c"/tmp/netns".as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o600,
            ))?;
            libc::close(fd);
            check(libc::mount(
                source.as_ptr(),
                c"/tmp/netns".as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
            Ok(())
        });
    }
    tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .context(
            "cannot start pasta for the instance's outbound network (Debian package passt:              bash .ci/setup, or set `outbound = false` in the stack's [deploy])",
        )
}

/// Open `/proc/PID/ns/net` and start its dialer, if `pid` is still a child of `monitor`.
fn join(id: &str, pid: i32, monitor: u32) -> Option<Joined> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).ok()?;
    // Opened first, checked second: if `pid` is the monitor's child now, it was then
    // (bubblewrap's monitor forks only once).
    if parent_of(pid)? != monitor {
        return None;
    }
    let ns = OwnedFd::from(ns);
    let dialer = Dialer::start(ns.try_clone().ok()?, id).ok()?;
    Some(Joined { pid, ns, dialer })
}

/// The parent PID of `pid`, from `/proc/PID/stat`.
pub fn parent_of(pid: i32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`: state, ppid, ...
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
}

/// A listener on `127.0.0.1:port` inside the namespace of `dialer` (a socket made there,
/// bound and listening from here: a socket keeps the namespace it was created in).
async fn link_listener(dialer: &Dialer, port: u16) -> io::Result<tokio::net::TcpListener> {
    let fd = dialer.socket().await?;
    let socket = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
    socket.set_reuseaddr(true)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    socket.listen(128)
}

/// The `child-pid` bubblewrap writes to `--info-fd` (host PID of the sandbox's init);
/// `None` when the monitor exits (closing the pipe) before it forked.
async fn read_child_pid(mut info: tokio::net::unix::pipe::Receiver) -> Option<i32> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&buf) {
            return v["child-pid"].as_i64().and_then(|p| i32::try_from(p).ok());
        }
        match info.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// In a child between fork and exec: join the network namespace `ns` (an fd inherited
/// from the parent). Only a raw syscall (async-signal-safe).
pub fn join_in_child(ns: RawFd) -> io::Result<()> {
    // SAFETY: setns on an fd the parent keeps open across the fork.
    if unsafe { libc::setns(ns, libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A thread that made its own network namespace, listens on 127.0.0.1:`port` there
    /// and answers one line per connection; returns the namespace as an fd.
    fn namespace_with_listener(port: u16) -> OwnedFd {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // SAFETY: unshare of this thread's network namespace only.
            assert_eq!(
                unsafe { libc::unshare(libc::CLONE_NEWNET) },
                0,
                "{}",
                io::Error::last_os_error()
            );
            // `lo` is down in a new namespace: bring it up (SIOCSIFFLAGS).
            let s = tcp_socket().unwrap();
            // SAFETY: ifreq is plain data; the ioctls take a pointer to it.
            unsafe {
                let mut ifr: libc::ifreq = std::mem::zeroed();
                ifr.ifr_name[..2].copy_from_slice(&[b'l' as libc::c_char, b'o' as libc::c_char]);
                assert_eq!(libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr), 0);
                ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                assert_eq!(libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr), 0);
            }
            let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
            let ns = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
            tx.send(OwnedFd::from(ns)).unwrap();
            for c in l.incoming().flatten() {
                let mut c = c;
                let _ = std::io::Write::write_all(&mut c, b"inside\n");
            }
        });
        rx.recv().unwrap()
    }

    /// Sockets a dialer hands over live in its namespace: they reach a listener that the
    /// host's loopback cannot reach, and the host's own listeners are not reachable from
    /// them. Needs root (unshare and setns of a network namespace).
    #[tokio::test]
    async fn dialer_sockets_belong_to_the_namespace() {
        let host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = host.local_addr().unwrap().port();
        drop(host);
        let ns = namespace_with_listener(port);
        let d = Dialer::start(ns, "test").unwrap();
        // The host has nothing on `port`.
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err());
        for _ in 0..3 {
            let mut s = d.connect(port).await.unwrap();
            let mut line = String::new();
            s.read_to_string(&mut line).await.unwrap();
            assert_eq!(line, "inside\n");
        }
        // A host listener is invisible from the namespace.
        let host = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hport = host.local_addr().unwrap().port();
        let e = d.connect(hport).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        let mut ok = tokio::net::TcpStream::connect(("127.0.0.1", hport))
            .await
            .unwrap();
        ok.write_all(b"x").await.unwrap();
    }

    /// A real sandbox of the host's root running an HTTP server on `0.0.0.0:PORT`: the
    /// host cannot reach it, the sandbox's [`InstanceNet`] (as the router and health
    /// checks use it) can. Needs root and bubblewrap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sandbox_listens_only_in_its_own_namespace() {
        use crate::deploy::instance::{spawn_command, InstanceSpec};
        let dir = tempfile::tempdir().unwrap();
        let log = crate::deploy::runtime_log::LogWriter::start(&dir.path().join("ns.db"), 1000)
            .unwrap()
            .sink("ns");
        let port = crate::deploy::instance::free_port().unwrap();
        let spec = InstanceSpec {
            id: format!("nstest{}", std::process::id()),
            image: crate::deploy::unpack::UnpackedImage {
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
            port,
            outbound: false,
            links: Vec::new(),
        };
        let port_s = port.to_string();
        let mut sb = spawn_command(
            &spec,
            &log,
            &[
                "/usr/bin/python3",
                "-m",
                "http.server",
                "--bind",
                "0.0.0.0",
                &port_s,
            ],
        )
        .unwrap();
        let backend = crate::deploy::route::Backend::with_net("b", 1, port, Some(sb.net().clone()));
        let t = std::time::Instant::now();
        let r = loop {
            let r = crate::deploy::instance::check(&backend, "/", Duration::from_secs(2)).await;
            if r.ok() || t.elapsed() > Duration::from_secs(15) {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(r.ok(), "{r}; log: {}", log.tail(&spec.id, 20).join("\n"));
        for host in ["127.0.0.1", "0.0.0.0"] {
            assert!(
                tokio::net::TcpStream::connect((host, port)).await.is_err(),
                "{host}:{port} reachable from the host"
            );
        }
        sb.kill().await.unwrap();
        let e = sb.net().connect(port).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    }

    /// With outbound, the sandbox's command starts with pasta's default route already in
    /// its namespace (bubblewrap waits on `--block-fd`), and pasta is gone after the kill.
    /// Needs root, bubblewrap and pasta (`bash .ci/setup`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_outbound_the_command_starts_with_a_default_route() {
        use crate::deploy::instance::{spawn_command, InstanceSpec};
        assert!(pasta_installed(), "pasta missing: apt-get install passt");
        let dir = tempfile::tempdir().unwrap();
        let log = crate::deploy::runtime_log::LogWriter::start(&dir.path().join("ob.db"), 1000)
            .unwrap()
            .sink("ob");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let spec = InstanceSpec {
            id: format!("obtest{}", std::process::id()),
            image: crate::deploy::unpack::UnpackedImage {
                digest: "sha256:host".into(),
                rootfs: "/".into(),
                layers: vec![],
                env: vec![("PATH".into(), "/usr/bin:/bin".into())],
                working_dir: "/".into(),
                user: None,
                command: vec![],
            },
            data: Some((out.clone(), "/mnt".into())),
            env: Vec::new(),
            secrets: Vec::new(),
            port: 1,
            outbound: true,
            links: Vec::new(),
        };
        let t = std::time::Instant::now();
        let script = "cat /proc/net/route > /mnt/route; sleep 300";
        let mut sb = spawn_command(&spec, &log, &["/bin/sh", "-c", script]).unwrap();
        let file = out.join("route");
        while std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the command never ran: {}",
                log.tail(&spec.id, 20).join("\n")
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!("command ran after {:?}", t.elapsed());
        let routes = std::fs::read_to_string(&file).unwrap();
        assert!(
            routes
                .lines()
                .skip(1)
                .any(|l| l.split_whitespace().nth(1) == Some("00000000")),
            "no default route when the command started: {routes}; log: {}",
            log.tail(&spec.id, 20).join("\n")
        );
        let pid = sb.net().joined(READY_WAIT).await.unwrap().pid;
        sb.kill().await.unwrap();
        drop(sb);
        // pasta was this process's child and is reaped by its task: no `pasta` whose
        // namespace is the dead sandbox's is left.
        let t = std::time::Instant::now();
        loop {
            let left: Vec<_> = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter(|e| {
                    let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                    cmd.starts_with(b"pasta\0")
                        && parent_of(e.file_name().to_string_lossy().parse().unwrap_or(0))
                            == Some(std::process::id())
                })
                .collect();
            if left.is_empty() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "pasta left after the sandbox {pid} ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A dialer that cannot join (not a namespace fd) says so on every call.
    #[tokio::test]
    async fn a_failed_join_is_reported_per_connection() {
        let f = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        let d = Dialer::start(f, "bad").unwrap();
        for _ in 0..2 {
            let e = d.connect(80).await.unwrap_err();
            assert!(e.to_string().contains("network namespace"), "{e}");
        }
    }
}
