//! `drover export`: every target rendered from the demo stack and checked by real validators
//! (kubernetes-validate, cfn-lint, python-hcl2; helm lint / terraform fmt when installed).
//! A missing validator fails the test with the command that installs it.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use drover::store::Store;

#[path = "support/export_checks.rs"]
mod export_checks;
use export_checks::{
    fake_build, helm_template, kubernetes_validate, need, on_path, python_module, run_ok, text, PIP,
};

const BIN: &str = env!("CARGO_BIN_EXE_drover");
/// A secret value present in drover's environment: it must never reach an output file.
const SECRET_VALUE: &str = "s3cr3t-value-that-must-not-leak";
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// A state dir with one succeeded build of `hello` (id 1); the archive is not needed.
fn state() -> tempfile::TempDir {
    let st = tempfile::tempdir().unwrap();
    fake_build(st.path(), "hello", DIGEST);
    st
}

fn drover_in(config: &Path, state: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("--state")
        .arg(state)
        .args(args)
        .env("HELLO_TOKEN", SECRET_VALUE)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn drover(state: &Path, args: &[&str]) -> Output {
    drover_in(&repo().join("config"), state, args)
}

fn export(state: &Path, target: &str, out: &Path) -> serde_json::Value {
    let o = drover(
        state,
        &[
            "export",
            "hello",
            "--target",
            target,
            "--out",
            out.to_str().unwrap(),
            "--repo",
            "registry.example.com/team/hello",
            "--replicas",
            "3",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["image"],
        format!("registry.example.com/team/hello@{DIGEST}").as_str()
    );
    assert_no_secret_values(out);
    v
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(files(&p));
        } else {
            v.push(p);
        }
    }
    v.sort();
    v
}

fn assert_no_secret_values(dir: &Path) {
    for f in files(dir) {
        let t = fs::read_to_string(&f).unwrap();
        assert!(
            !t.contains(SECRET_VALUE),
            "{} holds a secret value",
            f.display()
        );
    }
}

#[test]
fn kubernetes_manifests_pass_kubernetes_validate_strict() {
    let st = state();
    let out = st.path().join("k8s");
    let v = export(st.path(), "kubernetes", &out);
    assert_eq!(
        v["files"],
        serde_json::json!(["deployment.yaml", "service.yaml", "pvc.yaml"])
    );
    let yamls: Vec<PathBuf> = ["deployment.yaml", "service.yaml", "pvc.yaml"]
        .iter()
        .map(|f| out.join(f))
        .collect();
    kubernetes_validate(&yamls);

    let d = fs::read_to_string(out.join("deployment.yaml")).unwrap();
    for needle in [
        &format!("image: \"registry.example.com/team/hello@{DIGEST}\""),
        "replicas: 3",
        "maxUnavailable: 0",
        "readOnlyRootFilesystem: true",
        "readinessProbe:",
        "livenessProbe:",
        "path: \"/up\"",
        "containerPort: 8080",
        "name: \"GREETING\"\n              value: \"hello\"",
        "secretKeyRef:\n                  name: \"hello-secrets\"\n                  key: \"HELLO_TOKEN\"",
        "mountPath: \"/var/lib/hello\"",
        "claimName: \"hello-data\"",
    ] {
        assert!(d.contains(needle), "deployment lacks {needle:?}:\n{d}");
    }
    let pvc = fs::read_to_string(out.join("pvc.yaml")).unwrap();
    assert!(pvc.contains("storage: \"1Gi\""), "{pvc}");
    let svc = fs::read_to_string(out.join("service.yaml")).unwrap();
    assert!(svc.contains("port: 8080"), "{svc}");
    assert!(!d.contains("{{"), "template syntax left:\n{d}");
}

