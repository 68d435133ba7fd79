//! The stack definition a deploy acts on: the stack file as it is now, or, when that file
//! no longer parses or is gone, the text the live release was deployed with (kept in the
//! store, migration 16), so a broken stack can still be rolled back, restored and scaled.

use std::path::Path;

use crate::stack::{Diagnostic, Diagnostics, Stack};
use crate::store::Store;

/// Where a [`Definition`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `CONFIG/stacks/NAME.toml`, parsed now.
    File,
    /// The text kept with live release `release`; `problem` is the file's first
    /// diagnostic (why the file was not used), on one line.
    Stored {
        /// The live release whose text this is.
        release: i64,
        /// Why the file was not used.
        problem: String,
    },
}

/// A stack ready to deploy: the parsed stack, the TOML text it was parsed from (kept
/// with the new release) and where that text came from.
#[derive(Debug, Clone)]
pub struct Definition {
    /// The validated stack.
    pub stack: Stack,
    /// The stack file's text.
    pub text: String,
    /// The file now, or a release's kept copy.
    pub source: Source,
}

impl Definition {
    /// The warning to show when the definition is not the file's: `the stack file cannot
    /// be used (FIRST DIAGNOSTIC); used the definition release #N was deployed with — …`.
    pub fn warning(&self) -> Option<String> {
        match &self.source {
            Source::File => None,
            Source::Stored { release, problem } => Some(format!(
                "the stack file cannot be used ({problem}); used the definition release \
                 #{release} was deployed with — fix the file before the next deploy"
            )),
        }
    }
}

/// Load `name` for a deploy: `CONFIG/stacks/NAME.toml` when it parses; otherwise, with
/// `allow_stored` (a rollback, the agent restoring a release, the watch window rolling
/// back), the text the live release was deployed with, parsed against the same path.
///
/// Errors: the file's diagnostics when there is no usable kept text (no live release, one
/// deployed before texts were kept, `allow_stored` false, or the kept text does not parse
/// either, e.g. its app directory is gone); with a live release, a last diagnostic says
/// that `drover rollback` would use the kept text. A store error becomes a diagnostic.
pub fn load(
    config_dir: &Path,
    store: &Store,
    name: &str,
    allow_stored: bool,
) -> Result<Definition, Diagnostics> {
    load_with(
        config_dir,
        || store.live_stack_toml(name),
        name,
        allow_stored,
    )
}

/// [`load`] with the live release's kept text read by `kept` (called only when the file
/// cannot be used), so a caller holding the store behind a lock takes it only then.
///
/// Errors: as [`load`].
pub fn load_with(
    config_dir: &Path,
    kept: impl FnOnce() -> anyhow::Result<Option<(i64, Option<String>)>>,
    name: &str,
    allow_stored: bool,
) -> Result<Definition, Diagnostics> {
    let path = config_dir.join("stacks").join(format!("{name}.toml"));
    let read = crate::stack::parse::is_valid_stack_name(name)
        .then(|| std::fs::read_to_string(&path).ok())
        .flatten();
    let diags = match read {
        Some(text) => match crate::stack::parse::parse_stack(&path, &text, config_dir) {
            Ok(stack) => {
                return Ok(Definition {
                    stack,
                    text,
                    source: Source::File,
                })
            }
            Err(d) => d,
        },
        // Unknown name, missing or unreadable file: load_named says which.
        None => match crate::stack::load_named(config_dir, name) {
            Err(d) => d,
            Ok(_) => vec![Diagnostic::whole_file(
                &path,
                "the stack file changed while it was read",
                "try again",
            )],
        },
    };
    let kept = match kept() {
        Ok(k) => k,
        Err(e) => {
            let mut d = diags;
            d.push(Diagnostic {
                file: path,
                line: 0,
                col: 0,
                message: format!("cannot read the kept definition of the live release: {e:#}"),
                hint: None,
                severity: Default::default(),
            });
            return Err(d.into());
        }
    };
    let problem = diags
        .first()
        .map(|d| d.to_string().lines().next().unwrap_or_default().to_string())
        .unwrap_or_default();
    match kept {
        Some((release, Some(text))) if allow_stored => {
            match crate::stack::parse::parse_stack(&path, &text, config_dir) {
                Ok(stack) => Ok(Definition {
                    stack,
                    text,
                    source: Source::Stored { release, problem },
                }),
                Err(kept_diags) => {
                    let mut d = diags;
                    d.push(note(
                        &path,
                        format!(
                            "the definition release #{release} was deployed with does not \
                             load either: {}",
                            kept_diags
                                .first()
                                .map(|k| k.message.clone())
                                .unwrap_or_default()
                        ),
                        "fix the stack file",
                    ));
                    Err(d.into())
                }
            }
        }
        Some((release, Some(_))) => {
            let mut d = diags;
            d.push(note(
                &path,
                format!("release #{release} of {name} stays live"),
                &format!(
                    "fix the file to deploy; `drover rollback {name}` works meanwhile with the \
                     definition release #{release} was deployed with"
                ),
            ));
            Err(d.into())
        }
        Some((release, None)) if allow_stored => {
            let mut d = diags;
            d.push(note(
                &path,
                format!(
                    "release #{release} was deployed before drover kept stack definitions \
                     with releases, so it cannot stand in for the file"
                ),
                "fix the stack file",
            ));
            Err(d.into())
        }
        _ => Err(diags.into()),
    }
}

