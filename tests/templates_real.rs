//! Issue #14: a stack started from a template builds on the real mirror and serves its
//! health path behind its route: `static` (busybox httpd: a small base, ~1 min) and
//! `python` (a venv with a hashed requirement from PyPI in the deps layer, a wrong hash
//! refused first, an app-only change reusing the layer, a requirements change remaking it); the
//! `postgres` (a stateful TCP stack: rows written before a deploy and a rollback are
//! read after both, one server at a time on the cluster); the
//! other templates are validated in the unit tests of `stack::templates`.

// Tests may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/drover_env.rs"]
mod drover_env;
#[path = "support/template_stacks.rs"]
mod template_stacks;

use template_stacks::{assert_lang_package, free_port, get, new_stack, StopAgent};

#[test]
fn a_static_stack_from_its_template_builds_deploys_and_serves() {
    let (env, port) = new_stack("site", "static");
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

/// The wheel of six 1.16.0 on PyPI (`pip download six==1.16.0`, sha256sum).
const SIX_WHEEL_SHA256: &str = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254";

#[test]
fn a_python_stack_installs_its_hashed_requirements_from_pypi_and_serves() {
    let (env, _port) = new_stack("api", "python");
    let app = env.root.join("apps/api");
    let app_py = std::fs::read_to_string(app.join("app.py")).unwrap();
    let uses_six = app_py
        .replace("import os\n", "import os\n\nimport six\n")
        .replace(
            "body = b\"hello from api\\n\"",
            "body = (\"six \" + six.__version__ + \"\\n\").encode()",
        );
    assert_ne!(uses_six, app_py, "app.py changed shape; update this test");
    std::fs::write(app.join("app.py"), &uses_six).unwrap();
    let requirements = app.join("requirements.txt");
    // A wrong hash first: pip refuses it (--require-hashes), the build fails and says so.
    std::fs::write(
        &requirements,
        format!("six==1.16.0 --hash=sha256:{}\n", "0".repeat(64)),
    )
    .unwrap();
    let bad = env.drover(&["build", "api", "--json"]);
    assert!(!bad.status.success());
    let bad: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(bad["status"], "failed", "{bad:#}");
    assert_eq!(
        bad["failed_step"], "deps",
        "pip runs in the deps layer: {bad:#}"
    );
    let log = env.drover(&["logs", "api"]);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("DO NOT MATCH THE HASHES"), "{log}");

    std::fs::write(
        &requirements,
        format!("six==1.16.0 --hash=sha256:{SIX_WHEEL_SHA256}\n"),
    )
    .unwrap();
    let b = env.json(&["build", "api", "--json"]);
    assert_eq!(b["status"], "succeeded", "{b:#}");
    assert_eq!(
        b["base_cached"], true,
        "the failed build made the base: {b:#}"
    );
    // The language package catalog lists what pip installed into the venv.
    assert_lang_package(&env, &b, "pypi", "six", "1.16.0");
    let deps_key = b["deps_key"]
        .as_str()
        .expect("the python template has a deps layer")
        .to_string();
    assert_eq!(b["deps_cached"], false, "{b:#}");
    assert_eq!(layer_count(&b), 3, "base, deps and app layers");
    let _stop = StopAgent(&env);
    let d = env.json(&["deploy", "api", "--json"]);
    let route = d["route_port"].as_u64().unwrap() as u16;
    assert_eq!(get(route, "/up").map(|(c, _)| c), Some(200));
    assert_eq!(get(route, "/"), Some((200, "six 1.16.0\n".to_string())));

    // An app-only change reuses the deps layer: pip does not run, the venv is still there.
    std::fs::write(
        app.join("app.py"),
        uses_six.replace("\"six \"", "\"six v\""),
    )
    .unwrap();
    let b2 = env.json(&["build", "api", "--json"]);
    assert_eq!(b2["status"], "succeeded", "{b2:#}");
    assert_eq!(
        (&b2["deps_cached"], b2["deps_key"].as_str()),
        (&serde_json::json!(true), Some(deps_key.as_str())),
        "{b2:#}"
    );
    let id2 = b2["build_id"].as_i64().unwrap();
    let log2 = env.drover(&["logs", "api", "--build", &id2.to_string()]);
    let log2 = String::from_utf8_lossy(&log2.stdout);
    assert!(
        log2.contains("reused from the cache") && !log2.contains("Collecting six"),
        "{log2}"
    );
    assert_lang_package(&env, &b2, "pypi", "six", "1.16.0");
    assert_eq!(layer_count(&b2), 3);
    env.json(&["deploy", "api", "--json"]);
    assert_eq!(get(route, "/"), Some((200, "six v1.16.0\n".to_string())));

    // A change to a [deps] file makes the layer again, under a new key.
    let mut req = std::fs::read_to_string(&requirements).unwrap();
    req.push_str("# pinned for the test\n");
    std::fs::write(&requirements, req).unwrap();
    let b3 = env.json(&["build", "api", "--json"]);
    assert_eq!(b3["status"], "succeeded", "{b3:#}");
    assert_eq!(b3["deps_cached"], false, "{b3:#}");
    assert_ne!(b3["deps_key"].as_str(), Some(deps_key.as_str()));
}

