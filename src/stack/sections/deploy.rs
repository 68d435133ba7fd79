//! The `[deploy]` table: how releases of the stack are deployed.

use super::super::toml_check::{Checker, Tbl};
use super::super::Deploy;

const DEPLOY_KEYS: &[&str] = &["keep_warm"];

pub(in crate::stack) fn validate_deploy(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Deploy {
    let mut deploy = Deploy::default();
    let Some((t, _)) = chk.table(root, "deploy", "[deploy]", "[deploy]").present() else {
        return deploy;
    };
    chk.check_keys(&t, DEPLOY_KEYS);
    if let Some((b, _)) = chk.boolean(&t, "keep_warm", "keep_warm = true").present() {
        deploy.keep_warm = b;
    }
    deploy
}
