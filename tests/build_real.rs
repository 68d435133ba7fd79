//! The real thing: builds the demo stack against the live Debian mirror with mmdebstrap,
//! then checks the image with skopeo and umoci, the manifest against `dpkg-query` run
//! inside the unpacked image, the base cache on an app change, a failing build script and
//! a killed build. Needs root, network to the Debian mirror, and `.ci/setup`'s packages.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_drover");

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Env {
    fn config(&self) -> PathBuf {
        self.root.join("config")
    }
    fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    fn drover(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(self.config())
            .arg("--state")
            .arg(self.state())
            .args(args)
            .output()
            .expect("run drover")
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

/// A temp tree shaped like the repository: config/ (demo + test stacks) and assets/demo.
fn setup() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&repo.join("config"), &root.join("config"));
    copy_dir(
        &repo.join("assets/demo/hello"),
        &root.join("assets/demo/hello"),
    );
    // Same base inputs as the demo, so they reuse its cached base.
    let base = r#"
packages = ["python3-minimal", "libpython3-stdlib", "ca-certificates"]
[base]
distro = "debian"
suite = "bookworm"
mirror = "http://deb.debian.org/debian"
components = ["main"]
variant = "apt"
"#;
    std::fs::write(
        root.join("config/stacks/broken.toml"),
        format!(
            "name = \"broken\"\n{base}\n[scripts]\nbuild = \"\"\"\necho step one done\necho about to fail >&2\nexit 1\n\"\"\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("config/stacks/slow.toml"),
        format!("name = \"slow\"\n{base}\n[scripts]\nbuild = \"\"\"\necho sleeping now\nsleep 297\n\"\"\"\n"),
    )
    .unwrap();
    Env { _tmp: tmp, root }
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (run .ci/setup)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn demo_stack_builds_from_the_live_mirror() {
    let env = setup();

    // 1. Cold build.
    let t0 = Instant::now();
    let first = env.json(&["build", "hello", "--json"]);
    let cold = t0.elapsed();
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(first["base_cached"], false);
    assert!(first["error"].is_null());
    let digest = first["image_digest"].as_str().unwrap().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    let image = first["image_path"].as_str().unwrap().to_string();
    assert!(Path::new(&image).is_file());

    // 2. skopeo reads it: digest, labels, entrypoint, port.
    let inspect: Value = serde_json::from_str(&run_ok(
        Command::new("skopeo").args(["inspect", &format!("oci-archive:{image}")]),
    ))
    .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Labels"]["io.drover.stack"], "hello");
    assert_eq!(
        inspect["Labels"]["io.drover.build-id"],
        first["build_id"].to_string()
    );
    assert_eq!(inspect["Labels"]["io.drover.base-key"], first["base_key"]);
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
    let config: Value = serde_json::from_str(&run_ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci-archive:{image}"),
    ])))
    .unwrap();
    assert_eq!(config["config"]["Entrypoint"][0], "/etc/drover/entrypoint");
    assert!(config["config"]["ExposedPorts"]["8080/tcp"].is_object());
    assert_eq!(config["config"]["WorkingDir"], "/opt/app");
    let env_list: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env_list.contains(&"GREETING=hello"));
    assert!(
        !env_list.iter().any(|e| e.starts_with("HELLO_TOKEN")),
        "secrets never baked"
    );

    // podman loads the same archive (through Docker's manifest.json / the OCI index) into
    // a private storage root, and sees our config.
    let raw: Value = serde_json::from_str(&run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci-archive:{image}"),
    ])))
    .unwrap();
    let config_digest = raw["config"]["digest"].as_str().unwrap().to_string();
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(env.root.join("podman/storage"))
            .arg("--runroot")
            .arg(env.root.join("podman/run"))
            .args(args);
        run_ok(&mut c)
    };
    let loaded = podman(&["load", "-i", &image]);
    let tag = format!("docker.io/drover/hello:build-{}", first["build_id"]);
    assert!(loaded.contains(&tag), "{loaded}");
    let id = podman(&["image", "inspect", &tag, "--format", "{{.Id}}"]);
    assert_eq!(format!("sha256:{}", id.trim()), config_digest);

    // 3. Unpack with umoci (applies our whiteouts) and compare dpkg-query with the manifest.
    let oci_dir = env.root.join("oci");
    let rootfs = env.root.join("rootfs");
    run_ok(Command::new("skopeo").args([
        "copy",
        &format!("oci-archive:{image}"),
        &format!("oci:{}:hello", oci_dir.display()),
    ]));
    run_ok(Command::new("umoci").args([
        "raw",
        "unpack",
        "--image",
        &format!("{}:hello", oci_dir.display()),
        rootfs.to_str().unwrap(),
    ]));
    let dpkg = run_ok(Command::new("chroot").arg(&rootfs).args([
        "dpkg-query",
        "-W",
        "-f",
        "${db:Status-Status} ${Package} ${Version} ${Architecture}\\n",
    ]));
    let from_dpkg: BTreeSet<(String, String, String)> = dpkg
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0] == "installed").then(|| (f[1].to_string(), f[2].to_string(), f[3].to_string()))
        })
        .collect();
    let manifest = env.json(&["manifest", "hello", "--format", "json"]);
    let entries = manifest.as_array().unwrap();
    let from_drover: BTreeSet<(String, String, String)> = entries
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["version"].as_str().unwrap().to_string(),
                c["arch"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        from_dpkg.len() > 50,
        "dpkg lists {} packages",
        from_dpkg.len()
    );
    assert_eq!(from_drover, from_dpkg);
    for c in entries {
        assert!(!c["source"].as_str().unwrap().is_empty(), "{c}");
        assert!(!c["source_version"].as_str().unwrap().is_empty(), "{c}");
        assert_eq!(c["suite"], "bookworm", "{c}");
        assert_eq!(c["origin"], "http://deb.debian.org/debian", "{c}");
    }
    assert!(entries.iter().any(|c| c["name"] == "python3-minimal"));
    // The app and the lifecycle files are in the image; the build script ran inside it.
    assert!(rootfs.join("opt/app/server.py").is_file());
    assert!(rootfs.join("etc/drover/entrypoint").is_file());
    assert!(rootfs.join("etc/drover/run").is_file());
    assert!(
        rootfs.join("opt/app/__pycache__").is_dir(),
        "build script output missing"
    );

    // 4. An app change reuses the base.
    std::fs::write(env.root.join("assets/demo/hello/VERSION"), "1.0.1\n").unwrap();
    let t1 = Instant::now();
    let second = env.json(&["build", "hello", "--json"]);
    let warm = t1.elapsed();
    eprintln!("cold build {cold:?}, warm build {warm:?}");
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(second["base_cached"], true);
    assert_eq!(second["base_key"], first["base_key"]);
    assert_ne!(second["image_digest"], first["image_digest"]);
    let inspect2: Value = serde_json::from_str(&run_ok(Command::new("skopeo").args([
        "inspect",
        &format!("oci-archive:{}", second["image_path"].as_str().unwrap()),
    ])))
    .unwrap();
    assert_eq!(
        inspect2["Layers"][0], inspect["Layers"][0],
        "base layer blob reused"
    );
    assert_ne!(inspect2["Layers"][1], inspect["Layers"][1]);

    // 5. A failing build script: exit 1, step and last lines shown, no image, log kept.
    let out = env.drover(&["build", "broken"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("failed at step app"), "{stderr}");
    assert!(stderr.contains("about to fail"), "{stderr}");
    let builds = env.json(&["builds", "broken", "--json"]);
    let b = &builds[0];
    assert_eq!(b["status"], "failed");
    assert_eq!(b["failed_step"], "app");
    assert!(b["image_path"].is_null() && b["image_digest"].is_null());
    let id = b["id"].as_i64().unwrap();
    assert!(!env
        .state()
        .join(format!("images/broken/{id}.oci.tar"))
        .exists());
    assert!(!env.state().join(format!("builds/{id}")).exists());
    let logs = env.json(&["logs", "broken", "--build", &id.to_string(), "--json"]);
    assert!(logs
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["line"] == "step one done" && l["stream"] == "stdout"));
    let out = env.drover(&["manifest", "broken", "--build", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1));

    // 6. A killed build is marked interrupted at the next start, its files removed.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(env.config())
        .arg("--state")
        .arg(env.state())
        .args(["build", "slow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let logs = env.drover(&["logs", "slow", "--json"]);
        if logs.status.success() && String::from_utf8_lossy(&logs.stdout).contains("sleeping now") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow build never started its script"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let builds = env.json(&["builds", "slow", "--json"]);
    assert_eq!(builds[0]["status"], "interrupted", "{builds}");
    let id = builds[0]["id"].as_i64().unwrap();
    assert!(!env.state().join(format!("builds/{id}")).exists());
    assert!(!env
        .state()
        .join(format!("images/slow/{id}.oci.tar"))
        .exists());

    // 7. Ctrl-C cancels cleanly: the sandboxed script is stopped, the build is `cancelled`.
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(env.config())
        .arg("--state")
        .arg(env.state())
        .args(["build", "slow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let builds = env.json(&["builds", "slow", "--json"]);
        let running = builds[0]["status"] == "running" && builds[0]["id"].as_i64() != Some(id);
        let logs = env.drover(&["logs", "slow", "--json"]);
        if running && String::from_utf8_lossy(&logs.stdout).contains("sleeping now") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second slow build never started its script"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = Instant::now();
    // SAFETY: plain syscall on our own child.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGINT) };
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "cancel took {:?}",
        t.elapsed()
    );
    let builds = env.json(&["builds", "slow", "--json"]);
    assert_eq!(builds[0]["status"], "cancelled", "{builds}");
    let cid = builds[0]["id"].as_i64().unwrap();
    assert!(!env.state().join(format!("builds/{cid}")).exists());
    assert!(!env
        .state()
        .join(format!("images/slow/{cid}.oci.tar"))
        .exists());
    let out = Command::new("pgrep")
        .args(["-f", "sleep 297"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the build script survived the cancel"
    );
}

/// Processes whose command line or environment names `dir` (a build's children inherit
/// `TMPDIR=STATE/tmp`, and mmdebstrap's arguments name the base directory).
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        let read = |f: &str| std::fs::read(e.path().join(f)).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&read("cmdline")).replace('\0', " ");
        let environ = String::from_utf8_lossy(&read("environ")).into_owned();
        if cmdline.contains(&needle) || environ.contains(&needle) {
            found.push(format!("{name}: {cmdline}"));
        }
    }
    found
}

