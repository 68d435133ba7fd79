#!/usr/bin/env python3
"""Write the oci_layer and oci_image seeds (small layer tars with whiteouts, symlinks and
hard links; an OCI image-layout tar with two layers). Run from fuzz/: python3 seeds/make_oci_seeds.py"""
import gzip, hashlib, io, json, tarfile

def layer(entries):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in entries:
            i = tarfile.TarInfo(name)
            i.mtime = 1700000000
            if kind == "dir":
                i.type, i.mode = tarfile.DIRTYPE, 0o755
                t.addfile(i)
            elif kind == "sym":
                i.type, i.linkname = tarfile.SYMTYPE, data
                t.addfile(i)
            elif kind == "hard":
                i.type, i.linkname = tarfile.LNKTYPE, data
                t.addfile(i)
            else:
                i.size, i.mode = len(data), 0o644
                t.addfile(i, io.BytesIO(data))
    return b.getvalue()

base = layer([("etc", "dir", None), ("etc/os-release", "file", b"ID=debian\n"),
              ("usr/bin/sh", "file", b"#!"), ("bin", "sym", "usr/bin"),
              ("usr/bin/dash", "hard", "usr/bin/sh")])
top = layer([("etc/.wh.os-release", "file", b""), ("usr/.wh..wh..opq", "file", b""),
             ("app/run.sh", "file", b"echo hi\n")])
# oci_layer: first byte 0 = plain tar, 1 = gzip.
open("seeds/oci_layer/base.tar", "wb").write(b"\0" + base)
open("seeds/oci_layer/top.tar", "wb").write(b"\0" + top)
open("seeds/oci_layer/top.tar.gz", "wb").write(b"\1" + gzip.compress(top, mtime=0))

def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest(), data

blobs = {}
def add(data):
    d, _ = blob(data)
    blobs[d] = data
    return d
l1, l2 = gzip.compress(base, mtime=0), top
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Cmd": ["/app/run.sh"]},
                     "rootfs": {"type": "layers", "diff_ids": [blob(base)[0], blob(top)[0]]}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": add(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": add(l1), "size": len(l1)},
               {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": add(l2), "size": len(l2)}]}).encode()
m = add(manifest)
index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": m, "size": len(manifest)}]}).encode()
b = io.BytesIO()
with tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT) as t:
    for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)] + \
            [("blobs/sha256/" + d[7:], v) for d, v in blobs.items()]:
        i = tarfile.TarInfo(name); i.size = len(data); i.mtime = 1700000000
        t.addfile(i, io.BytesIO(data))
open("seeds/oci_image/two-layers.oci.tar", "wb").write(b.getvalue())
