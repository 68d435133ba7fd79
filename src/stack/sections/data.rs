//! The `[data]` table: the stack's persistent data volume.

use super::super::toml_check::{Checker, Tbl};
use super::super::{App, Data};
use super::image_path::{normalized, refuse_image_dir};

const DATA_KEYS: &[&str] = &["path", "shared"];

/// `[data]`: an absolute `path` that [`refuse_image_dir`] accepts and that does not hide
/// the app (`app`'s `dest` equal to it or below it), and `shared`.
pub(in crate::stack) fn validate_data(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
    app: Option<&App>,
) -> Option<Data> {
    let (t, _) = chk.table(root, "data", "[data]", "[data]").present()?;
    chk.check_keys(&t, DATA_KEYS);
    let example = "path = \"/var/lib/app\"";
    let field = chk.string(&t, "path", example);
    let shared = chk
        .boolean(&t, "shared", "shared = true")
        .present()
        .is_some_and(|(b, _)| b);
    let (p, span) = chk.required(&t, "path", field, example)?;
    if !p.starts_with('/') {
        chk.error(
            &span,
            format!("data path `{p}` must be an absolute path"),
            format!(
                "start it with '/', e.g. `path = \"/{}\"`",
                p.trim_start_matches("./")
            ),
        );
        return None;
    }
    if let Some(why) = refuse_image_dir(&p) {
        chk.error(
            &span,
            format!("data path `{p}` {why}"),
            "give the volume a directory of its own, e.g. `path = \"/var/lib/NAME\"`",
        );
        return None;
    }
    let path = normalized(&p);
    if let Some(dest) = app.map(|a| a.dest.as_str()) {
        if dest == path || dest.starts_with(&format!("{path}/")) {
            chk.error(
                &span,
                format!(
                    "data path `{p}` would hide the app: the volume is mounted over [app] \
                     dest `{dest}`"
                ),
                format!("put the data beside the app, e.g. `path = \"/var/lib/app\"` or `\"{dest}/data\"`"),
            );
            return None;
        }
    }
    Some(Data { path, shared })
}
