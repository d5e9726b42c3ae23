"""Containers prepared for the next cell (sandbox/prepared.py) while the kernel is idle.

A cell that takes a prepared container must see what a container made for it then would
show: the host's mounts and directories as they are when the cell runs, a fresh root.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from kerneldriver import ROOT, KernelDriver, alive, descendants, host_mounts, prepared_containers

from rootfs_kernel import cell
from rootfs_kernel.sandbox.plan import Context, Places, plan_for
from rootfs_kernel.sandbox.prepared import preparable


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_the_next_cells_container_waits_ready_and_is_used_once():
    k = KernelDriver()
    try:
        mounts = sorted(host_mounts())
        k.ok("echo one > /tmp/first")
        assert wait_for(lambda: len(prepared_containers(k.pid)) == 1)
        [(a, b)] = prepared_containers(k.pid)
        lines = k.ok("cat /tmp/first 2>&1; echo $$").stdout.splitlines()
        # Fresh root (the previous cell's file is gone); the script is PID 2 as ever.
        assert "No such file" in lines[0] and lines[1] == "2"
        # The prepared container ran this cell and is gone; a new one waits for the next.
        assert wait_for(lambda: not alive(b))
        assert wait_for(lambda: [p for p in prepared_containers(k.pid) if p != [a, b]] != [])
        assert sorted(host_mounts()) == mounts
        tree = descendants(k.pid)
    finally:
        k.shutdown()
    assert wait_for(lambda: not any(alive(p) for p in tree))


def test_off_switch_prepares_nothing():
    k = KernelDriver(env={**os.environ, "ROOTFS_KERNEL_PREPARE": "0"})
    try:
        k.ok("true")
        k.ok("true")
        time.sleep(0.3)
        assert prepared_containers(k.pid) == []
    finally:
        k.shutdown()


def test_a_directory_replaced_by_a_host_cell_is_bound_as_it_is_now(fresh_kernel, tmp_path):
    """A %%host cell may replace what a %bind takes: the container prepared before it
    (holding the old directory) must not run the next cell."""
    k = fresh_kernel
    data = tmp_path / "data"
    data.mkdir()
    (data / "old").touch()
    assert k.ok(f"%bind {data} /data\nls /data").stdout == "old\n"
    k.ok(f"%%host\nrm -rf {data} && mkdir {data} && touch {data}/new")
    assert k.ok(f"%bind {data} /data\nls /data").stdout == "new\n"


@pytest.mark.rootonly
@pytest.mark.skipif(not ROOT, reason="mounting on the host needs root")
def test_a_mount_made_on_the_host_after_the_cell_is_seen_by_the_next(fresh_kernel, tmp_path):
    """The host's mount table changed since the next container was prepared: it is
    thrown away, so the next cell's %bind takes the new mount."""
    k = fresh_kernel
    data = tmp_path / "data"
    data.mkdir()
    k.ok(f"%bind {data} /data\nls /data")
    assert wait_for(lambda: len(prepared_containers(k.pid)) == 1)
    subprocess.run(["mount", "-t", "tmpfs", "rk-test", str(data)], check=True)
    try:
        (data / "on-the-new-mount").touch()
        res = k.ok(f"%bind {data} /data\nls /data; grep -c ' /data ' /proc/self/mountinfo")
        assert res.stdout.split() == ["on-the-new-mount", "1"]
    finally:
        subprocess.run(["umount", str(data)], check=True)


def test_a_setup_that_fails_fails_the_same_way_every_time(kernel):
    for _ in range(3):
        res = kernel.run("%bind /no/such/dir /x\ntrue")
        assert not res.ok
        assert "bind source /no/such/dir does not exist on the host" in res.reply["evalue"]
    assert kernel.ok("echo fine").stdout == "fine\n"


def test_what_may_be_prepared():
    class Image:
        layers, env, workdir = ["/img"], [], None

    def plan(text: str, keep_active: bool = False):
        ctx = Context(places=Places.under("/h"), rootless=False, uid=0, gid=0, cwd="/",
                      keep_active=keep_active)
        return plan_for(cell.parse(text), Image, ctx)

    assert preparable(plan("true"))
    assert preparable(plan("%root chroot\n%mount tmpfs /tmp\n%show mounts\ntrue"))
    assert not preparable(plan("%keep\ntrue"))
    assert not preparable(plan("true", keep_active=True))   # reads the kept layer
    assert not preparable(plan("%export snap\ntrue"))
    assert not preparable(plan("%limit pids=10\ntrue"))
    assert not preparable(plan("%propagation shared\ntrue"))
    assert not preparable(plan("%%host\ntrue"))


@pytest.mark.rootonly
@pytest.mark.skipif(not ROOT, reason="cgroups are writable by root here")
def test_a_cell_with_limits_never_takes_a_prepared_container(kernel):
    """A prepared container was made for the plain cell before: it has no cgroup, so a
    %limit cell must get a container of its own (found by the pids-limit test)."""
    kernel.ok("true")
    assert wait_for(lambda: len(prepared_containers(kernel.km.provisioner.pid)) == 1)
    res = kernel.ok("%limit pids=10\ncat /proc/self/cgroup")
    assert any(line.split(":")[1] == "pids" and line.split(":")[2] != "/"
               for line in res.stdout.splitlines()), res.stdout


@pytest.mark.parametrize("header", ["", "%root chroot\n", "%propagation shared\n", "%root none\n"])
def test_the_script_inherits_only_stdin_stdout_and_stderr(kernel, header):
    """No fd of the init (result and release pipes, the prepared container's socket, the
    overlay layers) reaches the script, in a prepared container or one of its own."""
    for _ in range(3):
        assert kernel.ok(f"{header}ls /proc/$$/fd").stdout.split() == ["0", "1", "2"]
