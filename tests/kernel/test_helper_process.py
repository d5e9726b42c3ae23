"""The sandbox helper as a process: started with `python -S` and the standard library's
basics only (it waits beside every idle kernel), the container's cgroup made by the
kernel and removed by the helper, and what killed helpers left removed at the next start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kerneldriver import children, comm, needs_cgroups, wait_for

from rootfs_kernel.sandbox import cgroups, client, helper, rundir
from rootfs_kernel.sandbox.client import SandboxClient

# What an idle helper must not carry: the kernel's planning and encoding, and the
# heavier parts of the standard library they pull in.
NOT_IN_THE_HELPER = {"site", "pathlib", "dataclasses", "ctypes", "shutil", "tempfile",
                     "typing", "rootfs_kernel.sandbox.plan", "rootfs_kernel.sandbox.wire",
                     "rootfs_kernel.sandbox.cgroups", "rootfs_kernel.sandbox.ops",
                     "rootfs_kernel.sandbox.syscalls", "rootfs_kernel.cell"}


def test_the_helper_finds_this_package_without_site_packages_and_imports_little():
    code = ("import sys, rootfs_kernel.sandbox.helper as h\n"
            "print(h.__file__)\nprint(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": client._package_path()},
                         check=True, timeout=30).stdout.splitlines()
    assert out[0] == helper.__file__   # this very copy, found through PYTHONPATH alone
    assert NOT_IN_THE_HELPER.isdisjoint(out[1].split()), \
        sorted(NOT_IN_THE_HELPER & set(out[1].split()))


def test_a_helper_whose_kernel_is_gone_before_its_ready_leaves_nothing(tmp_path):
    import socket

    ours, theirs = socket.socketpair()
    ours.close()   # the kernel went away before the helper said it was ready
    base = tmp_path / "runtime"
    base.mkdir(mode=0o700)
    done = subprocess.run(
        [sys.executable, "-S", "-m", "rootfs_kernel.sandbox.helper", str(theirs.fileno()),
         "/bin/false", str(base)], pass_fds=[theirs.fileno()], capture_output=True,
        text=True, env={**os.environ, "PYTHONPATH": client._package_path()}, timeout=30)
    theirs.close()
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert list(base.iterdir()) == []   # its directory removed, not left for a sweep


def test_the_kernels_helper_runs_under_python_dash_s(kernel):
    (pid,) = [p for p in children(kernel.pid) if comm(p) == "rootfs-helper"]
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert argv[1:4] == [b"-S", b"-m", b"rootfs_kernel.sandbox.helper"], argv
    assert kernel.ok("echo ran").stdout == "ran\n"


@pytest.mark.rootonly
@needs_cgroups
def test_a_cgroup_the_kernel_makes_is_counted_and_removed_by_the_helper():
    group = cgroups.CellCgroup.create(f"{os.getpid()}-test", {"pids": 3},
                                      cgroups.Home.find(None, None))
    watch = helper.Cgroup.of(group.watch())
    try:
        assert watch.dirs and all(os.path.isdir(d) for d in watch.dirs)
        assert watch.pids == 3 and watch.count(watch.forks, "max") == 0
        # A process in it that forks past the limit: the helper's counter sees it.
        (procs,) = group.procs_files()
        subprocess.run(["sh", "-c", f"echo $$ > {procs}; for i in 1 2 3 4; do sleep 0.5 & done;"
                        " wait"], capture_output=True, timeout=30)
        assert watch.count(watch.forks, "max") >= 1
        # Removed once its last process has left (the helper retries until then).
        assert wait_for(watch.remove)
        assert not any(os.path.exists(d) for d in watch.dirs)
    finally:
        group.remove()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_starting_kernel_removes_what_killed_helpers_left(tmp_path):
    base = rundir.make()
    dead = _dead_pid()
    stale = os.path.join(base, f"{dead}-stale")
    os.makedirs(os.path.join(stale, "cell", "work", "work"))
    os.chmod(os.path.join(stale, "cell", "work", "work"), 0)   # as overlayfs leaves it
    live = os.path.join(base, f"{os.getpid()}-live")   # a live helper's: kept
    os.makedirs(live, exist_ok=True)
    stale_cgroup = f"/sys/fs/cgroup/pids/rootfs-kernel/{dead}-1"
    made_cgroup = False
    if os.geteuid() == 0 and os.path.isdir("/sys/fs/cgroup/pids"):
        try:   # a read-only cgroup hierarchy (a container runtime's default) has none
            os.makedirs(stale_cgroup)
            made_cgroup = True
        except OSError:
            pass
    sandbox = SandboxClient(prepare=False)
    try:
        sandbox.start()
        sandbox.places   # noqa: B018 - the helper has said ready
        assert not os.path.exists(stale)
        assert os.path.isdir(live)
        assert not (made_cgroup and os.path.exists(stale_cgroup))
    finally:
        sandbox.close()
        os.rmdir(live)
        if made_cgroup and os.path.exists(stale_cgroup):
            os.rmdir(stale_cgroup)
