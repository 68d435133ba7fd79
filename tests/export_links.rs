//! Issue #14: `[links]` in every export target, the same wiring as on this machine
//! (`ALIAS_HOST`, `ALIAS_PORT`, the linked stack's `ALIAS_*` values and secrets), checked by
//! the official validators (helm, kubernetes-validate, cfn-lint, python-hcl2), with a
//! hostile value in the linking stack that must stay literal in every target.

// Tests may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/export_checks.rs"]
mod export_checks;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use export_checks::{
    fake_build, helm_template, kubernetes_validate, need, python_module, run_ok, text, PIP,
};

const BIN: &str = env!("CARGO_BIN_EXE_drover");
const DIGEST: &str = "sha256:89abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567";
/// A value of the linking stack that looks like CloudFormation's, Terraform's and Helm's
/// interpolation: every target must carry it as it is.
const HOSTILE: &str = "${AWS::Region} %{ if true }x%{ endif } {{ .Values.x }} it's";

const BASE: &str = "[base]\ndistro = \"debian\"\nsuite = \"bookworm\"\n\
                    mirror = \"http://deb.debian.org/debian\"\n";

/// A config with `db` (TCP, port 5432, `DB_USER`/`DB_NAME`, secret `DB_PASSWORD`) and
/// `web` linking to it as `db`, and a state where `web` has one succeeded build.
fn setup(root: &Path) {
    let stacks = root.join("config/stacks");
    fs::create_dir_all(&stacks).unwrap();
    fs::write(
        stacks.join("db.toml"),
        format!(
            "name = \"db\"\nprotocol = \"tcp\"\nport = 5432\nsecrets = [\"DB_PASSWORD\"]\n\
             {BASE}[env]\nDB_USER = \"app\"\nDB_NAME = \"app\"\nOTHER = \"not for links\"\n"
        ),
    )
    .unwrap();
    fs::write(
        stacks.join("web.toml"),
        format!(
            "name = \"web\"\nport = 8080\n{BASE}[scripts]\nrun = \"exec sleep infinity\"\n\
             [env]\nGREETING = {}\n[links]\ndb = \"db\"\n",
            serde_json::to_string(HOSTILE).unwrap()
        ),
    )
    .unwrap();
    fs::create_dir_all(root.join("state")).unwrap();
    fake_build(&root.join("state"), "web", DIGEST);
}

fn drover(root: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(root.join("config"))
        .arg("--state")
        .arg(root.join("state"))
        .args(args)
        .output()
        .unwrap()
}

