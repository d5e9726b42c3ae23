"""%load_ext rootfs_kernel in a real IPython kernel, driven through jupyter_client."""

from __future__ import annotations

import time

import pytest
from kerneldriver import KernelDriver

from rootfs_kernel.views import MIME_TYPE, WIDGET_MIME_TYPE

TARGET = "/mnt/rk-magic"


@pytest.fixture(scope="module")
def ipy():
    k = KernelDriver(kernel_name="python3")
    k.ok("%load_ext rootfs_kernel")
    yield k
    k.shutdown()


def test_cell_streams_displays_and_stores_the_result(ipy):
    res = ipy.ok(f"%%rootfs -o r --mount tmpfs:{TARGET}\n%show mounts\n"
                 "echo hello; echo oops >&2")
    assert res.stdout == "hello\n" and res.stderr == "oops\n"
    assert len(res.displays) == 1
    data = res.displays[0]["data"]
    assert {"text/plain", "text/html", MIME_TYPE, WIDGET_MIME_TYPE} <= data.keys()
    payload = data[MIME_TYPE]
    assert payload["kind"] == "mounts"
    assert [r["status"] for r in payload["rows"] if r["key"] == TARGET] == ["only-cell"]
    assert TARGET in data["text/plain"] and TARGET in data["text/html"].replace("<wbr>", "")

    out = ipy.ok("print(r.status, r.ok, repr(r.stdout), _rootfs is r,\n"
                 f"      [m.fstype for m in r.mounts.cell if m.mount_point == {TARGET!r}])")
    assert out.stdout == "0 True 'hello\\n' True ['tmpfs']\n"
    shown = ipy.ok("r").displays   # the Result as an expression: same views, one widget box
    assert {"text/plain", "text/html", WIDGET_MIME_TYPE} <= shown[0]["data"].keys()
    assert TARGET in shown[0]["data"]["text/html"].replace("<wbr>", "")


def test_failing_cell_raises_like_the_kernel_and_keeps_the_result(ipy):
    res = ipy.run("%%rootfs -o failed\necho before; exit 3")
    assert not res.ok and res.stdout == "before\n"
    assert [(e["ename"], e["evalue"]) for e in res.errors] == [
        ("ContainerError", "the script exited with status 3")]
    assert ipy.ok("print(failed.status)").stdout == "3\n"


def test_bad_option_is_a_header_error(ipy):
    res = ipy.run("%%rootfs --root sideways\ntrue")
    assert not res.ok
    assert res.errors[0]["ename"] == "HeaderError"
    assert "unknown root mode 'sideways'" in res.errors[0]["evalue"]
    usage = ipy.run("%%rootfs --no-such-option\ntrue")
    assert "unrecognized arguments: --no-such-option" in usage.stderr


def test_keep_across_magic_cells(ipy):
    ipy.ok("%%rootfs --keep\necho magic-kept > /magic-file")
    assert ipy.ok("%%rootfs\ncat /magic-file").stdout == "magic-kept\n"


def test_interrupt_stops_the_container(ipy):
    def interrupt_once_started(content: dict) -> None:
        if "started" in content["text"]:
            time.sleep(0.5)
            ipy.km.interrupt_kernel()

    res = ipy.run("%%rootfs\necho started; sleep 60", timeout=30,
                  on_stream=interrupt_once_started)
    assert not res.ok
    assert res.errors[0]["ename"] == "KeyboardInterrupt"
    assert res.elapsed < 8
    assert ipy.ok("%%rootfs\necho again").stdout == "again\n"
