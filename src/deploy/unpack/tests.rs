//! Unit tests of the layer cache, the whiteout conversion, the merged view, the overlay
//! mount and garbage collection by layer. They need root (whiteout devices and
//! `trusted.overlay.opaque`, as the agent does).

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::*;

/// A tar entry for the test layers.
enum E<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    /// A path written raw (so `..` gets through the tar writer).
    RawFile(&'a [u8]),
    Char(&'a str),
    /// A file with one PAX xattr.
    Xattr(&'a str, &'a str),
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_mode(0o644);
        match e {
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::File(p, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(d.len() as u64);
                b.append_data(&mut h, p, *d).unwrap();
            }
            E::Symlink(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
            E::RawFile(p) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(0);
                h.as_old_mut().name[..p.len()].copy_from_slice(p);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            E::Char(p) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_size(0);
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
            E::Xattr(p, name) => {
                let key = format!("SCHILY.xattr.{name}");
                b.append_pax_extensions([(key.as_str(), &b"y"[..])])
                    .unwrap();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI image-layout tar of gzip `layers` (bottom first), as `build::oci` writes one
/// (blobs before the manifest). Returns the archive and the manifest digest.
fn oci_archive(path: &Path, layers: &[Vec<u8>]) -> String {
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin","A=1"],"Entrypoint":["/etc/drover/entrypoint"],"WorkingDir":"/opt/app"},"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha(l), "size": l.len()})
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha(&config), "size": config.len()},
        "layers": descs}))
    .unwrap();
    let digest = sha(&manifest);
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2,
        "manifests": [{"digest": digest, "size": manifest.len()}]}))
    .unwrap();
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    add(&format!("blobs/sha256/{}", &sha(&config)[7..]), &config);
    for l in layers {
        add(&format!("blobs/sha256/{}", &sha(l)[7..]), l);
    }
    add(&format!("blobs/sha256/{}", &digest[7..]), &manifest);
    b.finish().unwrap();
    digest
}

fn apply_to(tree: &Path, entries: &[E]) -> Result<layer::Applied> {
    fs::create_dir_all(tree).unwrap();
    let bytes = tar_of(entries);
    layer::apply(&mut tar::Archive::new(&bytes[..]), tree)
}

fn is_dev00(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| layer::is_whiteout(&m))
}

#[test]
fn whiteouts_become_overlay_whiteouts_and_opaque_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let (l1, l2) = (dir.path().join("l1"), dir.path().join("l2"));
    apply_to(
        &l1,
        &[
            E::Dir("etc/"),
            E::File("etc/a", b"a"),
            E::File("etc/b", b"b"),
            E::Dir("opt/"),
            E::File("opt/x", b"x"),
        ],
    )
    .unwrap();
    apply_to(
        &l2,
        &[
            E::Dir("etc/"),
            E::File("etc/.wh.a", b""),
            E::Dir("opt/"),
            E::File("opt/z", b"z"),
            E::File("opt/.wh..wh..opq", b""),
            E::File("opt/y", b"y"),
        ],
    )
    .unwrap();
    // On disk: overlayfs' forms, and no `.wh.` file left.
    assert!(is_dev00(&l2.join("etc/a")), "whiteout = char device 0/0");
    assert!(layer::is_opaque(&l2.join("opt")));
    assert!(!layer::is_opaque(&l2.join("etc")));
    assert!(!l2.join("etc/.wh.a").exists() && !l2.join("opt/.wh..wh..opq").exists());
    // The merged view: a deleted, b kept; opt holds only this layer's y and z.
    let stack = [l2.clone(), l1.clone()];
    let present = |p: &str| !matches!(view::lookup(&stack, Path::new(p)), view::Node::Missing);
    assert!(!present("etc/a"));
    assert!(present("etc/b"));
    assert!(!present("opt/x"));
    assert!(
        present("opt/y") && present("opt/z"),
        "same-layer entries stay"
    );
}

