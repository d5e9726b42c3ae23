"""Issue 13, what a cell's processes reach: classes 5 (%export while the cell can still
change its files), 6 (processes outliving a cell, signals to the host) and 8 (default
bounds)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import hostmarkers as hm
import pytest
from kerneldriver import ROOT, alive, helper_of

from rootfs_kernel.images import ImageStore


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# -- class 6: every process a cell starts ends with it ---------------------------------------------
@pytest.mark.parametrize("unshare", ["%unshare mnt\n",
                                     "%unshare mnt,uts\n", ""])
def test_class6_no_process_outlives_its_cell(kernel, unshare):
    tag = f"{secrets.randbelow(10**6) + 10**6}.{secrets.randbelow(999) + 1}"
    try:
        kernel.ok(f"{unshare}sleep {tag} >/dev/null 2>&1 &\necho started", timeout=30)
        deadline = time.monotonic() + 5
        while hm.processes_with(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert hm.processes_with(tag) == [], "a process of the cell outlived it"
    finally:
        _kill_all(hm.processes_with(tag))


def test_class6_a_cell_cannot_signal_its_kernel_or_helper(fresh_kernel):
    k = fresh_kernel
    helper = helper_of(k)
    k.run(f"%unshare mnt\nkill -9 {helper} {k.pid}; kill -STOP {k.pid}; true", timeout=30)
    assert alive(k.pid) and alive(helper)
    assert k.ok("echo alive", timeout=30).stdout == "alive\n"


def test_class6_a_helper_a_cell_killed_is_restarted_for_the_next_cell(fresh_kernel):
    """Whether or not the cell may reach it, the kernel goes on."""
    k = fresh_kernel
    k.run(f"%unshare mnt\nkill -9 {helper_of(k)}; sleep 0.2; true", timeout=30)
    res = k.ok("echo next", timeout=30)
    assert res.stdout == "next\n"
    assert "restart the kernel" not in res.stderr


# -- class 5: %export copies a state nothing can change --------------------------------------------
@pytest.fixture
def secret_dir():
    """A 0700 directory of the kernel's user holding one 0600 secret file."""
    base = Path("/root") if ROOT else Path.home()
    d = base / f".rootfs-secret-dir-{secrets.token_hex(6)}"
    d.mkdir(mode=0o700)
    marker = hm.make_secret(d, "export")
    yield marker
    marker.assert_unchanged()
    marker.remove()
    d.rmdir()


def _layer_files(name: str) -> list[Path]:
    image = ImageStore().load(name)
    top = image.layers[-1]
    return [Path(dp, f) for dp, _, fs in os.walk(top) for f in fs]


def test_class5_export_takes_no_host_file_a_leftover_process_links_in(fresh_kernel, secret_dir):
    """A process left by a cell without a PID namespace swaps a directory of the cell's
    changes for a symlink to a host directory while %export copies them: it waits until
    the export has started reading the directory's first (large) file, whose access time
    then changes, so the swap lands while that file is copied, before the next name."""
    name = f"rk-sec-race-{secrets.token_hex(4)}"
    target, leaf = secret_dir.path.parent, secret_dir.path.name
    dirs = "1 2 3 4 5 6"   # six tries in one export: one is enough to leak
    code = (f"%unshare mnt\n%export {name}\n"
            f"for n in {dirs}; do mkdir -p /d$n && head -c 30000000 /dev/zero > /d$n/+big\n"
            f"  echo mine > /d$n/{leaf}; stat -c %x /d$n/+big > /d$n.t0; done\n"
            f"( for n in {dirs}; do t0=$(cat /d$n.t0)\n"
            "    while [ \"$(stat -c %x /d$n/+big)\" = \"$t0\" ]; do :; done\n"
            f"    mv /d$n /d$n.x && ln -s {target} /d$n; done\n"
            ") >/dev/null 2>&1 &\necho done")
    try:
        res = fresh_kernel.run(code, timeout=120)
        texts = [hm.texts_of(res)]
        if ImageStore().exists(name):
            texts.append(hm.texts_of(fresh_kernel.run(f"%image {name}\ncat /d*/{leaf}",
                                                      timeout=30)))
            texts += [p.read_text(errors="replace") for p in _layer_files(name)
                      if p.name == leaf and not p.is_symlink()]
        secret_dir.assert_unread(*texts)
    finally:
        subprocess.run([sys.executable, "-m", "rootfs_kernel.cli", "image", "rm", name],
                       capture_output=True)


def test_class5_export_with_a_swap_still_gets_a_reply(fresh_kernel):
    """Whatever happens to the export, the cell is answered and the kernel goes on."""
    name = f"rk-sec-swap-{secrets.token_hex(4)}"
    code = (f"%unshare mnt\n%export {name}\n"
            "mkdir -p /d; i=0; while [ $i -lt 2000 ]; do : > /d/f$i; i=$((i+1)); done\n"
            "main=$$\n"
            "( while kill -0 $main 2>/dev/null; do :; done\n"
            "  for n in 1 2 3 4 5 6 7 8; do rm -rf /d; echo file > /d; sleep 0.05;\n"
            "    rm -f /d; mkdir /d; sleep 0.05; done ) >/dev/null 2>&1 &\n"
            "echo done")
    try:
        res = fresh_kernel.run(code, timeout=60)
        assert res.reply["status"] in ("ok", "error") and res.elapsed < 50
        assert fresh_kernel.ok("echo alive", timeout=30).stdout == "alive\n"
    finally:
        subprocess.run([sys.executable, "-m", "rootfs_kernel.cli", "image", "rm", name],
                       capture_output=True)


# -- class 8: default bounds -----------------------------------------------------------------------
def test_class8_a_cell_without_limit_cannot_take_thousands_of_processes(kernel):
    res = kernel.run("%timeout 60\nn=0\n"
                     "while [ $n -lt 2000 ]; do sleep 60 2>/dev/null & n=$((n+1)); done\n"
                     "echo running $(ls -d /proc/[0-9]* | wc -l)", timeout=120)
    running = int(res.stdout.split()[-1]) if res.stdout.strip() else 0
    assert running < 2000, f"{running} processes in one cell without %limit"


def _mem_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


def test_class8_a_cells_writable_layers_cannot_fill_half_the_ram(kernel):
    res = kernel.ok("df -kP / /tmp | tail -n +2")
    for line in res.stdout.splitlines():
        size = int(line.split()[1]) * 1024
        assert size < _mem_total() // 2 * 0.99, f"{line}: as large as half the RAM"
