"""The images rootfs-kernel builds by kind (cell.BUILD_KINDS), and the ones a store builds
on first use: registered with the store here, so that store.py imports nothing above it
(images/__init__.py imports this module)."""

from __future__ import annotations

from ..cell import BUILD_KINDS
from .errors import ImageError
from .store import Builder, register_auto_builder


def builder(kind: str, *, suite: str | None = None, variant: str = "minbase",
            mirror: str | None = None) -> Builder:
    """The builder of an image of ``kind``; ``suite``, ``variant`` and ``mirror`` apply
    to debian only."""
    if kind not in BUILD_KINDS:
        raise ImageError(f"unknown image kind {kind!r}: use one of {', '.join(BUILD_KINDS)}")
    if kind != "debian" and (suite or mirror or variant != "minbase"):
        raise ImageError("--suite, --variant and --mirror apply to debian images only")
    if kind == "minimal":
        from .minimal import build_minimal

        return build_minimal
    if kind == "busybox":
        from .busybox import build_busybox

        return build_busybox
    from .debian import debian_builder

    return debian_builder(suite, variant, mirror)


def _minimal() -> Builder:
    from .minimal import build_minimal

    return build_minimal


def _busybox() -> Builder | None:
    """Only where the host has a static busybox to copy."""
    from .busybox import build_busybox, find_busybox

    return build_busybox if find_busybox() is not None else None


# Offline, quick, no options: built by ImageStore.get the first time they are asked for.
register_auto_builder("minimal", _minimal)
register_auto_builder("busybox", _busybox)