#[test]
fn whiteouts_apply_to_lower_layers_only_in_any_order() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("t");
    apply_to(
        &tree,
        &[
            // Whiteout first, then a directory of that name: an opaque directory.
            E::File(".wh.d1", b""),
            E::Dir("d1/"),
            E::File("d1/new", b"n"),
            // Directory first, then its whiteout: opaque as well.
            E::Dir("d2/"),
            E::File(".wh.d2", b""),
            // A file of this layer and a whiteout of it: the file stays.
            E::File("f", b"f"),
            E::File(".wh.f", b""),
            // A whiteout, then an entry below that name: an opaque parent.
            E::File(".wh.d3", b""),
            E::File("d3/x", b"x"),
            E::File(".wh.gone", b""),
        ],
    )
    .unwrap();
    for d in ["d1", "d2", "d3"] {
        let m = fs::symlink_metadata(tree.join(d)).unwrap();
        assert!(m.is_dir() && layer::is_opaque(&tree.join(d)), "{d}");
    }
    assert_eq!(fs::read(tree.join("d1/new")).unwrap(), b"n");
    assert_eq!(fs::read(tree.join("f")).unwrap(), b"f");
    assert!(is_dev00(&tree.join("gone")));
}

#[test]
fn traversal_devices_and_overlay_xattrs_are_refused() {
    assert!(layer::safe_relative(Path::new("../etc/passwd")).is_err());
    assert!(layer::safe_relative(Path::new("a/../../b")).is_err());
    assert_eq!(
        layer::safe_relative(Path::new("/./etc/x")).unwrap(),
        PathBuf::from("etc/x")
    );
    let dir = tempfile::tempdir().unwrap();
    let refused = |name: &str, entries: &[E]| -> String {
        let err = apply_to(&dir.path().join(name), entries).unwrap_err();
        format!("{err:#}")
    };
    let e = refused("dotdot", &[E::RawFile(b"../escaped")]);
    assert!(e.contains("leaves the root"), "{e}");
    assert!(!dir.path().join("escaped").exists());
    // A symlink of the layer pointing out must not be followed by a later entry.
    let e = refused(
        "symlink",
        &[E::Symlink("evil", "/tmp"), E::File("evil/planted", b"x")],
    );
    assert!(e.contains("symlink"), "{e}");
    assert!(!Path::new("/tmp/planted").exists());
    let e = refused("wh", &[E::Dir("a/"), E::File("a/.wh...", b"")]);
    assert!(e.contains("whiteout must name an entry"), "{e}");
    assert!(dir.path().join("wh/a").is_dir(), "nothing removed above");
    let e = refused("dev", &[E::Char("null")]);
    assert!(e.contains("device node"), "{e}");
    let e = refused("xattr", &[E::Xattr("f", "trusted.overlay.opaque")]);
    assert!(e.contains("overlay xattr"), "{e}");
    // Other xattrs are kept.
    let t = dir.path().join("userx");
    apply_to(&t, &[E::Xattr("f", "user.note")]).unwrap();
    assert_eq!(
        xattr::get(t.join("f"), "user.note").unwrap(),
        Some(b"y".to_vec())
    );
}