/// The number of layers of a build's image (`skopeo inspect --raw` of its OCI archive).
fn layer_count(build: &serde_json::Value) -> usize {
    let path = build["image_path"].as_str().unwrap();
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", &format!("oci-archive:{path}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    m["layers"].as_array().unwrap().len()
}

/// `psql -tAc SQL` as the postgres template's `app` user through the route on `port`:
/// its trimmed output, or its error text.
fn psql(port: u16, password: &str, sql: &str) -> Result<String, String> {
    let out = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "app",
            "-d",
            "app",
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("psql (postgresql-client: bash .ci/setup)");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn a_postgres_stack_keeps_its_rows_across_a_deploy_and_a_rollback_and_a_linked_stack_reads_them() {
    let (env, port) = new_stack("db", "postgres");
    let secrets = env.root.join("config/secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let password = "correct horse battery staple";
    std::fs::write(secrets.join("db.env"), format!("DB_PASSWORD={password}\n")).unwrap();
    std::fs::set_permissions(
        secrets.join("db.env"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // A web stack linked to it: at boot it asks the database through DB_HOST/DB_PORT (with
    // the linked DB_USER, DB_NAME and DB_PASSWORD) and serves the answer.
    let created = env.json(&["new", "web", "--template", "static", "--json"]);
    let web_file = created["stack_file"].as_str().unwrap().to_string();
    let web_port = free_port();
    let web = std::fs::read_to_string(&web_file).unwrap();
    let web = web
        .lines()
        .map(|l| {
            if l.starts_with("port = ") {
                format!("port = {web_port}")
            } else if l.starts_with("packages = ") {
                "packages = [\"busybox\", \"postgresql-client\"]".to_string()
            } else if l.starts_with("run = ") {
                "run = 'exec busybox httpd -f -v -p \"$PORT\" -h /tmp/www'\n\
                 boot = \"\"\"\n\
                 cp -r /srv/www /tmp/www\n\
                 echo \"DB_HOST=$DB_HOST\" > /tmp/www/db.txt\n\
                 PGPASSWORD=\"$DB_PASSWORD\" psql -h \"$DB_HOST\" -p \"$DB_PORT\" -U \"$DB_USER\" \
                 -d \"$DB_NAME\" -tAc \"SELECT 'rows ' || (SELECT count(*) FROM pg_tables WHERE tablename = 'notes')\" \
                 >> /tmp/www/db.txt 2>&1\n\
                 PGPASSWORD=\"$DB_PASSWORD\" psql -h \"$DB_HOST\" -p \"$DB_PORT\" -U \"$DB_USER\" \
                 -d \"$DB_NAME\" -tAc \"SELECT 'notes ' || count(*) FROM notes\" >> /tmp/www/db.txt 2>&1 || true\n\
                 \"\"\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&web_file, format!("{web}\n[links]\ndb = \"db\"\n")).unwrap();
    let v = env.drover(&["validate"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));

    let b1 = env.json(&["build", "db", "--json"]);
    assert_eq!(b1["status"], "succeeded", "{b1:#}");
    let bw = env.json(&["build", "web", "--json"]);
    assert_eq!(bw["status"], "succeeded", "{bw:#}");
    let _stop = StopAgent(&env);
    // The link has no live release yet: refused, saying what to run.
    let refused = env.drover(&["deploy", "web"]);
    assert_eq!(refused.status.code(), Some(2));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("drover deploy db") && why.contains("--with-links"),
        "{why}"
    );
    let dw = env.json(&["deploy", "web", "--with-links", "--json"]);
    assert_eq!(dw["release"], 1, "{dw:#}");
    let (code, body) = get(web_port, "/db.txt").expect("the web route answers");
    assert_eq!(code, 200);
    assert!(body.contains("DB_HOST=127.0.0.1"), "{body}");
    assert!(
        body.contains("rows 0"),
        "the web instance reached the database: {body}"
    );
    // Again: the database already runs its newest build, so it is left running.
    let again = env.drover(&["deploy", "web", "--with-links"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains("db (linked): release 1 already runs its newest build"),
        "{said}"
    );

    psql(
        port,
        password,
        "CREATE TABLE notes (id int PRIMARY KEY, body text)",
    )
    .unwrap();
    psql(
        port,
        password,
        "INSERT INTO notes VALUES (1, 'before the deploy')",
    )
    .unwrap();
    // The image is not root: postgres refuses to run as root, and it runs.
    assert_eq!(psql(port, password, "SELECT current_user").unwrap(), "app");
    let wrong = psql(port, "wrong", "SELECT 1").unwrap_err();
    assert!(wrong.contains("password authentication failed"), "{wrong}");

    // A new build of the same stack, deployed by recreate on the same cluster.
    let b2 = env.json(&["build", "db", "--json"]);
    assert_eq!(b2["status"], "succeeded", "{b2:#}");
    assert_eq!(b2["base_cached"], true, "{b2:#}");
    let d2 = env.json(&["deploy", "db", "--json"]);
    assert_eq!(d2["release"], 2, "{d2:#}");
    let unavailable = d2["unavailable_ms"]
        .as_f64()
        .expect("recreate measures the gap");
    println!("postgres recreate deploy: unavailable for {unavailable:.0} ms");
    assert_eq!(
        psql(port, password, "SELECT body FROM notes WHERE id = 1").unwrap(),
        "before the deploy"
    );
    psql(
        port,
        password,
        "INSERT INTO notes VALUES (2, 'after the deploy')",
    )
    .unwrap();

    let r = env.json(&["rollback", "db", "--json"]);
    assert_eq!(r["build_id"], b1["build_id"], "{r:#}");
    println!(
        "postgres rollback: unavailable for {:.0} ms",
        r["unavailable_ms"].as_f64().unwrap_or(f64::NAN)
    );
    assert_eq!(
        psql(port, password, "SELECT count(*) FROM notes").unwrap(),
        "2"
    );

    // Each server stopped cleanly (its stop signal, SIGINT: a fast shutdown) before the
    // next one started: never a crash recovery, never two servers on the cluster.
    let log = env.drover(&["logs", "db", "--runtime"]);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(!log.contains("not properly shut down"), "{log}");
    assert!(!log.contains("automatic recovery"), "{log}");
    assert_eq!(
        log.matches("received fast shutdown request").count(),
        2,
        "{log}"
    );
    let mut up = 0i32;
    for l in log.lines() {
        if l.contains("database system is ready to accept connections") {
            up += 1;
            assert_eq!(up, 1, "two servers at once:\n{log}");
        } else if l.contains("database system is shut down") {
            up -= 1;
        }
    }

    // The link follows the database's live release: a restarted web instance reads the
    // rows written through two releases of it.
    let r = env.drover(&["restart", "web"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let (_, body) = get(web_port, "/db.txt").unwrap();
    assert!(body.contains("notes 2"), "{body}");
}
