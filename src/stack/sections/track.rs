//! The `[track]` table: tracked apt suites (`[[track.apt]]`, defaulting from `[base]`),
//! language registries and the `auto_rebuild` policy.

use std::path::Path;

use super::super::parse::{resolve, REGISTRIES};
use super::super::toml_check::{Checker, Field, Tbl};
use super::super::{AptSource, AutoRebuild, Base, RepoTrust, Track};
use super::base::validate_source_fields;

const DEFAULT_SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";

const TRACK_KEYS: &[&str] = &["apt", "registries", "auto_rebuild"];
const TRACK_SOURCE_KEYS: &[&str] = &["mirror", "suite", "components", "trusted", "signed_by"];

/// The default apt tracking for a base: `SUITE-security` on the security mirror and
/// `SUITE-updates` on the base mirror, both with the base components.
pub(in crate::stack) fn default_track_apt(base: &Base) -> Vec<AptSource> {
    let security_mirror = match base.mirror.strip_suffix("/debian") {
        Some(prefix) => format!("{prefix}/debian-security"),
        None => DEFAULT_SECURITY_MIRROR.to_string(),
    };
    vec![
        AptSource {
            mirror: security_mirror,
            suite: format!("{}-security", base.suite),
            components: base.components.clone(),
        },
        AptSource {
            mirror: base.mirror.clone(),
            suite: format!("{}-updates", base.suite),
            components: base.components.clone(),
        },
    ]
}

/// One `[track].apt` entry: a source plus the optional `trusted` (waive the signature check)
/// and `signed_by` (keyring file, relative to the config dir; default: the Debian archive
/// keyring) keys, like apt's `Trusted` and `Signed-By` options.
pub(in crate::stack) fn validate_tracked_source(
    chk: &mut Checker<'_>,
    t: &Tbl<'_, '_>,
    config_dir: &Path,
) -> Option<(AptSource, RepoTrust)> {
    chk.check_keys(t, TRACK_SOURCE_KEYS);
    let source = validate_source_fields(chk, t, "suite = \"bookworm-security\"");
    let trusted = match chk.boolean(t, "trusted", "trusted = true") {
        Field::Present(true, span) => {
            chk.warn(
                &span,
                "`trusted = true`: this repository's packages are accepted without a valid \
                 signature, so anyone on the network path can replace them",
                "give its key instead: `signed_by = \"keys/vendor.gpg\"` (relative to the \
                 config directory), and remove `trusted`",
            );
            true
        }
        Field::Present(b, _) => b,
        Field::Absent => false,
        Field::Invalid => return None,
    };
    let signed_by = match chk.string(t, "signed_by", "signed_by = \"keys/vendor.gpg\"") {
        Field::Present(p, span) if p.trim().is_empty() => {
            chk.error(
                &span,
                "`signed_by` is empty",
                "give a keyring file (binary or ASCII-armoured OpenPGP keys), relative to the config directory",
            );
            return None;
        }
        Field::Present(p, _) => Some(resolve(config_dir, &p)),
        Field::Absent => None,
        Field::Invalid => return None,
    };
    Some((source?, RepoTrust { trusted, signed_by }))
}

pub(in crate::stack) fn validate_track(
    chk: &mut Checker<'_>,
    root: &Tbl<'_, '_>,
    base: Option<&Base>,
    config_dir: &Path,
) -> Option<Track> {
    let t = match chk.table(root, "track", "[track]", "[track]") {
        Field::Present(t, _) => Some(t),
        Field::Absent => None,
        Field::Invalid => return None,
    };
    let mut registries = Vec::new();
    let mut apt = None;
    let mut auto_rebuild = AutoRebuild::Off;
    if let Some(t) = &t {
        chk.check_keys(t, TRACK_KEYS);
        let example = "auto_rebuild = \"security\"";
        if let Some((s, span)) = chk.string(t, "auto_rebuild", example).present() {
            match AutoRebuild::parse(&s) {
                Some(p) => auto_rebuild = p,
                None => chk.error(
                    &span,
                    format!("unknown auto_rebuild policy `{s}` in [track]"),
                    format!(
                        "use one of {}: `security` rebuilds for new security updates, \
                         `all` for any new update (a rebuild never deploys)",
                        AutoRebuild::NAMES
                            .iter()
                            .map(|n| format!("\"{n}\""))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
        let example =
            "apt = [{ mirror = \"http://deb.debian.org/debian\", suite = \"bookworm-updates\" }]";
        apt = match chk.tables(t, "apt", "track.apt", example) {
            Field::Absent => None,
            Field::Invalid => return None,
            Field::Present(tables, span) => {
                if tables.is_empty() {
                    chk.warn(
                        &span,
                        "`apt = []` in [track]: no repository is tracked, so `drover updates` \
                         never lists a security fix for this stack",
                        "remove `apt` to track the base suite's security and updates suites, \
                         or list them",
                    );
                }
                let sources: Vec<_> = tables
                    .iter()
                    .map(|s| validate_tracked_source(chk, s, config_dir))
                    .collect();
                Some(sources.into_iter().collect::<Option<Vec<_>>>()?)
            }
        };
        if let Some((items, _)) = chk
            .strings(t, "registries", "registries = [\"pypi\"]")
            .present()
        {
            for (r, span) in items {
                if !REGISTRIES.contains(&r.as_str()) {
                    chk.error(
                        &span,
                        format!("unknown registry `{r}`"),
                        format!("supported registries: {}", REGISTRIES.join(", ")),
                    );
                } else if registries.contains(&r) {
                    chk.error(
                        &span,
                        format!("duplicate registry `{r}`"),
                        "list each registry only once",
                    );
                } else {
                    registries.push(r);
                }
            }
        }
    }
    let (apt, trust) = match apt {
        Some(apt) => apt.into_iter().unzip(),
        None => {
            let apt = default_track_apt(base?);
            let trust = vec![RepoTrust::default(); apt.len()];
            (apt, trust)
        }
    };
    Some(Track {
        apt,
        trust,
        registries,
        auto_rebuild,
    })
}
