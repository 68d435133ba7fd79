//! OCI writer: layer blobs (contents, digests, whiteouts, excludes, determinism) and image
//! archives (structure, digests, and acceptance by skopeo).

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use drover::build::oci::{write_archive, write_layer, ImageSpec, LayerBlob, LayerMode};
use sha2::{Digest, Sha256};
use tar::EntryType;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One tar entry as read back.
#[derive(Debug, Clone)]
struct Ent {
    path: String,
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    dev: Option<(u32, u32)>,
    pax: BTreeMap<String, Vec<u8>>,
    data: Vec<u8>,
}

fn read_tar(bytes: &[u8]) -> Vec<Ent> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in ar.entries().expect("tar entries") {
        let mut e = e.expect("tar entry");
        let mut pax = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().expect("pax") {
            for ext in exts {
                let ext = ext.expect("pax record");
                pax.insert(ext.key().unwrap().to_string(), ext.value_bytes().to_vec());
            }
        }
        let h = e.header().clone();
        let kind = h.entry_type();
        let dev = if matches!(kind, EntryType::Char | EntryType::Block) {
            Some((
                h.device_major().unwrap().unwrap(),
                h.device_minor().unwrap().unwrap(),
            ))
        } else {
            None
        };
        let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8(l.into_owned()).unwrap());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(Ent {
            path,
            kind,
            mode: h.mode().unwrap(),
            uid: e.header().uid().unwrap(),
            gid: e.header().gid().unwrap(),
            mtime: h.mtime().unwrap(),
            link,
            dev,
            pax,
            data,
        });
    }
    out
}

/// Read a layer blob back, checking size, digest (compressed) and diff_id (uncompressed).
fn read_layer(blob: &LayerBlob) -> Vec<Ent> {
    let compressed = fs::read(&blob.path).unwrap();
    assert_eq!(compressed.len() as u64, blob.size, "size");
    assert_eq!(
        blob.digest,
        format!("sha256:{}", sha256_hex(&compressed)),
        "digest"
    );
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .read_to_end(&mut raw)
        .unwrap();
    assert_eq!(
        blob.diff_id,
        format!("sha256:{}", sha256_hex(&raw)),
        "diff_id"
    );
    read_tar(&raw)
}

