//! Layer blobs + image spec → one OCI image-layout tar (plus Docker's `manifest.json`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Write};
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, HistoryBuilder,
    ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType, Os,
    PlatformBuilder, RootFsBuilder, ANNOTATION_REF_NAME,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use super::tarw::{append_entry, EntryMeta, ExactReader};
use super::{ImageInfo, ImageSpec, LayerBlob};

/// containerd's annotation for the full image name (also read by `ctr import`, nerdctl).
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

pub(super) fn write_archive(
    layers: &[LayerBlob],
    spec: &ImageSpec,
    out: &Path,
) -> Result<ImageInfo> {
    let image_ref = parse_ref(&spec.ref_name)?;
    let (arch, variant) = parse_arch(&spec.architecture)?;
    let created = if spec.created.is_empty() {
        None
    } else {
        let t = chrono::DateTime::parse_from_rfc3339(&spec.created)
            .with_context(|| format!("image creation time {:?} is not RFC 3339", spec.created))?;
        Some(t)
    };
    let mtime = created
        .map(|t| u64::try_from(t.timestamp()).unwrap_or(0))
        .unwrap_or(0);
    for l in layers {
        blob_hex(&l.digest).with_context(|| format!("layer {}", l.path.display()))?;
        blob_hex(&l.diff_id).with_context(|| format!("layer {}", l.path.display()))?;
    }

    // --- config (image-spec config.md) ---
    let config_bytes = canonical_json(&build_config(layers, spec, &arch, variant.as_deref())?)?;
    let config_digest = sha256_tagged(&config_bytes);

    // --- manifest (image-spec manifest.md) ---
    let mut layer_descs = Vec::with_capacity(layers.len());
    for l in layers {
        layer_descs.push(Descriptor::new(
            MediaType::ImageLayerGzip,
            l.size,
            parse_digest(&l.digest)?,
        ));
    }
    let mut manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_bytes.len() as u64,
            parse_digest(&config_digest)?,
        ))
        .layers(layer_descs);
    if !spec.labels.is_empty() {
        manifest = manifest.annotations(to_hashmap(&spec.labels));
    }
    let manifest_bytes = canonical_json(&manifest.build().context("building image manifest")?)?;
    let manifest_digest = sha256_tagged(&manifest_bytes);

    // --- index (image-spec image-index.md, image-layout.md) ---
    let mut platform = PlatformBuilder::default()
        .architecture(arch.clone())
        .os(Os::Linux);
    if let Some(v) = &variant {
        platform = platform.variant(v.clone());
    }
    let manifest_desc = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .digest(parse_digest(&manifest_digest)?)
        .size(manifest_bytes.len() as u64)
        .platform(platform.build().context("building platform")?)
        .annotations(HashMap::from([
            (ANNOTATION_REF_NAME.to_string(), image_ref.tag.clone()),
            (
                ANNOTATION_CONTAINERD_NAME.to_string(),
                image_ref.full.clone(),
            ),
        ]))
        .build()
        .context("building manifest descriptor")?;
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![manifest_desc])
        .build()
        .context("building image index")?;
    let index_bytes = canonical_json(&index)?;

    // --- Docker's manifest.json (docker/podman load) ---
    let docker_manifest = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", blob_hex(&config_digest)?),
        "RepoTags": [image_ref.familiar],
        "Layers": layers
            .iter()
            .map(|l| Ok(format!("blobs/sha256/{}", blob_hex(&l.digest)?)))
            .collect::<Result<Vec<_>>>()?,
    }]);
    let docker_bytes = canonical_json(&docker_manifest)?;
    let layout_bytes = canonical_json(&serde_json::json!({"imageLayoutVersion": "1.0.0"}))?;

    // --- the tar ---
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(out)
        .with_context(|| format!("creating image archive {}", out.display()))?;
    let mut tb = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
    let ctx = || format!("writing image archive {}", out.display());
    add_bytes(&mut tb, "oci-layout", &layout_bytes, mtime).with_context(ctx)?;
    add_bytes(&mut tb, "index.json", &index_bytes, mtime).with_context(ctx)?;
    add_bytes(&mut tb, "manifest.json", &docker_bytes, mtime).with_context(ctx)?;
    add_dir(&mut tb, "blobs/", mtime).with_context(ctx)?;
    add_dir(&mut tb, "blobs/sha256/", mtime).with_context(ctx)?;
    let blob_name = |d: &str| -> Result<String> { Ok(format!("blobs/sha256/{}", blob_hex(d)?)) };
    add_bytes(&mut tb, &blob_name(&config_digest)?, &config_bytes, mtime).with_context(ctx)?;
    let mut written = HashSet::new();
    for l in layers {
        if written.insert(l.digest.clone()) {
            add_layer(&mut tb, &blob_name(&l.digest)?, l, mtime)?;
        }
    }
    add_bytes(
        &mut tb,
        &blob_name(&manifest_digest)?,
        &manifest_bytes,
        mtime,
    )
    .with_context(ctx)?;

    let buffered = tb.into_inner().with_context(ctx)?;
    let file = buffered
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(ctx)?;
    file.sync_all()
        .with_context(|| format!("syncing image archive {}", out.display()))?;
    let size = file.metadata().with_context(ctx)?.len();

    Ok(ImageInfo {
        digest: manifest_digest,
        config_digest,
        size,
    })
}

