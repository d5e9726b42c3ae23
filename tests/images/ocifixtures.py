"""Tiny OCI layouts and `docker save` tarballs, written with tarfile (no network)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Entry:
    name: str
    data: bytes | None = b""  # regular file content
    kind: str = "file"  # file | dir | symlink | hardlink | chardev | blockdev | fifo
    link: str = ""
    mode: int = 0o644
    mtime: int = 1_700_000_000
    pax: dict[str, str] = field(default_factory=dict)  # PAX records: they win over the name


def file(name: str, data: bytes | str = b"", mode: int = 0o644) -> Entry:
    return Entry(name, data.encode() if isinstance(data, str) else data, mode=mode)


def directory(name: str, mode: int = 0o755) -> Entry:
    return Entry(name, None, "dir", mode=mode)


def symlink(name: str, target: str) -> Entry:
    return Entry(name, None, "symlink", target, 0o777)


def hardlink(name: str, target: str, mode: int = 0o644) -> Entry:
    return Entry(name, None, "hardlink", target, mode)


def layer_tar(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            ti = tarfile.TarInfo(e.name)
            ti.mode, ti.mtime = e.mode, e.mtime
            if e.kind == "dir":
                ti.type = tarfile.DIRTYPE
            elif e.kind == "symlink":
                ti.type, ti.linkname = tarfile.SYMTYPE, e.link
            elif e.kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, e.link
            elif e.kind == "chardev":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            elif e.kind == "blockdev":
                ti.type, ti.devmajor, ti.devminor = tarfile.BLKTYPE, 8, 0
            elif e.kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            ti.pax_headers = dict(e.pax)
            if e.kind == "file":
                ti.size = len(e.data or b"")
                tar.addfile(ti, io.BytesIO(e.data or b""))
            else:
                tar.addfile(ti)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Built:
    path: Path
    diff_ids: list[str]
    blob_digests: list[str]
    config: dict[str, Any] = field(default_factory=dict)


def _config(diff_ids: list[str], env: list[str] | None, workdir: str | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"Env": env or ["PATH=/usr/bin:/bin", "FOO=bar"]}
    if workdir:
        cfg["WorkingDir"] = workdir
    cfg["Cmd"] = ["/bin/sh"]
    return {"architecture": "amd64", "os": "linux", "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": diff_ids}}


def _pack_dir(src: Path, out: Path) -> None:
    with tarfile.open(out, "w") as tar:
        for p in sorted(src.rglob("*")):
            tar.add(p, p.relative_to(src).as_posix(), recursive=False)


def oci_layout(
    dest: Path,
    layers: list[bytes],
    *,
    gzipped: list[bool] | None = None,
    ref: str | None = "example.com/test/tiny:1.0",
    env: list[str] | None = None,
    workdir: str | None = "/work",
    as_tar: bool = False,
    diff_ids: list[str] | None = None,
) -> Built:
    """Write an OCI image layout (a directory, or a tar of one if ``as_tar``)."""
    root = dest.with_suffix("") if as_tar else dest
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        d = sha(data)
        (blobs / d[7:]).write_bytes(data)
        return d

    gzipped = gzipped or [False] * len(layers)
    diff_ids = diff_ids or [sha(layer) for layer in layers]
    descs, digests = [], []
    for layer, gz in zip(layers, gzipped, strict=True):
        blob = gzip.compress(layer, mtime=0) if gz else layer
        d = put(blob)
        digests.append(d)
        media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
        descs.append({"mediaType": media, "digest": d, "size": len(blob)})
    config = _config(diff_ids, env, workdir)
    cfg_bytes = json.dumps(config).encode()
    cfg_desc = {"mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(cfg_bytes), "size": len(cfg_bytes)}
    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": cfg_desc, "layers": descs}).encode()
    desc: dict[str, Any] = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": put(manifest), "size": len(manifest)}
    if ref:
        desc["annotations"] = {"io.containerd.image.name": ref,
                               "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1]}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [desc]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    if as_tar:
        _pack_dir(root, dest)
        return Built(dest, diff_ids, digests, config)
    return Built(root, diff_ids, digests, config)


def docker_save(
    dest: Path,
    layers: list[bytes],
    *,
    new_format: bool = False,
    tag: str = "tiny:latest",
    diff_ids: list[str] | None = None,
) -> Built:
    """Write a `docker save` tarball: old (<id>/layer.tar) or new (blobs/sha256) layout."""
    work = dest.with_name(dest.name + ".d")
    work.mkdir()
    diff_ids = diff_ids or [sha(layer) for layer in layers]
    paths = []
    for i, layer in enumerate(layers):
        if new_format:
            rel = f"blobs/sha256/{sha(layer)[7:]}"
        else:
            rel = f"{hashlib.sha256(b'v1 id %d' % i).hexdigest()}/layer.tar"
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(layer)
        if not new_format:
            (work / rel).with_name("VERSION").write_text("1.0")
        paths.append(rel)
    config = _config(diff_ids, None, "/work")
    cfg_bytes = json.dumps(config).encode()
    cfg_rel = (f"blobs/sha256/{sha(cfg_bytes)[7:]}" if new_format
               else f"{sha(cfg_bytes)[7:]}.json")
    (work / cfg_rel).parent.mkdir(parents=True, exist_ok=True)
    (work / cfg_rel).write_bytes(cfg_bytes)
    (work / "manifest.json").write_text(json.dumps(
        [{"Config": cfg_rel, "RepoTags": [tag], "Layers": paths}]))
    repo, _, t = tag.partition(":")
    (work / "repositories").write_text(json.dumps({repo: {t: paths[-1].split("/")[0]}}))
    _pack_dir(work, dest)
    return Built(dest, diff_ids, [sha(layer) for layer in layers], config)
