//! Issue #14, opt-in (`cargo test --test templates_optin -- --ignored`): the `node`,
//! `binary` and `generic` templates, each `drover new` → `validate` → `build` on the live mirror →
//! `deploy` → its health path 200 through the route. Not in CI's default run: Debian's
//! `npm` pulls in some 400 packages (a cold base of several minutes), and the binary test
//! compiles a static server with the host's gcc.
//!
//! - `node`: a real dependency (`ms` 2.1.3 from the npm registry, pinned by integrity in
//!   `package-lock.json`) installed by `npm ci` in the deps layer; the language package
//!   catalog lists it; an app-only change reuses the layer.
//! - `binary`: a static HTTP server (C, `gcc -static`) packed as a tarball, served by this
//!   test on 127.0.0.1, fetched by `url` + `sha256`; a wrong checksum is refused first.

// Tests may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/drover_env.rs"]
mod drover_env;
#[path = "support/template_stacks.rs"]
mod template_stacks;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

use sha2::{Digest, Sha256};
use template_stacks::{assert_lang_package, get, new_stack, StopAgent};

const MS_INTEGRITY: &str =
    "sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==";

#[test]
#[ignore = "opt-in: a cold base with Debian's npm takes minutes"]
fn a_node_stack_installs_its_locked_dependencies_in_the_deps_layer_and_serves() {
    let (env, _port) = new_stack("web", "node");
    let app = env.root.join("apps/web");
    let package = std::fs::read_to_string(app.join("package.json"))
        .unwrap()
        .replace(
            "\"dependencies\": {}",
            "\"dependencies\": { \"ms\": \"2.1.3\" }",
        );
    std::fs::write(app.join("package.json"), package).unwrap();
    let lock = serde_json::json!({
        "name": "web", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
        "packages": {
            "": { "name": "web", "version": "1.0.0", "dependencies": { "ms": "2.1.3" } },
            "node_modules/ms": {
                "version": "2.1.3",
                "resolved": "https://registry.npmjs.org/ms/-/ms-2.1.3.tgz",
                "integrity": MS_INTEGRITY,
                "license": "MIT"
            }
        }
    });
    std::fs::write(
        app.join("package-lock.json"),
        serde_json::to_string_pretty(&lock).unwrap(),
    )
    .unwrap();
    let server = app.join("server.js");
    let js = std::fs::read_to_string(&server).unwrap().replace(
        "res.end(\"hello from web\\n\");",
        "res.end(\"up for \" + require(\"ms\")(90000) + \"\\n\");",
    );
    std::fs::write(&server, js).unwrap();
    assert!(env.drover(&["validate"]).status.success());

    let b = env.json(&["build", "web", "--json"]);
    assert_eq!(b["status"], "succeeded", "{b:#}");
    assert_eq!(b["deps_cached"], false, "{b:#}");
    assert_lang_package(&env, &b, "npm", "ms", "2.1.3");
    let _stop = StopAgent(&env);
    let d = env.json(&["deploy", "web", "--json"]);
    let route = d["route_port"].as_u64().unwrap() as u16;
    assert_eq!(get(route, "/up").map(|(c, _)| c), Some(200));
    // Node answers chunked; the body holds the text.
    let (code, body) = get(route, "/").unwrap();
    assert!(
        code == 200 && body.contains("up for 2m\n"),
        "{code} {body:?}"
    );

    // An app-only change: npm does not run again.
    let js = std::fs::read_to_string(&server)
        .unwrap()
        .replace("up for ", "running for ");
    std::fs::write(&server, js).unwrap();
    let b2 = env.json(&["build", "web", "--json"]);
    assert_eq!(b2["status"], "succeeded", "{b2:#}");
    assert_eq!(b2["deps_cached"], true, "{b2:#}");
    env.json(&["deploy", "web", "--json"]);
    let (code, body) = get(route, "/").unwrap();
    assert!(
        code == 200 && body.contains("running for 2m\n"),
        "{code} {body:?}"
    );
}

