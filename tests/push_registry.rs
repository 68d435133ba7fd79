//! `drover push` against a real registry: Debian's `docker-registry` (distribution 2.8)
//! started on 127.0.0.1 with a temporary storage dir, checked with `skopeo`.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use drover::build::oci::{write_archive, write_layer, ImageSpec, LayerMode};
use drover::store::Store;

const BIN: &str = env!("CARGO_BIN_EXE_drover");

fn need(bin: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{bin}` is not installed; install it with `apt-get install {package}` (or run `bash .ci/setup`)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `docker-registry serve` with its own config and storage; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Start a registry; with `htpasswd`, it requires HTTP basic auth for that user/password.
    fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        need("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let storage = dir.path().join("storage");
        fs::create_dir(&storage).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some((user, pass)) = htpasswd {
            need("htpasswd", "apache2-utils");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .unwrap();
            assert!(out.status.success());
            let file = dir.path().join("htpasswd");
            fs::write(&file, &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: drover-test\n    path: {}\n",
                file.display()
            ));
        }
        let cfg = dir.path().join("config.yml");
        fs::write(&cfg, config).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let reg = Registry {
            child,
            port,
            _dir: dir,
        };
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "docker-registry did not listen on {port}: {}",
                fs::read_to_string(reg._dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A state dir holding one succeeded build (id returned) of stack `demo` with a small
/// two-layer image written by drover's own OCI writer.
fn state_with_image() -> (tempfile::TempDir, i64, String) {
    let state = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base");
    fs::create_dir_all(base.join("etc")).unwrap();
    fs::write(base.join("etc/os-release"), "ID=debian\n").unwrap();
    let app = work.path().join("app");
    fs::create_dir_all(app.join("opt/app")).unwrap();
    // Over one upload chunk (1 MiB), so the progress path sends several pieces.
    let payload: Vec<u8> = (0..3_000_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    fs::write(app.join("opt/app/data.bin"), payload).unwrap();
    let l1 = write_layer(&base, LayerMode::Full, &[], &work.path().join("l1.tgz")).unwrap();
    let l2 = write_layer(&app, LayerMode::Full, &[], &work.path().join("l2.tgz")).unwrap();
    let store = Store::open(&state.path().join("drover.db")).unwrap();
    let id = store.create_build("demo", std::process::id()).unwrap();
    let images = state.path().join("images/demo");
    fs::create_dir_all(&images).unwrap();
    let out = images.join(format!("{id}.oci.tar"));
    let info = write_archive(
        &[l1, l2],
        &ImageSpec {
            entrypoint: vec!["/bin/sh".into()],
            env: vec!["GREETING=hi".into()],
            exposed_ports: vec!["8080".into()],
            created: "2026-01-01T00:00:00Z".into(),
            ref_name: format!("drover/demo:build-{id}"),
            architecture: "amd64".into(),
            ..Default::default()
        },
        &out,
    )
    .unwrap();
    let mut store = store;
    store
        .finish_build_success(
            id,
            &drover::store::builds::Success {
                image_digest: &info.digest,
                image_path: out.to_str().unwrap(),
                components: &[],
            },
        )
        .unwrap();
    (state, id, info.digest)
}

fn drover(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.arg("--state").arg(state).args(args).stdin(Stdio::null());
    c.env_remove("DROVER_REGISTRY_USER")
        .env_remove("DROVER_REGISTRY_PASSWORD");
    // Never read the developer's own Docker credentials.
    let empty = tempfile::tempdir().unwrap().keep();
    c.env("DOCKER_CONFIG", &empty);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn skopeo_inspect_digest(image: &str) -> String {
    need("skopeo", "skopeo");
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn push_then_skopeo_inspect_and_copy_back_give_the_same_digest() {
    let reg = Registry::start(None);
    let (state, id, digest) = state_with_image();
    let to = format!("{}/team/demo:v1", reg.host());
    let out = drover(
        state.path(),
        &["push", "demo", "--to", &to, "--insecure", "--json"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["digest"], digest.as_str(), "{v}");
    assert_eq!(v["build_id"], id);
    assert_eq!(v["reference"], to.as_str());
    assert_eq!(
        v["reference_by_digest"],
        format!("{}/team/demo@{digest}", reg.host()).as_str()
    );
    assert_eq!(v["blobs_uploaded"], 3, "config + 2 layers: {v}");
    assert_eq!(v["blobs_skipped"], 0);
    assert_eq!(v["credentials"], "anonymous");

    // The registry serves the same digest, by tag and by digest.
    assert_eq!(skopeo_inspect_digest(&format!("docker://{to}")), digest);
    assert_eq!(
        skopeo_inspect_digest(&format!("docker://{}/team/demo@{digest}", reg.host())),
        digest
    );

    // Copy back into an OCI archive: same digest, same layers.
    let back = tempfile::tempdir().unwrap();
    let back_tar = back.path().join("back.oci.tar");
    let cp = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{to}"))
        .arg(format!("oci-archive:{}", back_tar.display()))
        .output()
        .unwrap();
    assert!(
        cp.status.success(),
        "{}",
        String::from_utf8_lossy(&cp.stderr)
    );
    assert_eq!(
        skopeo_inspect_digest(&format!("oci-archive:{}", back_tar.display())),
        digest
    );

    // The store recorded the push.
    let store = Store::open(&state.path().join("drover.db")).unwrap();
    let pushes = store.pushes("demo").unwrap();
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].digest, digest);
    assert_eq!(pushes[0].reference, to);
    assert_eq!(pushes[0].build_id, id);

    // A second push to another tag uploads nothing new; plain output names the digest.
    let to2 = format!("{}/team/demo:v2", reg.host());
    let out = drover(
        state.path(),
        &["push", "demo", "--to", &to2, "--insecure"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("digest    {digest}")), "{stdout}");
    assert!(
        stdout.contains("0 uploaded (0 bytes), 3 already there"),
        "{stdout}"
    );
    assert_eq!(skopeo_inspect_digest(&format!("docker://{to2}")), digest);
}

#[test]
fn credentials_from_env_and_docker_config_and_bad_ones_are_named() {
    let reg = Registry::start(Some(("ci", "s3cret-pass")));
    let (state, _id, digest) = state_with_image();
    let to = format!("{}/demo:v1", reg.host());

    // No credentials: 401, with the registry named and the fix.
    let out = drover(
        state.path(),
        &["push", "demo", "--to", &to, "--insecure"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("registry {}", reg.host())), "{err}");
    assert!(err.contains("HTTP 401 Unauthorized"), "{err}");
    assert!(err.contains("docker login"), "{err}");

    // Wrong password from the environment: 401, names the source.
    let out = drover(
        state.path(),
        &["push", "demo", "--to", &to, "--insecure"],
        &[
            ("DROVER_REGISTRY_USER", "ci"),
            ("DROVER_REGISTRY_PASSWORD", "wrong"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(err.contains("DROVER_REGISTRY_USER"), "{err}");
    assert!(!err.contains("wrong"), "the password leaked: {err}");

    // Only one of the two variables: a clear input problem before any network use.
    let out = drover(
        state.path(),
        &["push", "demo", "--to", &to, "--insecure"],
        &[("DROVER_REGISTRY_USER", "ci")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DROVER_REGISTRY_PASSWORD is not"),
        "{}",
        text(&out)
    );

    // Right credentials from the environment.
    let out = drover(
        state.path(),
        &["push", "demo", "--to", &to, "--insecure", "--json"],
        &[
            ("DROVER_REGISTRY_USER", "ci"),
            ("DROVER_REGISTRY_PASSWORD", "s3cret-pass"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["digest"], digest.as_str());
    assert_eq!(v["credentials"], "environment");

    // Right credentials from Docker's config.json (`auths`, base64 user:password).
    let dc = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(b"ci:s3cret-pass");
    fs::write(
        dc.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let to2 = format!("{}/demo:v2", reg.host());
    let out = drover(
        state.path(),
        &["push", "demo", "--to", &to2, "--insecure", "--json"],
        &[("DOCKER_CONFIG", dc.path().to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["credentials"], "docker_config");
    assert_eq!(v["digest"], digest.as_str());
}

#[test]
fn unreachable_registry_and_bad_destinations_are_clear() {
    let (state, _id, _digest) = state_with_image();
    let port = free_port(); // nothing listens there
    let to = format!("127.0.0.1:{port}/demo:v1");
    let out = drover(
        state.path(),
        &["push", "demo", "--to", &to, "--insecure"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach registry 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.contains("check that a registry listens"), "{err}");

    // Without --insecure: HTTPS is tried and the hint says so.
    let out = drover(state.path(), &["push", "demo", "--to", &to], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("add --insecure"),
        "{}",
        text(&out)
    );

    for (bad, says) in [
        ("demo:v1", "no registry host"),
        ("hello/demo:v1", "does not start with a registry host"),
        ("127.0.0.1:5000/demo", "has no tag"),
        ("127.0.0.1:5000/Demo:v1", "repository \"Demo\""),
        ("127.0.0.1:5000/demo:-x", "tag \"-x\""),
    ] {
        let out = drover(state.path(), &["push", "demo", "--to", bad], &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{bad}: {err}");
        assert!(err.contains("HOST[:PORT]/REPO:TAG"), "{bad}: {err}");
    }

    // Unknown build, other stack.
    let out = drover(
        state.path(),
        &["push", "demo", "--build", "99", "--to", &to, "--insecure"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no build 99"));
    let out = drover(
        state.path(),
        &["push", "other", "--to", &to, "--insecure"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("other has no succeeded build"));
}

/// The real path: build the demo stack from the Debian mirror (mmdebstrap, as in
/// `build_real.rs`), push its image, compare digests, and export it by the pushed reference.
#[test]
fn push_the_demo_stacks_built_image() {
    let reg = Registry::start(None);
    let state = tempfile::tempdir().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("--state")
            .arg(state.path())
            .args(args)
            .env("DOCKER_CONFIG", state.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["build", "hello", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let build: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = build["image_digest"].as_str().unwrap().to_string();

    let to = format!("{}/hello:latest", reg.host());
    let out = run(&["push", "hello", "--to", &to, "--insecure", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["digest"], digest.as_str());
    assert_eq!(v["blobs_uploaded"], 3, "config, base layer, app layer: {v}");
    assert_eq!(skopeo_inspect_digest(&format!("docker://{to}")), digest);

    // The export references exactly the pushed image.
    let k8s = state.path().join("k8s");
    let out = run(&[
        "export",
        "hello",
        "--target",
        "kubernetes",
        "--out",
        k8s.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pinned = format!("{}/hello@{digest}", reg.host());
    assert_eq!(e["image"], pinned.as_str());
    let d = fs::read_to_string(k8s.join("deployment.yaml")).unwrap();
    assert!(d.contains(&format!("image: \"{pinned}\"")), "{d}");
}

#[test]
fn broken_archives_are_named_before_any_upload() {
    use drover::registry::archive::open;
    let (state, id, digest) = state_with_image();
    let good = state.path().join(format!("images/demo/{id}.oci.tar"));
    let img = open(&good).unwrap();
    assert_eq!(img.digest, digest);
    assert_eq!(img.layers.len(), 2);
    assert_eq!(
        img.media_type,
        drover::registry::archive::MEDIA_TYPE_MANIFEST
    );

    let dir = tempfile::tempdir().unwrap();
    // Not a tar at all.
    let junk = dir.path().join("junk.oci.tar");
    fs::write(
        &junk,
        b"definitely not a tar archive, but long enough to be read as one....",
    )
    .unwrap();
    let e = format!("{:#}", open(&junk).unwrap_err());
    assert!(e.contains(&junk.display().to_string()), "{e}");

    // A layout whose manifest names a blob that is not there.
    let bytes = fs::read(&good).unwrap();
    let mut ar = tar::Archive::new(bytes.as_slice());
    let mut b = tar::Builder::new(Vec::new());
    let layer_hex = img.layers[1]
        .digest
        .trim_start_matches("sha256:")
        .to_string();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        if path.ends_with(&layer_hex) {
            continue;
        }
        let mut h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        b.append_data(&mut h, &path, data.as_slice()).unwrap();
    }
    let missing = dir.path().join("missing.oci.tar");
    fs::write(&missing, b.into_inner().unwrap()).unwrap();
    let e = format!("{:#}", open(&missing).unwrap_err());
    assert!(
        e.contains("layer 1 blob") && e.contains("is missing"),
        "{e}"
    );
    assert!(e.contains(&missing.display().to_string()), "{e}");
}
