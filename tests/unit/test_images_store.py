"""The image store's contract: names, metadata, atomic builds, locks, stale temp dirs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rootfs_kernel.images import Image, ImageError, ImageStore
from rootfs_kernel.images.store import BuildContext, BuildOutput

KERNEL_DIR = Path(__file__).resolve().parents[2] / "kernel"


def tiny_builder(content: str = "hello\n"):
    def build(ctx: BuildContext) -> BuildOutput:
        root = ctx.new_layer_dir()
        (root / "etc").mkdir()
        (root / "etc" / "greeting").write_text(content)
        layer = ctx.add_layer(root)
        return BuildOutput([layer], {"Env": ["A=1"], "WorkingDir": "/etc"}, "test")

    return build


def test_empty_store_lists_nothing(tmp_path: Path) -> None:
    assert ImageStore(root=tmp_path).names() == []


def test_unknown_image_names_the_available_ones(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path)
    with pytest.raises(ImageError) as e:
        store.get("foo")
    msg = str(e.value)
    assert "unknown image 'foo'" in msg and "minimal" in msg and "image build" in msg
    assert store.names() == []


def test_invalid_names_are_refused(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path)
    for bad in ["../x", "", "A", "a/b", "x" * 65]:
        with pytest.raises(ImageError, match="invalid image name"):
            store.get(bad)


def test_build_stores_metadata_and_layers(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path)
    img = store.build("tiny", tiny_builder())
    assert isinstance(img, Image)
    assert img.name == "tiny" and store.names() == ["tiny"]
    assert img.workdir == "/etc"
    assert "A=1" in img.env and any(e.startswith("PATH=") for e in img.env)
    [layer] = img.layers
    assert (layer / "etc" / "greeting").read_text() == "hello\n"
    assert layer.parent.name == "sha256-" + img.meta["layers"][0]["digest"].split(":")[1]
    meta = json.loads((tmp_path / "images" / "tiny" / "image.json").read_text())
    assert meta == img.meta
    assert {"name", "source", "created", "size", "layers", "config"} <= meta.keys()
    assert meta["size"] == len("hello\n")
    assert list((tmp_path / "tmp").iterdir()) == []


def test_same_content_is_stored_once(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path)
    a = store.build("a", tiny_builder())
    b = store.build("b", tiny_builder())
    assert a.layers == b.layers
    assert len(list((tmp_path / "layers").iterdir())) == 1


def test_existing_name_is_refused_unless_replaced(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path)
    store.build("tiny", tiny_builder("one\n"))
    with pytest.raises(ImageError, match="already exists"):
        store.build("tiny", tiny_builder("two\n"))
    img = store.build("tiny", tiny_builder("two\n"), replace=True)
    assert (img.layers[0] / "etc/greeting").read_text() == "two\n"
    store.collect_garbage()
    assert len(list((tmp_path / "layers").iterdir())) == 1


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path)

    def failing(ctx: BuildContext) -> BuildOutput:
        root = ctx.new_layer_dir()
        (root / "half").write_text("x")
        raise ImageError("boom")

    with pytest.raises(ImageError, match="boom"):
        store.build("broken", failing)
    assert store.names() == []
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "images" / "broken").exists()


def test_a_build_past_the_stores_bound_stores_nothing_and_says_what_to_do(tmp_path: Path):
    """The built-in image (about 14 MiB as a tar) does not fit a 5 MiB store: refused
    once its layer is known, before the image is committed; shared layers count once."""
    small = ImageStore(root=tmp_path, size="5m")
    with pytest.raises(ImageError) as e:
        small.get("minimal")
    msg = str(e.value)
    assert msg.startswith("the image store is full: image minimal needs ")
    assert "of its 5 MiB (ROOTFS_KERNEL_STORE_SIZE)" in msg and "nothing was stored" in msg
    assert "`rootfs-kernel image rm NAME`" in msg and "--RootfsKernel.store_size" in msg
    assert small.names() == [] and small.usage() == 0
    assert list((tmp_path / "tmp").iterdir()) == [] and list((tmp_path / "layers").iterdir()) == []
    store = ImageStore(root=tmp_path, size="none")
    store.get("minimal")
    used = store.usage()
    assert used > 5 << 20
    # A second image of the same layers takes no more room: it fits where the first does.
    ImageStore(root=tmp_path, size=str(used)).build("again", lambda ctx: BuildOutput(
        [ctx.add_layer(_copy_of(store.load("minimal").layers[0], ctx))], {}, "test"))
    assert ImageStore(root=tmp_path).usage() == used


def _copy_of(layer: Path, ctx: BuildContext) -> Path:
    root = ctx.new_layer_dir()
    subprocess.run(["cp", "-a", f"{layer}/.", str(root)], check=True)
    return root


@pytest.mark.parametrize(("text", "bound"), [
    ("", 10 << 30), ("20g", 20 << 30), ("512m", 512 << 20), ("none", None), (" NONE ", None)])
def test_the_stores_bound_reads_its_setting(tmp_path: Path, monkeypatch, text, bound):
    monkeypatch.setenv("ROOTFS_KERNEL_STORE_SIZE", text)
    assert ImageStore(root=tmp_path).bound == bound
    assert ImageStore(root=tmp_path, size="1g").bound == 1 << 30


@pytest.mark.parametrize("text", ["lots", "0", "100k", "9" * 400])
def test_a_bad_store_bound_is_a_clear_error_when_it_is_needed(tmp_path: Path, text):
    store = ImageStore(root=tmp_path, size=text)
    assert store.names() == []   # reading the store does not need it
    with pytest.raises(ImageError, match="image store's size bound"):
        store.build("tiny", tiny_builder())


def test_remove_drops_unshared_layers_only(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path)
    store.build("a", tiny_builder())
    store.build("b", tiny_builder())
    c = store.build("c", tiny_builder("other\n"))
    assert store.remove("a") == []
    assert store.remove("c") == [c.meta["layers"][0]["digest"]]
    assert store.names() == ["b"]
    assert store.load("b").layers[0].is_dir()
    with pytest.raises(ImageError, match="unknown image"):
        store.remove("a")


def test_missing_layer_is_reported(tmp_path: Path) -> None:
    store = ImageStore(root=tmp_path)
    img = store.build("tiny", tiny_builder())
    os.rename(img.layers[0].parent, tmp_path / "moved")
    with pytest.raises(ImageError, match="damaged.*image rm tiny"):
        store.load("tiny")


SLOW_BUILDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from rootfs_kernel.images import ImageStore
    from rootfs_kernel.images.store import BuildOutput

    def build(ctx):
        root = ctx.new_layer_dir()
        (root / "half").write_text("x")
        Path(sys.argv[2]).write_text("started")
        time.sleep(float(sys.argv[3]))
        return BuildOutput([ctx.add_layer(root)], {}, "slow")

    ImageStore(root=sys.argv[1]).build("slow", build, wait=sys.argv[4] == "wait")
    print("built")
    """
)


