"""Which images can be built by name, and which of them ``ImageStore.get`` builds itself."""

from __future__ import annotations

from .store import Builder


def auto_builders() -> dict[str, Builder]:
    """Images built on first use: offline, quick, no options."""
    from .busybox import build_busybox, find_busybox
    from .minimal import build_minimal

    builders: dict[str, Builder] = {"minimal": build_minimal}
    if find_busybox() is not None:
        builders["busybox"] = build_busybox
    return builders