#[test]
fn a_second_image_on_the_same_base_reuses_the_cached_base_layer() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let base = gz(&tar_of(&[
        E::Dir("etc/"),
        E::File("etc/os-release", b"debian"),
        E::Dir("usr/"),
        E::Dir("var/"),
        E::Dir("var/lib/"),
    ]));
    let app = |v: &[u8]| {
        gz(&tar_of(&[
            E::Dir("opt/"),
            E::Dir("opt/app/"),
            E::File("opt/app/VERSION", v),
        ]))
    };
    let (a1, a2) = (dir.path().join("1.oci.tar"), dir.path().join("2.oci.tar"));
    let d1 = oci_archive(&a1, &[base.clone(), app(b"1")]);
    let d2 = oci_archive(&a2, &[base.clone(), app(b"2")]);

    let (img1, r1) = unpack(&state, &a1, &d1, &["/var/lib/hello"]).unwrap();
    assert!(r1.assembled);
    assert_eq!(
        r1.layers.iter().map(|l| l.unpacked).collect::<Vec<_>>(),
        [true, true]
    );
    let base_dir = layers_root(&state).join(&sha(&base)[7..]);
    let before = fs::metadata(base_dir.join("tree/etc/os-release")).unwrap();

    let (img2, r2) = unpack(&state, &a2, &d2, &["/var/lib/hello"]).unwrap();
    assert_eq!(
        r2.layers
            .iter()
            .map(|l| (l.digest.clone(), l.unpacked))
            .collect::<Vec<_>>(),
        [(sha(&base), false), (sha(&app(b"2")), true)],
        "the base layer came from the cache"
    );
    let after = fs::metadata(base_dir.join("tree/etc/os-release")).unwrap();
    assert_eq!((before.ino(), before.mtime()), (after.ino(), after.mtime()));
    assert_eq!(fs::read_dir(layers_root(&state)).unwrap().count(), 3);
    assert_eq!(img1.layers[2], img2.layers[2], "one base tree for both");
    assert_eq!(img2.layers.len(), 3, "mount points, app, base");
    assert_eq!(img2.working_dir, "/opt/app");
    assert_eq!(img2.command, ["/etc/drover/entrypoint"]);
    // Unpacking again does nothing.
    let (again, r) = unpack(&state, &a2, &d2, &["/var/lib/hello"]).unwrap();
    assert_eq!((again, r), (img2.clone(), UnpackReport::default()));
    // The mount-point layer holds just what the image lacks, copied attributes included.
    let mounts = &img2.layers[0];
    assert!(mounts.join("var/lib/hello").is_dir());
    assert!(!mounts.join("etc").exists(), "nothing that is not needed");
    assert_eq!(
        fs::metadata(mounts.join("var")).unwrap().mode() & 0o7777,
        0o755
    );
    for m in ["proc", "dev", "tmp", "run"] {
        assert!(mounts.join(m).is_dir(), "{m}");
    }
    // The instance root on the host is an empty mount point.
    assert_eq!(fs::read_dir(&img2.rootfs).unwrap().count(), 0);

    // Garbage collection by layer: dropping image 1 drops its app layer, not the base.
    let n = remove_unused(&state, std::slice::from_ref(&d2), Duration::ZERO);
    assert_eq!(
        n,
        Collected {
            images: 1,
            layers: 1
        }
    );
    assert!(base_dir.join("tree").is_dir());
    assert!(!rootfs_root(&state).join(&d1[7..]).exists());
    // Nothing kept: everything goes.
    let n = remove_unused(&state, &[], Duration::from_secs(3600));
    assert_eq!(n, Collected::default(), "fresh ones stay");
    let n = remove_unused(&state, &[], Duration::ZERO);
    assert_eq!(
        n,
        Collected {
            images: 1,
            layers: 2
        }
    );
    assert_eq!(fs::read_dir(layers_root(&state)).unwrap().count(), 0);
}

#[test]
fn the_overlay_is_mounted_only_inside_the_child_and_shows_the_merged_image() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let base = gz(&tar_of(&[
        E::Dir("etc/"),
        E::File("etc/a", b"a"),
        E::File("etc/b", b"b"),
        E::Dir("opt/"),
        E::File("opt/old", b"o"),
    ]));
    let app = gz(&tar_of(&[
        E::Dir("etc/"),
        E::File("etc/.wh.a", b""),
        E::Dir("opt/"),
        E::File("opt/.wh..wh..opq", b""),
        E::File("opt/new", b"n"),
    ]));
    let archive = dir.path().join("i.oci.tar");
    let d = oci_archive(&archive, &[base, app]);
    let (img, _) = unpack(&state, &archive, &d, &[]).unwrap();
    let mut cmd = std::process::Command::new("find");
    cmd.arg(&img.rootfs).arg("-mindepth").arg("1");
    cmd.stderr(std::process::Stdio::inherit());
    mount::prepare(&mut cmd, &img).unwrap();
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let root = img.rootfs.to_string_lossy().into_owned();
    let mut seen: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches(&root).to_string())
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        ["/dev", "/etc", "/etc/b", "/opt", "/opt/new", "/proc", "/run", "/tmp"]
    );
    // The host never saw the mount, and the mount point is still empty.
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(&root), "{mountinfo}");
    assert_eq!(fs::read_dir(&img.rootfs).unwrap().count(), 0);
    // Writes fail: the overlay has no upper layer.
    let mut cmd = std::process::Command::new("touch");
    cmd.arg(img.rootfs.join("etc/new"));
    cmd.stderr(std::process::Stdio::null());
    mount::prepare(&mut cmd, &img).unwrap();
    assert!(!cmd.status().unwrap().success());
}

