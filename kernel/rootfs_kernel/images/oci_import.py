"""Importing `docker save` tarballs and OCI image layouts into the store.

Formats read:
- OCI image layout (directory or tar): ``oci-layout``, ``index.json`` -> manifest (or
  nested index) -> config and layer blobs under ``blobs/sha256``.
- ``docker save``: ``manifest.json`` listing Config and Layers paths, either
  ``<id>/layer.tar`` (Docker before 25) or ``blobs/sha256/<hex>`` (Docker 25+, which
  also writes an OCI layout; that is preferred when present).

Every blob whose name is a digest is checked against it, and every uncompressed layer
against the config's ``rootfs.diff_ids``.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..rmtree import remove_tree
from .archive import ArchiveSource
from .errors import ImageError
from .layertar import extract_layer
from .store import BuildContext, BuildOutput, Image, ImageStore, LayerRef, Progress, no_progress

_HEX_RE = re.compile(r"([0-9a-f]{64})")
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
REF_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


@dataclass
class LayerBlob:
    path: str  # inside the archive
    digest: str | None  # of the blob as stored, when its name or descriptor says
    diff_id: str  # of the uncompressed tar, from the config
    size: int | None


@dataclass
class ImportPlan:
    config: dict[str, Any]
    layers: list[LayerBlob]
    ref: str | None  # the image's own name, e.g. docker.io/library/alpine:3.19
    format: str


def host_arch() -> str:
    return _ARCH.get(platform.machine(), platform.machine())


def _blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexpart):
        raise ImageError(f"unsupported or malformed digest {digest!r} (expected sha256)")
    return f"blobs/sha256/{hexpart}"


def _choose(candidates: list[dict[str, Any]], ref: str | None, label: str,
            refs_of: Any) -> dict[str, Any]:
    if ref is not None:
        chosen = [c for c in candidates if any(r == ref or r.endswith("/" + ref)
                                               for r in refs_of(c))]
        if not chosen:
            known = sorted({r for c in candidates for r in refs_of(c)})
            raise ImageError(f"{label} has no image {ref!r}; it has: {', '.join(known)}")
        return chosen[0]
    if len(candidates) == 1:
        return candidates[0]
    here = [c for c in candidates if (c.get("platform") or {}).get("architecture")
            in (None, host_arch())]
    if len(here) == 1 or (here and len({tuple(refs_of(c)) for c in here}) == 1):
        return here[0]
    known = sorted({r for c in candidates for r in refs_of(c)})
    raise ImageError(
        f"{label} holds several images; name one with --ref: {', '.join(known) or '?'}"
    )


def _oci_refs(desc: dict[str, Any]) -> list[str]:
    ann = desc.get("annotations") or {}
    return [ann[k] for k in REF_ANNOTATIONS if k in ann]


def _config_plan(src: ArchiveSource, config: dict[str, Any],
                 blobs: list[tuple[str, str | None, int | None]]) -> list[LayerBlob]:
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(blobs):
        raise ImageError(
            f"{src.label}: the config lists {len(diff_ids)} layers but the manifest "
            f"{len(blobs)}; the archive is inconsistent"
        )
    return [LayerBlob(path, digest, diff_id, size)
            for (path, digest, size), diff_id in zip(blobs, diff_ids, strict=True)]


def plan_oci(src: ArchiveSource, ref: str | None) -> ImportPlan:
    index = src.read_json("index.json")
    desc: dict[str, Any] | None = None
    refs: list[str] = []
    for _depth in range(4):  # index -> (nested index ->) manifest
        manifests = index.get("manifests") or []
        if not manifests:
            raise ImageError(f"{src.label}: index.json lists no manifests")
        desc = _choose(manifests, ref, src.label, _oci_refs) if not refs else \
            _choose(manifests, None, src.label, _oci_refs)
        refs = refs or _oci_refs(desc)
        doc = src.read_json(_blob_path(desc["digest"]), desc["digest"])
        media = desc.get("mediaType") or doc.get("mediaType")
        if media in INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
            index = doc
            continue
        if media not in MANIFEST_TYPES and "layers" not in doc:
            raise ImageError(f"{src.label}: unsupported manifest type {media!r}")
        config_desc = doc["config"]
        config = src.read_json(_blob_path(config_desc["digest"]), config_desc["digest"])
        blobs = [(_blob_path(d["digest"]), d["digest"], d.get("size"))
                 for d in doc.get("layers") or []]
        return ImportPlan(config, _config_plan(src, config, blobs),
                          refs[0] if refs else None, "oci-layout")
    raise ImageError(f"{src.label}: image indexes nested too deeply")


def plan_docker(src: ArchiveSource, ref: str | None) -> ImportPlan:
    manifest = src.read_json("manifest.json")
    if not isinstance(manifest, list) or not manifest:
        raise ImageError(f"{src.label}: manifest.json lists no images")
    entry = _choose(manifest, ref, src.label, lambda e: e.get("RepoTags") or [])

    def named_digest(path: str) -> str | None:
        # blobs/sha256/<hex> and <hex>.json are content-addressed; <id>/layer.tar is not
        m = _HEX_RE.search(Path(path).name)
        return f"sha256:{m.group(1)}" if m else None

    config = src.read_json(entry["Config"], named_digest(entry["Config"]))
    blobs = [(p, named_digest(p), src.size(p)) for p in entry.get("Layers") or []]
    tags = entry.get("RepoTags") or []
    return ImportPlan(config, _config_plan(src, config, blobs), tags[0] if tags else None,
                      "docker-save")


def read_plan(src: ArchiveSource, ref: str | None = None) -> ImportPlan:
    if src.exists("oci-layout") and src.exists("index.json"):
        layout = src.read_json("oci-layout")
        if not str(layout.get("imageLayoutVersion", "")).startswith("1."):
            raise ImageError(f"{src.label}: unsupported OCI layout version {layout}")
        return plan_oci(src, ref)
    if src.exists("manifest.json"):
        return plan_docker(src, ref)
    if src.exists("repositories"):
        raise ImageError(
            f"{src.label} is a `docker save` archive from before Docker 1.10 (no "
            "manifest.json); save the image again with a newer Docker"
        )
    raise ImageError(
        f"{src.label} is neither an OCI image layout (oci-layout, index.json) nor a "
        "`docker save` archive (manifest.json)"
    )


def name_from_ref(ref: str | None, fallback: str) -> str:
    """A store name from an image reference: docker.io/library/alpine:3.19 -> alpine-3.19."""
    base = (ref or "").rsplit("/", 1)[-1].split("@")[0] or fallback
    base = base.removesuffix(":latest").replace(":", "-").lower()
    for suffix in (".tar.gz", ".tgz", ".tar"):
        base = base.removesuffix(suffix)
    name = re.sub(r"[^a-z0-9._-]+", "-", base).strip("-._")[:64]
    return name or "imported"


def _import_layers(ctx: BuildContext, src: ArchiveSource, plan: ImportPlan) -> list[LayerRef]:
    refs: list[LayerRef] = []
    total = sum(layer.size or 0 for layer in plan.layers) or None
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if total:
            ctx.progress(min(0.95, 0.05 + 0.9 * done / total), "unpacking layers")

    for i, blob in enumerate(plan.layers, 1):
        label = f"{src.label}: layer {i}/{len(plan.layers)} ({blob.path})"
        known = ctx.store.find_layer(blob.diff_id)
        if known is not None:
            ctx.progress(None, f"layer {i}/{len(plan.layers)} already stored")
            refs.append(LayerRef(known.digest, known.size, {"diff_id": blob.diff_id}))
            continue
        rootfs = ctx.new_layer_dir()
        try:
            with src.open(blob.path) as f:
                result = extract_layer(f, rootfs, label, advance, ctx.charge)
            if blob.digest is not None and result.blob_digest != blob.digest:
                raise ImageError(
                    f"{label} is corrupt: its sha256 is {result.blob_digest}, not "
                    f"{blob.digest}; get a fresh copy of the archive"
                )
            if result.diff_id != blob.diff_id:
                raise ImageError(
                    f"{label} does not match the image config: its uncompressed sha256 is "
                    f"{result.diff_id}, the config says {blob.diff_id}; the archive is "
                    "corrupt or was edited; get a fresh copy"
                )
        except BaseException:
            remove_tree(rootfs.parent)
            raise
        extra: dict[str, Any] = {"diff_id": blob.diff_id}
        if result.unrecorded_whiteouts:
            extra["whiteouts_in_json"] = True  # see layer.json: mknod was refused here
        refs.append(ctx.add_layer(rootfs, result.unrecorded_whiteouts, extra))
    return refs


def import_image(
    store: ImageStore,
    path: Path | str,
    name: str | None = None,
    *,
    ref: str | None = None,
    replace: bool = False,
    progress: Progress = no_progress,
) -> Image:
    """Import a `docker save` tarball or an OCI layout (dir or tar) as image ``name``.

    ``name`` defaults to the image's own reference (``alpine:3.19`` -> ``alpine-3.19``),
    else the file's name. ``ref`` picks one image from an archive holding several.
    """
    with ArchiveSource(path) as src:
        progress(0.0, f"reading {src.label}")
        plan = read_plan(src, ref)
        name = name or name_from_ref(plan.ref, Path(path).name)

        def build(ctx: BuildContext) -> BuildOutput:
            layers = _import_layers(ctx, src, plan)
            cfg = plan.config
            return BuildOutput(
                layers=layers,
                config=dict(cfg.get("config") or {}),
                source=f"{plan.format} {Path(path).resolve()}"
                       + (f" ({plan.ref})" if plan.ref else ""),
                extra={"platform": {"os": cfg.get("os"), "architecture": cfg.get("architecture")},
                       "ref": plan.ref},
            )

        return store.build(name, build, progress=progress, replace=replace)
