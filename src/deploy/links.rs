//! Linked stacks at run time (`[links] ALIAS = "STACK"`): what an instance of the linking
//! stack gets, resolved from the linked stack's live release when the instance starts.
//!
//! - **Where**: `ALIAS_HOST=127.0.0.1` and `ALIAS_PORT=P`, where `P` is the linked stack's
//!   route port. The instance has its own network namespace, so the agent opens a listener
//!   on `127.0.0.1:P` *inside it* (a socket made by the namespace's
//!   [`Dialer`](super::netns::Dialer)) that pipes each connection to the linked route on the
//!   host ([`super::proxy::tcp::forward`]), before the instance's command starts. Nothing
//!   new listens on the host, and the linked stack's own router (HTTP limits and metrics,
//!   or its TCP pipe) still sees every connection.
//! - **What else**: the linked stack's secrets by their names (e.g. `DB_PASSWORD`, from its
//!   secrets file) and its `[env]` values whose names start with `ALIAS_` (e.g. `DB_USER`,
//!   `DB_NAME` of the postgres template), the way Stacksmith injected `DATABASE_HOST` and
//!   friends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::stack::Stack;

/// One link of an instance: the port its listener takes inside the instance's network
/// namespace and the linked route it forwards to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPipe {
    /// `ALIAS_PORT`: the port on 127.0.0.1 inside the instance.
    pub port: u16,
    /// The linked stack's route on the host.
    pub target: SocketAddr,
}

/// Where the agent reaches a route that listens on `listen:port`: the address itself, or
/// the loopback of its family for a wildcard (`0.0.0.0`, `::`).
pub fn route_target(listen: IpAddr, port: u16) -> SocketAddr {
    let ip = match listen {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    SocketAddr::new(ip, port)
}

/// The environment one link gives an instance: `ALIAS_HOST`, `ALIAS_PORT`, the linked
/// stack's `[env]` values named `ALIAS_*`, and `secrets` (the linked stack's, resolved),
/// in that order (later ones win on a clash).
pub fn link_env(
    alias: &str,
    port: u16,
    linked: &Stack,
    secrets: &[(String, String)],
) -> Vec<(String, String)> {
    let prefix = format!("{}_", alias.to_ascii_uppercase());
    let mut env = vec![
        (format!("{prefix}HOST"), "127.0.0.1".to_string()),
        (format!("{prefix}PORT"), port.to_string()),
    ];
    env.extend(linked.env_for_link(alias));
    env.extend(secrets.iter().cloned());
    env
}

/// The error for a link whose stack has no live release, with the commands that fix it.
pub fn not_live(stack: &str, alias: &str, linked: &str) -> String {
    format!(
        "{stack} links to {linked} (`{alias}` in [links]), which has no live release: run \
         `drover deploy {linked}` first, or `drover deploy {stack} --with-links`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_routes_are_reached_on_loopback_and_env_is_prefixed() {
        assert_eq!(
            route_target("0.0.0.0".parse().unwrap(), 5432),
            "127.0.0.1:5432".parse().unwrap()
        );
        assert_eq!(
            route_target("::".parse().unwrap(), 80),
            "[::1]:80".parse().unwrap()
        );
        assert_eq!(
            route_target("10.1.2.3".parse().unwrap(), 80),
            "10.1.2.3:80".parse().unwrap()
        );
        let text = "name = \"pg\"\n[base]\ndistro = \"debian\"\nsuite = \"bookworm\"\nmirror = \"http://deb.debian.org/debian\"\n\
                    [env]\nDB_USER = \"app\"\nPGDATA = \"/d\"\n";
        let pg = crate::stack::parse::parse_stack(
            std::path::Path::new("pg.toml"),
            text,
            std::path::Path::new("/nonexistent"),
        )
        .unwrap();
        let env = link_env("db", 5432, &pg, &[("DB_PASSWORD".into(), "pw".into())]);
        assert_eq!(
            env,
            vec![
                ("DB_HOST".into(), "127.0.0.1".into()),
                ("DB_PORT".into(), "5432".into()),
                ("DB_USER".into(), "app".into()),
                ("DB_PASSWORD".into(), "pw".into()),
            ]
        );
        assert!(not_live("app", "db", "pg").contains("drover deploy pg"));
    }
}