fn by_path(ents: &[Ent]) -> HashMap<String, Ent> {
    ents.iter().map(|e| (e.path.clone(), e.clone())).collect()
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn mknod(p: &Path, kind: libc::mode_t, major: u32, minor: u32) -> bool {
    let c = cstr(p);
    // SAFETY: valid NUL-terminated path; mknod has no other memory effects.
    unsafe { libc::mknod(c.as_ptr(), kind | 0o600, libc::makedev(major, minor)) == 0 }
}

fn mkfifo(p: &Path) {
    let c = cstr(p);
    // SAFETY: valid NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o640) };
    assert_eq!(rc, 0, "mkfifo {}", p.display());
}

fn write(p: &Path, data: &[u8], mode: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
    // set_permissions is subject to no umask, so the setuid/setgid bits stick (we are root).
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn set_mtime(p: &Path, secs: u64) {
    File::open(p)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

const LONG_DIR: &str = "usr/share/doc/a-package-with-a-rather-long-name-for-testing-purposes";
const LONG_FILE: &str = "and-a-changelog-file-whose-name-also-goes-on-for-quite-a-while.Debian.gz";

/// A tree exercising every entry kind. Returns whether device nodes could be created.
fn build_tree(root: &Path) -> bool {
    write(
        &root.join("etc/passwd"),
        b"root:x:0:0::/root:/bin/sh\n",
        0o644,
    );
    write(&root.join("etc/shadow"), b"root:*:1::::::\n", 0o640);
    write(&root.join("etc/secret"), b"excluded\n", 0o600);
    fs::hard_link(root.join("etc/passwd"), root.join("etc/passwd-hard")).unwrap();
    write(&root.join("bin/dash"), b"\x7fELF fake shell", 0o755);
    symlink("dash", root.join("bin/sh")).unwrap();
    write(&root.join("usr/bin/su"), b"setuid", 0o4755);
    write(&root.join("usr/bin/wall"), b"setgid", 0o2755);
    write(&root.join("usr/bin/ping"), b"caps", 0o755);
    // struct vfs_cap_data v2: magic|effective, permitted = CAP_NET_RAW (13), no inheritable.
    let mut cap = Vec::new();
    for w in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        cap.extend_from_slice(&w.to_le_bytes());
    }
    xattr::set(root.join("usr/bin/ping"), "security.capability", &cap).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::create_dir_all(root.join("var/empty")).unwrap();
    write(&root.join("var/cache/apt/pkgcache.bin"), b"cache", 0o644);
    write(&root.join("home/user/file"), b"owned", 0o600);
    std::os::unix::fs::chown(root.join("home/user/file"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::chown(root.join("home/user"), Some(1234), Some(5678)).unwrap();
    write(&root.join(LONG_DIR).join(LONG_FILE), b"long path", 0o644);
    let long_target =
        format!("../share/doc/a-package-with-a-rather-long-name-for-testing-purposes/{LONG_FILE}");
    assert!(long_target.len() > 100);
    symlink(&long_target, root.join("usr/bin/long-link")).unwrap();
    fs::create_dir_all(root.join("run")).unwrap();
    mkfifo(&root.join("run/initctl"));
    let _sock = std::os::unix::net::UnixListener::bind(root.join("run/sock")).unwrap();
    fs::create_dir_all(root.join("dev")).unwrap();
    let devs = mknod(&root.join("dev/null"), libc::S_IFCHR, 1, 3)
        && mknod(&root.join("dev/loop0"), libc::S_IFBLK, 7, 0);
    if !devs {
        eprintln!("mknod failed (not root?): skipping device node checks");
    }
    set_mtime(&root.join("etc/passwd"), 1_600_000_000);
    set_mtime(&root.join("usr/bin/su"), 1_234_567_890);
    devs
}

#[test]
fn full_layer_contents_digests_and_excludes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    fs::create_dir(&root).unwrap();
    let devs = build_tree(&root);
    let out = tmp.path().join("layer.tar.gz");
    let blob = write_layer(&root, LayerMode::Full, &["var/cache", "/etc/secret"], &out).unwrap();
    assert_eq!(blob.path, out);
    let ents = read_layer(&blob);
    let m = by_path(&ents);

    // Paths: relative, no `./`, directories with a trailing slash, no root entry.
    for e in &ents {
        assert!(
            !e.path.starts_with('/') && !e.path.starts_with("./"),
            "{}",
            e.path
        );
        assert_eq!(
            e.kind == EntryType::Directory,
            e.path.ends_with('/'),
            "{}",
            e.path
        );
    }
    // Parents come before their contents, siblings in byte order.
    let order: Vec<&str> = ents.iter().map(|e| e.path.trim_end_matches('/')).collect();
    for (i, p) in order.iter().enumerate() {
        if let Some((parent, _)) = p.rsplit_once('/') {
            let pi = order.iter().position(|q| *q == parent).expect(parent);
            assert!(pi < i, "{parent} after {p}");
        }
    }
    let top: Vec<&str> = order.iter().copied().filter(|p| !p.contains('/')).collect();
    let mut sorted = top.clone();
    sorted.sort();
    assert_eq!(top, sorted);

    let passwd = &m["etc/passwd"];
    assert_eq!(passwd.kind, EntryType::Regular);
    assert_eq!(passwd.mode, 0o644);
    assert_eq!(passwd.data, b"root:x:0:0::/root:/bin/sh\n");
    assert_eq!(passwd.mtime, 1_600_000_000);
    assert_eq!(m["etc/shadow"].mode, 0o640);
    let hard = &m["etc/passwd-hard"];
    assert_eq!(hard.kind, EntryType::Link);
    assert_eq!(hard.link.as_deref(), Some("etc/passwd"));
    assert!(hard.data.is_empty());
    assert_eq!(m["etc/"].kind, EntryType::Directory);

    assert_eq!(m["usr/bin/su"].mode, 0o4755);
    assert_eq!(m["usr/bin/su"].mtime, 1_234_567_890);
    assert_eq!(m["usr/bin/wall"].mode, 0o2755);
    assert_eq!(m["tmp/"].mode, 0o1777);
    assert_eq!(m["var/empty/"].kind, EntryType::Directory);

    let sh = &m["bin/sh"];
    assert_eq!(sh.kind, EntryType::Symlink);
    assert_eq!(sh.link.as_deref(), Some("dash"));
    let long_link = &m["usr/bin/long-link"];
    assert_eq!(long_link.kind, EntryType::Symlink);
    assert!(long_link.link.as_ref().unwrap().ends_with(LONG_FILE));
    assert!(long_link.link.as_ref().unwrap().len() > 100);

    let long_path = format!("{LONG_DIR}/{LONG_FILE}");
    assert!(long_path.len() > 100);
    assert_eq!(m[&long_path].data, b"long path");

    let ping = &m["usr/bin/ping"];
    let cap = xattr::get(root.join("usr/bin/ping"), "security.capability")
        .unwrap()
        .unwrap();
    assert_eq!(cap.len(), 20);
    assert_eq!(ping.pax.get("SCHILY.xattr.security.capability"), Some(&cap));
    assert!(m["usr/bin/su"].pax.is_empty());

    let user_file = &m["home/user/file"];
    assert_eq!((user_file.uid, user_file.gid), (1234, 5678));
    assert_eq!((m["home/user/"].uid, m["home/user/"].gid), (1234, 5678));
    assert_eq!((passwd.uid, passwd.gid), (0, 0));

    assert_eq!(m["run/initctl"].kind, EntryType::Fifo);
    assert_eq!(m["run/initctl"].mode, 0o640);
    assert!(!m.contains_key("run/sock"), "sockets are skipped");
    if devs {
        assert_eq!(m["dev/null"].kind, EntryType::Char);
        assert_eq!(m["dev/null"].dev, Some((1, 3)));
        assert_eq!(m["dev/loop0"].kind, EntryType::Block);
        assert_eq!(m["dev/loop0"].dev, Some((7, 0)));
    }

    // Excludes: the directory stays (empty), the file goes.
    assert_eq!(m["var/cache/"].kind, EntryType::Directory);
    assert!(!ents
        .iter()
        .any(|e| e.path.starts_with("var/cache/") && e.path != "var/cache/"));
    assert!(!m.contains_key("etc/secret"));

    // GNU tar reads it too (long names, links) and extracts it faithfully.
    let listing = Command::new("tar").arg("-tzvf").arg(&out).output().unwrap();
    assert!(listing.status.success(), "{listing:?}");
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains(&long_path), "{listing}");
    assert!(
        listing.contains("etc/passwd-hard link to etc/passwd"),
        "{listing}"
    );
    let x = tmp.path().join("x");
    fs::create_dir(&x).unwrap();
    let st = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=security.*", "-xzpf"])
        .arg(&out)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(st.success());
    let su = fs::metadata(x.join("usr/bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755);
    let a = fs::metadata(x.join("etc/passwd")).unwrap();
    let b = fs::metadata(x.join("etc/passwd-hard")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(fs::read(x.join(&long_path)).unwrap(), b"long path");
}

#[test]
fn layer_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    fs::create_dir(&root).unwrap();
    build_tree(&root);
    let a = write_layer(&root, LayerMode::Full, &[], &tmp.path().join("a.tgz")).unwrap();
    let b = write_layer(&root, LayerMode::Full, &[], &tmp.path().join("b.tgz")).unwrap();
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.diff_id, b.diff_id);
    assert_eq!(a.size, b.size);
    assert_ne!(a.digest, a.diff_id);
}

#[test]
fn overlay_upper_whiteouts() {
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    fs::create_dir_all(upper.join("etc")).unwrap();
    write(&upper.join("etc/new.conf"), b"x=1\n", 0o644);
    // A deleted lower file: overlay's whiteout is a char device 0/0.
    assert!(
        mknod(&upper.join("etc/removed.conf"), libc::S_IFCHR, 0, 0),
        "mknod 0/0 failed (tests must run as root)"
    );
    // A directory replaced wholesale: opaque.
    write(&upper.join("var/lib/app/state.json"), b"{}", 0o600);
    xattr::set(upper.join("var/lib/app"), "trusted.overlay.opaque", b"y").unwrap();
    // Other overlay bookkeeping that must not leak into the layer.
    xattr::set(
        upper.join("etc/new.conf"),
        "trusted.overlay.origin",
        b"\x00\xfb",
    )
    .unwrap();
    xattr::set(upper.join("var"), "trusted.overlay.impure", b"y").unwrap();
    // A non-opaque dir stays plain; `x` is not opaque either.
    xattr::set(upper.join("etc"), "trusted.overlay.opaque", b"x").unwrap();
    // An excluded opaque dir: kept, but no opaque marker and no contents.
    write(&upper.join("var/cache/apt/x.bin"), b"x", 0o644);
    xattr::set(upper.join("var/cache"), "trusted.overlay.opaque", b"y").unwrap();

    let out = tmp.path().join("upper.tgz");
    let blob = write_layer(&upper, LayerMode::OverlayUpper, &["var/cache"], &out).unwrap();
    let ents = read_layer(&blob);
    let paths: Vec<&str> = ents.iter().map(|e| e.path.as_str()).collect();
    let m = by_path(&ents);

    let wh = &m["etc/.wh.removed.conf"];
    assert_eq!(wh.kind, EntryType::Regular);
    assert_eq!(wh.mode, 0);
    assert!(wh.data.is_empty());
    assert!(!m.contains_key("etc/removed.conf"));
    assert!(!ents.iter().any(|e| e.kind == EntryType::Char));
    assert!(!m.contains_key("etc/.wh..wh..opq"));

    let d = paths.iter().position(|p| *p == "var/lib/app/").unwrap();
    assert_eq!(paths[d + 1], "var/lib/app/.wh..wh..opq");
    assert_eq!(paths[d + 2], "var/lib/app/state.json");
    assert_eq!(m["var/lib/app/.wh..wh..opq"].kind, EntryType::Regular);
    assert!(m["var/lib/app/.wh..wh..opq"].data.is_empty());

    assert_eq!(m["var/cache/"].kind, EntryType::Directory);
    assert!(!paths
        .iter()
        .any(|p| p.starts_with("var/cache/") && *p != "var/cache/"));

    for e in &ents {
        for k in e.pax.keys() {
            assert!(!k.contains("overlay"), "{} leaks {k}", e.path);
        }
    }

    // In Full mode the same 0/0 device is just a device.
    let full = write_layer(&upper, LayerMode::Full, &[], &tmp.path().join("full.tgz")).unwrap();
    let fm = by_path(&read_layer(&full));
    assert_eq!(fm["etc/removed.conf"].kind, EntryType::Char);
    assert_eq!(fm["etc/removed.conf"].dev, Some((0, 0)));
    assert!(!fm.contains_key("var/lib/app/.wh..wh..opq"));

    // metacopy uppers are not self-contained: refused, naming the path.
    write(&upper.join("usr/bin/meta"), b"", 0o755);
    xattr::set(upper.join("usr/bin/meta"), "trusted.overlay.metacopy", b"").unwrap();
    let err = write_layer(
        &upper,
        LayerMode::OverlayUpper,
        &[],
        &tmp.path().join("m.tgz"),
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("usr/bin/meta") && msg.contains("metacopy"),
        "{msg}"
    );
}

#[test]
fn layer_errors_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let err = write_layer(&missing, LayerMode::Full, &[], &tmp.path().join("o")).unwrap_err();
    assert!(format!("{err:#}").contains("nope"), "{err:#}");

    let file = tmp.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = write_layer(&file, LayerMode::Full, &[], &tmp.path().join("o")).unwrap_err();
    assert!(format!("{err:#}").contains("not a directory"), "{err:#}");

    let root = tmp.path().join("r");
    fs::create_dir(&root).unwrap();
    let err = write_layer(&root, LayerMode::Full, &["../x"], &tmp.path().join("o")).unwrap_err();
    assert!(format!("{err:#}").contains(".."), "{err:#}");

    let bad_out = tmp.path().join("no/such/dir/out");
    let err = write_layer(&root, LayerMode::Full, &[], &bad_out).unwrap_err();
    assert!(format!("{err:#}").contains("no/such/dir"), "{err:#}");
}

fn spec() -> ImageSpec {
    ImageSpec {
        entrypoint: vec!["/usr/local/bin/hello".into()],
        cmd: vec!["--listen".into(), "0.0.0.0:8080".into()],
        env: vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            "HELLO=world".into(),
        ],
        exposed_ports: vec!["8080/tcp".into()],
        working_dir: "/srv/hello".into(),
        user: "104:110".into(),
        labels: BTreeMap::from([
            ("org.opencontainers.image.title".into(), "hello".into()),
            ("io.drover.build".into(), "7".into()),
        ]),
        created: "2024-05-01T12:00:00Z".into(),
        ref_name: "drover/hello:build-7".into(),
        architecture: "amd64".into(),
    }
}

/// Two layers: a base rootfs and an overlay upper on top.
fn two_layers(dir: &Path) -> Vec<LayerBlob> {
    let base = dir.join("base");
    fs::create_dir(&base).unwrap();
    build_tree(&base);
    let upper = dir.join("upper");
    write(
        &upper.join("usr/local/bin/hello"),
        b"#!/bin/sh\necho hello\n",
        0o755,
    );
    fs::create_dir_all(upper.join("etc")).unwrap();
    assert!(mknod(&upper.join("etc/shadow"), libc::S_IFCHR, 0, 0));
    vec![
        write_layer(&base, LayerMode::Full, &[], &dir.join("base.tgz")).unwrap(),
        write_layer(&upper, LayerMode::OverlayUpper, &[], &dir.join("app.tgz")).unwrap(),
    ]
}

fn skopeo() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("skopeo"))
            .find(|p| p.is_file())
    });
    found.expect("skopeo not found on PATH: install it with `apt-get install skopeo`")
}

