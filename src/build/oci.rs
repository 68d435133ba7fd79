//! OCI image writer: gzip layer blobs from directory trees, and image archives.
//!
//! Formats: OCI image-spec v1.1 (image layout, index, manifest, config; layer changesets
//! with `.wh.` whiteouts, `layer.md`), plus Docker's `manifest.json` beside the OCI layout
//! so `docker load` and `podman load` accept the same archive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

mod archive;
mod layer;
mod tarw;

/// How to turn a directory into a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerMode {
    /// The directory is a complete root filesystem (the base layer).
    Full,
    /// The directory is an overlayfs upper dir: char devices 0/0 become `.wh.NAME`
    /// whiteouts and directories with `trusted.overlay.opaque=y` get `.wh..wh..opq`.
    OverlayUpper,
}

/// A written layer blob (gzip-compressed tar).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerBlob {
    /// `sha256:HEX` of the compressed blob (the manifest's layer digest).
    pub digest: String,
    /// `sha256:HEX` of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
    /// Compressed size in bytes.
    pub size: u64,
    /// Where the blob file is.
    pub path: PathBuf,
}

/// What goes into the image config and manifest besides the layers.
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    /// Config `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// Config `Cmd` (may be empty).
    pub cmd: Vec<String>,
    /// Config `Env`, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Config `ExposedPorts`, e.g. `8080/tcp`.
    pub exposed_ports: Vec<String>,
    /// Config `WorkingDir`.
    pub working_dir: String,
    /// Config `User`, `UID:GID` (empty: root), see [`crate::build::user::resolve`].
    pub user: String,
    /// Config `Labels` (also copied to the manifest's annotations).
    pub labels: BTreeMap<String, String>,
    /// Image creation time, RFC 3339.
    pub created: String,
    /// Reference name in `index.json` (`org.opencontainers.image.ref.name`) and the repo tag
    /// in Docker's `manifest.json`, e.g. `drover/hello:build-7`.
    pub ref_name: String,
    /// `amd64`, `arm64`, … (Go architecture names).
    pub architecture: String,
}

/// The result of writing an image archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:HEX` of the image manifest: the image's identity.
    pub digest: String,
    /// `sha256:HEX` of the config blob (Docker's image id).
    pub config_digest: String,
    /// Total archive size in bytes.
    pub size: u64,
}

/// Write `root` as a gzip tar layer blob to `out` (a file path), computing digest and diff_id
/// in one pass. Paths in `exclude` (relative, no leading `/`, e.g. `var/lib/apt/lists`) are
/// left out with everything under them (the directory itself is kept, empty).
///
/// The tar (OCI image-spec `layer.md`, "Changesets") is POSIX pax: ustar headers, with a PAX
/// extended header only where needed (`path`/`linkpath` over 100 bytes, ids over 2097151,
/// sizes over 8 GiB, `SCHILY.xattr.security.capability`). Paths are relative (`etc/`,
/// `etc/passwd`), directories end with `/`, the root itself gets no entry. Entries come in
/// depth-first pre-order with siblings sorted by name bytes, so the same tree always gives the
/// same bytes. Recorded per entry: mode (`& 0o7777`, incl. setuid/setgid/sticky), numeric
/// uid/gid (no user/group names), mtime in whole seconds, symlink targets as-is, device
/// major/minor; a second path to an already written (st_dev, st_ino) becomes a hard link entry
/// to the first path. Sockets and unknown file types are skipped. The gzip header has mtime 0
/// and OS 255. Exclude entries are normalized (`/x/`, `./x` → `x`); `.` excludes everything;
/// `..` is an error.
///
/// With [`LayerMode::OverlayUpper`] (image-spec "Whiteouts"): a character device 0/0 becomes an
/// empty regular file `DIR/.wh.NAME` with mode 0 (owner and mtime of the device); a directory
/// whose `trusted.overlay.opaque` (or `user.overlay.opaque`) is `y` gets its entry followed by
/// an empty `DIR/.wh..wh..opq` (unless the directory is excluded). No `*.overlay.*` xattr is
/// written. An entry carrying `overlay.metacopy` or `overlay.redirect` is an error: mount the
/// overlay with `metacopy=off,redirect_dir=off`.
///
/// `out` is created or truncated and written in place (no temp file; the caller renames) and
/// fsynced before returning. [`LayerBlob::size`] is the compressed size in bytes.
///
/// # Errors
/// Unreadable entries, I/O errors on `out`, a root that is not a directory, a regular file that
/// shrinks while being read, bad exclude paths and the unsupported overlay features above; each
/// error names the path involved. `out` may be left partial on error.
pub fn write_layer(
    root: &Path,
    mode: LayerMode,
    exclude: &[&str],
    out: &Path,
) -> Result<LayerBlob> {
    layer::write_layer(root, mode, exclude, out)
}

/// Write an OCI image archive (tar) holding `oci-layout`, `index.json`, `blobs/sha256/*` and
/// Docker's `manifest.json`, for the given layers (bottom first).
///
/// Follows OCI image-spec v1.1 `image-layout.md` (the layout), `image-index.md` (index.json:
/// one manifest descriptor with platform `linux/ARCH[/VARIANT]`, annotations
/// `org.opencontainers.image.ref.name` = the tag of `spec.ref_name` and
/// `io.containerd.image.name` = the normalized full reference, e.g.
/// `docker.io/drover/hello:build-7`), `manifest.md` (layers as
/// `application/vnd.oci.image.layer.v1.tar+gzip`, labels as annotations) and `config.md`
/// (rootfs diff_ids, one history entry per layer). Docker's `manifest.json` lists
/// `RepoTags` in Docker's short form (`drover/hello:build-7`, `alpine:latest`). All JSON has
/// object keys sorted and no whitespace, and tar headers carry `spec.created` as mtime, so equal
/// inputs give a byte-identical archive.
///
/// `spec.ref_name` is `[REGISTRY/]PATH[:TAG]` (tag defaults to `latest`); exposed ports without
/// a protocol get `/tcp`; `spec.architecture` may be `ARCH/VARIANT` (e.g. `arm/v7`); empty
/// `cmd`, `entrypoint`, `env`, `working_dir`, `labels`, `created` are omitted. Layer blobs are
/// streamed from [`LayerBlob::path`] (each distinct digest stored once) and checked against
/// their recorded size and digest while copying. `out` is created or truncated, written in
/// place and fsynced. [`ImageInfo::digest`] is the sha256 of the exact manifest bytes stored.
///
/// # Errors
/// A bad reference, architecture, port, env entry (`KEY=VALUE`), creation time (RFC 3339) or
/// digest string; a layer blob that is missing or whose size or sha256 differs from its
/// `LayerBlob`; I/O errors on `out`. `out` may be left partial on error.
pub fn write_archive(layers: &[LayerBlob], spec: &ImageSpec, out: &Path) -> Result<ImageInfo> {
    archive::write_archive(layers, spec, out)
}
