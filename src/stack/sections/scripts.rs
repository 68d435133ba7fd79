//! The `[scripts]` table: the `deps`, `build`, `boot`, `run` and `test` lifecycle scripts, inline or
//! `{ file = ... }`.

use std::fs;
use std::path::Path;

use toml::de::DeValue;

use super::super::parse::resolve;
use super::super::toml_check::{Checker, Tbl};
use super::super::Scripts;

const SCRIPT_KEYS: &[&str] = &["deps", "build", "boot", "run", "test"];
const SCRIPT_FILE_KEYS: &[&str] = &["file"];

pub(in crate::stack) fn validate_scripts(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
    config_dir: &Path,
) -> Scripts {
    let mut scripts = Scripts::default();
    let Some((t, _)) = chk
        .table(root, "scripts", "[scripts]", "[scripts]")
        .present()
    else {
        return scripts;
    };
    chk.check_keys(&t, SCRIPT_KEYS);
    for key in SCRIPT_KEYS {
        let Some(v) = t.get(key) else { continue };
        let text = match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            DeValue::Table(inner) => {
                let ft = Tbl {
                    label: format!("scripts.{key}"),
                    start: v.span().start,
                    table: inner,
                };
                chk.check_keys(&ft, SCRIPT_FILE_KEYS);
                let example = format!("file = \"scripts/{key}.sh\"");
                let file = chk.string(&ft, "file", &example);
                chk.required(&ft, "file", file, &example)
                    .and_then(|(f, span)| {
                        let resolved = resolve(config_dir, &f);
                        match fs::read_to_string(&resolved) {
                            Ok(text) => Some(text),
                            Err(e) => {
                                chk.error(
                                    &span,
                                    format!(
                                        "script file `{f}` cannot be read: {e} (resolved to {})",
                                        resolved.display()
                                    ),
                                    format!(
                                        "script files are relative to the config directory ({}) \
                                     and must be UTF-8 text",
                                        config_dir.display()
                                    ),
                                );
                                None
                            }
                        }
                    })
            }
            _ => {
                chk.error(
                    &v.span(),
                    format!(
                        "`{key}` in [scripts] must be a string (the script) or a table \
                         `{{ file = \"...\" }}`, got {}",
                        v.get_ref().type_str()
                    ),
                    format!("write e.g. `{key} = \"exec ./server\"` or `{key} = {{ file = \"scripts/{key}.sh\" }}`"),
                );
                None
            }
        };
        let text = match text {
            Some(t) if t.trim().is_empty() => {
                chk.error(
                    &v.span(),
                    format!("`{key}` in [scripts] is empty"),
                    format!(
                        "write the script (e.g. `{key} = \"exec ./server\"`), or remove the key \
                         when the stack needs no {key} step"
                    ),
                );
                None
            }
            t => t,
        };
        match *key {
            "deps" => scripts.deps = text,
            "build" => scripts.build = text,
            "boot" => scripts.boot = text,
            "test" => scripts.test = text,
            _ => scripts.run = text,
        }
    }
    scripts
}