fn run_json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn archive_structure_and_skopeo() {
    let skopeo = skopeo();
    let tmp = tempfile::tempdir().unwrap();
    let layers = two_layers(tmp.path());
    let out = tmp.path().join("image.tar");
    let spec = spec();
    let info = write_archive(&layers, &spec, &out).unwrap();
    assert_eq!(info.size, fs::metadata(&out).unwrap().len());

    let files: HashMap<String, Vec<u8>> = read_tar(&fs::read(&out).unwrap())
        .into_iter()
        .filter(|e| e.kind == EntryType::Regular)
        .map(|e| (e.path, e.data))
        .collect();
    // Every blob is named by its sha256.
    let mut blobs = 0;
    for (name, data) in &files {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            assert_eq!(hex, sha256_hex(data), "{name}");
            blobs += 1;
        }
    }
    assert_eq!(blobs, 4, "config + manifest + 2 layers");
    let json = |name: &str| -> serde_json::Value {
        serde_json::from_slice(files.get(name).unwrap_or_else(|| panic!("{name} missing"))).unwrap()
    };
    let blob = |digest: &str| -> serde_json::Value {
        json(&format!(
            "blobs/sha256/{}",
            digest.strip_prefix("sha256:").unwrap()
        ))
    };

    assert_eq!(
        json("oci-layout"),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = json("index.json");
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let mdesc = &index["manifests"][0];
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        mdesc["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(mdesc["digest"], info.digest.as_str());
    assert_eq!(
        mdesc["annotations"]["org.opencontainers.image.ref.name"],
        "build-7"
    );
    assert_eq!(
        mdesc["annotations"]["io.containerd.image.name"],
        "docker.io/drover/hello:build-7"
    );
    assert_eq!(mdesc["platform"]["os"], "linux");
    assert_eq!(mdesc["platform"]["architecture"], "amd64");

    let manifest_name = format!(
        "blobs/sha256/{}",
        info.digest.strip_prefix("sha256:").unwrap()
    );
    assert_eq!(mdesc["size"], files[&manifest_name].len());
    let manifest = blob(&info.digest);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(manifest["config"]["digest"], info.config_digest.as_str());
    assert_eq!(manifest["annotations"]["io.drover.build"], "7");
    let mlayers = manifest["layers"].as_array().unwrap();
    assert_eq!(mlayers.len(), 2);
    for (d, l) in mlayers.iter().zip(&layers) {
        assert_eq!(
            d["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(d["digest"], l.digest.as_str());
        assert_eq!(d["size"], l.size);
    }

    let config = blob(&info.config_digest);
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["created"], "2024-05-01T12:00:00Z");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/hello"])
    );
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["--listen", "0.0.0.0:8080"])
    );
    assert_eq!(
        config["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    assert_eq!(config["config"]["WorkingDir"], "/srv/hello");
    assert_eq!(config["config"]["User"], "104:110");
    assert_eq!(config["config"]["Env"][1], "HELLO=world");
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.title"],
        "hello"
    );
    assert_eq!(config["rootfs"]["type"], "layers");
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!(diff_ids));
    let history = config["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    for h in history {
        assert_eq!(h["created"], "2024-05-01T12:00:00Z");
        assert!(h["created_by"].as_str().unwrap().contains("drover"));
    }

    let docker = json("manifest.json");
    let d = &docker[0];
    assert_eq!(d["RepoTags"], serde_json::json!(["drover/hello:build-7"]));
    assert_eq!(
        d["Config"],
        format!(
            "blobs/sha256/{}",
            info.config_digest.strip_prefix("sha256:").unwrap()
        )
    );
    for p in d["Layers"].as_array().unwrap().iter().chain([&d["Config"]]) {
        assert!(files.contains_key(p.as_str().unwrap()), "{p}");
    }
    assert_eq!(d["Layers"].as_array().unwrap().len(), 2);

    // skopeo accepts it, by path and by tag.
    let archive = format!("oci-archive:{}", out.display());
    let inspect = run_json(Command::new(&skopeo).args(["inspect", &archive]));
    assert_eq!(inspect["Digest"], info.digest.as_str());
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Labels"]["io.drover.build"], "7");
    assert_eq!(inspect["Labels"]["org.opencontainers.image.title"], "hello");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
    let tagged = format!("{archive}:build-7");
    let inspect_tag = run_json(Command::new(&skopeo).args(["inspect", &tagged]));
    assert_eq!(inspect_tag["Digest"], info.digest.as_str());
    let cfg = run_json(Command::new(&skopeo).args(["inspect", "--config", &archive]));
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/hello"])
    );
    assert_eq!(
        cfg["config"]["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    assert_eq!(cfg["config"]["Labels"]["io.drover.build"], "7");

    // skopeo copy verifies every blob digest on the way.
    let dir = tmp.path().join("copied");
    let copy = Command::new(&skopeo)
        .args(["copy", "--quiet", &archive])
        .arg(format!("dir:{}", dir.display()))
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let copied_manifest = fs::read(dir.join("manifest.json")).unwrap();
    assert_eq!(
        format!("sha256:{}", sha256_hex(&copied_manifest)),
        info.digest
    );
}

#[test]
fn archive_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = two_layers(tmp.path());
    let a = write_archive(&layers, &spec(), &tmp.path().join("a.tar")).unwrap();
    let b = write_archive(&layers, &spec(), &tmp.path().join("b.tar")).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        fs::read(tmp.path().join("a.tar")).unwrap(),
        fs::read(tmp.path().join("b.tar")).unwrap()
    );
}

