//! The route under hostile clients (issue #12 §2), measured on the process that serves it.
//!
//! The router (`drover::deploy::proxy::serve`, the agent's entry point, with its default
//! limits) runs in a child process (this test binary again, running only
//! `proxy_child_process`), so its memory is measured alone (`VmRSS` of
//! `/proc/PID/status`); the instance behind it, the hostile clients and the load loop run
//! here, on loopback.
//!
//! - `held_uploads_do_not_swell_the_router`: 48 connections each send all but 10 bytes of
//!   a 16 MiB body and hold (the attack that took the agent to 841 MB).
//! - `three_thousand_hostile_connections_for_30_s_fail_no_request`: 1,000 idle, 1,000
//!   slow-header and 1,000 slow-body connections, each reopened when the router closes
//!   it, for 30 s, while a load loop sends `GET /` on new connections: 0 failed requests,
//!   and the router stays under 100 MB.
//!
//! Both run against today's router and the one before issue #12 §2 (the child calls the
//! same `serve`); a child over 1 GB is killed, which fails the test.

// Tests may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/http.rs"]
mod http;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Set in the child: `PORTFILE:BACKEND_PORT`.
const CHILD_ENV: &str = "DROVER_ROUTE_CHILD";

/// A child over this is killed (the router before §2 grew by 16 MiB per held upload).
const KILL_RSS_KB: u64 = 1 << 20;

/// One measurement at a time: the tests would disturb each other's figures.
static SERIAL: Mutex<()> = Mutex::new(());

/// The router in the child process: `proxy::serve` on 127.0.0.1, in front of the backend
/// port it is given, on a 2-worker runtime like the agent's. A no-op in a normal run.
#[test]
fn proxy_child_process() {
    let Some(arg) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let arg = arg.into_string().unwrap();
    let (portfile, backend) = arg.rsplit_once(':').unwrap();
    let backend: u16 = backend.parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let table = drover::deploy::route::empty_table();
        let b = drover::deploy::route::Backend::new("i", 1, backend);
        b.set_healthy(true);
        table.store(Arc::new(drover::deploy::route::RouteTable::new(1, vec![b])));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        std::fs::write(portfile, port.to_string()).unwrap();
        drover::deploy::proxy::serve(l, "hostile".into(), table).await;
    });
}

