"""rootfs_kernel.run() and Sandbox from plain Python and from inside a running event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import rootfs_kernel
from rootfs_kernel import cell

TARGET = "/mnt/rk-api-scratch"


def host_mount_points() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


@pytest.fixture(scope="module")
def sandbox():
    with rootfs_kernel.Sandbox() as sb:
        yield sb


def test_stdout_stderr_status(sandbox):
    res = sandbox.run("echo hello; echo oops >&2; exit 3")
    assert (res.stdout, res.stderr, res.status, res.ok) == ("hello\n", "oops\n", 3, False)
    assert res.error[0] == "ExitStatus"
    ok = sandbox.run("printf 'a\\nb'")
    assert (ok.stdout, ok.status, ok.ok, ok.error) == ("a\nb", 0, True, None)


def test_result_reads_like_completed_process(sandbox):
    res = sandbox.run("exit 3")
    assert (res.returncode, res.status) == (3, 3)
    with pytest.raises(rootfs_kernel.ContainerError) as err:
        res.check_returncode()
    assert err.value.result is res and err.value.status == 3
    killed = sandbox.run("kill -9 $$")
    assert killed.returncode == -9 and killed.status == 137
    assert sandbox.run("true").check_returncode() is None


def test_the_rows_are_the_ones_the_payload_was_made_from(sandbox):
    """The comparison is computed once: a host mount made after the cell cannot make the
    API's rows and the displayed payload disagree."""
    res = sandbox.run("true", show=["mounts", "ls:/etc"])
    mounts = res.mounts
    assert mounts.payload is res.views[0]
    assert [(r.mount_point, r.status) for r in mounts.rows] == \
        [(r["key"], r["status"]) for r in mounts.payload["rows"]]
    etc = res.listings["/etc"]
    assert [(r["name"], r["status"]) for r in etc.rows] == \
        [(r["key"], r["status"]) for r in etc.payload["rows"]]
    # Without a host path, a listing is compared with the image before the cell.
    assert etc.payload["sides"][1]["label"] == "image" and etc.differences() == []


def test_tmpfs_in_the_cells_mounts_not_the_hosts(sandbox):
    res = sandbox.run("grep -c ' - tmpfs ' /proc/self/mountinfo",
                      mounts=[f"tmpfs:{TARGET}:size=1m"], show=["mounts"])
    assert res.ok, res.stderr
    cell_side = [m for m in res.mounts.cell if m.mount_point == TARGET]
    assert [m.fstype for m in cell_side] == ["tmpfs"]
    assert "size=1024k" in cell_side[0].super_options
    assert TARGET not in {m.mount_point for m in res.mounts.host}
    assert TARGET not in host_mount_points()
    rows = [r for r in res.mounts.differences() if r.mount_point == TARGET]
    assert [r.status for r in rows] == ["only-cell"]
    # the view the notebook shows carries the same row
    assert res.views[0]["kind"] == "mounts"
    assert any(r["key"] == TARGET and r["status"] == "only-cell" for r in res.views[0]["rows"])
    bundle = res._repr_mimebundle_()
    assert TARGET in bundle["text/plain"] and TARGET in bundle["text/html"].replace("<wbr>", "")


def test_other_views_as_python_objects(sandbox):
    res = sandbox.run("echo x > /added", show=["ns", "changes", "ls:/etc"],
                      unshare=["pid", "uts"])
    assert res.ok, res.stderr
    ns = {r.name: r.status for r in res.ns.rows}
    assert ns["mnt"] == ns["uts"] == "differs"
    assert ns["net"] == "differs"   # every cell's own network, unless net="host"
    host = sandbox.run("true", show=["ns"], net="host")
    assert {r.name: r.status for r in host.ns.rows}["net"] == "same"
    assert [c["kind"] for c in res.changes.rows if c["path"] == "/added"] == ["A"]
    assert "/etc" in res.listings and res.listings["/etc"].cell["path"] == "/etc"
    assert [v["kind"] for v in res.views] == ["ns", "changes", "listing"]
    assert res.ns._repr_mimebundle_()["application/vnd.rootfs-kernel.compare+json"] == \
        res.views[0]


def test_limits_and_tree_views_show_in_the_results_own_repr(sandbox):
    res = sandbox.run("echo hi > /tmp/f", show=["limits", "tree"], limits={"pids": 64})
    assert res.ok, res.stderr
    rows = {r["key"]: r for r in res.limits.rows}
    assert rows["pids"]["limit"] == 64 and rows["disk"]["used"] > 0
    data = res._repr_mimebundle_()   # each view drawn by its own renderer
    assert "What bounded this cell" in data["text/plain"]
    assert "Mount trees" in data["text/plain"] and "rfk-limits" in data["text/html"]


def test_keep_carries_to_the_next_call_on_the_default_sandbox():
    first = rootfs_kernel.run("echo kept-data > /kept-file", keep=True)
    assert first.ok, first.stderr
    second = rootfs_kernel.run("cat /kept-file")
    assert second.stdout == "kept-data\n"
    # the second call did not keep: the layer is dropped afterwards
    third = rootfs_kernel.run("cat /kept-file")
    assert third.status != 0 and "kept-file" in third.stderr


