//! The app layer's inputs without mmdebstrap: an app fetched by URL (served on 127.0.0.1 by
//! the test) and checked against its sha256, archives that try to escape, and the
//! lifecycle scripts.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use drover::build::app::{install_scripts, stage_app};
use drover::stack::parse::parse_stack;
use sha2::{Digest, Sha256};

/// Serve `body` with `status` to every request on a free loopback port, for `hits`
/// requests, from a thread. Returns the base URL.
fn serve(body: Vec<u8>, status: u16, hits: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(hits) {
            let mut s = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}")
}

fn tarball(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Regular);
        // Write the name bytes directly so a hostile `../` path reaches the reader.
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn stack_toml_with(url: &str, sha: &str, extra: &str) -> String {
    format!(
        r##"name = "web"
[base]
distro = "debian"
suite = "bookworm"
mirror = "http://deb.debian.org/debian"
[app]
url = "{url}"
sha256 = "{sha}"
dest = "/srv/web"
{extra}
[scripts]
boot = "echo booting"
run = "#!/bin/bash\nexec sleep infinity"
"##
    )
}

fn dirs() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let t = tempfile::tempdir().unwrap();
    let (lower, upper, work) = (
        t.path().join("lower"),
        t.path().join("upper"),
        t.path().join("work"),
    );
    for d in [&lower, &upper, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::create_dir_all(lower.join("srv")).unwrap();
    std::fs::set_permissions(lower.join("srv"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::create_dir_all(lower.join("etc")).unwrap();
    (t, lower, upper, work)
}

fn stack(url: &str, sha: &str) -> drover::stack::Stack {
    stack_with(url, sha, "")
}

fn stack_with(url: &str, sha: &str, extra: &str) -> drover::stack::Stack {
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("stacks/web.toml");
    parse_stack(&file, &stack_toml_with(url, sha, extra), cfg.path())
        .unwrap_or_else(|d| panic!("{d:?}"))
}

/// Serve one response of `total` bytes of body in 64 KiB writes, announcing its length
/// only when `announce`; the thread reports how many body bytes it got into the socket
/// before the client hung up.
fn serve_big(total: u64, announce: bool) -> (String, std::sync::mpsc::Receiver<u64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let len = if announce {
            format!("Content-Length: {total}\r\n")
        } else {
            String::new()
        };
        let head = format!("HTTP/1.1 200 OK\r\n{len}Connection: close\r\n\r\n");
        let _ = s.write_all(head.as_bytes());
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0u64;
        while sent < total {
            match s.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => sent += n as u64,
            }
        }
        let _ = tx.send(sent);
    });
    (format!("http://{addr}"), rx)
}

#[test]
fn a_download_over_max_size_stops_at_the_cap_and_leaves_no_file() {
    let cap: u64 = 1 << 20;
    let total: u64 = 256 << 20;
    // Without a Content-Length the cap is found while reading: the client stops one byte
    // over it, long before the 256 MiB body ends.
    let (base, sent) = serve_big(total, false);
    let url = format!("{base}/big.tar.gz");
    let s = stack_with(&url, &"a".repeat(64), "max_size = \"1MiB\"\n");
    let (_t, lower, upper, work) = dirs();
    let t0 = std::time::Instant::now();
    let err = format!("{:#}", stage_app(&s, &[&lower], &upper, &work).unwrap_err());
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("max_size (1 MiB, 1048576 bytes)"), "{err}");
    assert!(
        err.contains(&format!("stopped after {} bytes", cap + 1)),
        "read exactly one byte over the cap: {err}"
    );
    assert!(err.contains("raise `max_size`"), "{err}");
    assert!(
        std::fs::read_dir(&work).unwrap().next().is_none(),
        "no partial download left in the work dir"
    );
    assert!(std::fs::read_dir(upper.join("srv/web"))
        .unwrap()
        .next()
        .is_none());
    let sent = sent
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    eprintln!("cap {cap} bytes: the server got {sent} of {total} bytes out before the hang-up");
    // What the server got into the socket: the cap plus what the kernel's socket buffers
    // held when the client hung up, far from the whole body.
    assert!(sent < cap + (32 << 20), "server wrote {sent} bytes");
    assert!(t0.elapsed() < std::time::Duration::from_secs(20));

    // An announced Content-Length over the cap is refused before the body is read.
    let (base, _sent) = serve_big(total, true);
    let url = format!("{base}/big.tar.gz");
    let s = stack_with(&url, &"a".repeat(64), "max_size = 1048576\n");
    let (_t, lower, upper, work) = dirs();
    let err = format!("{:#}", stage_app(&s, &[&lower], &upper, &work).unwrap_err());
    assert!(
        err.contains(&format!("the server announces {total} bytes")) && err.contains(&url),
        "{err}"
    );
    assert!(std::fs::read_dir(&work).unwrap().next().is_none());
}

