//! The local target for real: builds the demo stack once (live Debian mirror), then
//! deploys it behind its route with the agent and bubblewrap instances, and checks, in
//! order: `GET /` through the route; the sandbox (read-only root, writable data volume,
//! secrets present but never logged or stored); a zero-downtime deploy of a changed app
//! and a zero-downtime rollback under a bounded load generator on loopback; a release
//! whose `/up` never answers 200 (fails with the check's status and body, the old release
//! keeps serving); the per-stack deploy lock; `kill -9` of an instance (replaced) and of
//! the agent (a new one restores the route and instances); with `[deploy] keep_warm`, the
//! replaced release kept running, restored by a new agent, and a rollback to it that
//! starts nothing (then a fallback when its instance is gone); `[deploy] listen` moving
//! the route from every address to loopback (same port), kept by a restored agent; the
//! layer cache: the base layer unpacked once for two releases, the instance root an
//! overlay that is never mounted on the host (not even after `kill -9` of the agent).
//! Needs root, bubblewrap and network to the Debian mirror (`.ci/setup`).

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/http.rs"]
mod http;
use http::get;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_drover");
const SECRET: &str = "tok-5f3a9c1e-never-in-logs";

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
}

impl Env {
    fn config(&self) -> PathBuf {
        self.root.join("config")
    }
    fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--config")
            .arg(self.config())
            .arg("--state")
            .arg(self.state())
            .args(args)
            .env_remove("HELLO_TOKEN");
        c
    }
    fn drover(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run drover")
    }
    fn json(&self, args: &[&str]) -> Value {
        let out = self.drover(args);
        assert!(
            out.status.success(),
            "drover {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }
    fn agent_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.state().join("agent.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }
    fn stack_status(&self) -> Value {
        let s = self.json(&["status", "--json"]);
        s.as_array()
            .unwrap()
            .iter()
            .find(|s| s["stack"] == "hello")
            .cloned()
            .unwrap_or(Value::Null)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.drover(&["agent", "stop"]);
        if let Some(pid) = self.agent_pid() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A temp tree shaped like the repository, with a boot script that probes the sandbox
/// and the secret from inside the instance, and the operator's 0600 secrets file.
fn setup() -> Env {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("config"), &root.join("config"));
    copy_dir(
        &repo.join("assets/demo/hello"),
        &root.join("assets/demo/hello"),
    );
    let stack = root.join("config/stacks/hello.toml");
    let text = std::fs::read_to_string(&stack).unwrap();
    let boot = r#"boot = """
set -eu
if touch /probe-root 2>/dev/null; then echo ROOT_WRITABLE; else echo ROOT_READONLY; fi
mkdir -p /var/lib/hello
echo "$DROVER_INSTANCE" >> /var/lib/hello/boots
echo "boots so far: $(wc -l < /var/lib/hello/boots)"
if [ -n "${HELLO_TOKEN:-}" ]; then echo TOKEN_PRESENT; fi
if python3 -c 'import os, socket; socket.create_connection((os.environ["OUTBOUND_IP"], 80), timeout=5)'; then
  echo OUTBOUND_OK
else
  echo OUTBOUND_FAILED
fi
"""
"#;
    let start = text
        .find("boot = \"\"\"")
        .expect("boot script in hello.toml");
    let end = start + 10 + text[start + 10..].find("\"\"\"").unwrap() + 4;
    let text = format!("{}{boot}{}", &text[..start], &text[end..]);
    // Outbound from an instance: deb.debian.org (the one network this machine reaches),
    // resolved here (the image's resolver is not the point).
    use std::net::ToSocketAddrs;
    let ip = ("deb.debian.org", 80)
        .to_socket_addrs()
        .unwrap()
        .find(|a| a.is_ipv4())
        .expect("an IPv4 address of deb.debian.org")
        .ip();
    let text = text.replacen(
        "GREETING = \"hello\"",
        &format!("GREETING = \"hello\"\nOUTBOUND_IP = \"{ip}\""),
        1,
    );
    std::fs::write(&stack, text).unwrap();
    let secrets = root.join("config/secrets/hello.env");
    std::fs::create_dir_all(secrets.parent().unwrap()).unwrap();
    std::fs::write(&secrets, format!("HELLO_TOKEN={SECRET}\n")).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A private copy of the binary (the agent runs it for minutes; `DROVER_TEST_BIN`
    // overrides it when several worktrees share one target directory).
    let bin = root.join("drover");
    std::fs::copy(
        std::env::var_os("DROVER_TEST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(BIN)),
        &bin,
    )
    .unwrap();
    Env {
        _tmp: tmp,
        root,
        bin,
    }
}

/// One `GET path` on 127.0.0.1:port (new connection): status and body.
/// What a load run saw.
#[derive(Debug, Default)]
struct Load {
    ok: usize,
    failed: Vec<String>,
    /// The `vX.Y.Z` of each successful response, in order, per thread.
    versions: Vec<Vec<String>>,
}

/// A bounded load generator: `threads` threads doing sequential `GET /` on loopback until
/// `stop` is set, at most `max_per_thread` requests each and at most 120 s.
fn load(
    port: u16,
    threads: usize,
    max_per_thread: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Load> {
    std::thread::spawn(move || {
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(120);
                    let mut out = (0usize, Vec::new(), Vec::new());
                    for _ in 0..max_per_thread {
                        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                            break;
                        }
                        match get(port, "/") {
                            Ok((200, body)) => {
                                out.0 += 1;
                                let v = body.split_whitespace().last().unwrap_or("").to_string();
                                out.2.push(v);
                            }
                            Ok((s, body)) => out.1.push(format!("HTTP {s}: {body}")),
                            Err(e) => out.1.push(e.to_string()),
                        }
                    }
                    out
                })
            })
            .collect();
        let mut l = Load::default();
        for h in hs {
            let (ok, failed, versions) = h.join().unwrap();
            l.ok += ok;
            l.failed.extend(failed);
            l.versions.push(versions);
        }
        l
    })
}

/// Run `f` (a deploy or rollback) under load; return its JSON, the load seen and the wall
/// time of `f`.
fn under_load(env: &Env, port: u16, args: &[&str]) -> (Value, Load, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let h = load(port, 2, 20_000, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let out = env.drover(args);
    let wall = t.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let l = h.join().unwrap();
    assert!(
        out.status.success(),
        "drover {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (serde_json::from_slice(&out.stdout).unwrap(), l, wall)
}

/// Each thread saw `from` first, then only `to` after its first `to`.
fn assert_switch(l: &Load, from: &str, to: &str) {
    assert!(l.failed.is_empty(), "failed requests: {:?}", l.failed);
    for v in &l.versions {
        let first_new = v
            .iter()
            .position(|x| x == to)
            .expect("never saw the new version");
        assert!(
            first_new > 0 && v[0] == from,
            "did not start on {from}: {:?}",
            &v[..3.min(v.len())]
        );
        assert!(
            v[first_new..].iter().all(|x| x == to),
            "an old response came after the switch"
        );
        assert!(v.iter().all(|x| x == from || x == to));
    }
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kill -9` of the agent; returns its PID once it is gone.
fn kill_agent(env: &Env) -> i32 {
    let agent = env.agent_pid().unwrap();
    assert_eq!(unsafe { libc::kill(agent, libc::SIGKILL) }, 0);
    wait_for("the old agent to die", 10, || unsafe {
        libc::kill(agent, 0) != 0
    });
    agent
}

fn healthy_live(s: &Value) -> Vec<Value> {
    s["instances"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|i| i["healthy"] == true && i["release"] == s["live_release"])
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The local IPv4 addresses with a TCP socket listening on `port` (`/proc/net/tcp`), and
/// `[v6 HEX]` for IPv6 ones.
fn listening_on(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (f.get(1), f.get(3)) else {
                continue;
            };
            let Some((ip, p)) = local.split_once(':') else {
                continue;
            };
            if *state != "0A" || u16::from_str_radix(p, 16) != Ok(port) {
                continue;
            }
            if v6 {
                out.push(format!("[v6 {ip}]"));
            } else {
                let n = u32::from_str_radix(ip, 16).unwrap();
                out.push(std::net::Ipv4Addr::from(n.swap_bytes()).to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// PIDs of `root` and every descendant of it (host `/proc`).
fn process_tree(root: u32) -> Vec<u32> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if let Some(ppid) = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok())
        {
            parent.insert(pid, ppid);
        }
    }
    let mut tree = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, ppid) in &parent {
            if tree.contains(ppid) && !tree.contains(pid) {
                tree.push(*pid);
                grew = true;
            }
        }
    }
    tree
}

/// Issue #12 §3: the instance's own port is reachable only through the route. In the
/// host's network namespace (`ss -ltnpH`) nothing listens on it and no listener belongs
/// to the instance's processes, and a direct connection is refused.
fn instance_only_behind_the_route(s: &Value) {
    let inst = &s["instances"][0];
    let iport = inst["port"].as_u64().unwrap() as u16;
    let pid = inst["pid"].as_u64().unwrap() as u32;
    let tree = process_tree(pid);
    assert!(tree.len() >= 3, "bwrap, its init and the app: {tree:?}");
    let out = Command::new("ss").arg("-ltnpH").output().unwrap();
    assert!(out.status.success());
    let ss = String::from_utf8_lossy(&out.stdout);
    assert!(!ss.trim().is_empty(), "ss lists the host's listeners");
    for line in ss.lines() {
        let local = line.split_whitespace().nth(3).unwrap_or("");
        assert!(
            !local.ends_with(&format!(":{iport}")),
            "a host socket listens on the instance's port: {line}"
        );
        for p in &tree {
            assert!(
                !line.contains(&format!("pid={p},")),
                "a listener of the instance's process {p} on the host: {line}"
            );
        }
    }
    assert!(listening_on(iport).is_empty());
    assert!(
        get(iport, "/").is_err(),
        "127.0.0.1:{iport} answered directly"
    );
}

/// Mount points on the host (this process's mount namespace) under `dir`.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&dir)))
        .map(String::from)
        .collect()
}

/// The layer digests (bottom first) of the image a build's deploy assembled.
fn image_layers(env: &Env, build: &Value) -> Vec<String> {
    let hex = build["image_digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let path = env.state().join("rootfs").join(hex).join("layers.json");
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn deploy_route_rollback_and_recovery_on_the_demo_stack() {
    let env = setup();
    let app = env.root.join("assets/demo/hello");

    // Build v1 (cold) and deploy it.
    std::fs::write(app.join("VERSION"), "1.0.0\n").unwrap();
    let b1 = env.json(&["build", "hello", "--json"]);
    assert_eq!(b1["status"], "succeeded", "{b1}");
    let r1 = env.json(&["deploy", "hello", "--json"]);
    assert_eq!(r1["release"], 1, "{r1}");
    assert_eq!(r1["build_id"], b1["build_id"]);
    assert_eq!(
        r1["warnings"],
        serde_json::json!([]),
        "the secret has a value"
    );
    let port = r1["route_port"].as_u64().unwrap() as u16;
    let (status, body) = get(port, "/").unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "hello from drover demo v1.0.0\n");
    let s = env.stack_status();
    assert_eq!(s["live_release"], 1, "{s}");
    assert_eq!(s["route_port"], port);
    assert_eq!(healthy_live(&s).len(), 1, "{s}");
    assert_eq!(s["image_digest"], b1["image_digest"]);
    instance_only_behind_the_route(&s);

    // The sandbox, seen from inside the instance.
    // (from the runtime log in the store, issue #13; its writer commits every ~100 ms)
    let runtime_log = |args: &[&str]| -> Vec<Value> {
        let mut a = vec!["logs", "hello", "--runtime", "--json"];
        a.extend_from_slice(args);
        env.json(&a).as_array().cloned().unwrap_or_default()
    };
    let t = Instant::now();
    let mut rows = runtime_log(&[]);
    while !rows
        .iter()
        .any(|r| r["line"].as_str().unwrap_or("").contains("TOKEN_PRESENT"))
        && t.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(100));
        rows = runtime_log(&[]);
    }
    assert!(rows.iter().all(|r| r["stack"] == "hello"), "{rows:?}");
    assert!(rows.iter().any(|r| r["release"] == 1), "{rows:?}");
    let log: String = rows
        .iter()
        .map(|r| format!("{}\n", r["line"].as_str().unwrap_or("")))
        .collect();
    assert!(log.contains("ROOT_READONLY"), "{log}");
    assert!(!log.contains("ROOT_WRITABLE"));
    assert!(
        log.contains("TOKEN_PRESENT"),
        "the secret reached the instance"
    );
    // At the first instant of `boot` (the command waits for pasta).
    assert!(log.contains("OUTBOUND_OK"), "no outbound access: {log}");
    let boots = env.state().join("data/hello/boots");
    let first_instance = r1["instances"][0].as_str().unwrap().to_string();
    assert!(std::fs::read_to_string(&boots)
        .unwrap()
        .contains(&first_instance));
    assert!(!env
        .state()
        .join("rootfs")
        .read_dir()
        .unwrap()
        .flatten()
        .any(|d| d.path().join("root/probe-root").exists()));
    // The first deploy unpacked both layers (base, app) into the layer cache; the instance
    // root is an overlay mounted in the sandbox's own namespace, never on the host.
    assert_eq!(
        (r1["layers_unpacked"].as_u64(), r1["layers_cached"].as_u64()),
        (Some(2), Some(0)),
        "{r1}"
    );
    assert_eq!(host_mounts_under(&env.state()), Vec::<String>::new());
    let layers1 = image_layers(&env, &b1);
    let base_layer = env
        .state()
        .join("layers")
        .join(layers1[0].trim_start_matches("sha256:"));
    let base_ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&base_layer).unwrap());

    // A changed app, deployed under load: no failed request, v1 then only v2.
    std::fs::write(app.join("VERSION"), "2.0.0\n").unwrap();
    let b2 = env.json(&["build", "hello", "--json"]);
    assert_eq!(b2["status"], "succeeded");
    let (r2, l, wall) = under_load(&env, port, &["deploy", "hello", "--json"]);
    assert_eq!(r2["release"], 2);
    assert_eq!(r2["previous_release"], 1);
    assert_switch(&l, "v1.0.0", "v2.0.0");
    let switch_ms = r2["switch_ms"].as_f64().unwrap();
    println!(
        "deploy under load: {} requests, 0 failed; route switch {switch_ms:.3} ms after the new \
         instance was healthy; deploy wall time {wall:?}",
        l.ok
    );
    assert!(switch_ms < 10.0, "route switch took {switch_ms} ms");
    // The base layer was unpacked once for both releases: release 2 took it from the
    // cache (same directory, same inode) and unpacked only its app layer.
    let layers2 = image_layers(&env, &b2);
    assert_eq!(layers2[0], layers1[0], "both builds share the base layer");
    assert_ne!(layers2[1], layers1[1]);
    assert_eq!(
        (r2["layers_unpacked"].as_u64(), r2["layers_cached"].as_u64()),
        (Some(1), Some(1)),
        "{r2}"
    );
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&base_layer).unwrap()),
        base_ino
    );
    let agent_log = std::fs::read_to_string(env.state().join("logs/agent.log")).unwrap();
    let base_unpacks = agent_log
        .matches(&format!("{} unpacked in", layers1[0]))
        .count();
    assert_eq!(base_unpacks, 1, "{agent_log}");
    println!(
        "unpack step: release 1 (base + app layer) {:.0} ms, release 2 (app layer only, base \
         cached) {:.0} ms",
        r1["unpack_ms"].as_f64().unwrap(),
        r2["unpack_ms"].as_f64().unwrap()
    );
    // The data volume survived into the new release.
    let b = std::fs::read_to_string(&boots).unwrap();
    assert!(
        b.contains(&first_instance) && b.contains("hello-r2-"),
        "{b}"
    );

    // Rollback under load: back to v1, no failed request.
    let (r3, l, wall) = under_load(&env, port, &["rollback", "hello", "--json"]);
    assert_eq!(r3["release"], 3);
    assert_eq!(r3["rollback_of"], 1);
    assert_eq!(r3["build_id"], b1["build_id"]);
    assert_switch(&l, "v2.0.0", "v1.0.0");
    println!(
        "rollback under load: {} requests, 0 failed; rollback wall time {wall:?} (route switch {:.3} ms, \
         {:.0} ms in the agent)",
        l.ok,
        r3["switch_ms"].as_f64().unwrap(),
        r3["total_ms"].as_f64().unwrap()
    );
    assert!(wall < Duration::from_secs(5), "rollback took {wall:?}");
    assert_eq!(r3["warm"], false, "keep_warm is off: {r3}");
    let cold_rollback_wall = wall;

    // A release whose /up never answers 200: the deploy fails with the check's status and
    // body, and v1 keeps serving. A second deploy meanwhile hits the deploy lock.
    let server = std::fs::read_to_string(app.join("server.py")).unwrap();
    let broken = server.replace(
        "        if self.path == \"/up\":\n            body = b\"ok\\n\"",
        "        if self.path == \"/up\":\n            self.send_response(500)\n            self.send_header(\"Content-Length\", \"12\")\n            self.end_headers()\n            self.wfile.write(b\"db not ready\")\n            return",
    );
    assert_ne!(broken, server, "server.py changed shape; update this test");
    std::fs::write(app.join("server.py"), &broken).unwrap();
    std::fs::write(app.join("VERSION"), "3.0.0-broken\n").unwrap();
    let b3 = env.json(&["build", "hello", "--json"]);
    assert_eq!(b3["status"], "succeeded");
    let first = env
        .cmd(&["deploy", "hello", "--timeout", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the deploy to hold the lock", 20, || {
        env.stack_status()["deploying"].is_string()
    });
    let second = env.drover(&["deploy", "hello"]);
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another deploy of hello is running (deploy by"),
        "{err}"
    );
    let out = first.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("HTTP 500") && err.contains("db not ready"),
        "{err}"
    );
    assert!(err.contains("release 3 keeps serving"), "{err}");
    assert_eq!(get(port, "/").unwrap().1, "hello from drover demo v1.0.0\n");
    let rel = env.json(&["releases", "hello", "--json"]);
    let statuses: Vec<(i64, String)> = rel
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            for k in [
                "release",
                "build_id",
                "image_digest",
                "status",
                "created_at",
                "by",
            ] {
                assert!(!r[k].is_null(), "{k} missing in {r}");
            }
            (
                r["release"].as_i64().unwrap(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(rel[0]["verification"], "verify-failed", "{rel}");
    assert_eq!(rel[1]["verification"], "verified", "{rel}");
    assert_eq!(
        statuses,
        vec![
            (4, "failed".to_string()),
            (3, "live".to_string()),
            (2, "superseded".to_string()),
            (1, "superseded".to_string())
        ]
    );
    std::fs::write(app.join("server.py"), &server).unwrap();

    // kill -9 of an instance: replaced, and the route serves again.
    let s = env.stack_status();
    let victim = healthy_live(&s)[0].clone();
    let pid = victim["pid"].as_i64().unwrap() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_for("a replacement instance", 30, || {
        let s = env.stack_status();
        healthy_live(&s).iter().any(|i| i["id"] != victim["id"])
    });
    assert_eq!(get(port, "/").unwrap().1, "hello from drover demo v1.0.0\n");

    // kill -9 of the agent: `drover status` starts a new one, which restores the route
    // (same port) and the instances of the live release from the store; it returns once
    // they passed their health checks, and only then did they join the route.
    let agent = kill_agent(&env);
    assert_eq!(
        host_mounts_under(&env.state()),
        Vec::<String>::new(),
        "no mount left on the host after kill -9 of the agent"
    );
    let t = Instant::now();
    let s = env.stack_status();
    println!(
        "agent restore: `drover status` returned, serving again, {:?} after the kill",
        t.elapsed()
    );
    assert_eq!(s["live_release"], 3, "{s}");
    let live: Vec<&Value> = s["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["release"] == 3)
        .collect();
    assert_eq!(live.len(), 1, "{s}");
    assert!(
        live.iter()
            .all(|i| i["healthy"] == true && i["state"] == "healthy"),
        "`drover status` returned before the restored instances were healthy: {s}"
    );
    assert_eq!(
        get(port, "/").unwrap(),
        (200, "hello from drover demo v1.0.0\n".to_string())
    );
    // The restored instance joined the route after its first passed check, not at start.
    let store = drover::store::Store::open(&env.state().join("drover.db")).unwrap();
    let mut events = store.instance_events("hello", 1000).unwrap();
    events.reverse();
    let of_restored: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.instance == live[0]["id"].as_str().unwrap())
        .map(|e| (e.event.as_str(), e.detail.as_str()))
        .collect();
    let at = |word: &str| of_restored.iter().position(|(e, _)| *e == word);
    assert!(
        at("started").is_some() && at("started") < at("healthy") && at("healthy") < at("replaced"),
        "{of_restored:?}"
    );
    assert!(
        events.iter().all(|e| !e.detail.contains("Some(")),
        "Option debug text in an event: {events:?}"
    );
    assert_ne!(env.agent_pid(), Some(agent));
    assert_eq!(env.stack_status()["route_port"], port);
    assert_eq!(get(port, "/").unwrap().1, "hello from drover demo v1.0.0\n");

    // keep_warm: the replaced release keeps running unrouted, a restarted agent restores
    // it, and a rollback switches to it at once (reusing builds 1 and 2).
    // Also `[deploy] listen`: the route, on every IPv4 address so far, moves to loopback
    // only (same port) with this deploy.
    assert_eq!(listening_on(port), vec!["0.0.0.0".to_string()]);
    let stack_file = env.config().join("stacks/hello.toml");
    let mut text = std::fs::read_to_string(&stack_file).unwrap();
    text.push_str("\n[deploy]\nkeep_warm = true\nlisten = \"127.0.0.1\"\n");
    std::fs::write(&stack_file, text).unwrap();
    let b2_id = b2["build_id"].to_string();
    let r5 = env.json(&["deploy", "hello", "--build", &b2_id, "--json"]);
    assert_eq!(
        (r5["release"].as_i64(), r5["kept_warm"].as_i64()),
        (Some(5), Some(1)),
        "{r5}"
    );
    assert_eq!(r5["route_port"], port);
    assert_eq!(listening_on(port), vec!["127.0.0.1".to_string()]);
    assert_eq!(get(port, "/").unwrap().1, "hello from drover demo v2.0.0\n");
    let warm_of = |s: &Value| -> Vec<Value> {
        s["instances"]
            .as_array()
            .map(|a| a.iter().filter(|i| i["state"] == "warm").cloned().collect())
            .unwrap_or_default()
    };
    let warm_ready = |release: i64| {
        let w = warm_of(&env.stack_status());
        w.len() == 1 && w[0]["release"] == release && w[0]["healthy"] == true
    };
    assert!(warm_ready(3), "{}", env.stack_status());
    kill_agent(&env);
    wait_for("the restored live and warm instances", 30, || {
        let s = env.stack_status();
        s["live_release"] == 5 && healthy_live(&s).len() == 1 && warm_ready(3)
    });
    assert_eq!(
        listening_on(port),
        vec!["127.0.0.1".to_string()],
        "a restored route listens where the stack file says"
    );
    let warm_id = warm_of(&env.stack_status())[0]["id"].clone();
    let (r6, l, wall) = under_load(&env, port, &["rollback", "hello", "--json"]);
    assert_eq!(
        (r6["release"].as_i64(), r6["rollback_of"].as_i64()),
        (Some(6), Some(3))
    );
    assert_eq!(r6["warm"], true, "{r6}");
    assert_eq!(
        r6["instances"],
        serde_json::json!([warm_id]),
        "nothing started"
    );
    assert_switch(&l, "v2.0.0", "v1.0.0");
    println!(
        "warm rollback under load: {} requests, 0 failed; rollback wall time {wall:?} \
         (route switch {:.3} ms, {:.0} ms in the agent, of which {:.1} ms finding the \
         image ready) vs {cold_rollback_wall:?} cold",
        l.ok,
        r6["switch_ms"].as_f64().unwrap(),
        r6["total_ms"].as_f64().unwrap(),
        r6["unpack_ms"].as_f64().unwrap()
    );
    assert_eq!(r6["layers_unpacked"], 0, "{r6}");
    assert!(
        wall < cold_rollback_wall,
        "warm {wall:?} vs cold {cold_rollback_wall:?}"
    );
    // Only the one previous release is warm; the promoted instance serves release 6.
    let s = env.stack_status();
    assert_eq!(healthy_live(&s)[0]["id"], warm_id, "{s}");
    assert!(warm_ready(5), "{s}");
    // A warm instance that is gone: the rollback falls back to new instances.
    let victim = warm_of(&env.stack_status())[0]["pid"].as_i64().unwrap() as i32;
    assert_eq!(unsafe { libc::kill(victim, libc::SIGKILL) }, 0);
    wait_for("the warm instance to be gone", 10, || {
        warm_of(&env.stack_status()).is_empty()
    });
    let r7 = env.json(&["rollback", "hello", "--json"]);
    assert_eq!(
        (r7["release"].as_i64(), r7["rollback_of"].as_i64()),
        (Some(7), Some(5))
    );
    assert_eq!(r7["warm"], false, "{r7}");
    assert!(
        r7["cold_reason"]
            .as_str()
            .is_some_and(|r| r.contains("0 warm instance(s) running, 1 wanted")),
        "{r7}"
    );
    assert_eq!(get(port, "/").unwrap().1, "hello from drover demo v2.0.0\n");
    wait_for("release 6 kept warm", 10, || warm_ready(6));
    // keep_warm turned off: a restarted agent restores the live release only and forgets
    // the warm one.
    let text = std::fs::read_to_string(&stack_file).unwrap();
    std::fs::write(
        &stack_file,
        text.replace("keep_warm = true", "keep_warm = false"),
    )
    .unwrap();
    kill_agent(&env);
    wait_for("the restored live release", 30, || {
        let s = env.stack_status();
        s["live_release"] == 7 && healthy_live(&s).len() == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        warm_of(&env.stack_status()).is_empty(),
        "{}",
        env.stack_status()
    );

    // Route metrics: the router counted every release's requests by class, flushed into
    // the store (the load runs above made thousands of 2xx).
    let m = env.json(&["metrics", "hello", "--json", "--since", "1h"]);
    let totals = m["releases"].as_array().unwrap();
    assert!(
        totals
            .iter()
            .any(|t| t["status_2xx"].as_u64().unwrap_or(0) > 100 && t["p99_ms"].is_number()),
        "{m}"
    );
    assert!(m["minutes"].as_array().unwrap().iter().all(|r| {
        r["requests"].as_u64()
            == Some(
                ["status_2xx", "status_3xx", "status_4xx", "status_5xx"]
                    .iter()
                    .map(|k| r[k].as_u64().unwrap())
                    .sum(),
            )
    }));

    // The watch window: a release that answers 500 on `/` (its health path still 200;
    // no `test` script, which would refuse it before traffic moves) is rolled back by
    // the agent itself, and the route serves the previous release again.
    let text = std::fs::read_to_string(&stack_file).unwrap();
    let start = text
        .find("test = \"\"\"")
        .expect("a test script in hello.toml");
    let end = start + 10 + text[start + 10..].find("\"\"\"").unwrap() + 3;
    // (At the start of a line: the file's comments name `keep_warm` too.)
    let text = format!("{}{}", &text[..start], &text[end..]).replace(
        "\nkeep_warm = false\n",
        "\nkeep_warm = false\nwatch = \"40s\"\nmax_error_rate = 0.2\n",
    );
    assert!(text.contains("\nwatch = "), "{text}");
    std::fs::write(&stack_file, text).unwrap();
    let failing = server.replace(
        "        elif self.path == \"/\":\n            body = f\"{GREETING} from drover demo v{VERSION}\\n\".encode()",
        "        elif self.path == \"/\":\n            self.send_error(500)\n            return",
    );
    assert_ne!(failing, server, "server.py changed shape; update this test");
    std::fs::write(app.join("server.py"), &failing).unwrap();
    std::fs::write(app.join("VERSION"), "4.0.0-500\n").unwrap();
    let b4 = env.json(&["build", "hello", "--json"]);
    assert_eq!(b4["status"], "succeeded", "{b4}");
    let before = env.stack_status()["live_release"].as_i64().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(port, 1, 1_000_000, stop.clone());
    let bad = env.json(&["deploy", "hello", "--json"]);
    let bad_release = bad["release"].as_i64().unwrap();
    assert!(
        bad["watching"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("release {bad_release} until ")),
        "{bad}"
    );
    let t = Instant::now();
    // Its audit record is written once the rollback is over.
    let watch_record = || {
        env.json(&["audit", "hello", "--json", "--limit", "5"])
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["action"] == "watch-rollback")
            .cloned()
    };
    wait_for("the watch window to roll the 500 release back", 40, || {
        watch_record().is_some()
    });
    assert_eq!(env.stack_status()["live_release"], bad_release + 1);
    let rolled_back_after = t.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let seen = traffic.join().unwrap();
    println!(
        "watch window: release {bad_release} rolled back {rolled_back_after:?} after its deploy returned ({} requests answered 200, {} not)",
        seen.ok,
        seen.failed.len()
    );
    assert!(!seen.failed.is_empty(), "the bad release answered 500s");
    assert_eq!(
        get(port, "/").unwrap(),
        (200, "hello from drover demo v2.0.0\n".to_string()),
        "the previous release serves again"
    );
    let rel = env.json(&["releases", "hello", "--json"]);
    assert_eq!(rel[0]["release"], bad_release + 1, "{rel}");
    assert_eq!(rel[0]["rollback_of"], before, "{rel}");
    assert_eq!(rel[0]["by"], "drover-watch", "{rel}");
    assert!(
        rel[1]["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("rolled back by the watch window: 5xx "),
        "{rel}"
    );
    let record = watch_record().unwrap();
    let detail = record["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!("release {bad_release}: 5xx "))
            && detail.contains("> max_error_rate 20.0% (previous release ")
            && detail.ends_with(&format!(
                "rolled back to release {before} as release {}",
                bad_release + 1
            )),
        "{detail}"
    );
    let m = env.json(&[
        "metrics",
        "hello",
        "--json",
        "--release",
        &bad_release.to_string(),
    ]);
    assert!(
        m["releases"][0]["status_5xx"].as_u64().unwrap() >= 20,
        "{m}"
    );
    std::fs::write(app.join("server.py"), &server).unwrap();
    // The health history: release 1's instance was checked every interval until it was
    // replaced (its last minute written when its checks ended).
    let d1 = env.json(&["releases", "hello", "--release", "1", "--json"]);
    let health = d1["health"].as_array().unwrap();
    assert!(
        !health.is_empty()
            && health
                .iter()
                .all(|m| m["checks"].as_i64().unwrap() >= 1 && m["instance"] != ""),
        "{d1}"
    );

    // One stack's lifecycle: stop (the route says so; a restarted agent keeps it
    // stopped), start, scale to 2, a rolling restart under load with no failed request,
    // scale back to 1; bad input refused before the agent is asked.
    let v2 = "hello from drover demo v2.0.0\n".to_string();
    let stopped = env.json(&["stop", "hello", "--json", "--grace", "5"]);
    assert_eq!(stopped["stopped"], true, "{stopped}");
    assert_eq!(stopped["instances"], serde_json::json!([]), "{stopped}");
    assert_eq!(stopped["stopped_instances"].as_array().unwrap().len(), 1);
    let (status, body) = get(port, "/").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("stack hello is stopped (by ") && body.contains("`drover start hello`"),
        "{body}"
    );
    kill_agent(&env);
    let s = env.stack_status();
    assert!(
        s["stopped"].is_string(),
        "a restarted agent keeps it stopped: {s}"
    );
    assert_eq!(s["instances"], serde_json::json!([]), "{s}");
    assert_eq!(get(port, "/").unwrap().0, 503);
    let started = env.json(&["start", "hello", "--json"]);
    assert_eq!(started["stopped"], false, "{started}");
    assert_eq!(
        started["instances"].as_array().unwrap().len(),
        1,
        "{started}"
    );
    assert_eq!(get(port, "/").unwrap(), (200, v2.clone()));
    let scaled = env.json(&["scale", "hello", "2", "--json"]);
    assert_eq!(scaled["instances"].as_array().unwrap().len(), 2, "{scaled}");
    assert_eq!(healthy_live(&env.stack_status()).len(), 2);
    let (restarted, l, wall) = under_load(&env, port, &["restart", "hello", "--json"]);
    assert!(l.failed.is_empty(), "failed requests: {:?}", l.failed);
    let (old, new) = (
        scaled["instances"].as_array().unwrap(),
        restarted["instances"].as_array().unwrap(),
    );
    assert_eq!(new.len(), 2, "{restarted}");
    assert!(
        new.iter().all(|i| !old.contains(i)),
        "{scaled} -> {restarted}"
    );
    println!(
        "rolling restart of 2 instances under load: {} requests, 0 failed, {wall:?}",
        l.ok
    );
    let one = env.json(&["scale", "hello", "1", "--json"]);
    assert_eq!(one["instances"].as_array().unwrap().len(), 1, "{one}");
    assert_eq!(
        one["stopped_instances"].as_array().unwrap().len(),
        1,
        "{one}"
    );
    assert_eq!(get(port, "/").unwrap(), (200, v2));
    let bad = env.drover(&["scale", "hello", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("replicas must be 1 to 64"));
    let audit = env.json(&["audit", "hello", "--json", "--limit", "20"]);
    for action in ["stop", "start", "scale", "restart"] {
        assert!(
            audit
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["action"] == action),
            "no {action} record: {audit}"
        );
    }

    // Issue #13: a stack file broken while live still rolls back, is restored by a new
    // agent and scales, from the definition the live release was deployed with (kept in
    // the store); a plain deploy is refused and says that a rollback works.
    let good = std::fs::read_to_string(&stack_file).unwrap();
    std::fs::write(&stack_file, "name = \"hello\"\n[base\n").unwrap();
    let refused = env.drover(&["deploy", "hello"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("hello.toml:2:") && err.contains("`drover rollback hello` works"),
        "{err}"
    );
    let live_before = env.stack_status()["live_release"].as_i64().unwrap();
    // (To release 1's v1: the plain previous release is the one answering 500 that the
    // watch window rolled back above.)
    let rb = env.json(&["rollback", "hello", "--to", "1", "--json"]);
    assert_eq!(rb["rollback_of"], 1, "{rb}");
    assert!(
        rb["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains(&format!(
                "the definition release #{live_before} was deployed with"
            ))),
        "{rb}"
    );
    assert_eq!(
        get(port, "/").unwrap(),
        (200, "hello from drover demo v1.0.0\n".to_string())
    );
    kill_agent(&env);
    let s = env.stack_status();
    assert_eq!(s["live_release"], rb["release"], "{s}");
    assert_eq!(
        healthy_live(&s).len(),
        1,
        "restored from the kept definition: {s}"
    );
    let two = env.json(&["scale", "hello", "2", "--json"]);
    assert_eq!(two["instances"].as_array().unwrap().len(), 2, "{two}");
    assert_eq!(get(port, "/").unwrap().0, 200);
    env.json(&["scale", "hello", "1", "--json"]);
    std::fs::write(&stack_file, &good).unwrap();

    // Recreate: with the data volume no longer `shared`, a deploy stops the old release
    // before the new one starts on the same data (never two writers); 2 replicas are
    // refused; a new release that never becomes healthy brings the previous one back on
    // the same data.
    let text = std::fs::read_to_string(&stack_file).unwrap();
    assert!(text.contains("\nshared = true\n"), "{text}");
    std::fs::write(&stack_file, text.replace("\nshared = true\n", "\n")).unwrap();
    let old_id = healthy_live(&env.stack_status())[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b1_id = b1["build_id"].to_string();
    let rc = env.json(&["deploy", "hello", "--build", &b1_id, "--json"]);
    assert_eq!(rc["strategy"], "recreate", "{rc}");
    let gap = rc["unavailable_ms"].as_f64().unwrap();
    println!("recreate deploy: unavailable for {gap:.0} ms (old stopped, new started and healthy)");
    assert_eq!(get(port, "/").unwrap().1, "hello from drover demo v1.0.0\n");
    let new_id = rc["instances"][0].as_str().unwrap().to_string();
    let store = drover::store::Store::open(&env.state().join("drover.db")).unwrap();
    let mut events = store.instance_events("hello", 1000).unwrap();
    events.reverse();
    let at = |id: &str, what: &str| {
        events
            .iter()
            .position(|e| e.instance == id && e.event == what)
            .unwrap_or_else(|| panic!("no {what} event of {id}: {events:?}"))
    };
    assert!(
        at(&old_id, "stopped") < at(&new_id, "started"),
        "the new instance started before the old one stopped"
    );
    assert!(std::fs::read_to_string(&boots).unwrap().contains(&new_id));
    let two = env.drover(&["scale", "hello", "2"]);
    assert_eq!(two.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&two.stderr).contains("deploys by \"recreate\""));
    let b3_id = b3["build_id"].to_string();
    let failed = env.drover(&["deploy", "hello", "--build", &b3_id, "--timeout", "4"]);
    assert_eq!(failed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(
        err.contains("started again on the same data (recreate)"),
        "{err}"
    );
    assert_eq!(
        get(port, "/").unwrap(),
        (200, "hello from drover demo v1.0.0\n".to_string())
    );

    // Secrets never in a log line or the store.
    // (The runtime log is in drover.db.)
    for f in [
        env.state().join("logs/agent.log"),
        env.state().join("drover.db"),
        env.state().join("drover.db-wal"),
    ] {
        if let Ok(bytes) = std::fs::read(&f) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(SECRET),
                "the secret leaked into {}",
                f.display()
            );
        }
    }
}