def test_env_applies_to_one_call_only(sandbox):
    assert sandbox.run('echo "$GREETING"', env={"GREETING": "a b"}).stdout == "a b\n"
    assert sandbox.run('echo "${GREETING-unset}"').stdout == "unset\n"


def test_bad_option_raises_header_error_naming_the_argument(sandbox):
    with pytest.raises(rootfs_kernel.HeaderError) as err:
        sandbox.run("true", root="sideways")
    assert isinstance(err.value, cell.HeaderError)
    assert "root='sideways'" in str(err.value)
    assert "unknown root mode 'sideways'; choose one of: pivot, chroot, none" in str(err.value)
    with pytest.raises(rootfs_kernel.HeaderError, match=r"mounts\[0\].*must be an absolute"):
        sandbox.run("true", mounts=["tmpfs:relative"])
    with pytest.raises(rootfs_kernel.HeaderError, match=r"binds\[0\].*does not exist"):
        sandbox.run("true", binds=["/no/such/rk-dir:/x"])


def test_header_lines_in_the_script_are_read_and_numbered_in_the_script(sandbox):
    res = sandbox.run("%mount tmpfs /mnt/rk-inline\ngrep -c rk-inline /proc/self/mountinfo",
                      root="chroot")
    assert res.stdout == "1\n"
    with pytest.raises(rootfs_kernel.HeaderError, match=r"^line 2: `%bogus`"):
        sandbox.run("%keep\n%bogus\ntrue", timeout=5)
    # The parser's own exception comes through, with its fields, not a re-read message.
    with pytest.raises(rootfs_kernel.HeaderError) as err:
        sandbox.run("%keep\n%mount tmpfs\ntrue")
    assert (err.value.lineno, err.value.line) == (2, "%mount tmpfs")
    assert err.value.usage and err.value.usage.startswith("%mount")
    assert str(err.value).endswith(f"\n  expected: {err.value.usage}")


def test_unknown_image_raises_image_error(sandbox):
    with pytest.raises(rootfs_kernel.ImageError, match="unknown image 'no-such-image'"):
        sandbox.run("true", image="no-such-image")


def test_check_raises_container_error_with_status(sandbox):
    with pytest.raises(rootfs_kernel.ContainerError) as err:
        sandbox.run("echo partial; exit 7", check=True)
    assert err.value.status == 7 and err.value.kind == "ExitStatus"
    assert "status 7" in str(err.value)
    assert err.value.result.stdout == "partial\n"


def test_timeout_kills_the_container(sandbox):
    start = time.monotonic()
    with pytest.raises(rootfs_kernel.CellTimeout) as err:
        sandbox.run("echo started; sleep 60", timeout=1)
    assert time.monotonic() - start < 10
    assert isinstance(err.value, TimeoutError)
    assert isinstance(err.value, rootfs_kernel.ContainerError)
    assert err.value.result.timed_out and err.value.result.stdout == "started\n"
    assert sandbox.run("echo after").stdout == "after\n"


def test_inside_a_running_event_loop():
    async def main():
        asyncio.get_running_loop()   # IPython/ipykernel run cells like this
        blocking = rootfs_kernel.run("echo from-loop")
        awaited = await rootfs_kernel.arun("echo awaited", show=["ns"])
        with rootfs_kernel.Sandbox() as sb:
            own = sb.run("echo own")
        return blocking, awaited, own

    blocking, awaited, own = asyncio.run(main())
    assert blocking.stdout == "from-loop\n"
    assert awaited.stdout == "awaited\n" and awaited.ns is not None
    assert own.stdout == "own\n"


def test_closed_sandbox_refuses():
    sb = rootfs_kernel.Sandbox()
    assert sb.run("true").ok
    sb.close()
    with pytest.raises(rootfs_kernel.SandboxError, match="closed"):
        sb.run("true")


def test_keyboard_interrupt_stops_the_container_and_the_next_call_works(tmp_path):
    program = textwrap.dedent("""
        import sys, time, rootfs_kernel
        rootfs_kernel.run("true")
        print("ready", flush=True)
        start = time.monotonic()
        try:
            rootfs_kernel.run("sleep 60")
        except KeyboardInterrupt:
            print(f"interrupted {time.monotonic() - start:.1f}", flush=True)
        print(rootfs_kernel.run("echo next").stdout.strip(), flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stdout.readline() == "ready\n"
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    lines = out.split()
    assert lines[0] == "interrupted", (out, err)
    assert float(lines[1]) < 6
    assert lines[2] == "next", (out, err)
    assert proc.returncode == 0, err


def test_import_stays_cheap():
    code = ("import sys, rootfs_kernel; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('IPython', 'ipykernel', 'ipywidgets') or m.startswith('rootfs_kernel.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