#[test]
fn archive_rejects_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = two_layers(tmp.path());
    let out = tmp.path().join("x.tar");

    let mut s = spec();
    s.ref_name = "Not A Ref".into();
    assert!(write_archive(&layers, &s, &out).is_err());
    let mut s = spec();
    s.created = "yesterday".into();
    assert!(write_archive(&layers, &s, &out).is_err());
    let mut s = spec();
    s.exposed_ports = vec!["http".into()];
    assert!(write_archive(&layers, &s, &out).is_err());

    // A corrupted or mislabelled blob is caught rather than archived.
    let mut bad = layers.clone();
    bad[0].digest = format!("sha256:{}", "0".repeat(64));
    let err = write_archive(&bad, &spec(), &out).unwrap_err();
    assert!(format!("{err:#}").contains("digest"), "{err:#}");
    let mut bad = layers.clone();
    bad[1].size += 1;
    let err = write_archive(&bad, &spec(), &out).unwrap_err();
    assert!(format!("{err:#}").contains("app.tgz"), "{err:#}");
    let mut bad = layers.clone();
    bad[0].digest = "sha256:../../etc/passwd".into();
    assert!(write_archive(&bad, &spec(), &out).is_err());
    let mut bad = layers;
    bad[0].path = tmp.path().join("missing.tgz");
    let err = write_archive(&bad, &spec(), &out).unwrap_err();
    assert!(format!("{err:#}").contains("missing.tgz"), "{err:#}");

    // Unusual but valid specs: no cmd, bare port, short name.
    let mut s = spec();
    s.cmd.clear();
    s.exposed_ports = vec!["9000".into()];
    s.ref_name = "hello".into();
    let info = write_archive(&[], &s, &out);
    assert!(info.is_ok(), "{info:?}");
    let mut f = Vec::new();
    File::open(&out).unwrap().read_to_end(&mut f).unwrap();
    let files: HashMap<String, Vec<u8>> =
        read_tar(&f).into_iter().map(|e| (e.path, e.data)).collect();
    let docker: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(docker[0]["RepoTags"][0], "hello:latest");
    let cfg_name = docker[0]["Config"].as_str().unwrap();
    let cfg: serde_json::Value = serde_json::from_slice(&files[cfg_name]).unwrap();
    assert!(cfg["config"].get("Cmd").is_none());
    assert_eq!(
        cfg["config"]["ExposedPorts"],
        serde_json::json!({"9000/tcp": {}})
    );
}
