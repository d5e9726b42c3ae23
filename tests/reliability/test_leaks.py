"""No leaks: after many cells of every kind, the host is what it was before.

Mounts (where a kernel could leave them: other programs may mount elsewhere meanwhile),
processes (no descendant of the kernel but its helper), the kernel's open file
descriptors and memory, the helpers' runtime/temp dirs and cgroups are compared with a
snapshot taken after a warm-up round; the same after a kernel restart.
"""

from __future__ import annotations

import os

import pytest
from rkutil import KernelDriver, alive, cell_mix, host_state, leaks, run_interrupt, settle

RSS_SLACK_MB = 25


def run_cells(k, bind_dir: str, rounds: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _ in range(rounds):
        for kind, code in cell_mix(bind_dir):
            res = k.run(code, timeout=60)
            counts[kind] = counts.get(kind, 0) + 1
            if kind in ("failure", "header-error", "missing-image", "timeout"):
                assert not res.ok, (kind, code)
            elif kind != "after-keep":
                assert res.ok, (kind, code, res.reply, res.stderr)
        res, _ = run_interrupt(k)
        assert res.reply.get("ename") == "Interrupted", res.reply
        counts["interrupt"] = counts.get("interrupt", 0) + 1
    return counts


def _check_clean(before, after) -> None:
    found = leaks(before, after)
    assert found["mounts"] == [] and found["lost_mounts"] == [], found
    assert found["processes"] == [], found
    assert found["fds"] <= 0, found
    assert found["rss_mb"] < RSS_SLACK_MB, found
    assert found["runtime"] == [], found
    assert found["cgroups"] == [], found


def _leak_run(tmp_path, rounds: int) -> None:
    bind_dir = tmp_path / "bind"
    bind_dir.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(bind_dir, 0o777)
    # The kernel keeps the widgets of its last max_live_views comparisons alive (50 by
    # default, each holding its whole comparison): a small window, filled by the warm-up,
    # shows that memory then stays flat however many cells follow.
    k = KernelDriver(extra_arguments=["--RootfsKernel.max_live_views=4"])
    try:
        run_cells(k, str(bind_dir), 2)   # warm-up: images loaded, the widget window full
        before = settle(k.pid, str(tmp_path))
        counts = run_cells(k, str(bind_dir), rounds)
        assert sum(counts.values()) >= rounds * 20
        after = settle(k.pid, str(tmp_path))
        _check_clean(before, after)
        assert k.ok("echo alive").stdout == "alive\n"

        # restart: the old kernel's helper and its directory go, the new kernel starts clean
        old_helpers = after.helpers
        old_dirs = {p for p in after.runtime if os.path.basename(p).split("-")[0]
                    in {str(h) for h in old_helpers}}
        k.km.restart_kernel(now=False)
        k.kc.wait_for_ready(timeout=60)
        assert all(not alive(h) for h in old_helpers)
        assert not any(os.path.exists(d) for d in old_dirs)
        run_cells(k, str(bind_dir), 1)
        fresh = settle(k.pid, str(tmp_path))
        run_cells(k, str(bind_dir), max(1, rounds // 3))
        _check_clean(fresh, settle(k.pid, str(tmp_path)))
        assert fresh.mounts == before.mounts
        new_helpers = {str(h) for h in fresh.helpers}
        new_dirs = {p for p in fresh.runtime if os.path.basename(p).split("-")[0] in new_helpers}
        assert new_dirs, fresh.runtime
    finally:
        k.shutdown()
    assert not any(os.path.exists(d) for d in new_dirs)


def test_no_leaks_after_about_150_cells_and_a_restart(tmp_path):
    _leak_run(tmp_path, rounds=6)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_no_leaks_after_1000_cells_and_a_restart(tmp_path):
    _leak_run(tmp_path, rounds=46)


C_CELL = "%%c\n#include <stdio.h>\nint main(void) { puts(\"c\"); return 0; }\n"


def test_c_cells_leave_no_files_behind(fresh_kernel_c):
    k = fresh_kernel_c
    k.ok(C_CELL)
    before = settle(k.pid)
    for _ in range(3):
        assert k.ok(C_CELL).stdout == "c\n"
    assert leaks(before, settle(k.pid))["runtime"] == []


@pytest.fixture
def fresh_kernel_c():
    k = KernelDriver()
    yield k
    k.shutdown()


def test_state_probe_sees_a_leak(tmp_path):
    """The probe itself can fail: a mount and a process left on purpose are found."""
    import subprocess

    k = KernelDriver()
    try:
        before = settle(k.pid, str(tmp_path))
        sleeper = None
        if os.geteuid() == 0:
            d = tmp_path / "m"
            d.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "rk-probe", str(d)], check=True)
        k.kc.execute("%%host\nsleep 5")
        import time

        time.sleep(0.5)
        found = leaks(before, host_state(k.pid, str(tmp_path)))
        assert found["processes"], found
        if os.geteuid() == 0:
            assert any(str(d) in m for m in found["mounts"]), found
            subprocess.run(["umount", str(d)], check=True)
        k.km.interrupt_kernel()
        k.kc.get_shell_msg(timeout=20)
        del sleeper
    finally:
        k.shutdown()
