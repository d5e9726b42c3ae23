"""Issue 21, class 2: nothing a cell or the kernel is given goes on a command line.

Any local user reads every process's /proc/PID/cmdline. A cell's `%env` values, its
script, and the kernel's paths that name its user (the helper's directory, the image
store, rootfs-init's cache) must not be in one: not in rootfs-init's (A and B, which a
prepared container keeps for the kernel's life), nor the shell's, nor the helper's. The
scan runs in this process (cmdline reads the same to everyone) and, as root, as `nobody`
and as the ordinary test user, against root's kernel.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import hostmarkers as hm
import pytest
from kerneldriver import ROOT, KernelDriver, descendants, helper_of, prepared_containers, wait_for

from rootfs_kernel.images.store import default_root
from rootfs_kernel.sandbox import initbin, rundir

SCAN = r"""
import json, os, sys
needles = [n.encode() for n in json.loads(sys.argv[1])]
found = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        continue
    found += [[int(pid), n.decode()] for n in needles if n in cmdline]
print(json.dumps(found))
"""


def _scan(needles: list[str], user: str | None = None) -> list[list]:
    argv = [sys.executable, "-c", SCAN, json.dumps(needles)]
    if user is not None:
        argv = ["runuser", "-u", user, "--", "/usr/bin/python3", "-I", "-c", SCAN,
                json.dumps(needles)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _scanners() -> list[str | None]:
    users = [None]
    if ROOT:
        for name in ("nobody", os.environ.get("ROOTFS_TEST_USER", "rkuser")):
            try:
                pwd.getpwnam(name)
                users.append(name)
            except KeyError:
                pass
    return users


@pytest.fixture
def fresh():
    k = KernelDriver()
    yield k
    k.shutdown()


def test_env_values_and_kernel_paths_are_on_no_command_line(fresh):
    k = fresh
    value = hm.token("env")
    script_word = hm.token("script")
    res = k.ok(f"%env SECRET={value}\necho \"$SECRET\" >/dev/null; : {script_word}", timeout=60)
    assert res.stdout == ""
    # The next cell's container, prepared with this cell's environment, waits meanwhile.
    assert wait_for(lambda: prepared_containers(k.pid), 10), "no prepared container"
    # It holds the value (its shell's environment, which only its owner may read): so
    # the scan below looks where the value really is.
    assert wait_for(lambda: any(value.encode() in _environ(p) for p in descendants(k.pid)),
                    10), "the prepared shell lacks SECRET"
    paths = [rundir.base(), str(default_root()), str(Path(initbin.path()).parent)]
    helper = helper_of(k)
    needles = [value, script_word, *paths]
    for user in _scanners():
        found = [[pid, n] for pid, n in _scan(needles, user)
                 if pid == helper or pid in descendants(k.pid)]
        assert found == [], (user, found)


@pytest.mark.parametrize("head", ["", "%shell /bin/dash\n", "%%host\n"])
def test_a_running_cells_processes_carry_no_script_or_env(fresh, head):
    """While a cell runs, its shell and the programs it starts (in the cell's PID
    namespace, visible on the host; a %%host cell's on the host itself) show no %env
    value and no line of the script."""
    k = fresh
    value, word = hm.token("env"), hm.token("script")
    k.ok(f"%env SECRET={value}")
    msg = k.kc.execute(f"{head}: {word}\nsleep 5")
    try:
        assert wait_for(lambda: any(_cmdline(p).startswith(b"sleep")
                                    for p in descendants(k.pid)), 20), "the cell never ran"
        found = {user: [[pid, n] for pid, n in _scan([value, word], user)
                        if pid in descendants(k.pid)] for user in _scanners()}
    finally:
        k.km.interrupt_kernel()
        while k.kc.get_shell_msg(timeout=30)["parent_header"].get("msg_id") != msg:
            pass
    assert all(v == [] for v in found.values()), found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""
