//! The `[data]` table: the stack's persistent data volume.

use super::super::toml_check::{Checker, Tbl};
use super::super::Data;

const DATA_KEYS: &[&str] = &["path", "shared"];

pub(in crate::stack) fn validate_data(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Option<Data> {
    let (t, _) = chk.table(root, "data", "[data]", "[data]").present()?;
    chk.check_keys(&t, DATA_KEYS);
    let example = "path = \"/var/lib/app\"";
    let field = chk.string(&t, "path", example);
    let shared = chk
        .boolean(&t, "shared", "shared = true")
        .present()
        .is_some_and(|(b, _)| b);
    let (p, span) = chk.required(&t, "path", field, example)?;
    if p.starts_with('/') {
        Some(Data { path: p, shared })
    } else {
        chk.error(
            &span,
            format!("data path `{p}` must be an absolute path"),
            format!(
                "start it with '/', e.g. `path = \"/{}\"`",
                p.trim_start_matches("./")
            ),
        );
        None
    }
}
