//! Language packages catalog: Python dist-info, node_modules (scoped too), lockfiles under
//! the app directory; malformed files become warnings naming them; a file outside the
//! searched places is not reported.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use drover::manifest::lang::scan;
use drover::manifest::rootfs::RootView;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn catalogs_what_the_image_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    write(
        r,
        "usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA",
        "Metadata-Version: 2.1\nName: requests\nVersion: 2.28.1\n\nName: not-this\n",
    );
    write(
        r,
        "opt/app/venv/lib/python3.11/site-packages/Flask-3.0.0.dist-info/METADATA",
        "Metadata-Version: 2.1\nName: Flask\nVersion: 3.0.0\n",
    );
    write(
        r,
        "opt/app/venv/lib/python3.11/site-packages/broken-1.dist-info/METADATA",
        "garbage\n",
    );
    // Outside any `*-packages` dir, still under the app (`pip install --target site`).
    write(
        r,
        "opt/app/site/idna-3.6.dist-info/METADATA",
        "Metadata-Version: 2.1\nName: idna\nVersion: 3.6\n",
    );
    write(
        r,
        "opt/app/node_modules/left-pad/package.json",
        r#"{"name":"left-pad","version":"1.3.0"}"#,
    );
    write(
        r,
        "opt/app/node_modules/@types/node/package.json",
        r#"{"name":"@types/node","version":"20.1.0"}"#,
    );
    write(r, "opt/app/node_modules/bad/package.json", "{not json");
    write(r, "opt/app/Cargo.lock", "version = 3\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\n\n[[package]]\nname = \"anyhow\"\nversion = \"1.0.80\"\n");
    write(
        r,
        "opt/app/web/package-lock.json",
        r#"{"lockfileVersion":3,"packages":{"":{"name":"web"},"node_modules/express":{"version":"4.19.2"},"node_modules/express/node_modules/qs":{"version":"6.11.0"}}}"#,
    );
    write(r, "opt/app/Gemfile.lock", "GEM\n  remote: https://rubygems.org/\n  specs:\n    rack (3.0.8)\n      webrick (>= 1.8)\n    webrick (1.8.1)\n\nPLATFORMS\n  ruby\n");
    write(
        r,
        "opt/app/composer.lock",
        r#"{"packages":[{"name":"monolog/monolog","version":"v3.5.0"}],"packages-dev":[]}"#,
    );
    write(r, "opt/app/sub/composer.lock", "{broken");
    // Not searched: a lockfile outside the app directory.
    write(
        r,
        "srv/other/Cargo.lock",
        "[[package]]\nname = \"ghost\"\nversion = \"0.1.0\"\n",
    );

    let (pkgs, warnings) = scan(&RootView::Dir(r.to_path_buf()), Some("/opt/app"));
    let got: Vec<(String, String, String)> = pkgs
        .iter()
        .map(|p| (p.ecosystem.clone(), p.name.clone(), p.version.clone()))
        .collect();
    let want = [
        ("cargo", "anyhow", "1.0.80"),
        ("cargo", "serde", "1.0.200"),
        ("composer", "monolog/monolog", "3.5.0"),
        ("gem", "rack", "3.0.8"),
        ("gem", "webrick", "1.8.1"),
        ("npm", "@types/node", "20.1.0"),
        ("npm", "express", "4.19.2"),
        ("npm", "left-pad", "1.3.0"),
        ("npm", "qs", "6.11.0"),
        ("pypi", "Flask", "3.0.0"),
        ("pypi", "idna", "3.6"),
        ("pypi", "requests", "2.28.1"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);
    let flask = pkgs.iter().find(|p| p.name == "Flask").unwrap();
    assert_eq!(
        flask.location,
        "/opt/app/venv/lib/python3.11/site-packages/Flask-3.0.0.dist-info/METADATA"
    );
    assert_eq!(flask.purl(), "pkg:pypi/flask@3.0.0");
    assert_eq!(
        pkgs.iter()
            .find(|p| p.name == "@types/node")
            .unwrap()
            .purl(),
        "pkg:npm/%40types/node@20.1.0"
    );
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings
        .iter()
        .any(|w| w.contains("broken-1.dist-info/METADATA")));
    assert!(warnings
        .iter()
        .any(|w| w.contains("node_modules/bad/package.json")));
    assert!(warnings
        .iter()
        .any(|w| w.contains("sub/composer.lock") && w.contains("malformed")));
}

#[test]
fn symlinked_directories_are_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    write(
        r,
        "etc/secret/Cargo.lock",
        "[[package]]\nname = \"ghost\"\nversion = \"0.1.0\"\n",
    );
    std::fs::create_dir_all(r.join("opt/app")).unwrap();
    std::os::unix::fs::symlink("/etc/secret", r.join("opt/app/link")).unwrap();
    std::os::unix::fs::symlink("../../etc/secret", r.join("opt/app/rel")).unwrap();
    let (pkgs, _) = scan(&RootView::Dir(r.to_path_buf()), Some("/opt/app"));
    assert!(pkgs.is_empty(), "{pkgs:?}");
}
