"""Issue 21, class 4: every write a cell makes is bounded by its disk=, kept or exported or
not, and the image store by a bound of its own. Measured on the host: the helper's
directory (where the kept layer lives) and the image store, as root and as an ordinary
user. On main, `%limit disk=100m` + `%keep` wrote 1.3 GB there and `%export` left a
401 MB layer in the store."""

from __future__ import annotations

import contextlib
import glob
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from images.ocifixtures import directory, file, layer_tar, oci_layout
from kerneldriver import KernelDriver, helper_of

from rootfs_kernel.images import ImageStore
from rootfs_kernel.sandbox import rundir

MiB = 1 << 20
LIMIT = "%limit disk=20m"
SAID = "the cell's writable layer is full (%limit disk=20 MiB)"
# What a directory tree's files and directories take beyond their data (ext4's blocks of
# a few directories): "nothing over 20 MB" is measured with this much room.
SLACK = 256 << 10


def du(path: str | Path) -> int:
    """Bytes the tree takes on disk, as `du` counts them (every inode once)."""
    seen, total = set(), 0
    for top, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def helper_dir(k: KernelDriver) -> str:
    (found,) = glob.glob(f"{rundir.base()}/{helper_of(k)}-*")
    return found


def said(res, text: str = SAID) -> bool:
    return text in res.stderr or text in res.reply.get("evalue", "")


@contextlib.contextmanager
def peak_of(path: str | Path) -> Iterator[list[int]]:
    """The most the tree took while the block ran (polled every few milliseconds)."""
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], du(path))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield peak
    finally:
        done.set()
        watcher.join()


def test_keep_writing_past_its_disk_bound_is_cut_and_keeps_nothing_over_it(fresh_kernel):
    k = fresh_kernel
    where = helper_dir(k)
    store_before = du(ImageStore().root)
    res = k.run(f"{LIMIT}\n%keep\nhead -c 100M /dev/zero > /big; wc -c < /big", timeout=120)
    assert said(res), (res.reply, res.stderr)
    assert int(res.stdout) <= 20 * MiB         # cut at the bound inside the cell
    assert du(where) <= 20 * MiB + SLACK, du(where)
    assert du(ImageStore().root) <= store_before + SLACK
    after = k.run("wc -c < /big 2>/dev/null || echo none", timeout=60)
    assert after.stdout.strip() == "none" or int(after.stdout) <= 20 * MiB


def test_a_keep_chain_cannot_grow_past_the_bound(fresh_kernel):
    k = fresh_kernel
    where = helper_dir(k)
    for i in range(4):   # 8 MiB a cell: two fit in 20, the third would not
        res = k.run(f"{LIMIT}\n%keep\nhead -c 8M /dev/zero > /f{i}", timeout=60)
        assert res.ok == (i < 2), (i, res.reply, res.stderr)
        if i >= 2:
            assert res.reply["ename"] == "LimitExceeded" and said(res)
            assert "not kept (what earlier cells kept still is)" in res.reply["evalue"]
        assert du(where) <= 20 * MiB + SLACK, (i, du(where))
    res = k.ok(f"{LIMIT}\n%keep\nls /", timeout=60)
    assert {"f0", "f1"} <= set(res.stdout.split()) and "f2" not in res.stdout.split()
    # Deleting what was kept makes room, as on any disk.
    k.ok(f"{LIMIT}\n%keep\nrm /f0; head -c 8M /dev/zero > /f4", timeout=60)
    res = k.ok("ls /", timeout=60)
    assert {"f1", "f4"} <= set(res.stdout.split()) and "f0" not in res.stdout.split()
    assert du(where) <= 20 * MiB + SLACK


def test_keep_of_a_sparse_file_and_unreadable_directories_stays_within_the_bound(fresh_kernel):
    """A hole costs nothing on tmpfs: it stays a hole on the host (it was copied as 100 GB
    of zeros by a plain read and write). The cell's `chmod 000` does not stop the kernel
    from reading or later replacing what it kept (an ordinary user owns, but may not
    read, such a directory)."""
    k = fresh_kernel
    where = helper_dir(k)
    k.ok(f"{LIMIT}\n%keep\nhead -c 1M /dev/zero > /data\n"
         "head -c 1G /dev/zero | cp --sparse=always /dev/stdin /sparse\n"
         "mkdir -p /locked/in; echo s > /locked/in/f; chmod 000 /locked/in /locked",
         timeout=60)
    assert du(where) <= 20 * MiB + SLACK
    res = k.ok(f"{LIMIT}\n%keep\nwc -c < /data; wc -c < /sparse; ls -ld /locked | cut -c1-10\n"
               "chmod 755 /locked /locked/in; cat /locked/in/f; rm -r /locked", timeout=60)
    assert res.stdout.split() == [str(MiB), str(1 << 30), "d---------", "s"]
    assert "locked" not in k.ok("ls /", timeout=60).stdout.split()