/// A static HTTP server: `/healthz` → 200 `ok`, anything else → 200 `hello from binary`.
const SERVER_C: &str = r#"
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
    const char *p = getenv("PORT");
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(p ? atoi(p) : 8080);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 64)) { perror("listen"); return 1; }
    for (;;) {
        int c = accept(s, 0, 0);
        if (c < 0) continue;
        char buf[2048] = {0};
        ssize_t n = read(c, buf, sizeof buf - 1);
        const char *body = (n > 0 && strncmp(buf, "GET /healthz", 12) == 0) ? "ok\n" : "hello from binary\n";
        char out[256];
        int len = snprintf(out, sizeof out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
            strlen(body), body);
        write(c, out, len);
        close(c);
    }
}
"#;

/// Serve `body` for every request on a free 127.0.0.1 port, from a thread; the URL.
fn serve_file(body: Vec<u8>, name: &str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/{name}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = c.write_all(head.as_bytes());
            let _ = c.write_all(&body);
        }
    });
    url
}

#[test]
#[ignore = "opt-in: compiles a static server with gcc and builds on the live mirror"]
fn a_binary_stack_downloads_its_checked_artifact_and_serves() {
    let (env, _port) = new_stack("svc", "binary");
    let work = env.root.join("artifact");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("server.c"), SERVER_C).unwrap();
    let cc = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(work.join("svc"))
        .arg(work.join("server.c"))
        .output()
        .unwrap();
    assert!(
        cc.status.success(),
        "gcc -static: {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&work)
        .args(["-czf", "-", "svc"])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let sha = hex::encode(Sha256::digest(&tar.stdout));
    let url = serve_file(tar.stdout, "svc-1.0.0-linux-amd64.tar.gz");
    let stack_file = env.root.join("config/stacks/svc.toml");
    let text = std::fs::read_to_string(&stack_file).unwrap();
    let with_url = |sum: &str| {
        text.lines()
            .map(|l| {
                if l.starts_with("url = ") {
                    format!("url = \"{url}\"")
                } else if l.starts_with("sha256 = ") {
                    format!("sha256 = \"{sum}\"")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    };
    // The template's placeholder checksum is refused, naming both digests.
    std::fs::write(&stack_file, with_url(&"0".repeat(64))).unwrap();
    let bad = env.drover(&["build", "svc", "--json"]);
    assert!(!bad.status.success());
    let bad: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    let err = bad["error"].as_str().unwrap();
    assert!(
        err.contains("sha256 mismatch") && err.contains(&sha),
        "{err}"
    );

    std::fs::write(&stack_file, with_url(&sha)).unwrap();
    assert!(env.drover(&["validate"]).status.success());
    let b = env.json(&["build", "svc", "--json"]);
    assert_eq!(b["status"], "succeeded", "{b:#}");
    let _stop = StopAgent(&env);
    let d = env.json(&["deploy", "svc", "--json"]);
    let route = d["route_port"].as_u64().unwrap() as u16;
    assert_eq!(get(route, "/healthz"), Some((200, "ok\n".to_string())));
    assert_eq!(
        get(route, "/"),
        Some((200, "hello from binary\n".to_string()))
    );
}

#[test]
#[ignore = "opt-in: builds on the live mirror"]
fn the_generic_stack_builds_deploys_and_answers_its_health_path() {
    let (env, port) = new_stack("plain", "generic");
    assert!(env.drover(&["validate"]).status.success());
    let b = env.json(&["build", "plain", "--json"]);
    assert_eq!(b["status"], "succeeded", "{b:#}");
    let _stop = StopAgent(&env);
    let d = env.json(&["deploy", "plain", "--json"]);
    let route = d["route_port"].as_u64().unwrap() as u16;
    assert_eq!(route, port);
    assert_eq!(get(route, "/up"), Some((200, "ok\n".to_string())));
}
