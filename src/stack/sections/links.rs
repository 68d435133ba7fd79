//! The `[links]` table: other stacks this one talks to, `ALIAS = "STACK"`. At deploy time
//! each instance gets `ALIAS_HOST`/`ALIAS_PORT` (uppercased alias) pointing at the linked
//! stack's route, plus the linked stack's secrets and its `[env]` values named `ALIAS_*`
//! (see [`crate::deploy::links`]).

use std::collections::BTreeMap;
use std::path::Path;

use toml::de::DeValue;

use super::super::parse::is_valid_stack_name;
use super::super::toml_check::{Checker, Tbl};

/// Whether `s` is a link alias: `[a-z][a-z0-9_]*`, at most 32 characters (it becomes an
/// environment variable prefix).
fn is_valid_alias(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_lowercase())
        && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == '_')
        && s.len() <= 32
}

/// `[links]` as alias → linked stack name. `name` is this stack's own name (a link to
/// itself is refused); `config_dir/stacks/STACK.toml` must exist when `stacks/` does;
/// `env` and `secrets` must not already hold the variables a link sets.
pub(in crate::stack) fn validate_links(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
    name: Option<&str>,
    config_dir: &Path,
    env_and_secrets: &[String],
) -> BTreeMap<String, String> {
    let mut links = BTreeMap::new();
    let Some((t, _)) = chk
        .table(root, "links", "[links]", "[links]\ndb = \"postgres\"")
        .present()
    else {
        return links;
    };
    let stacks = config_dir.join("stacks");
    for (k, v) in t.table.iter() {
        let alias: &str = k.get_ref().as_ref();
        if !is_valid_alias(alias) {
            chk.error(
                &k.span(),
                format!("invalid link name `{alias}` in [links]"),
                "use lowercase letters, digits and '_', starting with a letter (e.g. \
                 `db = \"postgres\"`): it becomes the prefix of DB_HOST and DB_PORT",
            );
            continue;
        }
        let DeValue::String(target) = v.get_ref() else {
            chk.wrong_type(
                &format!("`{alias}` in [links]"),
                v,
                "a string",
                &format!("{alias} = \"postgres\""),
            );
            continue;
        };
        let target = target.to_string();
        let upper = alias.to_ascii_uppercase();
        if !is_valid_stack_name(&target) {
            chk.error(
                &v.span(),
                format!("`{alias}` in [links] names `{target}`, which is not a stack name"),
                "give the name of another stack of this config (its file stem, e.g. \
                 `postgres` for stacks/postgres.toml)",
            );
        } else if Some(target.as_str()) == name {
            chk.error(
                &v.span(),
                format!("`{alias}` in [links] links the stack to itself"),
                "a link names another stack; remove it",
            );
        } else if stacks.is_dir() && !stacks.join(format!("{target}.toml")).is_file() {
            chk.error(
                &v.span(),
                format!(
                    "`{alias}` in [links] names the stack `{target}`, which has no file {}",
                    stacks.join(format!("{target}.toml")).display()
                ),
                format!("create it (`drover new {target} --template postgres`) or fix the name"),
            );
        } else if let Some(clash) = env_and_secrets
            .iter()
            .find(|e| *e == &format!("{upper}_HOST") || *e == &format!("{upper}_PORT"))
        {
            chk.error(
                &k.span(),
                format!("the link `{alias}` sets {clash}, which this stack also sets itself"),
                format!(
                    "remove {clash} from [env] or `secrets` (the link gives it), or rename \
                     the link"
                ),
            );
        } else {
            links.insert(alias.to_string(), target);
        }
    }
    links
}
