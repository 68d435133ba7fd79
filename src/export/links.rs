//! `[links]` in the exports: the same wiring as on this machine (`crate::deploy::links`),
//! as each platform expresses it.
//!
//! - **Kubernetes / Helm**: `ALIAS_HOST` is the linked stack's Service (its name, in the same
//!   namespace: cluster DNS resolves it), `ALIAS_PORT` its port, its `ALIAS_*` `[env]`
//!   values, and its secrets by name from its Secret (`STACK-secrets`); all under
//!   `links.ALIAS` in the chart's values, so a linked service elsewhere is one `--set` away.
//! - **CloudFormation / Terraform** (VMs): the linked stack's address is not known when the
//!   template is written, so each link adds a parameter / variable for its host
//!   (`LinkAliasHost`, `link_alias_host`; letters, digits, `.`, `:`, `_` and `-` only, so
//!   it stays inside the env file's shell quoting) and its port (default: the linked
//!   stack's), filled into the instance's `/etc/drover/env` through `Fn::Sub` /
//!   `templatefile`; the rest of the cloud-init text is escaped for them (`${` → `${!`,
//!   `$${`, `%%{`), so no value of the stack is ever interpreted.

use anyhow::{bail, Result};
use serde_json::json;

use crate::stack::Stack;

/// Characters a VM target accepts in a linked host parameter: the env file quotes it
/// with single quotes, which none of these can close.
pub const HOST_PATTERN: &str = "^[A-Za-z0-9.:_-]+$";

/// One `[links]` entry of the exported stack, resolved from the linked stack's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportLink {
    /// The alias (`db`): the prefix of `DB_HOST`, `DB_PORT`.
    pub alias: String,
    /// The linked stack's name (its Kubernetes Service and Secret are named after it).
    pub stack: String,
    /// The linked stack's port.
    pub port: u16,
    /// Its `[env]` values named `ALIAS_*` ([`Stack::env_for_link`]).
    pub env: Vec<(String, String)>,
    /// Its secret names.
    pub secrets: Vec<String>,
}

impl ExportLink {
    /// The link `alias` → `linked`.
    ///
    /// Errors: the linked stack has no `port` (nothing to reach).
    pub fn new(alias: &str, linked: &Stack) -> Result<ExportLink> {
        let Some(port) = linked.port else {
            bail!(
                "the link `{alias}` names stack {}, which has no `port` to reach; add \
                 `port = N` to {}",
                linked.name,
                linked.file.display()
            );
        };
        Ok(ExportLink {
            alias: alias.to_string(),
            stack: linked.name.clone(),
            port,
            env: linked.env_for_link(alias),
            secrets: linked.secrets.clone(),
        })
    }

    /// `ALIAS_HOST` or `ALIAS_PORT` (`what` = `HOST`/`PORT`).
    fn var(&self, what: &str) -> String {
        format!("{}_{what}", self.alias.to_ascii_uppercase())
    }

    /// The CloudFormation parameter name: `Link` + the alias in CamelCase + `Host`/`Port`
    /// (parameter names are alphanumeric).
    fn cfn_param(&self, what: &str) -> String {
        let camel: String = self
            .alias
            .split('_')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let mut c = p.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect();
        format!("Link{camel}{what}")
    }

    /// The Terraform variable name: `link_ALIAS_host` / `link_ALIAS_port`.
    fn tf_var(&self, what: &str) -> String {
        format!("link_{}_{what}", self.alias)
    }

    /// The Kubernetes Secret holding the linked stack's secrets.
    fn secret_name(&self) -> String {
        format!("{}-secrets", self.stack)
    }
}

/// The `links` subtree of the values (Kubernetes/Helm): alias → host, port (a string: an
/// environment value), env and the Secret's name.
pub(super) fn values(links: &[ExportLink]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for l in links {
        let mut v = json!({
            "host": l.stack,
            "port": l.port.to_string(),
        });
        if !l.env.is_empty() {
            v["env"] = json!(l
                .env
                .iter()
                .cloned()
                .collect::<std::collections::BTreeMap<_, _>>());
        }
        if !l.secrets.is_empty() {
            v["secretName"] = json!(l.secret_name());
        }
        m.insert(l.alias.clone(), v);
    }
    serde_json::Value::Object(m)
}

