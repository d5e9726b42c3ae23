"""Shared by the reliability tests and scripts/reliability.py: a kernel driver and a
snapshot of everything a kernel could leak on the host."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# tests/ is on the path: pytest's (pyproject), and scripts/reliability.py puts it there.
from kerneldriver import (  # noqa: F401 - re-exported
    ROOT,
    KernelDriver,
    Result,
    alive,
    children,
    comm,
    descendants,
    kernel_mounts,
    prepared_containers,
)


# -- processes ---------------------------------------------------------------------------
def wait_until(pred, timeout: float = 10, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


# -- what a kernel could leak ------------------------------------------------------------
def host_mounts(*trees: str) -> list[str]:
    """The host's mounts a kernel could have left (kerneldriver.kernel_mounts): only those
    are compared, since other programs may mount elsewhere meanwhile."""
    return sorted(kernel_mounts(*trees).elements())


def runtime_entries(helpers: list[int] | None = None) -> set[str]:
    """Every file under this user's runtime dir (sandbox/rundir.py); only under the dirs
    of `helpers` when given (other kernels on the machine have theirs)."""
    from rootfs_kernel.sandbox import rundir

    top = rundir.base()
    out: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(top):
        out.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    if helpers is not None:
        mine = {str(h) for h in helpers}
        out = {p for p in out if os.path.relpath(p, top).split("-")[0] in mine}
    return out


def cgroup_dirs(helpers: list[int]) -> set[str]:
    """The per-cell cgroups (named HELPERPID-CELL or -wN) of these helpers that no process
    uses any more: under rootfs-kernel/
    of each v1 controller, and (v2) below the helper's own cgroup, wherever the host's
    layout puts it."""
    mine = {str(h) for h in helpers}
    found = glob.glob("/sys/fs/cgroup/*/rootfs-kernel/*")
    for helper in helpers:
        try:
            own = next(ln[3:] for ln in Path(f"/proc/{helper}/cgroup").read_text().splitlines()
                       if ln.startswith("0::"))
        except (OSError, StopIteration):
            continue
        found += glob.glob(os.path.join("/sys/fs/cgroup", own.strip("/"), f"{helper}-*"))
    return {p for p in found if os.path.basename(p).split("-")[0] in mine and not _in_use(p)}


def _in_use(cgroup: str) -> bool:
    """A cgroup with processes belongs to a live container (a prepared one waits in its
    own): only an empty one can have been left behind."""
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            return bool(f.read().strip())
    except OSError:
        return False


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class HostState:
    mounts: list[str]
    procs: list[tuple[int, str]]          # descendants of the kernel, the helper excluded
                                          # and at most one idle prepared container
    helpers: list[int]
    fds: int
    rss_mb: float
    runtime: set[str]
    cgroups: set[str]
    extra: dict = field(default_factory=dict)


def host_state(kernel_pid: int, *trees: str) -> HostState:
    """`trees`: host directories the test's cells were given (%bind), watched for mounts."""
    kids = children(kernel_pid)
    helpers = [p for p in kids if comm(p) == "rootfs-helper"]
    ready = prepared_containers(kernel_pid)
    assert len(ready) <= 1, f"more than one prepared container: {ready}"
    # the idle container's A and B, and below B its shell waiting for the next cell
    idle = {p for pair in ready for p in (*pair, *descendants(pair[1]))}
    procs = [(p, comm(p)) for p in descendants(kernel_pid) if p not in helpers and p not in idle]
    return HostState(host_mounts(*trees), procs, helpers, fd_count(kernel_pid), rss_mb(kernel_pid),
                     runtime_entries(helpers), cgroup_dirs(helpers))


def settle(kernel_pid: int, *trees: str, timeout: float = 10) -> HostState:
    """The state once the last cell's container is gone (teardown is asynchronous)."""
    wait_until(lambda: not host_state(kernel_pid).procs, timeout)
    return host_state(kernel_pid, *trees)


def leaks(before: HostState, after: HostState) -> dict:
    """What `after` holds that `before` did not (and the growth of fds and memory)."""
    return {
        "mounts": sorted(set(after.mounts) - set(before.mounts)),
        "lost_mounts": sorted(set(before.mounts) - set(after.mounts)),
        "processes": after.procs,
        "fds": after.fds - before.fds,
        "rss_mb": round(after.rss_mb - before.rss_mb, 1),
        "runtime": sorted(after.runtime - before.runtime),
        "cgroups": sorted(after.cgroups - before.cgroups),
    }


# -- cells of every kind -----------------------------------------------------------------
def cell_mix(bind_dir: str) -> list[tuple[str, str]]:
    """(kind, code) for one round of cells; a round ends with an empty %keep chain."""
    return [
        ("plain", "echo hi"),
        ("mount", "%mount tmpfs /tmp size=1m\n%mount tmpfs /mnt\ntouch /tmp/x"),
        ("mount-in-script", "mkdir -p /mnt/a && mount -t tmpfs none /mnt/a && touch /mnt/a/x"),
        ("bind", f"%bind {bind_dir} /data\nls /data >/dev/null"),
        ("bind-ro", f"%bind {bind_dir} /data ro\ntouch /data/x 2>/dev/null; true"),
        ("keep", "%keep\necho kept >> /kept"),
        ("keep", "%keep\ncat /kept >/dev/null"),
        ("after-keep", "test -f /kept"),
        ("failure", "exit 3"),
        ("header-error", "%frobnicate now\ntrue"),
        ("header-error", "%mount nosuchfs /x\ntrue"),
        ("missing-image", "%image no-such-image-here\ntrue"),
        ("chroot", "%root chroot\nls / >/dev/null"),
        ("root-none", "%root none\ntrue"),
        ("background", "sleep 1000 >/dev/null 2>&1 &\necho bg"),
        ("timeout", "%timeout 0.2\nsleep 30"),
        ("host", "%%host\ntrue"),
        ("show", "%show mounts\n%show ns\n%show changes\ntouch /etc/changed"),
        ("show-ls", "%show ls /etc\ntrue"),
        ("limit", "%limit pids=20 memory=64m\ntrue"),
        ("unshare", "%unshare uts,ipc,net\nhostname x"),
    ]


def run_interrupt(k, code: str = "trap '' INT TERM\necho ready\nsleep 60") -> tuple[object, float]:
    """Interrupt a cell once it printed something; seconds from the interrupt to idle."""
    sent: list[float] = []

    def on_stream(_content):
        if not sent:
            sent.append(time.monotonic())
            k.km.interrupt_kernel()

    res = k.run(code, on_stream=on_stream, timeout=30)
    return res, time.monotonic() - sent[0] if sent else float("nan")


def host_sleep(seconds: int = 1000) -> subprocess.Popen:
    return subprocess.Popen(["sleep", str(seconds)], start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