#[test]
fn helm_chart_renders_to_the_kubernetes_manifests_and_validates() {
    let st = state();
    // Named like the chart: older `helm lint` versions want the directory to match.
    let chart = st.path().join("hello");
    let k8s = st.path().join("k8s");
    let v = export(st.path(), "helm", &chart);
    assert_eq!(
        v["files"],
        serde_json::json!([
            "Chart.yaml",
            "values.yaml",
            "templates/deployment.yaml",
            "templates/service.yaml",
            "templates/pvc.yaml"
        ])
    );
    export(st.path(), "kubernetes", &k8s);

    let c = fs::read_to_string(chart.join("Chart.yaml")).unwrap();
    assert!(c.contains("apiVersion: v2\n"), "{c}");
    assert!(
        c.contains("version: \"0.1.1\"\n"),
        "SemVer chart version:\n{c}"
    );
    assert!(c.contains(&format!("appVersion: \"{DIGEST}\"")), "{c}");
    let values = fs::read_to_string(chart.join("values.yaml")).unwrap();
    assert!(values.contains("replicas: 3\n"), "{values}");
    assert!(values.contains("name: \"hello-secrets\""), "{values}");
    let t = fs::read_to_string(chart.join("templates/deployment.yaml")).unwrap();
    assert!(
        t.contains("replicas: {{ index .Values \"replicas\" }}"),
        "{t}"
    );
    assert!(
        t.contains("value: {{ index .Values \"env\" \"GREETING\" | quote }}"),
        "{t}"
    );

    // The real helm: the chart lints strictly, and `helm template` with its values renders
    // exactly the plain manifests.
    run_ok(Command::new("helm").arg("lint").arg("--strict").arg(&chart));
    let rendered = st.path().join("rendered");
    helm_template(
        &chart,
        &rendered,
        &["deployment.yaml", "service.yaml", "pvc.yaml"],
        &[],
    );
    for f in ["deployment.yaml", "service.yaml", "pvc.yaml"] {
        assert_eq!(
            fs::read_to_string(rendered.join(f)).unwrap(),
            fs::read_to_string(k8s.join(f)).unwrap(),
            "rendered chart template {f} differs from the kubernetes target"
        );
    }
    let yamls: Vec<PathBuf> = ["deployment.yaml", "service.yaml", "pvc.yaml"]
        .iter()
        .map(|f| rendered.join(f))
        .collect();
    kubernetes_validate(&yamls);
}

#[test]
fn cloudformation_template_passes_cfn_lint() {
    need("cfn-lint", PIP);
    let st = state();
    let out = st.path().join("cfn");
    let v = export(st.path(), "cloudformation", &out);
    assert_eq!(v["files"], serde_json::json!(["template.yaml"]));
    let tpl = out.join("template.yaml");
    run_ok(Command::new("cfn-lint").arg(&tpl));
    let t = fs::read_to_string(&tpl).unwrap();
    for needle in [
        "Type: AWS::EC2::Image::Id",
        "Type: AWS::EC2::LaunchTemplate",
        "Type: AWS::AutoScaling::AutoScalingGroup",
        "AutoScalingRollingUpdate:",
        "HealthCheckType: ELB",
        "Type: AWS::ElasticLoadBalancingV2::LoadBalancer",
        "Type: AWS::ElasticLoadBalancingV2::TargetGroup",
        "HealthCheckPath: \"/up\"",
        "MinInstancesInService: \"3\"",
        "Default: 3",
    ] {
        assert!(t.contains(needle), "template lacks {needle:?}:\n{t}");
    }
    // The user data names the secret, never a value.
    assert!(t.contains("HELLO_TOKEN"), "{t}");
}

#[test]
fn terraform_module_parses_with_python_hcl2() {
    python_module("hcl2");
    let st = state();
    let out = st.path().join("tf");
    let v = export(st.path(), "terraform", &out);
    assert_eq!(
        v["files"],
        serde_json::json!(["main.tf", "cloud-init.yaml"])
    );
    let script = r#"
import hcl2, json, sys
with open(sys.argv[1]) as f:
    d = hcl2.load(f)
unq = lambda s: s.strip('"')
res = {}
for block in d["resource"]:
    for kind, named in block.items():
        for name, body in named.items():
            # python-hcl2 7 keeps the labels' quotes, older versions drop them.
            res[unq(kind) + "." + unq(name)] = body
droplet = res["digitalocean_droplet.app"]
lc = droplet["lifecycle"]
lc = lc[0] if isinstance(lc, list) else lc
assert lc["create_before_destroy"] is True, lc
assert "digitalocean_reserved_ip.app" in res, res.keys()
assert "digitalocean_reserved_ip_assignment.app" in res, res.keys()
assert "var.image_id" in str(droplet["image"]), droplet["image"]
assert "cloud-init.yaml" in str(droplet["user_data"]), droplet["user_data"]
print("ok")
"#;
    let got = run_ok(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(out.join("main.tf")),
    );
    assert!(got.contains("ok"), "{got}");
    python_module("yaml");
    let ci = run_ok(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import yaml,sys; d=yaml.safe_load(open(sys.argv[1])); \
         print({f['path']: f['content'] for f in d['write_files']})",
            )
            .arg(out.join("cloud-init.yaml")),
    );
    assert!(
        ci.contains("'/etc/drover/env': \"GREETING='hello'\\n\""),
        "{ci}"
    );
    assert!(
        ci.contains("'/etc/drover/secret-names': 'HELLO_TOKEN\\n'"),
        "{ci}"
    );
    assert!(
        ci.contains(&format!("registry.example.com/team/hello@{DIGEST}")),
        "{ci}"
    );
    if on_path("terraform") {
        // `terraform validate` needs the DigitalOcean provider downloaded by `terraform
        // init`; formatting and syntax are checked offline.
        run_ok(
            Command::new("terraform")
                .arg(format!("-chdir={}", out.display()))
                .args(["fmt", "-check", "-diff"]),
        );
    } else {
        eprintln!("terraform is not installed: `terraform fmt -check` not run (python-hcl2 ran)");
    }
}

