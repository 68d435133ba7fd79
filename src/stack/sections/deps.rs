//! The `[deps]` table: the dependency manifests of the deps (framework) layer,
//! `files = ["requirements.txt"]`, installed by `[scripts].deps` (the seeds' ladder: OS →
//! runtime → framework → app; see `crate::build::deps`).

use std::path::{Component, Path};

use super::super::toml_check::{Checker, Tbl};
use super::super::{App, AppSource, Scripts};

const DEPS_KEYS: &[&str] = &["files"];

/// Most files one deps layer may be keyed by: a lock file or two is the rule.
pub const MAX_DEPS_FILES: usize = 64;

/// `[deps] files` as paths relative to the app directory. Each must be a relative path
/// without `..`, name a regular file inside `[app].path` (so the layer's key can hash
/// it), and be listed once; `[deps]` needs a local `[app] path` and a `[scripts] deps` that
/// installs from those files.
pub(in crate::stack) fn validate_deps(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
    app: Option<&App>,
    scripts: &Scripts,
) -> Vec<String> {
    let example = "[deps]\nfiles = [\"requirements.txt\"]";
    let Some((t, table_span)) = chk.table(root, "deps", "[deps]", example).present() else {
        return Vec::new();
    };
    chk.check_keys(&t, DEPS_KEYS);
    let files_example = "files = [\"requirements.txt\"]";
    let Some((items, files_span)) = chk.strings(&t, "files", files_example).present() else {
        chk.missing(&t, "files", files_example);
        return Vec::new();
    };
    let app_dir = match app.map(|a| &a.source) {
        Some(AppSource::Dir(d)) => Some(d.as_path()),
        Some(AppSource::Url { .. }) => {
            chk.error(
                &(table_span.start..table_span.start),
                "[deps] needs the app as a local `path`, but [app] is a `url`",
                "the deps layer is keyed by the files it installs from, which must be read \
                 before the app is downloaded: use `[app] path`, or drop [deps] and pin the \
                 dependencies in [scripts].deps alone",
            );
            None
        }
        None => {
            chk.error(
                &(table_span.start..table_span.start),
                "[deps] lists files of the app, but the stack has no [app]",
                "add `[app] path = \"../apps/NAME\"` holding these files, or remove [deps]",
            );
            None
        }
    };
    if items.is_empty() {
        chk.error(
            &files_span,
            "`files` in [deps] is empty",
            "list the dependency manifests the deps script installs from, e.g. \
             `files = [\"requirements.txt\"]`, or remove [deps]",
        );
    } else if items.len() > MAX_DEPS_FILES {
        chk.error(
            &files_span,
            format!(
                "`files` in [deps] lists {} files, at most {MAX_DEPS_FILES} are allowed",
                items.len()
            ),
            "list only the dependency manifests (lock files), not the app's sources",
        );
    }
    if scripts.deps.is_none() {
        chk.error(
            &files_span,
            "[deps] lists files, but nothing installs them: [scripts] has no `deps`",
            "add e.g. `deps = \"python3 -m venv /opt/app/venv && /opt/app/venv/bin/pip \
             install -r /opt/app/requirements.txt\"` under [scripts]",
        );
    }
    let mut out: Vec<String> = Vec::new();
    for (f, span) in items {
        if let Err(why) = check_relative(&f) {
            chk.error(
                &span,
                format!("`{f}` in [deps] files {why}"),
                "give a path relative to the app directory ([app].path), e.g. \
                 `\"requirements.txt\"` or `\"backend/package-lock.json\"`",
            );
            continue;
        }
        if out.contains(&f) {
            chk.error(
                &span,
                format!("`{f}` is listed twice in [deps] files"),
                "list each file once",
            );
            continue;
        }
        if let Some(dir) = app_dir {
            let p = dir.join(&f);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_file() => {}
                Ok(m) => chk.error(
                    &span,
                    format!(
                        "`{f}` in [deps] files is {} ({}), not a regular file",
                        if m.is_dir() {
                            "a directory"
                        } else if m.file_type().is_symlink() {
                            "a symbolic link"
                        } else {
                            "a special file"
                        },
                        p.display()
                    ),
                    "name the dependency manifest itself (a symbolic link could point \
                     outside the app and change the layer without changing its key)",
                ),
                Err(e) => chk.error(
                    &span,
                    format!(
                        "`{f}` in [deps] files cannot be read: {e} ({})",
                        p.display()
                    ),
                    format!(
                        "the files are relative to the app directory {}; create the file \
                         or fix the name",
                        dir.display()
                    ),
                ),
            }
        }
        out.push(f);
    }
    out
}

/// Why `f` is not a plain relative path inside the app directory, if it is not.
fn check_relative(f: &str) -> Result<(), &'static str> {
    if f.trim().is_empty() {
        return Err("is empty");
    }
    let p = Path::new(f);
    if p.is_absolute() {
        return Err("is an absolute path");
    }
    if f.contains(['\n', '\0']) {
        return Err("holds a newline or NUL character");
    }
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err("leaves the app directory (`..`)"),
            _ => return Err("is not a relative path"),
        }
    }
    if p.components().all(|c| c == Component::CurDir) {
        return Err("names the app directory itself, not a file");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_relative;

    #[test]
    fn deps_files_must_stay_inside_the_app_directory() {
        assert!(check_relative("requirements.txt").is_ok());
        assert!(check_relative("./web/package-lock.json").is_ok());
        for bad in ["", " ", "/etc/passwd", "../secret", "a/../../b", ".", "./."] {
            assert!(check_relative(bad).is_err(), "{bad:?}");
        }
    }
}
