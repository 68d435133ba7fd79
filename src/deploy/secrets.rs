//! Secret values for instances: read at instance start from `CONFIG/secrets/STACK.env`
//! (a file the operator keeps, mode 0600 enforced; `KEY=VALUE` lines, `#` comments) or,
//! for names the file does not hold, from the agent's environment.
//!
//! Values are only ever handed to bubblewrap through a pipe (never its command line) and
//! are never written into an image, a log line, the manifest or the store.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// `CONFIG/secrets/STACK.env`.
pub fn secrets_file(config: &Path, stack: &str) -> PathBuf {
    config.join("secrets").join(format!("{stack}.env"))
}

/// Secret values found for a stack, and the names that have none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// `(NAME, value)` pairs, in the stack's order.
    pub values: Vec<(String, String)>,
    /// Names with no value in the file nor the environment.
    pub missing: Vec<String>,
}

impl Resolved {
    /// A warning naming the missing secrets and where to put them (never a value), if any.
    pub fn warning(&self, config: &Path, stack: &str) -> Option<String> {
        (!self.missing.is_empty()).then(|| {
            format!(
                "stack {stack} declares the secret(s) {} but no value was found; instances \
                 start without them: add `NAME=value` lines to {} (mode 0600) or set them in \
                 the agent's environment",
                self.missing.join(", "),
                secrets_file(config, stack).display()
            )
        })
    }
}

/// Resolve every name in `names` for `stack`: the secrets file first, then the process
/// environment. Errors: the file is readable by group or others (its mode must be 0600 or
/// stricter) or a line is not `KEY=VALUE`. Names without a value are listed in
/// [`Resolved::missing`]. The error text never holds a value.
pub fn resolve(config: &Path, stack: &str, names: &[String]) -> Result<Resolved> {
    if names.is_empty() {
        return Ok(Resolved::default());
    }
    let file = secrets_file(config, stack);
    let mut from_file = BTreeMap::new();
    if let Ok(meta) = std::fs::metadata(&file) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "{} has mode {mode:04o}; a secrets file must not be readable by group or \
                 others: run `chmod 600 {}`",
                file.display(),
                file.display()
            );
        }
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                bail!(
                    "{}:{}: expected KEY=VALUE (the value is not shown)",
                    file.display(),
                    i + 1
                );
            };
            from_file.insert(k.trim().to_string(), v.to_string());
        }
    }
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for n in names {
        match from_file.get(n).cloned().or_else(|| std::env::var(n).ok()) {
            Some(v) => out.push((n.clone(), v)),
            None => missing.push(n.as_str()),
        }
    }
    Ok(Resolved {
        values: out,
        missing: missing.into_iter().map(String::from).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_mode_is_enforced_and_values_never_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = secrets_file(dir.path(), "s");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, "# comment\nTOKEN=s3cr3t=x\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let names = vec!["TOKEN".to_string()];
        let err = resolve(dir.path(), "s", &names).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("s3cr3t"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            resolve(dir.path(), "s", &names).unwrap().values,
            vec![("TOKEN".to_string(), "s3cr3t=x".to_string())]
        );
        let names = vec![
            "TOKEN".into(),
            "DROVER_TEST_SURELY_UNSET_SECRET".to_string(),
        ];
        let r = resolve(dir.path(), "s", &names).unwrap();
        assert_eq!(r.missing, vec!["DROVER_TEST_SURELY_UNSET_SECRET"]);
        let w = r.warning(dir.path(), "s").unwrap();
        assert!(w.contains("DROVER_TEST_SURELY_UNSET_SECRET") && w.contains("s.env"));
        assert!(!w.contains("s3cr3t"));
        std::fs::write(&f, "garbage line\n").unwrap();
        let err = resolve(dir.path(), "s", &["X".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains(":1: expected KEY=VALUE"), "{err}");
    }
}
