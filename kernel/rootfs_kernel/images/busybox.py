"""The ``busybox`` image: one static busybox and a link per applet (placeholder)."""

from __future__ import annotations

from .store import BuildContext, BuildOutput


def find_busybox() -> str | None:
    return None


def build_busybox(ctx: BuildContext) -> BuildOutput:
    raise NotImplementedError