#[test]
fn output_is_atomic_and_never_overwrites_foreign_files() {
    let st = state();
    // A directory with someone else's file: refused, untouched.
    let foreign = st.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("keep.txt"), "mine").unwrap();
    let o = drover(
        st.path(),
        &[
            "export",
            "hello",
            "--target",
            "kubernetes",
            "--out",
            foreign.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("did not write"),
        "{}",
        text(&o)
    );
    assert_eq!(
        fs::read_to_string(foreign.join("keep.txt")).unwrap(),
        "mine"
    );
    assert_eq!(fs::read_dir(&foreign).unwrap().count(), 1);

    // An earlier export is replaced whole (helm → kubernetes leaves no chart files).
    let out = st.path().join("out");
    export(st.path(), "helm", &out);
    assert!(out.join("Chart.yaml").is_file());
    let o = drover(
        st.path(),
        &[
            "export",
            "hello",
            "--target",
            "kubernetes",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!out.join("Chart.yaml").exists());
    assert!(out.join("deployment.yaml").is_file());
    let marker: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join(".drover-export.json")).unwrap())
            .unwrap();
    assert_eq!(marker["target"], "kubernetes");
    // Without --repo and without a push: the local name, and a note saying how to fix it.
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("was never pushed"),
        "{}",
        text(&o)
    );
    // No temporary directories are left next to the output.
    let leftovers: Vec<_> = fs::read_dir(st.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-") || n.contains(".old-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn bad_input_is_reported_without_writing() {
    let st = state();
    let out = st.path().join("x");
    for (args, says) in [
        (vec!["--replicas", "0"], "replicas must be at least 1"),
        (vec!["--data-size", "lots"], "not a Kubernetes quantity"),
        (
            vec!["--repo", "host.example/repo:tag"],
            "without tag or digest",
        ),
        (vec!["--repo", "repo-without-host"], "registry host"),
        (vec!["--repo", "host.example/${x}"], "repository"),
        (vec!["--build", "42"], "there is no build 42"),
    ] {
        let mut a = vec![
            "export",
            "hello",
            "--target",
            "kubernetes",
            "--out",
            out.to_str().unwrap(),
        ];
        a.extend(args.iter().copied());
        let o = drover(st.path(), &a);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(says),
            "{args:?}: {}",
            text(&o)
        );
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    }

    // CloudFormation needs a port: a stack without one is refused, naming the file.
    let cfg = tempfile::tempdir().unwrap();
    fs::create_dir(cfg.path().join("stacks")).unwrap();
    let file = cfg.path().join("stacks/worker.toml");
    fs::write(
        &file,
        "name = \"worker\"\ndescription = \"no port\"\npackages = []\n\
         [base]\ndistro = \"debian\"\nsuite = \"bookworm\"\nmirror = \"http://deb.debian.org/debian\"\n\
         [scripts]\nrun = \"sleep infinity\"\n",
    )
    .unwrap();
    let mut store = Store::open(&st.path().join("drover.db")).unwrap();
    let id = store.create_build("worker", 1).unwrap();
    store
        .finish_build_success(
            id,
            &drover::store::builds::Success {
                image_digest: DIGEST,
                image_path: "/nonexistent.oci.tar",
                components: &[],
            },
        )
        .unwrap();
    let o = drover_in(
        cfg.path(),
        st.path(),
        &[
            "export",
            "worker",
            "--target",
            "cloudformation",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("has no `port`"), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(!out.exists());
    // The same stack exports to kubernetes: no Service, no probes, no PVC.
    let o = drover_in(
        cfg.path(),
        st.path(),
        &[
            "export",
            "worker",
            "--target",
            "kubernetes",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["files"], serde_json::json!(["deployment.yaml"]));
    kubernetes_validate(&[out.join("deployment.yaml")]);
}

/// Strings from the stack that look like template syntax (Go, HCL) or break quoting stay
/// data in every target: the chart still renders to the manifests, validators pass.
#[test]
fn hostile_strings_stay_data() {
    let st = state();
    let cfg = tempfile::tempdir().unwrap();
    fs::create_dir(cfg.path().join("stacks")).unwrap();
    let hostile = r#"{{ .Release.Name }} ${var.x} %{ if true }"quoted" 'single' \back"#;
    fs::write(
        cfg.path().join("stacks/odd.toml"),
        format!(
            "name = \"odd\"\ndescription = {hostile:?}\npackages = []\nport = 8080\n\
             secrets = [\"API_TOKEN\"]\n\
             [base]\ndistro = \"debian\"\nsuite = \"bookworm\"\nmirror = \"http://deb.debian.org/debian\"\n\
             [scripts]\nrun = \"true\"\n\
             [env]\nODD = {hostile:?}\n\
             [health]\npath = \"/up?q={{{{x}}}}\"\n\
             [data]\npath = \"/var/lib/{{{{odd}}}}\"\n"
        ),
    )
    .unwrap();
    let mut store = Store::open(&st.path().join("drover.db")).unwrap();
    let id = store.create_build("odd", 1).unwrap();
    store
        .finish_build_success(
            id,
            &drover::store::builds::Success {
                image_digest: DIGEST,
                image_path: "/nonexistent.oci.tar",
                components: &[],
            },
        )
        .unwrap();
    let run = |target: &str, out: &Path| {
        let o = drover_in(
            cfg.path(),
            st.path(),
            &[
                "export",
                "odd",
                "--target",
                target,
                "--out",
                out.to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{target}: {}", text(&o));
    };
    let (chart, k8s, tf, cfn) = (
        st.path().join("chart"),
        st.path().join("k8s"),
        st.path().join("tf"),
        st.path().join("cfn"),
    );
    run("helm", &chart);
    run("kubernetes", &k8s);
    run("terraform", &tf);
    run("cloudformation", &cfn);
    python_module("yaml");
    run_ok(Command::new("helm").arg("lint").arg("--strict").arg(&chart));
    let rendered = st.path().join("rendered");
    helm_template(
        &chart,
        &rendered,
        &["deployment.yaml", "service.yaml", "pvc.yaml"],
        &[],
    );
    for f in ["deployment.yaml", "service.yaml", "pvc.yaml"] {
        assert_eq!(
            fs::read_to_string(rendered.join(f)).unwrap(),
            fs::read_to_string(k8s.join(f)).unwrap(),
            "{f}"
        );
    }
    kubernetes_validate(&[
        k8s.join("deployment.yaml"),
        k8s.join("service.yaml"),
        k8s.join("pvc.yaml"),
    ]);
    // The env value reads back exactly from the manifest and from the cloud-init file.
    let check = r#"
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
c = d["spec"]["template"]["spec"]["containers"][0]
env = {e["name"]: e.get("value") for e in c["env"]}
assert env["ODD"] == sys.argv[2], env
assert c["readinessProbe"]["httpGet"]["path"] == "/up?q={{x}}", c["readinessProbe"]
ci = yaml.safe_load(open(sys.argv[3]))
files = {f["path"]: f["content"] for f in ci["write_files"]}
assert files["/etc/drover/secret-names"] == "API_TOKEN\n", files
print("ok")
"#;
    let got = run_ok(
        Command::new("python3")
            .arg("-c")
            .arg(check)
            .arg(k8s.join("deployment.yaml"))
            .arg(hostile)
            .arg(tf.join("cloud-init.yaml")),
    );
    assert!(got.contains("ok"), "{got}");
    python_module("hcl2");
    run_ok(
        Command::new("python3")
            .args(["-c", "import hcl2,sys; hcl2.load(open(sys.argv[1]))"])
            .arg(tf.join("main.tf")),
    );
    if on_path("terraform") {
        run_ok(
            Command::new("terraform")
                .arg(format!("-chdir={}", tf.display()))
                .args(["fmt", "-check"]),
        );
    }
    need("cfn-lint", PIP);
    run_ok(Command::new("cfn-lint").arg(cfn.join("template.yaml")));
}
