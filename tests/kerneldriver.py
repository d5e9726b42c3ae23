"""Drive the real kernel through jupyter_client, as a front-end does.

(A module of its own, not conftest: several test folders have a conftest.)
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from jupyter_client.manager import start_new_kernel

ROOT = os.geteuid() == 0


@dataclass
class Result:
    reply: dict
    stdout: str = ""
    stderr: str = ""
    errors: list[dict] = field(default_factory=list)
    displays: list[dict] = field(default_factory=list)
    updates: list[dict] = field(default_factory=list)    # update_display_data contents
    stream_times: list[tuple[float, str]] = field(default_factory=list)
    closed_comms: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reply["status"] == "ok"


class KernelDriver:
    def __init__(self, env: dict | None = None, extra_arguments: list[str] | None = None,
                 kernel_name: str = "rootfs") -> None:
        kw: dict = {"env": env} if env is not None else {}
        if extra_arguments:
            kw["extra_arguments"] = extra_arguments
        self.km, self.kc = start_new_kernel(kernel_name=kernel_name, startup_timeout=60, **kw)

    @property
    def pid(self) -> int:
        return self.km.provisioner.pid

    def run(self, code: str, timeout: float = 60, on_stream=None) -> Result:
        start = time.monotonic()
        msg_id = self.kc.execute(code)
        res = Result(reply={})
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content["execution_state"] == "idle":
                break
            if kind == "stream":
                setattr(res, content["name"], getattr(res, content["name"]) + content["text"])
                res.stream_times.append((time.monotonic() - start, content["text"]))
                if on_stream:
                    on_stream(content)
            elif kind == "error":
                res.errors.append(content)
            elif kind in ("display_data", "execute_result"):
                res.displays.append(content)
            elif kind == "update_display_data":
                res.updates.append(content)
            elif kind == "comm_close":
                res.closed_comms.append(content["comm_id"])
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        res.reply = reply["content"]
        res.elapsed = time.monotonic() - start
        return res

    def ok(self, code: str, **kw) -> Result:
        res = self.run(code, **kw)
        assert res.ok, (res.errors, res.stderr)
        return res

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


def host_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


# -- the host mounts a kernel could leave ---------------------------------------------
# Other programs mount and unmount while the tests run (systemd, container runtimes, other
# test runs on the same machine), and mount points may be stacked. A before/after
# comparison looks only where a kernel could leave a mount: at a container's own mount
# points (a setup that ran in the host's namespace), below the kernel's own directories
# (its runtime directory, the image store) and below directories a test handed to cells.
def _container_points() -> frozenset[str]:
    from rootfs_kernel.sandbox.plan import DEVICES, MASKED_PATHS, READONLY_PATHS

    return frozenset({"/", "/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
                      "/tmp", "/mnt", "/run", *MASKED_PATHS, *READONLY_PATHS,
                      *(f"/dev/{d}" for d in DEVICES)})


def kernel_dirs() -> list[str]:
    from rootfs_kernel.images.store import default_root
    from rootfs_kernel.sandbox import rundir

    return [rundir.base(), str(default_root())]


def kernel_mounts(*trees: str | os.PathLike) -> Counter[str]:
    """The host's mounts a kernel could have left ("mount point fstype source", stacked
    ones counted): at a container's mount points, below the kernel's directories and
    below `trees`."""
    from rootfs_kernel.inspect.mounts import parse_mountinfo

    points = _container_points()
    below = [os.path.realpath(t).rstrip("/") + "/" for t in (*kernel_dirs(), *trees)]
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        table = parse_mountinfo(f.read())
    return Counter(f"{m.mount_point} {m.fstype} {m.source}" for m in table
                   if m.mount_point in points or any((m.mount_point + "/").startswith(b)
                                                      for b in below))


# -- processes seen from the host ----------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(pid: int) -> list[int]:
    out = []
    for p in filter(str.isdigit, os.listdir("/proc")):
        st = _stat(int(p))
        if st and int(st[1]) == pid and st[0] != "Z":
            out.append(int(p))
    return out


def descendants(pid: int) -> list[int]:
    out, todo = [], children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def comm(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return ""


def helper_of(k: KernelDriver) -> int:
    """The kernel's sandbox helper (one per kernel)."""
    (pid,) = [p for p in children(k.pid) if comm(p) == "rootfs-helper"]
    return pid


def limits_mechanism() -> str:
    """What bounds this user's cells here, as `rootfs-kernel doctor` says ("limits"), in
    %show limits' words: "cgroup v2", "cgroup v1", or "setrlimit" where no cgroup with
    controllers may be made (an ordinary user without a delegated v2 subtree)."""
    from rootfs_kernel import hostfacts

    found = {f.key: f for f in hostfacts.diagnose(hostfacts.read_facts())}["limits"]
    if not found.ok:
        return "setrlimit"
    return "cgroup v2" if found.detail.startswith("cgroup v2") else "cgroup v1"


def cgroup_limits_here() -> bool:
    """Whether this user may make cgroups with controllers here: root with v1, or a
    delegated v2 subtree."""
    return limits_mechanism() != "setrlimit"


MECHANISM = limits_mechanism()
# A test of what any bound does runs wherever one works (setrlimit included), its id
# naming the mechanism it proved; one of what only a cgroup does needs one.
bound_by = pytest.mark.parametrize("mechanism", [MECHANISM])
needs_cgroups = pytest.mark.skipif(MECHANISM == "setrlimit", reason="no cgroup this user "
                                   "may make with controllers here (rootfs-kernel doctor: "
                                   "limits)")


def wait_for(predicate, timeout: float = 5.0) -> bool:
    """Poll until predicate() holds (what another process does takes a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def prepared_containers(kernel_pid: int) -> list[list[int]]:
    """Containers made ahead for the next cell (sandbox/prepared.py), idle: rootfs-init's
    process A, renamed rootfs-warm, with its one child B, also rootfs-warm until its cell
    has run (below B, the shell that waits for the cell)."""
    out = []
    for helper in children(kernel_pid):
        for a in children(helper):
            kids = children(a)
            if comm(a) == "rootfs-warm" and len(kids) == 1 and comm(kids[0]) == "rootfs-warm":
                out.append([a, kids[0]])
    return out