fn note(path: &Path, message: String, hint: &str) -> Diagnostic {
    Diagnostic {
        file: path.to_path_buf(),
        line: 0,
        col: 0,
        message,
        hint: Some(hint.to_string()),
        severity: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name = \"s\"\npackages = [\"curl\"]\n\n[base]\ndistro = \"debian\"\n\
                        suite = \"bookworm\"\nmirror = \"http://deb.debian.org/debian\"\n\n\
                        [app]\npath = \"app\"\n\n[scripts]\nrun = \"true\"\n";

    fn setup() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("stacks")).unwrap();
        std::fs::create_dir_all(dir.path().join("app")).unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }

    fn live(store: &mut Store, text: Option<&str>) -> i64 {
        let r = store
            .create_release("s", 1, "sha256:1", 1, "op", None)
            .unwrap();
        if let Some(t) = text {
            store.set_release_stack_toml("s", r, t).unwrap();
        }
        store.mark_release_live("s", r).unwrap();
        r
    }

    #[test]
    fn the_file_wins_while_it_parses() {
        let (dir, store) = setup();
        std::fs::write(dir.path().join("stacks/s.toml"), GOOD).unwrap();
        let d = load(dir.path(), &store, "s", true).unwrap();
        assert_eq!(d.source, Source::File);
        assert_eq!(d.text, GOOD);
        assert!(d.warning().is_none());
    }

    #[test]
    fn a_broken_file_falls_back_to_the_live_release_only_when_allowed() {
        let (dir, mut store) = setup();
        let file = dir.path().join("stacks/s.toml");
        std::fs::write(&file, "[base\n").unwrap();
        // No live release: the file's diagnostics, nothing else.
        let e = load(dir.path(), &store, "s", true).unwrap_err();
        assert!(e.to_string().contains("s.toml:1:"), "{e}");
        let r = live(&mut store, Some(GOOD));
        let d = load(dir.path(), &store, "s", true).unwrap();
        assert_eq!(d.text, GOOD);
        assert!(matches!(d.source, Source::Stored { release, .. } if release == r));
        assert!(
            d.warning().unwrap().contains("release #1"),
            "{:?}",
            d.warning()
        );
        // A plain deploy is refused, and told that a rollback works.
        let e = load(dir.path(), &store, "s", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("drover rollback s"), "{e}");
        // A deleted file: the same fallback.
        std::fs::remove_file(&file).unwrap();
        let d = load(dir.path(), &store, "s", true).unwrap();
        assert!(matches!(d.source, Source::Stored { .. }));
    }

    #[test]
    fn a_release_without_a_kept_text_says_so() {
        let (dir, mut store) = setup();
        std::fs::write(dir.path().join("stacks/s.toml"), "[base\n").unwrap();
        live(&mut store, None);
        let e = load(dir.path(), &store, "s", true).unwrap_err().to_string();
        assert!(e.contains("before drover kept stack definitions"), "{e}");
    }
}