def test_export_past_its_disk_bound_saves_nothing(kernel, image_name):
    store = ImageStore()
    before = du(store.root)
    res = kernel.run(f"{LIMIT}\n%export {image_name}\n"
                     "head -c 100M /dev/zero > /big; true", timeout=120)
    assert res.reply["ename"] == "LimitExceeded" and said(res), (res.reply, res.stderr)
    assert "saved nothing" in res.reply["evalue"]
    assert not store.exists(image_name)
    assert du(store.root) <= before + SLACK
    assert os.listdir(store.tmp_dir) == []   # no layer left half-written
    assert kernel.ok(f"%export {image_name}\necho small > /small").ok
    assert kernel.ok(f"%image {image_name}\ncat /small").stdout == "small\n"


# -- the image store's own bound ---------------------------------------------------------------
def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rootfs_kernel.cli", *args],
                          capture_output=True, text=True, env=env, timeout=300)


def _empty(store_root: Path) -> None:
    store = ImageStore(root=store_root)
    assert store.names() == [] and store.usage() == 0
    assert not any(store.layers_dir.iterdir()) if store.layers_dir.is_dir() else True
    assert list(store.tmp_dir.iterdir()) == [] if store.tmp_dir.is_dir() else True


def test_the_store_bound_refuses_an_import_and_leaves_nothing_behind(tmp_path):
    archive = oci_layout(tmp_path / "oci.tar", [layer_tar([
        directory("data"), file("data/blob", os.urandom(6 * MiB))])], as_tar=True).path
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"),
           "ROOTFS_KERNEL_STORE_SIZE": "5m"}
    out = _cli("image", "import", str(archive), "big", env=env)
    assert out.returncode == 1, out
    for words in ("the image store is full", "rootfs-kernel image rm NAME",
                  "ROOTFS_KERNEL_STORE_SIZE=SIZE", "nothing was stored"):
        assert words in out.stderr, out.stderr
    _empty(tmp_path / "data/rootfs-kernel")
    ok = _cli("image", "import", str(archive), "big", env={**env,
                                                           "ROOTFS_KERNEL_STORE_SIZE": "8m"})
    assert ok.returncode == 0, ok.stderr
    listed = _cli("image", "list", env={**env, "ROOTFS_KERNEL_STORE_SIZE": "8m"}).stdout
    assert "holds 6.01 MiB of layers (as tar archives) of its 8 MiB" in listed, listed


def test_the_store_bound_stops_a_layer_that_unpacks_past_it_while_it_is_written(tmp_path):
    """A gzip bomb: 200 MiB of zeros in a blob of 200 KiB. It is stopped as it unpacks,
    not when the layer is whole: the store never holds much more than its bound."""
    layer = layer_tar([file("zeros", bytes(200 * MiB))])
    archive = oci_layout(tmp_path / "oci.tar", [layer], gzipped=[True], as_tar=True).path
    assert archive.stat().st_size < 2 * MiB
    del layer
    data = tmp_path / "data"
    env = {**os.environ, "XDG_DATA_HOME": str(data), "ROOTFS_KERNEL_STORE_SIZE": "20m"}
    with peak_of(data) as peak:
        out = _cli("image", "import", str(archive), "bomb", env=env)
    assert out.returncode == 1 and "the image store is full" in out.stderr, out.stderr
    assert peak[0] <= 21 * MiB, peak[0]
    _empty(data / "rootfs-kernel")


def test_the_store_bound_refuses_an_export_from_a_cell(tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("ROOTFS_KERNEL_STORE_SIZE", None)
    k = KernelDriver(env=env, extra_arguments=["--RootfsKernel.store_size=40m"])
    try:
        k.ok("true", timeout=120)   # the default image, about 15 MiB of the 40
        store = ImageStore(root=tmp_path / "data/rootfs-kernel")
        res = k.run("%export big\nhead -c 30M /dev/zero > /x", timeout=120)
        assert res.reply["ename"] == "ImageError", res.reply
        evalue = res.reply["evalue"]
        assert "%export big: the image store is full" in evalue
        assert "rootfs-kernel image rm NAME" in evalue and "store_size" in evalue
        assert not store.exists("big") and list(store.tmp_dir.iterdir()) == []
        assert store.usage() < 20 * MiB
        assert k.ok("%export small\necho hi > /y").ok and store.exists("small")
    finally:
        k.shutdown()


# -- %%c: what the compiler writes -------------------------------------------------------------
def test_a_c_cells_compile_writes_within_its_disk_bound(fresh_kernel):
    """gcc wrote its program (100 MiB of initialized data here) into the helper's
    directory on the host, whatever disk= said; now it writes on tmpfs of that size and
    the kernel copies the program out."""
    k = fresh_kernel
    with peak_of(helper_dir(k)) as peak:
        res = k.run(f"%%c\n{LIMIT}\nchar big[100 << 20] = {{1}};\n"
                    "int main(void) { return big[7]; }", timeout=300)
    assert res.reply["ename"] == "CompileError", res.reply
    assert SAID in res.reply["evalue"] and "No space left" in res.reply["evalue"]
    assert peak[0] <= 20 * MiB + SLACK, peak[0]
    big = k.ok("%%c\n%limit disk=64m\n#include <stdio.h>\nchar big[30 << 20] = {1};\n"
               'int main(void) { printf("%d\\n", big[0] + big[7]); return 0; }', timeout=300)
    assert big.stdout == "1\n"