/// The `links` list of the template context.
pub(super) fn context(links: &[ExportLink]) -> serde_json::Value {
    json!(links
        .iter()
        .map(|l| json!({
            "alias": l.alias,
            "stack": l.stack,
            "port": l.port,
            "host_var": l.var("HOST"),
            "port_var": l.var("PORT"),
            "env": l.env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            "secrets": l.secrets,
            "cfn_host": l.cfn_param("Host"),
            "cfn_port": l.cfn_param("Port"),
            "tf_host": l.tf_var("host"),
            "tf_port": l.tf_var("port"),
        }))
        .collect::<Vec<_>>())
}

/// A VM target whose cloud-init text takes the links' host and port from its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VmTarget {
    /// `Fn::Sub` (CloudFormation): `${Name}`, a literal `${` written `${!`.
    Cloudformation,
    /// `templatefile` (Terraform): `${name}`, literals `$${` and `%%{`.
    Terraform,
}

/// Placeholders for the links' host and port in the env file, unique in `taken` (the
/// rendered inputs), so replacing them later can never touch a value of the stack.
pub(super) struct Placeholders {
    base: String,
}

impl Placeholders {
    /// A placeholder prefix that occurs nowhere in `taken`.
    pub(super) fn new(taken: &str) -> Placeholders {
        let mut base = String::from("@drover-link@");
        while taken.contains(&base) {
            base.push('@');
        }
        Placeholders { base }
    }

    fn token(&self, i: usize, what: &str) -> String {
        format!("{}{i}-{what}{}", self.base, self.base)
    }

    /// The env file lines one link adds (`ALIAS_HOST`, `ALIAS_PORT` as placeholders, then
    /// its `ALIAS_*` values, shell-quoted by `quote`).
    pub(super) fn env_lines(&self, links: &[ExportLink], quote: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for (i, l) in links.iter().enumerate() {
            out.push_str(&format!("{}='{}'\n", l.var("HOST"), self.token(i, "host")));
            out.push_str(&format!("{}='{}'\n", l.var("PORT"), self.token(i, "port")));
            for (k, v) in &l.env {
                out.push_str(&format!("{k}={}\n", quote(v)));
            }
        }
        out
    }

    /// `text` (rendered cloud-init) escaped for `target`, with each placeholder replaced
    /// by the reference to its parameter or variable.
    pub(super) fn fill(&self, text: &str, links: &[ExportLink], target: VmTarget) -> String {
        let mut out = match target {
            VmTarget::Cloudformation => text.replace("${", "${!"),
            VmTarget::Terraform => text.replace("${", "$${").replace("%{", "%%{"),
        };
        for (i, l) in links.iter().enumerate() {
            for what in ["host", "port"] {
                let name = match target {
                    VmTarget::Cloudformation => {
                        l.cfn_param(if what == "host" { "Host" } else { "Port" })
                    }
                    VmTarget::Terraform => l.tf_var(what),
                };
                out = out.replace(&self.token(i, what), &format!("${{{name}}}"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(alias: &str) -> ExportLink {
        ExportLink {
            alias: alias.into(),
            stack: "pg".into(),
            port: 5432,
            env: vec![("DB_USER".into(), "app".into())],
            secrets: vec!["DB_PASSWORD".into()],
        }
    }

    #[test]
    fn names_follow_each_platform_and_values_stay_literal() {
        let l = link("main_db");
        assert_eq!(l.cfn_param("Host"), "LinkMainDbHost");
        assert_eq!(l.tf_var("port"), "link_main_db_port");
        assert_eq!(l.var("HOST"), "MAIN_DB_HOST");
        // A stack value that looks like a placeholder or an interpolation stays literal.
        let user = "GREETING='${LinkMainDbHost} %{if} @drover-link@0-host@drover-link@'\n";
        let p = Placeholders::new(user);
        let ls = [l];
        let text = format!("{user}{}", p.env_lines(&ls, |v| format!("'{v}'")));
        let cfn = p.fill(&text, &ls, VmTarget::Cloudformation);
        assert!(cfn.starts_with("GREETING='${!LinkMainDbHost} %{if} @drover-link@0-host"));
        assert!(cfn.contains("MAIN_DB_HOST='${LinkMainDbHost}'\nMAIN_DB_PORT='${LinkMainDbPort}'\nDB_USER='app'\n"), "{cfn}");
        let tf = p.fill(&text, &ls, VmTarget::Terraform);
        assert!(tf.starts_with("GREETING='$${LinkMainDbHost} %%{if} @drover-link@0-host"));
        assert!(tf.contains("MAIN_DB_HOST='${link_main_db_host}'"), "{tf}");
    }
}
