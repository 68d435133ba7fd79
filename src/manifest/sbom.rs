//! SBOM export of a components manifest: CycloneDX 1.6 JSON
//! (<https://cyclonedx.org/docs/1.6/json/>) and SPDX 2.3 JSON
//! (<https://spdx.github.io/spdx-spec/v2.3/>). Debian packages are named by package URLs
//! (purl spec, `deb` type): `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12&upstream=SOURCE`.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::lang::LangPackage;
use super::Component;
use crate::debian::codename::release_number;
use crate::manifest::pending::PendingUpdate;

/// What the SBOM describes besides its components.
#[derive(Debug, Clone)]
pub struct SbomSubject<'a> {
    /// Stack name.
    pub stack: &'a str,
    /// Build id.
    pub build_id: i64,
    /// Image digest (`sha256:…`), when known.
    pub image_digest: Option<&'a str>,
    /// Base suite (`bookworm`), for the OS component and the purl `distro` qualifier.
    pub suite: &'a str,
    /// RFC 3339 creation time.
    pub created: &'a str,
    /// `Some(format)` (`qcow2`, `raw`) when the subject is the build's VM disk image
    /// (`image_digest` is then the file's): CycloneDX type `file`, SPDX purpose `FILE`,
    /// instead of the OCI image's `container`/`CONTAINER`.
    pub vm_format: Option<&'a str>,
}

/// Debian release number of a suite codename (`bookworm` → `12`); the codename itself when
/// unknown.
pub fn debian_release(suite: &str) -> String {
    let codename = suite.split('-').next().unwrap_or(suite);
    match release_number(codename) {
        Some(n) => n.to_string(),
        None => codename.to_string(),
    }
}

/// Percent-encode a purl component (everything but unreserved characters, purl spec).
fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The package URL of a Debian binary package.
pub fn purl(c: &Component, suite: &str) -> String {
    format!(
        "pkg:deb/debian/{}@{}?arch={}&distro=debian-{}&upstream={}",
        pct(&c.name),
        pct(&c.version),
        pct(&c.arch),
        pct(&debian_release(suite)),
        pct(&c.source)
    )
}

/// A stable UUID (RFC 4122 layout, version 4 bits) derived from `seed`.
pub(crate) fn uuid_from(seed: &str) -> String {
    let h = Sha256::digest(seed.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// CycloneDX 1.6 JSON: the image as `metadata.component` (type `container`), the OS
/// (`operating-system`) and every package (`library`, with its purl); the CVEs of `pending`
/// updates (changelog and feed CVEs) as `vulnerabilities`, each affecting the installed packages it names; language
/// packages (`lang`) as `library` components with their purls.
pub fn cyclonedx(
    subject: &SbomSubject<'_>,
    comps: &[Component],
    lang: &[LangPackage],
    pending: &[PendingUpdate],
) -> Value {
    let release = debian_release(subject.suite);
    let mut components = vec![json!({
        "type": "operating-system",
        "bom-ref": "os:debian",
        "name": "debian",
        "version": release,
        "description": format!("Debian {release} ({})", subject.suite),
    })];
    let mut refs: BTreeMap<(String, String), String> = BTreeMap::new();
    for c in comps {
        let p = purl(c, subject.suite);
        refs.insert((c.name.clone(), c.arch.clone()), p.clone());
        let mut props = vec![
            json!({"name": "drover:source", "value": c.source}),
            json!({"name": "drover:source_version", "value": c.source_version}),
            json!({"name": "drover:origin", "value": c.origin}),
        ];
        if !c.suite.is_empty() {
            props.push(json!({"name": "drover:suite", "value": c.suite}));
        }
        components.push(json!({
            "type": "library",
            "bom-ref": p,
            "name": c.name,
            "version": c.version,
            "purl": p,
            "properties": props,
        }));
    }
    let mut seen = std::collections::BTreeSet::new();
    for l in lang {
        let p = l.purl();
        if !seen.insert(p.clone()) {
            continue;
        }
        components.push(json!({
            "type": "library",
            "bom-ref": p,
            "name": l.name,
            "version": l.version,
            "purl": p,
            "properties": [{"name": "drover:location", "value": l.location}],
        }));
    }
    let mut vulns: BTreeMap<String, Vec<&PendingUpdate>> = BTreeMap::new();
    for u in pending {
        // The changelog's CVEs and those the feeds say the update fixes.
        for cve in u.cves.iter().chain(u.feed_cves.iter().map(|c| &c.id)) {
            vulns.entry(cve.clone()).or_default().push(u);
        }
    }
    let vulnerabilities: Vec<Value> = vulns
        .iter()
        .map(|(cve, ups)| {
            let affects: Vec<Value> = ups
                .iter()
                .filter_map(|u| refs.get(&(u.package.clone(), u.arch.clone())))
                .map(|r| json!({"ref": r}))
                .collect();
            let fixes: Vec<String> = ups
                .iter()
                .map(|u| format!("{} {} ({})", u.package, u.candidate, u.suite))
                .collect();
            let mut v = json!({
                "bom-ref": format!("vuln:{cve}"),
                "id": cve,
                "source": {"name": "NVD", "url": format!("https://nvd.nist.gov/vuln/detail/{cve}")},
                "recommendation": format!("upgrade to {} (drover build {} --apply-updates)", fixes.join(", "), subject.stack),
                "affects": affects,
            });
            if let Some(u) = ups.first().and_then(|u| u.urgency.as_deref()) {
                let severity = match u {
                    "critical" | "emergency" => "critical",
                    "high" => "high",
                    "medium" => "medium",
                    "low" => "low",
                    _ => "unknown",
                };
                v["ratings"] = json!([{"severity": severity, "method": "other", "source": {"name": "Debian changelog urgency"}}]);
            }
            v
        })
        .collect();
    let mut image = json!({
        "type": if subject.vm_format.is_some() { "file" } else { "container" },
        "bom-ref": "image",
        "name": subject.stack,
        "version": subject.image_digest.unwrap_or("unknown"),
    });
    if let Some(f) = subject.vm_format {
        image["description"] = json!(format!(
            "bootable {f} disk image of build {}",
            subject.build_id
        ));
    }
    if let Some(d) = subject.image_digest {
        image["hashes"] = json!([{"alg": "SHA-256", "content": d.trim_start_matches("sha256:")}]);
    }
    let mut bom = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid_from(&format!("{}:{}:{:?}", subject.stack, subject.build_id, subject.image_digest))),
        "version": 1,
        "metadata": {
            "timestamp": subject.created,
            "tools": {"components": [{"type": "application", "name": "drover", "version": env!("CARGO_PKG_VERSION")}]},
            "component": image,
        },
        "components": components,
    });
    if !vulnerabilities.is_empty() {
        bom["vulnerabilities"] = Value::Array(vulnerabilities);
    }
    bom
}

