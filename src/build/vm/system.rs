//! The stack-specific files of a VM image, written into a small tree of their own that
//! goes on top of the app layer: fstab (root and the `[data]` disk by label), hostname,
//! DHCP on the first NIC, the stack's environment, and two systemd units: `drover-seed`
//! (reads the secrets from a NoCloud seed at boot, into RAM) and `drover-app` (the
//! entrypoint: `boot`, then `run`, as in the seed's unit file).

use std::fmt::Write as _;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::stack::Stack;

/// The label of the root filesystem.
pub const ROOT_LABEL: &str = "drover-root";
/// The label the `[data]` disk's filesystem must carry (`mkfs.ext4 -L drover-data`).
pub const DATA_LABEL: &str = "drover-data";
/// Where the seed's environment goes in the VM (a tmpfs: never on a disk).
pub const SECRETS_FILE: &str = "/run/drover/secrets.env";

/// The first-boot reader of the NoCloud seed (a vfat or ISO 9660 volume labelled `cidata`
/// or `CIDATA`, as `cloud-localds` makes it; looked for during 30 s): `drover.env` when
/// the seed has one, else its `user-data` (so `cloud-localds seed.img secrets.env` works),
/// read as the secrets file is for instances (`crate::deploy::secrets`: `NAME=value`
/// lines, trimmed, the value literal), keeping only the stack's declared `secrets`, each
/// written quoted for systemd to [`SECRETS_FILE`] (RAM, 0600). `@NAMES@` is replaced by
/// the declared names. A VM without a seed starts without secrets.
const SEED_SCRIPT: &str = r#"#!/bin/sh
# drover: copy the declared secrets of a NoCloud seed into RAM (never onto a disk).
set -u
names="@NAMES@"
mkdir -p -m 0700 /run/drover
umask 077
out=/run/drover/secrets.env
: > "$out"
dev=""
# blkid reads the disks itself: no wait for udev's by-label links (slow on emulated CPUs).
for i in $(seq 1 60); do
  dev=$(blkid -L cidata 2>/dev/null || blkid -L CIDATA 2>/dev/null || true)
  [ -n "$dev" ] && break
  sleep 0.5
done
if [ -z "$dev" ]; then echo "drover-seed: no seed volume (label cidata): no secrets"; exit 0; fi
mkdir -p /run/drover/seed
if ! mount -o ro "$dev" /run/drover/seed; then echo "drover-seed: cannot mount $dev"; exit 0; fi
src=/run/drover/seed/user-data
[ -f /run/drover/seed/drover.env ] && src=/run/drover/seed/drover.env
n=0
if [ -f "$src" ]; then
  head -c 1048576 "$src" | while IFS= read -r line || [ -n "$line" ]; do
    line=$(printf '%s' "$line" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
    case "$line" in ''|'#'*) continue ;; *=*) ;; *) continue ;; esac
    key=$(printf '%s' "${line%%=*}" | sed 's/[[:space:]]*$//')
    case " $names " in *" $key "*) ;; *) continue ;; esac
    value=$(printf '%s' "${line#*=}" | sed 's/[\\"$`]/\\&/g')
    printf '%s="%s"
' "$key" "$value" >> "$out"
  done
  n=$(wc -l < "$out")
fi
umount /run/drover/seed
echo "drover-seed: $n of the declared secret(s) from $dev"
"#;

/// Refuse a path that fstab(5) and systemd unit lines cannot carry as written: anything
/// but letters, digits and `/._-+@` (a space splits an fstab field and a unit's path
/// list; quotes, `$` and `%` are syntax there).
fn unit_path(what: &str, p: &str) -> Result<()> {
    match p
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/._-+@".contains(*c)))
    {
        Some(c) => bail!(
            "{what} `{p}` holds {c:?}, which the VM image's fstab and systemd units cannot \
             carry; use letters, digits and `/._-+@` only (e.g. `/var/lib/app`)"
        ),
        None => Ok(()),
    }
}

/// `KEY="VALUE"` for a systemd `EnvironmentFile=` (systemd.exec(5): double quotes, with
/// `\`, `"` and `$` escaped).
fn env_line(k: &str, v: &str) -> Result<String> {
    if v.contains(['\n', '\r']) {
        bail!("`{k}` in [env] holds a line break, which a systemd EnvironmentFile cannot carry");
    }
    let escaped = v
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "\\$");
    Ok(format!("{k}=\"{escaped}\"\n"))
}

