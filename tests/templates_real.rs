//! Issue #14: a stack started from a template builds on the real mirror and serves its
//! health path behind its route. `static` here (busybox httpd: a small base, ~1 min); the
//! other templates are validated in the unit tests of `stack::templates`.

// Tests may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/drover_env.rs"]
mod drover_env;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use drover_env::Env;

/// `GET path` on 127.0.0.1:port: the status code and body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n").map(|x| x.1.to_string())?;
    Some((code, body))
}

struct StopAgent<'e>(&'e Env);

impl Drop for StopAgent<'_> {
    fn drop(&mut self) {
        let _ = self.0.drover(&["agent", "stop"]);
    }
}

#[test]
fn a_static_stack_from_its_template_builds_deploys_and_serves() {
    let env = Env::new(env!("CARGO_BIN_EXE_drover"));
    std::fs::create_dir_all(env.root.join("config")).unwrap();
    let created = env.json(&["new", "site", "--template", "static", "--json"]);
    let stack_file = created["stack_file"].as_str().unwrap().to_string();
    // A free port, so this test's route never meets another's.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&stack_file).unwrap();
    std::fs::write(
        &stack_file,
        text.replace("port = 8080", &format!("port = {port}")),
    )
    .unwrap();
    assert!(env.drover(&["validate"]).status.success());

    let b = env.json(&["build", "site", "--json"]);
    assert_eq!(b["status"], "succeeded", "{b:#}");
    let _stop = StopAgent(&env);
    let d = env.json(&["deploy", "site", "--json"]);
    let route = d["route_port"].as_u64().unwrap() as u16;
    assert_eq!(route, port);
    let (code, body) = get(route, "/up").expect("the route answers");
    assert_eq!((code, body.trim()), (200, "ok"));
    let (code, body) = get(route, "/").unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("<h1>site</h1>"), "{body}");
}