/// SPDX 2.3 JSON: a document describing the image package, which `CONTAINS` the OS and
/// every Debian and language package (with its purl as an external reference).
pub fn spdx(subject: &SbomSubject<'_>, comps: &[Component], lang: &[LangPackage]) -> Value {
    let release = debian_release(subject.suite);
    let mut packages = vec![
        json!({
            "SPDXID": "SPDXRef-Image",
            "name": subject.stack,
            "versionInfo": subject.image_digest.unwrap_or("unknown"),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": if subject.vm_format.is_some() { "FILE" } else { "CONTAINER" },
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        }),
        json!({
            "SPDXID": "SPDXRef-OS",
            "name": "debian",
            "versionInfo": release,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "OPERATING-SYSTEM",
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
        }),
    ];
    let mut relationships = vec![
        json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": "SPDXRef-Image"}),
        json!({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": "SPDXRef-OS"}),
    ];
    for (i, c) in comps.iter().enumerate() {
        let safe: String = format!("{}-{}", c.name, c.arch)
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '.' || ch == '-' {
                    ch
                } else {
                    '-'
                }
            })
            .collect();
        let id = format!("SPDXRef-Package-{i}-{safe}");
        packages.push(json!({
            "SPDXID": id,
            "name": c.name,
            "versionInfo": c.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "sourceInfo": format!("built from the Debian source package {} {}", c.source, c.source_version),
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl(c, subject.suite),
            }],
        }));
        relationships.push(json!({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }
    for (i, l) in lang.iter().enumerate() {
        let id = format!("SPDXRef-Lang-{i}");
        packages.push(json!({
            "SPDXID": id,
            "name": l.name,
            "versionInfo": l.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "sourceInfo": format!("found at {}", l.location),
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": l.purl(),
            }],
        }));
        relationships.push(json!({"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}-build-{}", subject.stack, subject.build_id),
        "documentNamespace": format!(
            "https://drover.invalid/spdx/{}/{}-{}",
            subject.stack,
            subject.build_id,
            uuid_from(&format!("{}:{}:{:?}", subject.stack, subject.build_id, subject.image_digest))
        ),
        "creationInfo": {
            "created": subject.created,
            "creators": [format!("Tool: drover-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    })
}