/// The `drover-app.service` unit for `stack`.
fn app_unit(stack: &Stack) -> String {
    let mut u = String::from(
        "[Unit]\nDescription=drover stack (boot, then run)\n\
         Wants=network-online.target\nAfter=network-online.target\n",
    );
    if !stack.secrets.is_empty() {
        u.push_str("After=drover-seed.service\nRequires=drover-seed.service\n");
    }
    if let Some(d) = &stack.data {
        // A `nofail` mount is not ordered before local-fs.target: wait for it here.
        let _ = writeln!(u, "RequiresMountsFor={}", d.path);
    }
    u.push_str("\n[Service]\nEnvironmentFile=/etc/drover/vm.env\n");
    let _ = writeln!(u, "EnvironmentFile=-{SECRETS_FILE}");
    if let Some(user) = &stack.user {
        let _ = writeln!(u, "User={user}");
        if let Some(d) = &stack.data {
            // A fresh data disk is root's: give its directory to the stack's user first.
            let _ = writeln!(
                u,
                "ExecStartPre=+/bin/sh -c 'mkdir -p \"{0}\" && chown \"{user}\" \"{0}\"'",
                d.path
            );
        }
    }
    let dir = stack.app.as_ref().map_or("/", |a| a.dest.as_str());
    let _ = writeln!(u, "WorkingDirectory={dir}");
    let _ = writeln!(u, "ExecStart={}", super::super::app::ENTRYPOINT_PATH);
    let _ = writeln!(
        u,
        "KillSignal={}\nTimeoutStopSec={}",
        stack.deploy.stop_signal,
        stack.deploy.stop_timeout.as_secs().max(1)
    );
    // The serial console is what a cloud shows of a VM (`get-console-output`): the app's
    // output goes there as well as to the journal.
    u.push_str("StandardOutput=journal+console\nStandardError=journal+console\n");
    u.push_str("Restart=on-failure\nRestartSec=1\n\n[Install]\nWantedBy=multi-user.target\n");
    u
}

const SEED_UNIT: &str = "[Unit]\nDescription=drover: secrets from the NoCloud seed\n\
DefaultDependencies=no\nAfter=local-fs.target\n\
Before=drover-app.service\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
ExecStart=/usr/local/lib/drover/seed\nStandardOutput=journal+console\n\n[Install]\nWantedBy=multi-user.target\n";

fn write(root: &Path, rel: &str, text: &str, mode: u32) -> Result<()> {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Refuse what the VM's system files cannot carry, before anything is made: a data path
/// or app dest outside `unit_path`'s characters, an `[env]` value with a line break.
///
/// Errors: the first such value, naming its key and the stack file.
pub fn check(stack: &Stack) -> Result<()> {
    let file = stack.file.display();
    if let Some(d) = &stack.data {
        unit_path("`path` in [data]", &d.path).with_context(|| format!("in {file}"))?;
    }
    if let Some(a) = &stack.app {
        unit_path("`dest` in [app]", &a.dest).with_context(|| format!("in {file}"))?;
    }
    for (k, v) in &stack.env {
        env_line(k, v).with_context(|| format!("in {file}"))?;
    }
    Ok(())
}

/// Write the stack's system files into the empty directory `root` (created with mode
/// 0755 directories, owned by root like the image's own).
///
/// Errors: an `[env]` value a systemd EnvironmentFile cannot carry (a line break), a data
/// path or app dest a unit cannot (see `unit_path`); a write that fails.
pub fn write_tree(stack: &Stack, root: &Path) -> Result<()> {
    check(stack)?;
    let mut fstab = format!("LABEL={ROOT_LABEL} / ext4 rw,errors=remount-ro 0 1\n");
    if let Some(d) = &stack.data {
        let _ = writeln!(
            fstab,
            "LABEL={DATA_LABEL} {} ext4 defaults,nofail,x-systemd.device-timeout=90s 0 2",
            d.path
        );
    }
    write(root, "etc/fstab", &fstab, 0o644)?;
    write(root, "etc/hostname", &format!("{}\n", stack.name), 0o644)?;
    write(
        root,
        "etc/hosts",
        &format!(
            "127.0.0.1 localhost\n127.0.1.1 {}\n::1 localhost\n",
            stack.name
        ),
        0o644,
    )?;
    // Empty: systemd makes a machine id at first boot, so two VMs of one image differ.
    write(root, "etc/machine-id", "", 0o444)?;
    write(
        root,
        "etc/systemd/network/80-drover-dhcp.network",
        "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n",
        0o644,
    )?;
    let mut env = format!("PATH={}\n", super::super::IMAGE_PATH_ENV);
    if let Some(p) = stack.port {
        env.push_str(&format!("PORT={p}\n"));
    }
    for (k, v) in &stack.env {
        env.push_str(&env_line(k, v)?);
    }
    write(root, "etc/drover/vm.env", &env, 0o644)?;
    // systemd-resolved's stub: the build sandbox binds the host's resolv.conf, so the
    // package could not put its link in place.
    let resolv = root.join("etc/resolv.conf");
    let _ = std::fs::remove_file(&resolv);
    symlink("../run/systemd/resolve/stub-resolv.conf", &resolv)?;
    // The seed is read only by a stack that declares secrets (a boot without it would
    // wait for a seed volume for nothing).
    let mut units = vec!["drover-app.service"];
    if !stack.secrets.is_empty() {
        let script = SEED_SCRIPT.replace("@NAMES@", &stack.secrets.join(" "));
        write(root, "usr/local/lib/drover/seed", &script, 0o755)?;
        write(
            root,
            "etc/systemd/system/drover-seed.service",
            SEED_UNIT,
            0o644,
        )?;
        units.push("drover-seed.service");
    }
    write(
        root,
        "etc/systemd/system/drover-app.service",
        &app_unit(stack),
        0o644,
    )?;
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants)?;
    for unit in units {
        symlink(format!("/etc/systemd/system/{unit}"), wants.join(unit))?;
    }
    // Directories as the image has them (an overlay takes a directory's metadata from the
    // topmost layer that has it).
    dirs_0755(root)
}