/// Issue #12 §6: `kill -9` of a build during mmdebstrap leaves none of its children
/// running (they kept downloading and unpacking for 20-25 s): mmdebstrap runs in its own
/// PID namespace that dies with drover.
#[test]
fn a_build_killed_during_mmdebstrap_leaves_no_process_behind() {
    let env = setup();
    // A base no other test builds (its own key), so mmdebstrap really runs.
    std::fs::write(
        env.config().join("stacks/coldkill.toml"),
        "name = \"coldkill\"\npackages = [\"hello\"]\n[base]\ndistro = \"debian\"\n\
         suite = \"bookworm\"\nmirror = \"http://deb.debian.org/debian\"\n\
         components = [\"main\"]\nvariant = \"apt\"\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(env.config())
        .arg("--state")
        .arg(env.state())
        .args(["build", "coldkill"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until mmdebstrap has children at work downloading the packages (apt and its
    // http methods, which write nothing to drover's pipes and so kept running).
    let deadline = Instant::now() + Duration::from_secs(120);
    let started = |env: &Env| {
        String::from_utf8_lossy(&env.drover(&["logs", "coldkill"]).stdout)
            .contains("I: downloading packages with apt")
    };
    while processes_under(&env.state()).len() < 4 || !started(&env) {
        assert!(
            Instant::now() < deadline,
            "mmdebstrap never started: {:?}",
            env.drover(&["logs", "coldkill"])
        );
        assert!(child.try_wait().unwrap().is_none(), "the build ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = processes_under(&env.state());
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 3 s after kill -9: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let builds = env.json(&["builds", "coldkill", "--json"]);
    assert_eq!(builds[0]["status"], "interrupted", "{builds}");
    assert_eq!(builds[0]["failed_step"], "base", "{builds}");
    // Issue #11: the lock is written only once apt has resolved it, the .deb cache takes
    // only complete files, and the half-made base is gone after the recovery above.
    assert!(!env.config().join("stacks/coldkill.lock").exists());
    let names = |d: std::path::PathBuf| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let debs = names(env.state().join("debs"));
    assert!(!debs.iter().any(|n| n.starts_with(".tmp-")), "{debs:?}");
    let bases = names(env.state().join("bases"));
    assert!(
        !bases
            .iter()
            .any(|n| n.starts_with(".tmp-") || n.starts_with("resolve")),
        "{bases:?}"
    );
}