/// The child router: its process and port. Killed when dropped.
struct Router {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Router {
    fn start(backend: u16) -> Router {
        let dir = tempfile::tempdir().unwrap();
        let portfile: PathBuf = dir.path().join("port");
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["proxy_child_process", "--exact", "--test-threads=1"])
            .env(CHILD_ENV, format!("{}:{backend}", portfile.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe; the child must not outlive this test.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&portfile)
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                break p;
            }
            assert!(Instant::now() < deadline, "the router child did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        Router {
            child,
            port,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` of `pid` in kB (0 once it is gone).
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Samples the router's RSS and open descriptors every 100 ms; kills it over
/// [`KILL_RSS_KB`].
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(u64, usize, Vec<u64>)>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut peak, mut most_fds, mut every_3s) = (0, 0, Vec::new());
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                let rss = rss_kb(pid);
                peak = peak.max(rss);
                if n.is_multiple_of(30) {
                    every_3s.push(rss / 1024);
                }
                n += 1;
                most_fds = most_fds.max(fds(pid));
                if rss > KILL_RSS_KB {
                    // SAFETY: kill(2) on our own child.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (peak, most_fds, every_3s)
        });
        Sampler { stop, handle }
    }

    /// Peak RSS (kB), most open descriptors seen, and the RSS (MB) every 3 s.
    fn finish(self) -> (u64, usize, Vec<u64>) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// Raise this process's open-file limit to its hard limit (the child inherits it).
fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
    r.rlim_cur
}

/// The instance: reads every request body to its end (discarding it), answers `ok`.
async fn backend() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let mut body = req.into_body();
                        while let Some(f) = body.frame().await {
                            f?;
                        }
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(
                            "ok from the instance\n",
                        ))))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    port
}

/// `threads` threads sending `GET /` on new connections until `stop`: (ok, failures).
fn load_loop(
    port: u16,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let (mut ok, mut failed) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        match http::get(port, "/") {
                            Ok((200, b)) if b == "ok from the instance\n" => ok += 1,
                            Ok((s, b)) => failed.push(format!("HTTP {s}: {b}")),
                            Err(e) => failed.push(e.to_string()),
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    (ok, failed)
                })
            })
            .collect();
        let mut all = (0, Vec::new());
        for h in hs {
            let (ok, failed) = h.join().unwrap();
            all.0 += ok;
            all.1.extend(failed);
        }
        all
    })
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[test]
fn held_uploads_do_not_swell_the_router() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let router = Router::start(backend().await);
        let (pid, port) = (router.pid(), router.port);
        assert_eq!(http::get(port, "/").unwrap().0, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = rss_kb(pid);
        let sampler = Sampler::start(pid);
        // 48 uploads of 16 MiB, all but the last 10 bytes sent, then held.
        let size = 16usize << 20;
        let chunk = vec![b'u'; 1 << 20];
        let sent = Arc::new(AtomicUsize::new(0));
        let mut held = Vec::new();
        for _ in 0..48 {
            let (chunk, sent) = (chunk.clone(), sent.clone());
            held.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                let head =
                    format!("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n");
                s.write_all(head.as_bytes()).await.unwrap();
                let mut left = size - 10;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if s.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                    left -= n;
                }
                sent.fetch_add(1, Ordering::SeqCst);
                // Hold until the router gives up on the body (or the test ends).
                let mut buf = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut buf)).await;
                String::from_utf8_lossy(&buf)
                    .split("\r\n")
                    .next()
                    .unwrap_or("")
                    .to_string()
            }));
        }
        let t0 = Instant::now();
        while sent.load(Ordering::SeqCst) < 48 && t0.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let all_sent = sent.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let held_rss = rss_kb(pid);
        let mut answers = Vec::new();
        for h in held {
            answers.push(h.await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = rss_kb(pid);
        let (peak, _, _) = sampler.finish();
        println!(
            "48 held 16 MiB uploads: router RSS {:.1} MB before, {:.1} MB peak, {:.1} MB while \
             held, {:.1} MB after they closed; answers: {:?}",
            mb(before),
            mb(peak),
            mb(held_rss),
            mb(after),
            answers.iter().fold(
                std::collections::BTreeMap::<&str, usize>::new(),
                |mut m, a| {
                    *m.entry(a.as_str()).or_default() += 1;
                    m
                }
            )
        );
        assert!(
            peak < KILL_RSS_KB && after > 0,
            "the router was killed at {peak} kB"
        );
        assert_eq!(all_sent, 48, "the router did not take the uploads");
        assert!(peak < 100 * 1024, "router peak RSS {:.1} MB", mb(peak));
        assert!(
            answers.iter().all(|a| a.starts_with("HTTP/1.1 408")),
            "a held upload is cut with 408: {answers:?}"
        );
        assert_eq!(http::get(port, "/").unwrap().0, 200);
    });
}

/// What one kind of hostile client did: connections opened, and how many of them the
/// router closed (or answered and closed).
#[derive(Default)]
struct Hostile {
    opened: AtomicUsize,
    closed_by_router: AtomicUsize,
    answered_408: AtomicUsize,
}

/// Keep one hostile connection of `kind` open until `until`, opening a new one each time
/// the router closes it. `kind`: `idle` (sends nothing), `headers` (a header line started,
/// one byte a second), `body` (a 16 MiB POST, 100 bytes a second).
async fn hostile(port: u16, kind: &'static str, until: Instant, stats: Arc<Hostile>) {
    while Instant::now() < until {
        let Ok(Ok(mut s)) = tokio::time::timeout(
            Duration::from_secs(5),
            TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        stats.opened.fetch_add(1, Ordering::Relaxed);
        let first: &[u8] = match kind {
            "idle" => b"",
            "headers" => b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ",
            _ => b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 16777216\r\n\r\n",
        };
        let (mut r, mut w) = s.split();
        let mut got = Vec::new();
        let closed = {
            let send = async {
                if w.write_all(first).await.is_err() {
                    return;
                }
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let piece: &[u8] = match kind {
                        "idle" => continue,
                        "headers" => b"a",
                        _ => &[b'b'; 100],
                    };
                    if w.write_all(piece).await.is_err() {
                        return;
                    }
                }
            };
            let recv = async {
                let mut buf = [0u8; 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
            };
            tokio::select! {
                _ = recv => true,
                _ = tokio::time::sleep_until(until.into()) => false,
                _ = async { send.await; std::future::pending::<()>().await } => false,
            }
        };
        if closed {
            stats.closed_by_router.fetch_add(1, Ordering::Relaxed);
            if got.starts_with(b"HTTP/1.1 408") {
                stats.answered_408.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[test]
fn three_thousand_hostile_connections_for_30_s_fail_no_request() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let nofile = raise_nofile();
    assert!(
        nofile >= 8192,
        "RLIMIT_NOFILE hard limit {nofile}: need 8192"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let router = Router::start(backend().await);
        let (pid, port) = (router.pid(), router.port);
        assert_eq!(http::get(port, "/").unwrap().0, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = rss_kb(pid);
        let sampler = Sampler::start(pid);
        let stop = Arc::new(AtomicBool::new(false));
        let load = load_loop(port, 2, stop.clone());

        let t0 = Instant::now();
        let until = t0 + Duration::from_secs(30);
        let kinds = ["idle", "headers", "body"];
        let stats: Vec<Arc<Hostile>> = kinds.iter().map(|_| Arc::default()).collect();
        let mut tasks = Vec::new();
        // Opened 150 at a time (20 ms apart), so the listen backlog is never the limit.
        for i in 0..1000u32 {
            for (k, kind) in kinds.iter().enumerate() {
                tasks.push(tokio::spawn(hostile(port, kind, until, stats[k].clone())));
            }
            if (i + 1).is_multiple_of(50) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let ramp = t0.elapsed();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let held_fds = fds(pid);
        let held_rss = rss_kb(pid);
        for t in tasks {
            t.await.unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let (ok, failed) = load.join().unwrap();
        let wall = t0.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = rss_kb(pid);
        let (peak, most_fds, every_3s) = sampler.finish();
        let line = |k: usize| {
            let s = &stats[k];
            format!(
                "{}: {} opened, {} closed by the router ({} with 408)",
                kinds[k],
                s.opened.load(Ordering::Relaxed),
                s.closed_by_router.load(Ordering::Relaxed),
                s.answered_408.load(Ordering::Relaxed)
            )
        };
        println!(
            "3,000 hostile connections for 30 s (ramp {ramp:?}, wall {wall:?}): load loop {ok} \
             ok, {} failed; router RSS {:.1} MB before, {:.1} MB at 5 s, {:.1} MB peak, {:.1} MB \
             after (every 3 s: {every_3s:?}); router descriptors {held_fds} at 5 s, {most_fds} most\n  \
             {}\n  {}\n  {}",
            failed.len(),
            mb(before),
            mb(held_rss),
            mb(peak),
            mb(after),
            line(0),
            line(1),
            line(2)
        );
        assert!(
            peak < KILL_RSS_KB && after > 0,
            "the router was killed at {peak} kB"
        );
        assert!(
            failed.is_empty(),
            "{} failed requests, first: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        assert!(ok > 200, "only {ok} requests of the load loop went through");
        assert!(peak < 100 * 1024, "router peak RSS {:.1} MB", mb(peak));
        assert!(
            held_fds > 3000,
            "the hostile connections were held: {held_fds} fds"
        );
        // Each kind was cut at least once per connection within the 30 s.
        for (k, s) in stats.iter().enumerate() {
            assert!(
                s.closed_by_router.load(Ordering::Relaxed) >= 1000,
                "{}",
                line(k)
            );
        }
        assert!(
            stats[2].answered_408.load(Ordering::Relaxed) >= 1000,
            "{}",
            line(2)
        );
    });
}