fn export(root: &Path, target: &str) -> std::path::PathBuf {
    let out = root.join(target);
    let o = drover(
        root,
        &[
            "export",
            "web",
            "--target",
            target,
            "--out",
            out.to_str().unwrap(),
            "--repo",
            "registry.example.com/web",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    out
}

/// The container's env of a Deployment manifest, by name: the value, or `secret:NAME/KEY`.
fn container_env(manifest: &Path) -> serde_json::Value {
    python_module("yaml");
    let script = r#"
import json, sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
env = {}
for e in d["spec"]["template"]["spec"]["containers"][0]["env"]:
    if "value" in e:
        env[e["name"]] = e["value"]
    else:
        r = e["valueFrom"]["secretKeyRef"]
        env[e["name"]] = "secret:" + r["name"] + "/" + r["key"]
print(json.dumps(env))
"#;
    let out = run_ok(Command::new("python3").args(["-c", script]).arg(manifest));
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn kubernetes_and_helm_reach_the_linked_service_and_its_secret() {
    let root = tempfile::tempdir().unwrap();
    setup(root.path());
    let k8s = export(root.path(), "kubernetes");
    let chart = export(root.path(), "helm");
    let env = container_env(&k8s.join("deployment.yaml"));
    assert_eq!(
        env,
        serde_json::json!({
            "GREETING": HOSTILE,
            "DB_HOST": "db",
            "DB_PORT": "5432",
            "DB_NAME": "app",
            "DB_USER": "app",
            "DB_PASSWORD": "secret:db-secrets/DB_PASSWORD",
        })
    );
    kubernetes_validate(&[k8s.join("deployment.yaml"), k8s.join("service.yaml")]);

    // The chart renders to the same manifests, and a linked service elsewhere is a --set.
    need("helm", "bash .ci/setup");
    run_ok(Command::new("helm").args(["lint", "--strict"]).arg(&chart));
    let rendered = root.path().join("rendered");
    helm_template(&chart, &rendered, &["deployment.yaml", "service.yaml"], &[]);
    for f in ["deployment.yaml", "service.yaml"] {
        assert_eq!(
            fs::read_to_string(rendered.join(f)).unwrap(),
            fs::read_to_string(k8s.join(f)).unwrap(),
            "{f}"
        );
    }
    let moved = root.path().join("moved");
    helm_template(
        &chart,
        &moved,
        &["deployment.yaml"],
        &["links.db.host=pg.example.internal", "links.db.port=6432"],
    );
    let env = container_env(&moved.join("deployment.yaml"));
    assert_eq!(env["DB_HOST"], "pg.example.internal");
    assert_eq!(env["DB_PORT"], "6432");
}

#[test]
fn cloudformation_takes_the_linked_address_as_a_parameter() {
    need("cfn-lint", PIP);
    let root = tempfile::tempdir().unwrap();
    setup(root.path());
    let tpl = export(root.path(), "cloudformation").join("template.yaml");
    run_ok(Command::new("cfn-lint").arg(&tpl));
    python_module("yaml");
    // The user data as CloudFormation will substitute it, with the parameters given.
    let script = r#"
import json, re, sys, yaml
class L(yaml.SafeLoader): pass
L.add_multi_constructor("!", lambda l, s, n: None)
d = yaml.load(open(sys.argv[1]), Loader=L)
p = d["Parameters"]
ud = d["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
sub = ud["Fn::Base64"]["Fn::Sub"]
given = {"LinkDbHost": "db.internal", "LinkDbPort": str(p["LinkDbPort"]["Default"])}
def fill(m):
    name = m.group(1)
    return "${" + name[1:] + "}" if name.startswith("!") else given[name]
text = re.sub(r"\$\{([^}]*)\}", fill, sub)
ci = yaml.safe_load(text)
files = {f["path"]: f["content"] for f in ci["write_files"]}
print(json.dumps({"pattern": p["LinkDbHost"]["AllowedPattern"], "env": files["/etc/drover/env"],
                  "secrets": files["/etc/drover/secret-names"]}))
"#;
    let out = run_ok(Command::new("python3").args(["-c", script]).arg(&tpl));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["pattern"], "^[A-Za-z0-9.:_-]+$");
    let env = v["env"].as_str().unwrap();
    assert!(
        env.contains("DB_HOST='db.internal'\nDB_PORT='5432'\nDB_NAME='app'\nDB_USER='app'\n"),
        "{env}"
    );
    assert!(
        env.contains("GREETING='${AWS::Region} %{ if true }x%{ endif } {{ .Values.x }} it'\\''s'"),
        "{env}"
    );
    assert_eq!(v["secrets"], "DB_PASSWORD\n");
}

#[test]
fn terraform_takes_the_linked_address_as_a_variable() {
    python_module("hcl2");
    let root = tempfile::tempdir().unwrap();
    setup(root.path());
    let out = export(root.path(), "terraform");
    let script = r#"
import hcl2, json, sys
d = hcl2.load(open(sys.argv[1]))
unq = lambda s: s.strip('"')
variables = {}
for block in d["variable"]:
    for name, body in block.items():
        variables[unq(name)] = body
droplet = [b for b in d["resource"] if "digitalocean_droplet" in b or '"digitalocean_droplet"' in b][0]
droplet = list(list(droplet.values())[0].values())[0]
print(json.dumps({"vars": sorted(variables), "port_default": variables["link_db_port"].get("default"),
                  "user_data": str(droplet["user_data"])}))
"#;
    let got = run_ok(
        Command::new("python3")
            .args(["-c", script])
            .arg(out.join("main.tf")),
    );
    let v: serde_json::Value = serde_json::from_str(got.trim()).unwrap();
    assert_eq!(
        v["vars"],
        serde_json::json!(["image_id", "link_db_host", "link_db_port", "region", "size"])
    );
    assert_eq!(v["port_default"], 5432);
    let ud = v["user_data"].as_str().unwrap();
    assert!(
        ud.contains("templatefile") && ud.contains("var.link_db_host"),
        "{ud}"
    );
    // The cloud-init file is a Terraform template now: the links are its only
    // interpolations, the stack's own `${` and `%{` are escaped.
    let ci = fs::read_to_string(out.join("cloud-init.yaml")).unwrap();
    python_module("yaml");
    let env = run_ok(
        Command::new("python3")
            .args([
                "-c",
                "import yaml,sys; d=yaml.safe_load(open(sys.argv[1])); \
                 print([f['content'] for f in d['write_files'] if f['path']=='/etc/drover/env'][0], end='')",
            ])
            .arg(out.join("cloud-init.yaml")),
    );
    assert!(
        env.contains("DB_HOST='${link_db_host}'\nDB_PORT='${link_db_port}'\nDB_NAME='app'\n"),
        "{env}"
    );
    assert!(
        env.starts_with("GREETING='$${AWS::Region} %%{ if true }x%%{ endif } {{ .Values.x }}"),
        "{env}"
    );
    let interpolations: Vec<&str> = ci
        .match_indices("${")
        .filter(|(i, _)| *i == 0 || &ci[i - 1..*i] != "$")
        .map(|(i, _)| &ci[i..i + ci[i..].find('}').unwrap() + 1])
        .collect();
    assert_eq!(interpolations, ["${link_db_host}", "${link_db_port}"]);
}

#[test]
fn a_link_to_a_stack_without_a_port_is_refused_naming_it() {
    let root = tempfile::tempdir().unwrap();
    setup(root.path());
    let db = root.path().join("config/stacks/db.toml");
    let without_port = fs::read_to_string(&db)
        .unwrap()
        .replace("port = 5432\n", "")
        .replace("protocol = \"tcp\"\n", "");
    fs::write(&db, without_port).unwrap();
    let out = root.path().join("k8s");
    let o = drover(
        root.path(),
        &[
            "export",
            "web",
            "--target",
            "kubernetes",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the link `db` names stack db, which has no `port`"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}