fn build_config(
    layers: &[LayerBlob],
    spec: &ImageSpec,
    arch: &Arch,
    variant: Option<&str>,
) -> Result<oci_spec::image::ImageConfiguration> {
    let mut cfg = ConfigBuilder::default();
    if !spec.entrypoint.is_empty() {
        cfg = cfg.entrypoint(spec.entrypoint.clone());
    }
    if !spec.cmd.is_empty() {
        cfg = cfg.cmd(spec.cmd.clone());
    }
    if !spec.env.is_empty() {
        for e in &spec.env {
            if !e.contains('=') || e.starts_with('=') {
                bail!("environment entry {e:?} is not KEY=VALUE");
            }
        }
        cfg = cfg.env(spec.env.clone());
    }
    if !spec.exposed_ports.is_empty() {
        let ports = spec
            .exposed_ports
            .iter()
            .map(|p| normalize_port(p))
            .collect::<Result<BTreeSet<_>>>()?;
        cfg = cfg.exposed_ports(ports.into_iter().collect::<Vec<_>>());
    }
    if !spec.working_dir.is_empty() {
        cfg = cfg.working_dir(spec.working_dir.clone());
    }
    if !spec.user.is_empty() {
        cfg = cfg.user(spec.user.clone());
    }
    if !spec.labels.is_empty() {
        cfg = cfg.labels(to_hashmap(&spec.labels));
    }

    let history = (0..layers.len())
        .map(|i| {
            let what = if i == 0 {
                format!("drover: base layer (1 of {})", layers.len())
            } else {
                format!(
                    "drover: layer {} of {} (changes over layer {i})",
                    i + 1,
                    layers.len()
                )
            };
            let mut h = HistoryBuilder::default().created_by(what);
            if !spec.created.is_empty() {
                h = h.created(spec.created.clone());
            }
            h.build().context("building history entry")
        })
        .collect::<Result<Vec<_>>>()?;

    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>())
        .build()
        .context("building rootfs")?;

    let mut image = ImageConfigurationBuilder::default()
        .architecture(arch.clone())
        .os(Os::Linux)
        .config(cfg.build().context("building container config")?)
        .rootfs(rootfs)
        .history(history);
    if !spec.created.is_empty() {
        image = image.created(spec.created.clone());
    }
    if let Some(v) = variant {
        image = image.variant(v.to_string());
    }
    image.build().context("building image config")
}

