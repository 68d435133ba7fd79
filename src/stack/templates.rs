//! Stack templates (`drover templates`, `drover new NAME --template T`): one directory per
//! kind of app under `assets/stack-templates/` (a commented `stack.toml`, an `about.txt`,
//! and an `app/` skeleton), embedded in the binary so an installed drover needs no
//! checkout. Placeholders `{{ name }}` and `{{ app_path }}` are filled with minijinja.

use std::path::{Path, PathBuf};

use super::parse::is_valid_stack_name;

/// One template: its name, one-line description, stack file and app skeleton files
/// (path relative to the app directory, text).
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// The name given to `--template`.
    pub name: &'static str,
    /// What it is for (`about.txt`).
    pub about: &'static str,
    /// The stack file, with placeholders.
    pub stack: &'static str,
    /// The app skeleton: `(relative path, text)`; empty when the app comes from a `url`.
    pub app: &'static [(&'static str, &'static str)],
    /// The first port tried for the new stack (`{{ port }}`): the next one no other stack
    /// of the config uses, from here up.
    pub port: u16,
}

macro_rules! asset {
    ($p:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/stack-templates/",
            $p
        ))
    };
}

/// Every template, in the order `drover templates` lists them.
pub const TEMPLATES: &[Template] = &[
    Template {
        name: "generic",
        about: asset!("generic/about.txt"),
        stack: asset!("generic/stack.toml"),
        app: &[],
        port: 8080,
    },
    Template {
        name: "static",
        about: asset!("static/about.txt"),
        stack: asset!("static/stack.toml"),
        app: &[
            ("index.html", asset!("static/app/index.html")),
            ("up", asset!("static/app/up")),
        ],
        port: 8080,
    },
    Template {
        name: "python",
        about: asset!("python/about.txt"),
        stack: asset!("python/stack.toml"),
        app: &[
            ("app.py", asset!("python/app/app.py")),
            ("requirements.txt", asset!("python/app/requirements.txt")),
        ],
        port: 8080,
    },
    Template {
        name: "node",
        about: asset!("node/about.txt"),
        stack: asset!("node/stack.toml"),
        app: &[
            ("server.js", asset!("node/app/server.js")),
            ("package.json", asset!("node/app/package.json")),
            ("package-lock.json", asset!("node/app/package-lock.json")),
        ],
        port: 8080,
    },
    Template {
        name: "postgres",
        about: asset!("postgres/about.txt"),
        stack: asset!("postgres/stack.toml"),
        app: &[],
        port: 5432,
    },
    Template {
        name: "binary",
        about: asset!("binary/about.txt"),
        stack: asset!("binary/stack.toml"),
        app: &[],
        port: 8080,
    },
];

/// The template called `name`.
pub fn find(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

/// Why `drover new` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// Not a stack name.
    #[error("`{0}` is not a valid stack name: lowercase letters, digits and `-`, starting with a letter or digit (e.g. `web-api`)")]
    BadName(String),
    /// No such template.
    #[error("there is no template `{0}`; `drover templates` lists them ({list})", list = TEMPLATES.iter().map(|t| t.name).collect::<Vec<_>>().join(", "))]
    NoTemplate(String),
    /// The stack file or the app directory exists already.
    #[error("{} already exists; choose another name or remove it first", .0.display())]
    Exists(PathBuf),
    /// `--app DIR` is not a directory.
    #[error("--app {}: not a directory", .0.display())]
    NoAppDir(PathBuf),
    /// Writing failed (nothing is left half-written: see [`create`]).
    #[error("{0:#}")]
    Io(#[from] anyhow::Error),
}

impl NewError {
    /// True when the operator asked for something that cannot be (CLI exit 2).
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, NewError::Io(_))
    }
}

/// What `drover new` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Created {
    /// The stack file.
    pub stack_file: PathBuf,
    /// The app directory the stack points at (written when `--app` was not given and the
    /// template has a skeleton).
    pub app_dir: Option<PathBuf>,
    /// The skeleton files written.
    pub files: Vec<PathBuf>,
}

