#!/usr/bin/env python3
"""Writes a single-layer OCI image (an OCI image layout and its tarball) from files on disk.

No container daemon is involved. The output depends only on the inputs: every file in the
layer and in the tarball is owned by 0:0 and dated `--created` (the commit's time), entries
are sorted, and gzip carries no name or time, so the same inputs give the same digest.

    oci.py --out DIR --name REF --created EPOCH --user 65532:65532 \
        --file SRC=/DEST:MODE ... --entrypoint /vardhub --label KEY=VALUE ...

prints the manifest's digest. DIR gets `layout/` (an OCI image layout) and `image.tar` (the
same layout as one tar, for `ctr images import` or `skopeo copy oci-archive:`).
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def tar_entry(name: str, mtime: int, mode: int, kind=tarfile.REGTYPE, size=0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.size = size
    return info


def layer(files: list[tuple[str, str, int]], mtime: int) -> bytes:
    """A tar of `files` (source, absolute destination, mode) with their parent folders."""
    folders = set()
    for _, dest, _ in files:
        parts = dest.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            folders.add("/".join(parts[:i]))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder in sorted(folders):
            tar.addfile(tar_entry(folder + "/", mtime, 0o755, tarfile.DIRTYPE))
        for source, dest, mode in sorted(files, key=lambda f: f[1]):
            with open(source, "rb") as f:
                data = f.read()
            tar.addfile(tar_entry(dest.strip("/"), mtime, mode, size=len(data)), io.BytesIO(data))
    return out.getvalue()


def gzipped(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return out.getvalue()


def parse_file(spec: str) -> tuple[str, str, int]:
    source, _, rest = spec.partition("=")
    dest, _, mode = rest.partition(":")
    if not source or not dest.startswith("/"):
        raise SystemExit(f"--file {spec!r}: expected SRC=/DEST[:MODE]")
    return source, dest, int(mode or "0644", 8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", required=True, help="full reference, e.g. ghcr.io/vardhub/vardhub:0.1.0")
    ap.add_argument("--created", type=int, required=True, help="seconds since the epoch")
    ap.add_argument("--user", default="65532:65532")
    ap.add_argument("--file", action="append", default=[], type=parse_file)
    ap.add_argument("--entrypoint", action="append", default=[])
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--label", action="append", default=[])
    args = ap.parse_args()

    created = datetime.datetime.fromtimestamp(args.created, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = dict(label.split("=", 1) for label in args.label)

    diff = layer(args.file, args.created)
    blob = gzipped(diff)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {
            "User": args.user,
            "Entrypoint": args.entrypoint,
            "Env": args.env,
            "Labels": labels,
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [sha256(diff)]},
        "history": [{"created": created, "created_by": "operator/image/oci.py"}],
    }
    config_bytes = canonical(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": sha256(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": LAYER, "digest": sha256(blob), "size": len(blob)}],
        "annotations": labels,
    }
    manifest_bytes = canonical(manifest)
    digest = sha256(manifest_bytes)
    tag = args.name.rsplit(":", 1)[1] if ":" in args.name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": MANIFEST,
                "digest": digest,
                "size": len(manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": args.name,
                    "org.opencontainers.image.ref.name": tag,
                },
            }
        ],
    }
    blobs = {sha256(b): b for b in (blob, config_bytes, manifest_bytes)}
    files = {"oci-layout": canonical({"imageLayoutVersion": "1.0.0"}), "index.json": canonical(index)}
    files.update({"blobs/sha256/" + d.split(":", 1)[1]: b for d, b in blobs.items()})

    layout = os.path.join(args.out, "layout")
    shutil.rmtree(layout, ignore_errors=True)
    for path, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(layout, path)), exist_ok=True)
        with open(os.path.join(layout, path), "wb") as f:
            f.write(data)
    with open(os.path.join(args.out, "image.tar"), "wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for folder in ("blobs/", "blobs/sha256/"):
                tar.addfile(tar_entry(folder, args.created, 0o755, tarfile.DIRTYPE))
            for path in sorted(files):
                data = files[path]
                tar.addfile(tar_entry(path, args.created, 0o644, size=len(data)), io.BytesIO(data))
    print(digest)


if __name__ == "__main__":
    sys.exit(main())
