//! Shared by the template tests: a fresh root with a stack made by `drover new`, its
//! route asked over plain HTTP, the agent stopped at the end.

// Each test crate uses its own subset.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::drover_env::Env;

/// `GET path` on 127.0.0.1:port: the status code and body.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
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

pub struct StopAgent<'e>(pub &'e Env);

impl Drop for StopAgent<'_> {
    fn drop(&mut self) {
        let _ = self.0.drover(&["agent", "stop"]);
    }
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh root with the stack `name` made by `drover new NAME --template T`, its port
/// moved to a free one (so this test's route never meets another's); the env and port.
pub fn new_stack(name: &str, template: &str) -> (Env, u16) {
    let env = Env::new(env!("CARGO_BIN_EXE_drover"));
    std::fs::create_dir_all(env.root.join("config")).unwrap();
    let created = env.json(&["new", name, "--template", template, "--json"]);
    let stack_file = created["stack_file"].as_str().unwrap().to_string();
    let port = free_port();
    let text = std::fs::read_to_string(&stack_file).unwrap();
    let moved: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("port = ") {
                format!("port = {port}")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&stack_file, moved.join("\n") + "\n").unwrap();
    (env, port)
}

/// Assert that the language package catalog of build `build` (a `build --json` object)
/// lists `ecosystem` package `name` at `version`.
pub fn assert_lang_package(
    env: &Env,
    build: &serde_json::Value,
    ecosystem: &str,
    name: &str,
    version: &str,
) {
    let store = drover::store::Store::open(&env.root.join("state/drover.db")).unwrap();
    let langs = store
        .language_packages(build["build_id"].as_i64().unwrap())
        .unwrap();
    assert!(
        langs
            .iter()
            .any(|p| p.ecosystem == ecosystem && p.name == name && p.version == version),
        "{ecosystem} {name} {version} not in {langs:?}"
    );
    // And the operator sees it: `drover manifest STACK --lang --json`.
    let stack = build["stack"].as_str().unwrap();
    let id = build["build_id"].to_string();
    let shown = env.json(&["--json", "manifest", stack, "--build", &id, "--lang"]);
    assert!(
        shown
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["ecosystem"] == ecosystem && p["name"] == name && p["version"] == version),
        "{ecosystem} {name} {version} not in `manifest --lang`: {shown:#}"
    );
}