#[test]
fn unsafe_stacks_bad_blobs_and_old_unpacks_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // An app layer with entries under a directory the base has as a symlink, without an
    // entry of its own for it: refused at assembly, as before (it went through it).
    let base = gz(&tar_of(&[E::Symlink("bin", "usr/bin"), E::Dir("usr/")]));
    let app = gz(&tar_of(&[E::File("bin/x", b"x")]));
    let a = dir.path().join("a.oci.tar");
    let d = oci_archive(&a, &[base.clone(), app]);
    let err = format!("{:#}", unpack(&state, &a, &d, &[]).unwrap_err());
    assert!(err.contains("/bin, which is a symlink"), "{err}");
    assert!(!rootfs_root(&state).join(&d[7..]).exists());
    // A mount point through a symlink of the image.
    let ok_app = gz(&tar_of(&[E::Dir("opt/")]));
    let b = dir.path().join("b.oci.tar");
    let db = oci_archive(&b, &[base.clone(), ok_app]);
    let err = format!("{:#}", unpack(&state, &b, &db, &["/bin/data"]).unwrap_err());
    assert!(err.contains("goes through the symlink /bin"), "{err}");

    // A corrupt layer blob: refused, nothing published, no temporary left.
    let good = gz(&tar_of(&[E::File("f", b"f")]));
    let c = dir.path().join("c.oci.tar");
    let dc = oci_archive(&c, std::slice::from_ref(&good));
    let mut bytes = fs::read(&c).unwrap();
    let at = bytes.windows(good.len()).position(|w| w == good).unwrap();
    bytes[at + good.len() / 2] ^= 0xff;
    fs::write(&c, &bytes).unwrap();
    let before = fs::read_dir(layers_root(&state)).unwrap().count();
    let err = format!("{:#}", unpack(&state, &c, &dc, &[]).unwrap_err());
    assert!(err.contains("the archive is corrupt"), "{err}");
    assert_eq!(fs::read_dir(layers_root(&state)).unwrap().count(), before);

    // An image unpacked whole by an older drover is assembled again from layers.
    let e = dir.path().join("e.oci.tar");
    let de = oci_archive(&e, &[good]);
    let old = rootfs_root(&state).join(&de[7..]);
    fs::create_dir_all(old.join("rootfs/etc")).unwrap();
    fs::write(old.join("config.json"), "{}").unwrap();
    let (img, r) = unpack(&state, &e, &de, &[]).unwrap();
    assert!(r.assembled);
    assert!(!old.join("rootfs").exists() && img.rootfs == old.join("root"));
    // ... but when its archive is gone (pruned), the old whole tree still serves.
    let f = dir.path().join("f.oci.tar");
    let df = oci_archive(&f, &[gz(&tar_of(&[E::File("g", b"g")]))]);
    let old = rootfs_root(&state).join(&df[7..]);
    fs::create_dir_all(old.join("rootfs/etc")).unwrap();
    fs::write(
        old.join("config.json"),
        r#"{"config":{"WorkingDir":"/srv"}}"#,
    )
    .unwrap();
    fs::remove_file(&f).unwrap();
    let (img, r) = unpack(&state, &f, &df, &[]).unwrap();
    assert_eq!(r, UnpackReport::default());
    assert_eq!(
        (img.rootfs, img.layers, img.working_dir),
        (old.join("rootfs"), vec![], "/srv".to_string())
    );
    // The replaced tree is removed in the background; clean_temp removes leftovers.
    let t = std::time::Instant::now();
    loop {
        clean_temp(&state);
        let left: Vec<_> = [rootfs_root(&state), layers_root(&state)]
            .iter()
            .flat_map(|d| fs::read_dir(d).unwrap().flatten())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
            .map(|e| e.path())
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "{left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_digest_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = unpack(dir.path(), &dir.path().join("x.tar"), "md5:1", &[]).unwrap_err();
    assert!(format!("{err:#}").contains("sha256"), "{err:#}");
    let d = format!("sha256:{}", "0".repeat(64));
    let err = unpack(dir.path(), &dir.path().join("missing.tar"), &d, &[]).unwrap_err();
    assert!(format!("{err:#}").contains("missing.tar"), "{err:#}");
    assert!(
        !rootfs_root(dir.path()).exists()
            || fs::read_dir(rootfs_root(dir.path()))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn char_devices_in_trees_are_only_whiteouts() {
    // `is_whiteout` is exactly overlayfs' rule: a character device 0/0.
    let m = fs::symlink_metadata("/dev/null").unwrap();
    assert!(m.file_type().is_char_device() && !layer::is_whiteout(&m));
}
