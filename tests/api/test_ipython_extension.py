"""%load_ext rootfs_kernel in a real IPython kernel, driven through jupyter_client."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest
from jupyter_client.manager import start_new_kernel

from rootfs_kernel.views import MIME_TYPE, WIDGET_MIME_TYPE

TARGET = "/mnt/rk-magic"


@dataclass
class Reply:
    status: str = ""
    stdout: str = ""
    stderr: str = ""
    errors: list[dict] = field(default_factory=list)
    displays: list[dict] = field(default_factory=list)
    elapsed: float = 0.0


class IPythonKernel:
    def __init__(self) -> None:
        self.km, self.kc = start_new_kernel(kernel_name="python3", startup_timeout=60)

    def run(self, code: str, timeout: float = 120, interrupt_after: str | None = None) -> Reply:
        start = time.monotonic()
        msg_id = self.kc.execute(code)
        res = Reply()
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] == "idle":
                break
            if kind == "stream":
                setattr(res, content["name"], getattr(res, content["name"]) + content["text"])
                if interrupt_after and interrupt_after in res.stdout:
                    interrupt_after = None
                    time.sleep(0.5)
                    self.km.interrupt_kernel()
            elif kind == "error":
                res.errors.append(content)
            elif kind in ("display_data", "execute_result"):
                res.displays.append(content)
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        res.status = reply["content"]["status"]
        res.elapsed = time.monotonic() - start
        return res

    def ok(self, code: str, **kw) -> Reply:
        res = self.run(code, **kw)
        assert res.status == "ok", (res.errors, res.stderr)
        return res

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


@pytest.fixture(scope="module")
def ipy():
    k = IPythonKernel()
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
    assert TARGET in data["text/plain"] and TARGET in data["text/html"]

    out = ipy.ok("print(r.status, r.ok, repr(r.stdout), _rootfs is r,\n"
                 f"      [m.fstype for m in r.mounts.cell if m.mount_point == {TARGET!r}])")
    assert out.stdout == "0 True 'hello\\n' True ['tmpfs']\n"
    shown = ipy.ok("r").displays   # the Result as an expression: same views, one widget box
    assert {"text/plain", "text/html", WIDGET_MIME_TYPE} <= shown[0]["data"].keys()
    assert TARGET in shown[0]["data"]["text/html"]


def test_failing_cell_raises_like_the_kernel_and_keeps_the_result(ipy):
    res = ipy.run("%%rootfs -o failed\necho before; exit 3")
    assert res.status == "error" and res.stdout == "before\n"
    assert [(e["ename"], e["evalue"]) for e in res.errors] == [
        ("ContainerError", "the script exited with status 3")]
    assert ipy.ok("print(failed.status)").stdout == "3\n"


def test_bad_option_is_a_header_error(ipy):
    res = ipy.run("%%rootfs --root sideways\ntrue")
    assert res.status == "error"
    assert res.errors[0]["ename"] == "HeaderError"
    assert "unknown root mode 'sideways'" in res.errors[0]["evalue"]
    usage = ipy.run("%%rootfs --no-such-option\ntrue")
    assert "unrecognized arguments: --no-such-option" in usage.stderr


def test_keep_across_magic_cells(ipy):
    ipy.ok("%%rootfs --keep\necho magic-kept > /magic-file")
    assert ipy.ok("%%rootfs\ncat /magic-file").stdout == "magic-kept\n"


def test_interrupt_stops_the_container(ipy):
    res = ipy.run("%%rootfs\necho started; sleep 60", timeout=30, interrupt_after="started")
    assert res.status == "error"
    assert res.errors[0]["ename"] == "KeyboardInterrupt"
    assert res.elapsed < 8
    assert ipy.ok("%%rootfs\necho again").stdout == "again\n"