def _start_slow(tmp_path: Path, marker: str, seconds: float, wait: str = "wait"):
    env = {**os.environ, "PYTHONPATH": str(KERNEL_DIR)}
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_BUILDER, str(tmp_path / "store"),
         str(tmp_path / marker), str(seconds), wait],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_killed_build_leaves_nothing(tmp_path: Path) -> None:
    proc = _start_slow(tmp_path, "started", 30)
    _wait_for(tmp_path / "started")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = ImageStore(root=tmp_path / "store")
    assert store.names() == []
    assert len(list((tmp_path / "store" / "tmp").iterdir())) == 1  # the dead build's
    assert store.clean_stale() and list((tmp_path / "store" / "tmp").iterdir()) == []
    assert list((tmp_path / "store" / "layers").iterdir()) == []


def test_second_build_of_a_name_refuses_clearly_without_wait(tmp_path: Path) -> None:
    first = _start_slow(tmp_path, "started", 2)
    _wait_for(tmp_path / "started")
    second = _start_slow(tmp_path, "started2", 0, wait="nowait")
    _, err = second.communicate(timeout=60)
    assert second.returncode != 0
    assert "is being built or removed by another process" in err
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert ImageStore(root=tmp_path / "store").names() == ["slow"]


def test_stale_cleanup_spares_running_builds(tmp_path: Path) -> None:
    proc = _start_slow(tmp_path, "started", 30)
    try:
        _wait_for(tmp_path / "started")
        store = ImageStore(root=tmp_path / "store")
        assert store.clean_stale() == []
        assert len(list((tmp_path / "store" / "tmp").iterdir())) == 1
    finally:
        proc.kill()
        proc.wait()


def test_the_store_imports_nothing_above_it():
    """The builders register with the store (images/builders.py), not the other way round."""
    import ast

    import rootfs_kernel.images.store as store

    tree = ast.parse(Path(store.__file__).read_text())
    imported = {node.module or alias.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.level for alias in node.names}
    assert imported == {"errors", "layerfs", "cell", "rmtree", "settings"}, imported
    assert set(store.ImageStore(root="/nonexistent").available()) >= {"minimal"}
