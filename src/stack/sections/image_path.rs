//! Paths inside the image that a stack names (`[app] dest`, `[data] path`): what makes one
//! dangerous, shared by the sections that take one.

use std::path::{Component, Path};

/// Directories instances get fresh at run time (kernel file systems and tmpfs mounts):
/// anything put there by the image or bound there is hidden or lost.
const RUNTIME_MOUNTS: &[&str] = &["proc", "sys", "dev", "run", "tmp"];

/// System directories a stack must not take whole (it may take a directory below them).
const SYSTEM_DIRS: &[&str] = &[
    "etc", "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "var", "boot",
];

/// drover's own directory in the image: the entrypoint and the lifecycle scripts.
const DROVER_DIR: &str = "/etc/drover";

/// Why the absolute image path `p` cannot hold an app or a data volume, if it cannot:
/// `.` or `..` components (the path would resolve elsewhere), control characters, the
/// image root, a run-time mount (`/proc`, `/sys`, `/dev`, `/run`, `/tmp` and below), a
/// system directory itself (`/etc`, `/usr`, `/var`, …; a directory below one is fine), or
/// drover's `/etc/drover`.
pub(in crate::stack) fn refuse_image_dir(p: &str) -> Option<String> {
    if p.chars().any(char::is_control) {
        return Some("holds a control character".into());
    }
    let path = Path::new(p);
    if path
        .components()
        .any(|c| matches!(c, Component::CurDir | Component::ParentDir))
        || p.split('/').skip(1).any(|part| part == ".")
    {
        return Some("has `.` or `..` in it; write the directory it means".into());
    }
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    let Some(first) = parts.first() else {
        return Some("is the image's root `/`".into());
    };
    if RUNTIME_MOUNTS.contains(first) {
        return Some(format!(
            "is under /{first}, which every instance gets fresh at run time (whatever is \
             there is hidden)"
        ));
    }
    if parts.len() == 1 && SYSTEM_DIRS.contains(first) {
        return Some(format!(
            "is the system directory /{first} itself (the image's own files live there)"
        ));
    }
    let norm = format!("/{}", parts.join("/"));
    if norm == DROVER_DIR || norm.starts_with(&format!("{DROVER_DIR}/")) {
        return Some(format!(
            "is inside {DROVER_DIR}, drover's own directory (the entrypoint and the \
             lifecycle scripts)"
        ));
    }
    None
}

/// `p` without a trailing `/` (and with `//` collapsed), for comparing two image paths.
pub(in crate::stack) fn normalized(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::refuse_image_dir;

    #[test]
    fn roots_mounts_system_dirs_and_dot_dots_are_refused() {
        for ok in [
            "/opt/app",
            "/var/lib/pg",
            "/usr/local/app",
            "/srv/www",
            "/etc/myapp",
        ] {
            assert_eq!(refuse_image_dir(ok), None, "{ok}");
        }
        for bad in [
            "/",
            "//",
            "/opt/../etc",
            "/opt/./app",
            "/proc",
            "/tmp/data",
            "/run/x",
            "/etc",
            "/usr/",
            "/var",
            "/etc/drover",
            "/etc/drover/x",
            "/opt/a\nb",
        ] {
            assert!(refuse_image_dir(bad).is_some(), "{bad:?}");
        }
    }
}
