//! `drover diff --format openvex`: an OpenVEX v0.2.0 document (openvex/spec
//! `OPENVEX-SPEC.md`, JSON schema `openvex_json_schema.json`) with one `fixed` statement per
//! CVE that build B fixes relative to build A. The product is B's image (purl `pkg:oci`,
//! by digest); the subcomponents are B's binary packages of the source packages that carry
//! the fix, with the same purls as the SBOM export ([`crate::manifest::sbom::purl`]).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::{Change, Diff};
use crate::manifest::Component;

/// Why no OpenVEX document can be written.
#[derive(Debug, thiserror::Error)]
pub enum VexError {
    /// OpenVEX needs at least one statement, and B fixes no CVE that drover knows of.
    #[error(
        "build {b} fixes no CVE relative to build {a} that drover knows of (stored changelogs \
         and feeds), and an OpenVEX document needs at least one statement; run `drover updates \
         {stack}` on build {a} to store its changelogs, or compare other builds"
    )]
    NothingFixed {
        /// The stack.
        stack: String,
        /// Build A.
        a: i64,
        /// Build B.
        b: i64,
    },
    /// B has no image digest to name as the product.
    #[error("build {0} has no image digest")]
    NoDigest(i64),
}

/// The OpenVEX document of `diff`, with B's manifest `new` (for the purls), issued at
/// `timestamp` (RFC 3339) by `author`. The document `@id` is derived from the stack and both
/// image digests, so the same comparison always has the same id.
///
/// Errors: see [`VexError`].
pub fn openvex(
    diff: &Diff,
    new: &[Component],
    author: &str,
    timestamp: &str,
) -> Result<Value, VexError> {
    let digest = diff
        .b
        .image_digest
        .as_deref()
        .ok_or(VexError::NoDigest(diff.b.build))?;
    let product = format!("pkg:oci/{}@{}", diff.stack, digest.replace(':', "%3A"));
    // CVE -> the purls of B's binaries of each source that fixes it.
    let mut by_cve: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for s in diff
        .packages
        .iter()
        .filter(|s| s.change == Change::Upgraded)
    {
        let purls: Vec<String> = new
            .iter()
            .filter(|c| c.source == s.source)
            .map(|c| crate::manifest::sbom::purl(c, &c.suite))
            .collect();
        for cve in &s.fixes {
            let e = by_cve.entry(cve.as_str()).or_default();
            for p in &purls {
                if !e.0.contains(p) {
                    e.0.push(p.clone());
                }
            }
            e.1.push(format!(
                "{} {} -> {}",
                s.source,
                s.old.as_deref().unwrap_or("?"),
                s.new.as_deref().unwrap_or("?")
            ));
        }
    }
    if by_cve.is_empty() {
        return Err(VexError::NothingFixed {
            stack: diff.stack.clone(),
            a: diff.a.build,
            b: diff.b.build,
        });
    }
    let statements: Vec<Value> = by_cve
        .into_iter()
        .map(|(cve, (purls, notes))| {
            json!({
                "vulnerability": {"name": cve},
                "products": [{
                    "@id": product,
                    "subcomponents": purls.iter().map(|p| json!({"@id": p})).collect::<Vec<_>>(),
                }],
                "status": "fixed",
                "status_notes": format!(
                    "fixed from build {} to build {} of {}: {}",
                    diff.a.build, diff.b.build, diff.stack, notes.join(", ")
                ),
            })
        })
        .collect();
    let seed = format!(
        "{}\n{}\n{digest}",
        diff.stack,
        diff.a.image_digest.as_deref().unwrap_or("")
    );
    Ok(json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": format!("urn:drover:vex:{}", hex::encode(Sha256::digest(seed.as_bytes()))),
        "author": author,
        "timestamp": timestamp,
        "version": 1,
        "tooling": format!("drover {}", env!("CARGO_PKG_VERSION")),
        "statements": statements,
    }))
}