#[test]
fn a_download_at_max_size_is_accepted() {
    let body = tarball(&[("a", b"x")]);
    let sha = hex::encode(Sha256::digest(&body));
    let url = format!("{}/app.tar.gz", serve(body.clone(), 200, 1));
    let s = stack_with(&url, &sha, &format!("max_size = {}\n", body.len()));
    let (_t, lower, upper, work) = dirs();
    assert_eq!(stage_app(&s, &[&lower], &upper, &work).unwrap(), 1);
}

#[test]
fn a_checksum_mismatch_leaves_no_download() {
    let body = tarball(&[("a", b"x")]);
    let url = format!("{}/app.tar.gz", serve(body, 200, 1));
    let s = stack(&url, &"0".repeat(64));
    let (_t, lower, upper, work) = dirs();
    assert!(stage_app(&s, &[&lower], &upper, &work).is_err());
    assert!(std::fs::read_dir(&work).unwrap().next().is_none());
}

#[test]
fn a_url_app_is_downloaded_checked_and_unpacked() {
    let body = tarball(&[
        ("bin/server", b"#!/bin/sh\necho hi\n"),
        ("README", b"read me"),
    ]);
    let sha = hex::encode(Sha256::digest(&body));
    let url = format!("{}/web-1.0.tar.gz", serve(body, 200, 1));
    let s = stack(&url, &sha);
    let (_t, lower, upper, work) = dirs();
    let n = stage_app(&s, &[&lower], &upper, &work).unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        std::fs::read(upper.join("srv/web/README")).unwrap(),
        b"read me"
    );
    // Parent directories copied into the upper dir keep the base's metadata.
    let mode = std::fs::metadata(upper.join("srv"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o750);
}

#[test]
fn a_checksum_mismatch_names_both_digests() {
    let body = tarball(&[("a", b"x")]);
    let wrong = "0".repeat(64);
    let url = format!("{}/app.tar.gz", serve(body.clone(), 200, 1));
    let s = stack(&url, &wrong);
    let (_t, lower, upper, work) = dirs();
    let err = format!("{:#}", stage_app(&s, &[&lower], &upper, &work).unwrap_err());
    assert!(err.contains("sha256 mismatch"), "{err}");
    assert!(err.contains(&wrong), "{err}");
    assert!(err.contains(&hex::encode(Sha256::digest(&body))), "{err}");
    assert!(err.contains("[app].sha256"), "{err}");
}

#[test]
fn an_http_error_names_the_url_and_status() {
    let url = format!("{}/missing.tar.gz", serve(b"nope".to_vec(), 404, 1));
    let s = stack(&url, &"a".repeat(64));
    let (_t, lower, upper, work) = dirs();
    let err = format!("{:#}", stage_app(&s, &[&lower], &upper, &work).unwrap_err());
    assert!(err.contains(&url) && err.contains("404"), "{err}");
}

#[test]
fn an_archive_escaping_the_app_dir_is_refused() {
    let body = tarball(&[("../../etc/evil", b"x")]);
    let sha = hex::encode(Sha256::digest(&body));
    let url = format!("{}/evil.tar.gz", serve(body, 200, 1));
    let s = stack(&url, &sha);
    let (t, lower, upper, work) = dirs();
    let err = format!("{:#}", stage_app(&s, &[&lower], &upper, &work).unwrap_err());
    assert!(err.contains("outside the app directory"), "{err}");
    assert!(!upper.join("etc/evil").exists() && !t.path().join("etc/evil").exists());
}

#[test]
fn lifecycle_scripts_are_installed_executable_with_a_shebang() {
    let s = stack("http://127.0.0.1:9/x.tar.gz", &"a".repeat(64));
    let (_t, lower, upper, _work) = dirs();
    install_scripts(&s, &[&lower], &upper).unwrap();
    let dir = upper.join("etc/drover");
    for f in ["entrypoint", "boot", "run"] {
        let m = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
        assert_eq!(m & 0o777, 0o755, "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("boot")).unwrap(),
        "#!/bin/sh\necho booting\n"
    );
    assert!(std::fs::read_to_string(dir.join("run"))
        .unwrap()
        .starts_with("#!/bin/bash\n"));
    let entry = std::fs::read_to_string(dir.join("entrypoint")).unwrap();
    assert!(entry.contains("/etc/drover/boot") && entry.contains("exec /etc/drover/run"));
    assert!(Path::new(&dir).join("entrypoint").is_file());
}
