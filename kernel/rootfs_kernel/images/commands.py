"""`rootfs-kernel image list|build|import|export|inspect|rm`, one function each.

They take plain arguments and a ``progress(fraction_or_None, message)`` callback, return
data, print nothing and raise ImageError with a message meant for the user. The CLI
(and ``%image NAME --build`` in a cell) only renders what they return.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .builders import builder
from .errors import ImageError
from .store import Image, ImageStore, Progress, no_progress


def _store(store: ImageStore | None) -> ImageStore:
    return store if store is not None else ImageStore()


def store_line(store: ImageStore | None = None) -> str:
    """How full the store is, against its bound (its store_size setting)."""
    from ..cell import format_size
    from .store import SIZE

    store = _store(store)
    bound = store.bound
    return (f"the store at {store.root} holds {format_size(store.usage())} of layers "
            f"(as tar archives) of its {format_size(bound) if bound else 'unbounded'} "
            f"({SIZE.env})")


def image_list(store: ImageStore | None = None) -> list[dict[str, Any]]:
    """One row per image: built ones with their metadata, plus built-ins not built yet."""
    store = _store(store)
    rows = []
    for name in store.available():
        if store.exists(name):
            meta = store.load(name).meta
            rows.append({"name": name, "built": True, "size": meta.get("size", 0),
                         "layers": len(meta.get("layers", [])),
                         "created": meta.get("created"), "source": meta.get("source")})
        else:
            rows.append({"name": name, "built": False, "size": None, "layers": None,
                         "created": None, "source": "built-in, built on first use"})
    return rows


def image_build(
    kind: str,
    name: str | None = None,
    *,
    suite: str | None = None,
    variant: str = "minbase",
    mirror: str | None = None,
    replace: bool = False,
    progress: Progress = no_progress,
    store: ImageStore | None = None,
) -> Image:
    """Build an image of ``kind`` (minimal, busybox, debian) under ``name`` (default: kind).

    ``suite``, ``variant`` and ``mirror`` apply to debian only.
    """
    make = builder(kind, suite=suite, variant=variant, mirror=mirror)
    return _store(store).build(name or kind, make, progress=progress, replace=replace)


def image_import(
    file: Path | str,
    name: str | None = None,
    *,
    ref: str | None = None,
    replace: bool = False,
    progress: Progress = no_progress,
    store: ImageStore | None = None,
) -> Image:
    """Import a `docker save` tarball or an OCI layout (directory or tar)."""
    from .oci_import import import_image

    return import_image(_store(store), file, name, ref=ref, replace=replace, progress=progress)


def image_export(
    name: str,
    file: Path | str,
    *,
    progress: Progress = no_progress,
    store: ImageStore | None = None,
) -> Path:
    """Write image ``name`` to ``file`` as an OCI layout tar (``docker load`` reads it too)."""
    from .oci_export import export_image

    return export_image(_store(store), name, file, progress)


def image_inspect(name: str, store: ImageStore | None = None) -> dict[str, Any]:
    """The image's metadata plus where its layers are, bottom first."""
    img = _store(store).load(name)
    return {**img.meta, "env": img.env, "workdir": img.workdir,
            "layer_paths": [str(p) for p in img.layers]}


def image_rm(name: str, store: ImageStore | None = None) -> list[str]:
    """Remove an image; returns the digests of layers no other image used (now deleted)."""
    return _store(store).remove(name)


def layer_history(name: str, store: ImageStore | None = None) -> list[dict[str, Any]]:
    """The image's layers bottom first: {"digest", "size", "created_by"}.

    A layer committed by `%export` (or `image` commits) is the cell's changes on top of
    its base; the layers below it come from the base's own history while the base is
    still in the store."""
    store = _store(store)
    meta = store.load(name).meta
    layers = meta.get("layers", [])
    base = meta.get("base")
    below: list[dict[str, Any]] = []
    if base:
        try:
            below = layer_history(base, store)
        except ImageError:
            below = []
        if [la["digest"] for la in below] != [la["digest"] for la in layers[:-1]]:
            below = [{"created_by": f"from image {base}"} for _ in layers[:-1]]
    out = []
    for i, layer in enumerate(layers):
        if base and i == len(layers) - 1:
            how = f"%export {name}: a cell's changes on top of {base}"
        elif base:
            how = below[i]["created_by"]
        else:
            how = meta.get("source") or "unknown"
        out.append({"digest": layer["digest"], "size": layer.get("size", 0), "created_by": how})
    return out


def layer_stack(name: str, store: ImageStore | None = None, lowers: int | None = None
                ) -> list[dict[str, Any]]:
    """The image's layers as %show layers labels them, bottom first (layer_history and
    their place among the overlay's `lowers` lower directories, the image's alone by
    default)."""
    history = layer_history(name, store)
    n = len(history) if lowers is None else lowers
    return [{"label": f"layer {i + 1}", **h, "role": f"lowerdir {n - i}/{n}"}
            for i, h in enumerate(history)]


def image_layers(name: str, store: ImageStore | None = None) -> dict[str, Any]:
    """`image inspect NAME --layers`: what %show layers shows of the stored image alone (no
    cell, so no upper layer): each layer's entries (inspect.layers) and its stack, the
    data of views.payload.layers_payload."""
    import os

    from ..inspect.layers import scan_layers

    store = _store(store)
    fds = [os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
           for p in store.load(name).layers]
    try:
        scan = scan_layers(fds)
    finally:
        for fd in fds:
            os.close(fd)
    return {"scan": scan, "stack": layer_stack(name, store)}
