//! `user = "NAME"` of a stack, resolved in the built tree into the image config's `User`
//! (`UID:GID`, numeric, so that running the image never reads its `/etc/passwd` again).
//! Format of `/etc/passwd`: passwd(5), seven `:`-separated fields.

use anyhow::{bail, Result};

use crate::manifest::rootfs::RootView;

/// The `User` value for the image config: `UID:GID` of `user` (a name looked up in
/// `/etc/passwd` of `view`, or a numeric uid, whose primary group is looked up the same
/// way and is the same number when it has no entry).
///
/// Errors: no `/etc/passwd` in the tree, or no such user in it, saying which package or
/// build-script line would create it.
pub fn resolve(view: &RootView, user: &str, stack_file: &std::path::Path) -> Result<String> {
    let passwd = view
        .read("etc/passwd")?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let numeric = user.parse::<u32>().ok();
    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        let (uid, gid) = (f[2].parse::<u32>().ok()?, f[3].parse::<u32>().ok()?);
        let hit = match numeric {
            Some(n) => uid == n,
            None => f[0] == user,
        };
        hit.then_some((uid, gid))
    });
    match (entry, numeric) {
        (Some((uid, gid)), _) => Ok(format!("{uid}:{gid}")),
        (None, Some(n)) => Ok(format!("{n}:{n}")),
        (None, None) => bail!(
            "user `{user}` ({}: `user`) does not exist in the image: add the package that \
             creates it to `packages` (e.g. postgresql creates `postgres`), or create it in \
             [scripts] build (`useradd --system {user}`)",
            stack_file.display()
        ),
    }
}

/// The uid and gid of an image config `User` of the form `UID[:GID]` (numbers only, as
/// [`resolve`] writes it); `None` for an empty value. A name there (an image not built by
/// drover) is an error: it would need the image's `/etc/passwd` at run time.
pub fn parse_config_user(v: &str) -> Result<Option<(u32, u32)>> {
    if v.is_empty() {
        return Ok(None);
    }
    let (u, g) = v.split_once(':').unwrap_or((v, v));
    match (u.parse::<u32>(), g.parse::<u32>()) {
        (Ok(u), Ok(g)) => Ok(Some((u, g))),
        _ => bail!(
            "the image config's User `{v}` is not numeric UID:GID (rebuild the image with drover)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uids_resolve_from_passwd() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\npostgres:x:104:110:PostgreSQL:/var/lib/postgresql:/bin/bash\nbroken:x\n",
        )
        .unwrap();
        let v = RootView::Dir(d.path().to_path_buf());
        let f = std::path::Path::new("db.toml");
        assert_eq!(resolve(&v, "postgres", f).unwrap(), "104:110");
        assert_eq!(resolve(&v, "104", f).unwrap(), "104:110");
        assert_eq!(resolve(&v, "2000", f).unwrap(), "2000:2000");
        let e = resolve(&v, "broken", f).unwrap_err().to_string();
        assert!(e.contains("user `broken`") && e.contains("db.toml"), "{e}");
        assert_eq!(parse_config_user("104:110").unwrap(), Some((104, 110)));
        assert_eq!(parse_config_user("7").unwrap(), Some((7, 7)));
        assert_eq!(parse_config_user("").unwrap(), None);
        assert!(parse_config_user("postgres").is_err());
    }
}
