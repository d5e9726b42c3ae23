"""Four kernels on one image at once, the first of them building it: no interference."""

from __future__ import annotations

import os
import threading

from rkutil import KernelDriver

from rootfs_kernel.images import ImageStore

KERNELS = 4
ROUNDS = 8


def _work(k: KernelDriver, me: int, shared: str, errors: list) -> None:
    try:
        for r in range(ROUNDS):
            for step in range(3):        # a %keep chain of three cells
                k.ok(f"%keep\necho {me}-{r}-{step} >> /mine; mkdir -p /etc/k{me}")
            res = k.ok("%keep\ncat /mine; ls /etc | grep '^k[0-9]' ; true")
            lines = res.stdout.split()
            assert lines == [f"{me}-{r}-{s}" for s in range(3)] + [f"k{me}"], (me, lines)
            k.ok(f"%bind {shared} /shared\necho {me} > /shared/k{me}-{r}")   # ends the chain
            res = k.run("exit 4")
            assert res.reply["ename"] == "ExitStatus"
            res = k.ok("ls / /etc; test ! -e /mine && echo clean")
            assert res.stdout.split()[-1] == "clean" and f"k{me}" not in res.stdout
    except BaseException as err:  # noqa: BLE001 - reported by the main thread
        errors.append((me, err))


def test_four_kernels_share_an_image_built_on_first_use(tmp_path):
    data = tmp_path / "data"
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(shared, 0o777)
    env = {**os.environ, "XDG_DATA_HOME": str(data)}
    errors: list = []
    first_cells = threading.Barrier(KERNELS)

    def kernel_thread(me: int) -> None:
        # Each kernel is driven by one thread only: jupyter_client's blocking client is
        # tied to the event loop of the thread that uses it (used from two threads, a
        # reply was seen to wait for the next message under load).
        k = KernelDriver(env=env)
        try:
            # the first cell of each kernel builds (or waits for) the image in the new store
            if not k.run("true", timeout=120).ok:
                errors.append((me, "first cell"))
            first_cells.wait(timeout=180)
            _work(k, me, str(shared), errors)
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append((me, err))
        finally:
            k.shutdown()

    threads = [threading.Thread(target=kernel_thread, args=(i,)) for i in range(KERNELS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=420)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors
    assert sorted(os.listdir(shared)) == sorted(f"k{i}-{r}" for i in range(KERNELS)
                                                for r in range(ROUNDS))
    for i in range(KERNELS):
        assert (shared / f"k{i}-0").read_text() == f"{i}\n"
    store = ImageStore(data / "rootfs-kernel")
    assert store.names() == ["minimal"]
    image = store.get("minimal")
    assert len(image.layers) == 1 and all(p.is_dir() for p in image.layers)
    assert (image.layers[0] / "bin").is_dir() and (image.layers[0] / "etc").is_dir()
    assert not any((image.layers[0] / n).exists() for n in ("mine", "shared"))
    assert store.clean_stale() == [] and store.collect_garbage() == []
    assert [p.name for p in store.layers_dir.iterdir()] == [image.layers[0].parent.name]