/// Write `CONFIG/stacks/NAME.toml` from `template` (with the first port from the template's [`Template::port`] that no
/// other stack of `config` uses) and, unless `app` names an existing
/// directory, the template's app skeleton under `CONFIG/../apps/NAME/`. The stack file's
/// `[app] path` is relative to the config directory (`../apps/NAME`, or `app` made
/// absolute). Files go to temporary names first and are renamed at the end, the stack file
/// last, so a failure leaves neither a stack without its app nor half a file.
///
/// Errors: see [`NewError`].
pub fn create(
    config: &Path,
    name: &str,
    template: &str,
    app: Option<&Path>,
) -> Result<Created, NewError> {
    use anyhow::Context as _;
    if !is_valid_stack_name(name) {
        return Err(NewError::BadName(name.into()));
    }
    let t = find(template).ok_or_else(|| NewError::NoTemplate(template.into()))?;
    let stacks = config.join("stacks");
    let stack_file = stacks.join(format!("{name}.toml"));
    if stack_file.exists() {
        return Err(NewError::Exists(stack_file));
    }
    let (app_path, app_dir) = match app {
        Some(dir) => {
            let abs = std::fs::canonicalize(dir).map_err(|_| NewError::NoAppDir(dir.into()))?;
            if !abs.is_dir() {
                return Err(NewError::NoAppDir(dir.into()));
            }
            (abs.display().to_string(), None)
        }
        None if t.app.is_empty() => (format!("../apps/{name}"), None),
        None => {
            // `../apps/NAME` as the stack file's `[app] path` resolves it (lexically, from
            // the canonical config directory), so messages show a plain path.
            let dir = super::parse::resolve(config, &format!("../apps/{name}"));
            if dir.exists() {
                return Err(NewError::Exists(dir));
            }
            (format!("../apps/{name}"), Some(dir))
        }
    };
    // A port no other stack of this config uses: each stack's route listens on its port.
    let (others, _) = super::load_all(config);
    let port = (t.port..u16::MAX)
        .find(|p| others.iter().all(|s| s.port != Some(*p)))
        .unwrap_or(t.port);
    let env = minijinja::Environment::new();
    let ctx = minijinja::context! { name => name, app_path => app_path.as_str(), port => port };
    let render = |text: &str| -> anyhow::Result<String> {
        let mut out = env
            .render_str(text, &ctx)
            .context("cannot fill the template")?;
        if text.ends_with('\n') && !out.ends_with('\n') {
            out.push('\n');
        }
        Ok(out)
    };
    let stack_text = render(t.stack)?;
    let mut files = Vec::new();
    if let Some(dir) = &app_dir {
        // The skeleton in a temporary sibling directory, renamed into place whole.
        let parent = dir.parent().context("app directory without a parent")?;
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.new-"))
            .tempdir_in(parent)
            .with_context(|| format!("cannot write in {}", parent.display()))?;
        for (rel, text) in t.app {
            let p = tmp.path().join(rel);
            std::fs::write(&p, render(text)?)
                .with_context(|| format!("cannot write {}", p.display()))?;
            files.push(dir.join(rel));
        }
        let kept = tmp.keep();
        std::fs::rename(&kept, dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::create_dir_all(&stacks)
        .with_context(|| format!("cannot create {}", stacks.display()))?;
    let tmp = stacks.join(format!(".{name}.toml.new"));
    let written = std::fs::write(&tmp, &stack_text)
        .and_then(|()| std::fs::rename(&tmp, &stack_file))
        .with_context(|| format!("cannot write {}", stack_file.display()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        if let Some(dir) = &app_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        return Err(e.into());
    }
    Ok(Created {
        stack_file,
        app_dir,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_makes_a_stack_that_validates() {
        for t in TEMPLATES {
            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("config");
            let c = create(&config, "my-app", t.name, None).unwrap();
            let text = std::fs::read_to_string(&c.stack_file).unwrap();
            assert!(
                !text.contains("{{"),
                "{}: placeholders left: {text}",
                t.name
            );
            let (loaded, warnings) = crate::stack::lint_file(&c.stack_file, &config);
            assert!(loaded.is_ok(), "{}: {:?}", t.name, loaded.err());
            // A template is what we recommend: nothing in it is risky.
            assert!(warnings.is_empty(), "{}: {warnings:?}", t.name);
            assert_eq!(loaded.unwrap().name, "my-app");
            for f in &c.files {
                assert!(f.is_file(), "{}: {}", t.name, f.display());
            }
            // A second time: refused, nothing overwritten.
            assert!(matches!(
                create(&config, "my-app", t.name, None),
                Err(NewError::Exists(_))
            ));
        }
    }

    #[test]
    fn bad_names_templates_and_app_dirs_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        for (name, tpl, app) in [
            ("Web", "static", None),
            ("../x", "static", None),
            ("web", "tomcat", None),
            ("web", "static", Some(dir.path().join("nope"))),
        ] {
            let e = create(&config, name, tpl, app.as_deref()).unwrap_err();
            assert!(e.is_bad_input(), "{e}");
        }
        assert!(!config.exists(), "nothing written");
        // --app names an existing directory: no skeleton, the stack points there.
        let app = dir.path().join("mine");
        std::fs::create_dir(&app).unwrap();
        let c = create(&config, "web", "static", Some(&app)).unwrap();
        assert!(c.app_dir.is_none() && c.files.is_empty());
        let text = std::fs::read_to_string(&c.stack_file).unwrap();
        assert!(text.contains(&app.canonicalize().unwrap().display().to_string()));
        // The next stack gets the next free port.
        let c2 = create(&config, "api", "python", None).unwrap();
        let text2 = std::fs::read_to_string(&c2.stack_file).unwrap();
        assert!(
            text.contains("port = 8080") && text2.contains("port = 8081"),
            "{text2}"
        );
    }
}