fn add_bytes<W: Write>(
    tb: &mut tar::Builder<W>,
    name: &str,
    bytes: &[u8],
    mtime: u64,
) -> io::Result<()> {
    let mut e = EntryMeta::new(EntryType::Regular, name.as_bytes().to_vec());
    e.mode = 0o644;
    e.mtime = mtime;
    e.size = bytes.len() as u64;
    append_entry(tb, &e, &mut &bytes[..])
}

fn add_dir<W: Write>(tb: &mut tar::Builder<W>, name: &str, mtime: u64) -> io::Result<()> {
    let mut e = EntryMeta::new(EntryType::Directory, name.as_bytes().to_vec());
    e.mode = 0o755;
    e.mtime = mtime;
    append_entry(tb, &e, &mut io::empty())
}

/// Stream a layer blob into the archive, checking its size and digest on the way.
fn add_layer<W: Write>(
    tb: &mut tar::Builder<W>,
    name: &str,
    layer: &LayerBlob,
    mtime: u64,
) -> Result<()> {
    let path = &layer.path;
    let file =
        File::open(path).with_context(|| format!("opening layer blob {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("reading layer blob {}", path.display()))?
        .len();
    if len != layer.size {
        bail!(
            "layer blob {} is {len} bytes, expected {} (corrupt or replaced?)",
            path.display(),
            layer.size
        );
    }
    let mut e = EntryMeta::new(EntryType::Regular, name.as_bytes().to_vec());
    e.mode = 0o644;
    e.mtime = mtime;
    e.size = len;
    let mut reader = ExactReader::new(BufReader::with_capacity(1 << 20, file), len);
    append_entry(tb, &e, &mut reader)
        .with_context(|| format!("copying layer blob {} into the archive", path.display()))?;
    let got = reader.digest();
    if got != layer.digest {
        bail!(
            "layer blob {} has digest {got}, expected {} (corrupt or replaced?)",
            path.display(),
            layer.digest
        );
    }
    Ok(())
}

/// Serialize with object keys sorted at every level, no whitespace: byte-for-byte stable for
/// equal values (oci-spec uses `HashMap`s for labels, annotations and ports).
fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let v = serde_json::to_value(value).context("serializing JSON")?;
    serde_json::to_vec(&sort_keys(v)).context("serializing JSON")
}

fn sort_keys(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

fn sha256_tagged(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:HEX` digest, checked (64 lowercase hex digits) so it is safe to
/// use as a file name.
fn blob_hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(h)
        }
        _ => bail!("{digest:?} is not a sha256:HEX digest"),
    }
}

fn parse_digest(d: &str) -> Result<Digest> {
    blob_hex(d)?;
    Digest::from_str(d).with_context(|| format!("bad digest {d:?}"))
}

fn to_hashmap(m: &std::collections::BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// `8080` → `8080/tcp`; `53/udp` kept; port (or `lo-hi` range) 1–65535, proto tcp/udp/sctp.
fn normalize_port(p: &str) -> Result<String> {
    let (port, proto) = match p.split_once('/') {
        Some((port, proto)) => (port, proto.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        bail!("exposed port {p:?}: protocol must be tcp, udp or sctp");
    }
    let ok = |s: &str| matches!(s.parse::<u32>(), Ok(1..=65535));
    let valid = match port.split_once('-') {
        Some((lo, hi)) => ok(lo) && ok(hi),
        None => ok(port),
    };
    if !valid {
        bail!("exposed port {p:?}: port must be a number 1-65535 (or a range lo-hi)");
    }
    Ok(format!("{port}/{proto}"))
}

/// `amd64`, or `arm64/v8`-style `ARCH/VARIANT`.
fn parse_arch(s: &str) -> Result<(Arch, Option<String>)> {
    let (arch, variant) = match s.split_once('/') {
        Some((a, v)) => (a, Some(v.to_string())),
        None => (s, None),
    };
    let good = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_alphanumeric());
    if !good(arch) || !variant.as_deref().is_none_or(good) {
        bail!("architecture {s:?} is not a Go GOARCH name (e.g. amd64, arm64)");
    }
    Ok((Arch::from(arch), variant))
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImageRef {
    /// `docker.io/drover/hello:build-7`
    full: String,
    /// `drover/hello:build-7` (Docker's short form, for `RepoTags`)
    familiar: String,
    /// `build-7`
    tag: String,
}

/// Parse `[DOMAIN/]PATH[:TAG]` with Docker's normalization (`docker.io`, `library/`,
/// default tag `latest`). Digest references (`@sha256:`) are refused: an archive names a tag.
fn parse_ref(s: &str) -> Result<ImageRef> {
    let err = |why: &str| anyhow::anyhow!("image reference {s:?}: {why}");
    if s.is_empty() {
        return Err(err("empty"));
    }
    if s.contains('@') {
        return Err(err("digest references cannot be used as a tag"));
    }
    let last_slash = s.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match s[last_slash..].rfind(':') {
        Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
        None => (s, "latest"),
    };
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
        });
    if !tag_ok {
        return Err(err("bad tag (allowed: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"));
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let domain = if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let d = parts.remove(0);
        let d_ok = d
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        if !d_ok {
            return Err(err("bad registry host"));
        }
        if d == "index.docker.io" {
            "docker.io"
        } else {
            d
        }
    } else {
        "docker.io"
    };
    for p in &parts {
        let ok = !p.is_empty()
            && p.bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
            && p.as_bytes()[0].is_ascii_alphanumeric()
            && p.as_bytes()[p.len() - 1].is_ascii_alphanumeric();
        if !ok {
            return Err(err(
                "bad repository name (lowercase letters, digits, . _ -)",
            ));
        }
    }
    let mut path = parts.join("/");
    if domain == "docker.io" && parts.len() == 1 {
        path = format!("library/{path}");
    }
    let full = format!("{domain}/{path}:{tag}");
    let familiar = if domain == "docker.io" {
        let short = path.strip_prefix("library/").filter(|r| !r.contains('/'));
        format!("{}:{tag}", short.unwrap_or(&path))
    } else {
        full.clone()
    };
    Ok(ImageRef {
        full,
        familiar,
        tag: tag.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> (String, String, String) {
        let r = parse_ref(s).unwrap();
        (r.full, r.familiar, r.tag)
    }

    #[test]
    fn refs() {
        assert_eq!(
            r("drover/hello:build-7"),
            (
                "docker.io/drover/hello:build-7".into(),
                "drover/hello:build-7".into(),
                "build-7".into()
            )
        );
        assert_eq!(
            r("docker.io/drover/hello:build-7").1,
            "drover/hello:build-7".to_string()
        );
        assert_eq!(
            r("alpine"),
            (
                "docker.io/library/alpine:latest".into(),
                "alpine:latest".into(),
                "latest".into()
            )
        );
        assert_eq!(
            r("localhost:5000/x/y:1.0"),
            (
                "localhost:5000/x/y:1.0".into(),
                "localhost:5000/x/y:1.0".into(),
                "1.0".into()
            )
        );
        assert_eq!(r("localhost:5000/x").2, "latest");
        for bad in ["", "Hello:1", "a@sha256:00", "a:", "a:-x", "a//b:1", "x/:1"] {
            assert!(parse_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(normalize_port("8080").unwrap(), "8080/tcp");
        assert_eq!(normalize_port("53/UDP").unwrap(), "53/udp");
        assert_eq!(normalize_port("1000-2000/tcp").unwrap(), "1000-2000/tcp");
        for bad in ["0", "70000", "http", "80/icmp", ""] {
            assert!(normalize_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert!(blob_hex(&ok).is_ok());
        assert!(blob_hex("sha256:../../etc").is_err());
        assert!(blob_hex(&format!("sha256:{}", "A".repeat(64))).is_err());
    }
}
