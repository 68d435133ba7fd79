//! What a build writes about itself besides the layers: the OCI image config
//! ([`image_spec`]) and the mirrors it configures ([`debian_mirrors`]).

use std::collections::BTreeMap;

use super::{app, oci, IMAGE_PATH_ENV};
use crate::stack::Stack;

/// The Debian mirrors a stack configures itself (its base suites and `[track].apt`): the
/// image's apt sources on these are not tracked as repositories a build script added.
pub fn debian_mirrors(stack: &Stack) -> Vec<String> {
    let mut out: Vec<String> = stack
        .base
        .sources()
        .into_iter()
        .chain(stack.track.apt.iter().cloned())
        .map(|s| s.mirror.trim_end_matches('/').to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The image config for a build: entrypoint, env (PATH + the stack's `[env]`; never
/// secrets), exposed port, working dir and labels naming the stack, build and base key.
pub fn image_spec(
    stack: &Stack,
    build_id: i64,
    base_key: &str,
    created: &str,
    arch: &str,
) -> oci::ImageSpec {
    let mut env = vec![format!("PATH={IMAGE_PATH_ENV}")];
    env.extend(stack.env.iter().map(|(k, v)| format!("{k}={v}")));
    let mut labels = BTreeMap::new();
    labels.insert("org.opencontainers.image.title".into(), stack.name.clone());
    if !stack.description.is_empty() {
        labels.insert(
            "org.opencontainers.image.description".into(),
            stack.description.clone(),
        );
    }
    labels.insert(
        "org.opencontainers.image.created".into(),
        created.to_string(),
    );
    labels.insert(
        "org.opencontainers.image.version".into(),
        format!("build-{build_id}"),
    );
    labels.insert("io.drover.stack".into(), stack.name.clone());
    labels.insert("io.drover.build-id".into(), build_id.to_string());
    labels.insert("io.drover.base-key".into(), base_key.to_string());
    oci::ImageSpec {
        entrypoint: vec![app::ENTRYPOINT_PATH.to_string()],
        cmd: vec![],
        env,
        exposed_ports: stack.port.map(|p| format!("{p}/tcp")).into_iter().collect(),
        working_dir: stack
            .app
            .as_ref()
            .map(|a| a.dest.clone())
            .unwrap_or_else(|| "/".into()),
        labels,
        created: created.to_string(),
        ref_name: format!("drover/{}:build-{build_id}", stack.name),
        architecture: arch.to_string(),
        user: String::new(),
    }
}
