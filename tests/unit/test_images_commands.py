"""The functions behind `rootfs-kernel image ...`."""

from __future__ import annotations

from pathlib import Path

import pytest
from images.ocifixtures import file, layer_tar, oci_layout

from rootfs_kernel.images import ImageError, ImageStore
from rootfs_kernel.images.commands import (
    image_build,
    image_export,
    image_import,
    image_inspect,
    image_list,
    image_rm,
)


def test_commands_end_to_end(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path / "store")
    rows = {r["name"]: r for r in image_list(store)}
    assert rows["minimal"]["built"] is False
    events: list[tuple[float | None, str]] = []
    img = image_build("minimal", "mini", store=store,
                      progress=lambda f, m: events.append((f, m)))
    assert img.name == "mini"
    fractions = [f for f, _ in events if f is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(isinstance(m, str) and m for _, m in events)

    built = oci_layout(tmp_path / "oci", [layer_tar([file("hello", "hi")])])
    image_import(built.path, "hello", store=store)
    out = image_export("hello", tmp_path / "hello.tar", store=store)
    image_import(out, "hello2", store=store)
    info = image_inspect("hello2", store=store)
    assert info["layers"][0]["digest"] == image_inspect("hello", store=store)["layers"][0][
        "digest"]
    assert Path(info["layer_paths"][0], "hello").read_text() == "hi"

    rows = {r["name"]: r for r in image_list(store)}
    assert rows["mini"]["built"] and rows["hello"]["layers"] == 1
    assert image_rm("hello", store=store) == []  # hello2 still uses the layer
    assert len(image_rm("hello2", store=store)) == 1
    assert "hello" not in store.names()


def test_build_refuses_unknown_kinds_and_misplaced_options(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path)
    with pytest.raises(ImageError, match="unknown image kind"):
        image_build("ubuntu", store=store)
    with pytest.raises(ImageError, match="debian images only"):
        image_build("minimal", suite="bookworm", store=store)
    assert store.names() == []
