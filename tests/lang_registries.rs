//! Language packages against their registries (issue #4): a fast path against fixture
//! answers served on 127.0.0.1 by the test, and the real path against PyPI, the npm
//! registry and the crates.io sparse index.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use drover::manifest::lang::LangPackage;
use drover::updates::registries::{check, newer, Registries};

/// Serve `routes` (path -> (status, body)) on a free loopback port from a thread, for as
/// long as the test runs; unknown paths get 404. Returns the base URL.
fn serve(routes: HashMap<&'static str, (u16, String)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut line = String::new();
            let mut r = BufReader::new(s.try_clone().unwrap());
            if r.read_line(&mut line).is_err() {
                continue;
            }
            // Drain the headers.
            let mut h = String::new();
            while r.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, body) = routes
                .get(path.as_str())
                .cloned()
                .unwrap_or((404, "not found".into()));
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

fn pkg(eco: &str, name: &str, version: &str, location: &str) -> LangPackage {
    LangPackage {
        ecosystem: eco.into(),
        name: name.into(),
        version: version.into(),
        location: location.into(),
    }
}

#[test]
fn fixture_registries_give_updates_and_clear_warnings() {
    let base = serve(HashMap::from([
        (
            "/pypi/requests/json",
            (200, r#"{"info":{"version":"2.32.3"}}"#.to_string()),
        ),
        (
            "/pypi/flask/json",
            (200, r#"{"info":{"version":"3.0.0"}}"#.to_string()),
        ),
        ("/pypi/broken/json", (200, "<html>oops".to_string())),
        (
            "/left-pad",
            (200, r#"{"dist-tags":{"latest":"1.3.0"}}"#.to_string()),
        ),
        (
            "/@scope%2fwidget",
            (200, r#"{"dist-tags":{"latest":"2.0.0"}}"#.to_string()),
        ),
        (
            "/se/rd/serde",
            (
                200,
                [
                    r#"{"name":"serde","vers":"1.0.0","yanked":false}"#,
                    r#"{"name":"serde","vers":"1.0.200","yanked":false}"#,
                    r#"{"name":"serde","vers":"1.0.201","yanked":true}"#,
                    r#"{"name":"serde","vers":"2.0.0-rc.1","yanked":false}"#,
                ]
                .join("\n"),
            ),
        ),
    ]));
    let regs = Registries {
        pypi: base.clone(),
        npm: base.clone(),
        crates: base,
    };
    let pkgs = vec![
        pkg(
            "pypi",
            "requests",
            "2.0.0",
            "/a/requests.dist-info/METADATA",
        ),
        pkg(
            "pypi",
            "requests",
            "2.0.0",
            "/b/requests.dist-info/METADATA",
        ),
        pkg("pypi", "flask", "3.0.0", "/a/flask.dist-info/METADATA"),
        pkg("pypi", "broken", "1.0", "/a/broken.dist-info/METADATA"),
        pkg("pypi", "nosuch", "1.0", "/a/nosuch.dist-info/METADATA"),
        pkg("npm", "left-pad", "1.0.0", "/app/package-lock.json"),
        pkg("npm", "@scope/widget", "1.5.0", "/app/package-lock.json"),
        pkg("cargo", "serde", "1.0.100", "/app/Cargo.lock"),
        pkg("gem", "rack", "2.0.0", "/app/Gemfile.lock"),
    ];
    let r = check(&regs, &pkgs, "2026-11-29T00:00:00Z");
    let got: Vec<(&str, &str, &str, &str)> = r
        .updates
        .iter()
        .map(|u| {
            (
                u.ecosystem.as_str(),
                u.package.as_str(),
                u.installed.as_str(),
                u.latest.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("cargo", "serde", "1.0.100", "1.0.200"),
            ("npm", "@scope/widget", "1.5.0", "2.0.0"),
            ("npm", "left-pad", "1.0.0", "1.3.0"),
            ("pypi", "requests", "2.0.0", "2.32.3"),
        ]
    );
    // Both locations of requests are named; flask is current.
    let req = r.updates.iter().find(|u| u.package == "requests").unwrap();
    assert!(req.location.contains("/a/") && req.location.contains("/b/"));
    assert_eq!(r.checked, 7, "requests 2.0.0 twice is one package");
    let w = r.warnings.join("\n");
    assert!(
        w.contains("pypi package broken") && w.contains("not JSON"),
        "{w}"
    );
    assert!(
        w.contains("pypi package nosuch") && w.contains("404"),
        "{w}"
    );
    assert!(w.contains("1 gem package(s) not checked"), "{w}");
}

#[test]
fn an_unreachable_registry_is_reported_once() {
    // A port nothing listens on: bind, note the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    let regs = Registries {
        pypi: dead.clone(),
        npm: dead.clone(),
        crates: dead,
    };
    let pkgs = vec![
        pkg("npm", "a", "1.0.0", "/x"),
        pkg("npm", "b", "1.0.0", "/x"),
        pkg("npm", "c", "1.0.0", "/x"),
    ];
    let r = check(&regs, &pkgs, "t");
    assert!(r.updates.is_empty());
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(
        r.warnings[0].contains("npm registry unreachable"),
        "{:?}",
        r.warnings
    );
}

/// The real registries: old releases of well-known packages have newer versions.
#[test]
fn real_registries_know_newer_versions() {
    let pkgs = vec![
        pkg("pypi", "requests", "2.0.0", "/x"),
        pkg("npm", "left-pad", "1.0.0", "/x"),
        pkg("cargo", "serde", "1.0.0", "/x"),
    ];
    let r = check(&Registries::default(), &pkgs, "t");
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.updates.len(), 3, "{:?}", r.updates);
    for u in &r.updates {
        assert!(
            newer(&u.ecosystem, &u.installed, &u.latest).unwrap(),
            "{u:?}"
        );
        assert!(u.registry.starts_with("https://"), "{u:?}");
    }
}
