"""Writing an image as an OCI image layout tar, and committing a cell's changes.

Each layer blob is the layer's canonical tar (uncompressed), whose sha256 is the
layer's digest in the store, so importing the export yields the same layer digests.
A docker-style ``manifest.json`` is written too, so ``docker load`` reads the file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import secrets
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import dirfd
from ..ids import IdRange
from .errors import ImageError
from .layerfs import write_canonical_tar
from .oci_import import host_arch
from .store import BuildContext, BuildOutput, Image, ImageStore, Progress, no_progress
from .upper import TooLarge, copy_tree, measure

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
    tar.addfile(ti, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 0
    tar.addfile(ti)


def export_image(
    store: ImageStore, name: str, file: Path | str, progress: Progress = no_progress
) -> Path:
    """Write image ``name`` to ``file`` as an OCI layout tar; returns the path written."""
    img = store.load(name)
    out = Path(file)
    # Written next to `file` under a fresh name, then renamed over it: through an fd of
    # that directory, which may be shared (/tmp), so never into a file or through a link
    # another user put there first (O_EXCL | O_NOFOLLOW), and the rename replaces a link
    # at `file` rather than write through it.
    try:
        where = os.open(out.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise ImageError(f"cannot write {out}: {out.parent}: {err.strerror}") from None
    partial = ""
    layer_descs: list[dict[str, Any]] = []
    try:
        fd = -1
        while fd < 0:
            partial = f".{out.name}.partial-{secrets.token_hex(8)}"
            with contextlib.suppress(FileExistsError):
                fd = dirfd.create(where, partial, 0o666)
        with os.fdopen(fd, "wb") as f, tarfile.open(fileobj=f, mode="w",
                                                     format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, "oci-layout", _json_bytes({"imageLayoutVersion": "1.0.0"}))
            _add_dir(tar, "blobs")
            _add_dir(tar, "blobs/sha256")
            for i, (layer, rootfs) in enumerate(zip(img.meta["layers"], img.layers,
                                                    strict=True), 1):
                progress(0.9 * (i - 1) / len(img.layers), f"writing layer {i}/{len(img.layers)}")
                layer_descs.append(_add_layer(store, tar, layer["digest"], rootfs))
            config = _config(img)
            config_bytes = _json_bytes(config)
            config_desc = {"mediaType": CONFIG_TYPE, "digest": _digest(config_bytes),
                           "size": len(config_bytes)}
            _add_bytes(tar, "blobs/sha256/" + config_desc["digest"][7:], config_bytes)
            manifest = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                        "config": config_desc, "layers": layer_descs}
            manifest_bytes = _json_bytes(manifest)
            manifest_digest = _digest(manifest_bytes)
            _add_bytes(tar, "blobs/sha256/" + manifest_digest[7:], manifest_bytes)
            index = {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [{
                "mediaType": MANIFEST_TYPE, "digest": manifest_digest,
                "size": len(manifest_bytes),
                "annotations": {"org.opencontainers.image.ref.name": "latest",
                                "io.containerd.image.name": f"{name}:latest"},
                "platform": {"os": config["os"], "architecture": config["architecture"]},
            }]}
            _add_bytes(tar, "index.json", _json_bytes(index))
            docker = [{"Config": "blobs/sha256/" + config_desc["digest"][7:],
                       "RepoTags": [f"{name}:latest"],
                       "Layers": ["blobs/sha256/" + d["digest"][7:] for d in layer_descs]}]
            _add_bytes(tar, "manifest.json", _json_bytes(docker))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(partial, out.name, src_dir_fd=where, dst_dir_fd=where)
        except OSError as err:
            raise ImageError(f"cannot write {out}: {err.strerror}") from None
    except BaseException:
        if partial:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial, dir_fd=where)
        raise
    finally:
        os.close(where)
    progress(1.0, f"exported {name} to {out}")
    return out


def _add_layer(store: ImageStore, tar: tarfile.TarFile, digest: str,
               rootfs: Path) -> dict[str, Any]:
    layer_dir = rootfs.parent
    whiteouts = store.layer_meta(layer_dir).get("whiteouts")
    # Spool to a temp file in the store: a tar member needs its size up front.
    store._setup()
    with store._workdir("export") as work:
        spool = work / "layer.tar"
        with open(spool, "wb") as f:
            summary = write_canonical_tar(rootfs, f, extra_whiteouts=whiteouts)
        if summary.digest != digest:
            raise ImageError(
                f"layer {digest} changed on disk (it now hashes to {summary.digest}); "
                "layers must stay read-only: remove the image and build or import it again"
            )
        ti = tarfile.TarInfo("blobs/sha256/" + digest[7:])
        ti.size, ti.mode, ti.mtime = summary.tar_size, 0o644, 0
        with open(spool, "rb") as f:
            tar.addfile(ti, f)
    return {"mediaType": LAYER_TYPE, "digest": digest, "size": summary.tar_size}


def _config(img: Image) -> dict[str, Any]:
    plat = img.meta.get("platform") or {}
    return {
        "architecture": plat.get("architecture") or host_arch(),
        "os": plat.get("os") or platform.system().lower(),
        "config": img.config,
        "rootfs": {"type": "layers", "diff_ids": [la["digest"] for la in img.meta["layers"]]},
        "history": [{"created_by": f"rootfs-kernel: {img.meta.get('source', '')}"}],
    }


# ----- commit: an overlay upper directory becomes a new top layer -------------------


@contextlib.contextmanager
def _directory(where: Path | int) -> Iterator[int]:
    fd = (os.dup(where) if isinstance(where, int) else
          os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC))
    try:
        yield fd
    finally:
        os.close(fd)


def commit_layer(
    store: ImageStore,
    base_name: str,
    upper_dir: Path | str | int,
    new_name: str,
    *,
    replace: bool = False,
    ids: IdRange | None = None,
    progress: Progress = no_progress,
    bound: int | None = None,
) -> Image:
    """Save ``base_name`` plus the changes in an overlay upper dir (a path or a directory
    fd) as image ``new_name``.

    Like ``docker commit``: the base's layers are shared, the upper dir becomes one new
    layer on top (deletions as whiteouts, replaced directories as opaque), and the
    base's config (Env, WorkingDir, ...) is kept. The overlay should be mounted without
    ``redirect_dir`` and ``metacopy`` so the upper dir holds whole files. ``bound``: what
    the layer may take on the host (upper.TooLarge, before anything is written); the
    store's own bound holds too (ImageError).
    """
    base = store.get(base_name)
    upper = upper_dir if isinstance(upper_dir, int) else Path(upper_dir)
    if not isinstance(upper, int) and not upper.is_dir():
        raise ImageError(f"{upper} is not a directory: nothing to commit")

    def build(ctx: BuildContext) -> BuildOutput:
        from .store import LayerRef

        ctx.progress(0.1, "copying the changes")
        with _directory(upper) as fd:
            size = measure(fd)
            if bound is not None and size.cost > bound:
                raise TooLarge(size.cost, bound)
            ctx.charge(size.tar)   # the store's bound, before anything is written
            rootfs = ctx.new_layer_dir()
            unrecorded = copy_tree(fd, rootfs, owner=None if ids is None else ids.inside,
                                   budget=size.cost)
        os.chmod(rootfs, 0o755)
        ctx.progress(0.7, "computing the layer digest")
        layer = ctx.add_layer(rootfs, unrecorded)
        layers = [LayerRef(la["digest"], la["size"],
                           {k: v for k, v in la.items() if k not in ("digest", "size")})
                  for la in base.meta["layers"]]
        return BuildOutput(
            layers=[*layers, layer],
            config=dict(base.config),
            source=f"commit on top of {base_name}",
            extra={k: base.meta[k] for k in ("platform",) if k in base.meta}
                  | {"base": base_name},
        )

    return store.build(new_name, build, progress=progress, replace=replace)