/// Files that several layers write and the VM needs whole: the user databases (the boot
/// layer adds `messagebus`, `systemd-network`; a build script may add the app's user) and
/// dpkg's status (the boot layer adds the kernel; a build script may `apt-get install`).
const MERGED_FILES: &[(&str, &str)] = &[
    ("etc/passwd", "\n"),
    ("etc/group", "\n"),
    ("etc/shadow", "\n"),
    ("etc/gshadow", "\n"),
    ("var/lib/dpkg/status", "\n\n"),
];

/// The name an entry of a [`MERGED_FILES`] file is known by: the first `:` field of a
/// user database line, the `Package:` of a dpkg status paragraph.
fn entry_name(entry: &str) -> &str {
    match entry.strip_prefix("Package: ") {
        Some(rest) => rest.lines().next().unwrap_or(rest),
        None => entry.split(':').next().unwrap_or(entry),
    }
}

/// For each of [`MERGED_FILES`] that a layer above the boot layer (`above`, top first:
/// the app's, the deps') rewrote, and so hides the boot layer's: write into `root` that
/// layer's file plus the boot layer's entries it lacks (by name), so the VM has both.
///
/// Errors: a file that cannot be read or written.
pub fn merge_over_boot(root: &Path, above: &[&Path], boot: &Path) -> Result<()> {
    for (rel, sep) in MERGED_FILES {
        let Some(top) = above.iter().map(|d| d.join(rel)).find(|p| p.is_file()) else {
            continue;
        };
        let Ok(under) = std::fs::read_to_string(boot.join(rel)) else {
            continue;
        };
        let text = std::fs::read_to_string(&top)
            .with_context(|| format!("cannot read {}", top.display()))?;
        let mut out = text.trim_end_matches('\n').to_string();
        let have: std::collections::HashSet<&str> = text
            .split(sep)
            .map(|e| entry_name(e.trim_start()))
            .collect();
        for e in under.split(sep).map(str::trim).filter(|e| !e.is_empty()) {
            if !have.contains(entry_name(e)) {
                out.push_str(sep);
                out.push_str(e);
            }
        }
        out.push('\n');
        let mode = std::fs::metadata(&top)?.permissions().mode() & 0o7777;
        write(root, rel, &out, mode)?;
    }
    Ok(())
}

fn dirs_0755(dir: &Path) -> Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            dirs_0755(&e.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values_are_quoted_for_systemd() {
        assert_eq!(env_line("A", "x y").unwrap(), "A=\"x y\"\n");
        assert_eq!(
            env_line("A", r#"a"b\c$d"#).unwrap(),
            "A=\"a\\\"b\\\\c\\$d\"\n"
        );
        assert!(env_line("A", "two\nlines").is_err());
    }

    #[test]
    fn user_databases_and_dpkg_status_keep_the_boot_layers_entries() {
        let t = tempfile::tempdir().unwrap();
        let (root, app, boot) = (t.path().join("r"), t.path().join("a"), t.path().join("b"));
        for (dir, passwd, status) in [
            (
                &app,
                "root:x:0:0::/root:/bin/sh\napp:x:999:999::/:/bin/false\n",
                "Package: python3\nStatus: ok\n\nPackage: curl\nStatus: ok\n",
            ),
            (
                &boot,
                "root:x:0:0::/root:/bin/sh\nmessagebus:x:100:101::/:/bin/false\n",
                "Package: python3\nStatus: ok\n\nPackage: systemd\nStatus: ok\n",
            ),
        ] {
            std::fs::create_dir_all(dir.join("etc")).unwrap();
            std::fs::create_dir_all(dir.join("var/lib/dpkg")).unwrap();
            std::fs::write(dir.join("etc/passwd"), passwd).unwrap();
            std::fs::write(dir.join("var/lib/dpkg/status"), status).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        merge_over_boot(&root, &[&app], &boot).unwrap();
        let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
        assert_eq!(
            passwd,
            "root:x:0:0::/root:/bin/sh\napp:x:999:999::/:/bin/false\nmessagebus:x:100:101::/:/bin/false\n"
        );
        let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
        assert_eq!(status.matches("Package: python3").count(), 1, "{status}");
        assert!(status.contains("Package: curl") && status.contains("Package: systemd"));
        // Nothing above rewrote the group file: nothing written.
        assert!(!root.join("etc/group").exists());
    }

    #[test]
    fn paths_units_cannot_carry_are_refused() {
        assert!(unit_path("p", "/var/lib/app-1.2+x@y").is_ok());
        for bad in ["/var/lib/my app", "/srv/$(reboot)", "/srv/a'b", "/srv/100%"] {
            let e = unit_path("`path` in [data]", bad).unwrap_err().to_string();
            assert!(e.contains("cannot carry"), "{e}");
        }
    }
}
