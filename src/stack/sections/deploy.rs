//! The `[deploy]` table: how releases of the stack are deployed.

use super::super::toml_check::{Checker, Tbl};
use super::super::Deploy;

const DEPLOY_KEYS: &[&str] = &["keep_warm", "listen", "outbound"];

pub(in crate::stack) fn validate_deploy(chk: &mut Checker<'_>, root: &Tbl<'_, '_>) -> Deploy {
    let mut deploy = Deploy::default();
    let Some((t, _)) = chk.table(root, "deploy", "[deploy]", "[deploy]").present() else {
        return deploy;
    };
    chk.check_keys(&t, DEPLOY_KEYS);
    if let Some((b, _)) = chk.boolean(&t, "keep_warm", "keep_warm = true").present() {
        deploy.keep_warm = b;
    }
    if let Some((b, _)) = chk.boolean(&t, "outbound", "outbound = false").present() {
        deploy.outbound = Some(b);
    }
    if let Some((s, span)) = chk.string(&t, "listen", "listen = \"127.0.0.1\"").present() {
        match s.parse::<std::net::IpAddr>() {
            Ok(ip) => deploy.listen = ip,
            Err(_) => {
                // "127.0.0.1:8080", "[::1]:8080", "localhost": say what is wrong with each.
                let hint = if s.parse::<std::net::SocketAddr>().is_ok() {
                    "give the address without a port (the route's port is the stack's \
                     `port`), e.g. `listen = \"127.0.0.1\"`"
                } else {
                    "write an IPv4 or IPv6 address, not a host name: `listen = \"127.0.0.1\"` \
                     (this machine only), `\"0.0.0.0\"` (every IPv4 address, the default) \
                     or `\"::\"` (every address)"
                };
                chk.error(
                    &span,
                    format!("`listen` in [deploy] is not an IP address: {s:?}"),
                    hint,
                );
            }
        }
    }
    deploy
}
