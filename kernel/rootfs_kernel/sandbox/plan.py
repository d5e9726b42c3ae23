"""CellSpec + image + places -> the ordered setup operations of one container (pure).

The sandbox runs the list in one loop (init.c), the way bubblewrap turns its
options into SETUP_* operations. A new header line adds operations here, not branches
in the sandbox. Every operation is a plain dict so the plan can cross a pipe as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from ..cell import Bind, CellSpec, Mount
from .syscalls import (
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RELATIME,
    NAMESPACE_FLAGS,
    parse_mount_options,
)

# The devices every container gets, bound from the host (mknod is refused in a userns).
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}
# runc's defaults: paths hidden from the container, and paths it may read but not write.
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Places:
    """Host directories the helper owns for this kernel (see helper.py)."""

    scratch: str            # empty dir; each cell mounts its own tmpfs over it
    keep_upper: str         # %keep chain: the overlay upper layer kept between cells
    keep_work: str
    keep_active: bool       # the previous cell ran with %keep
    export_upper: str = ""  # %export without %keep: an upper layer that outlives the cell
    export_work: str = ""


@dataclass
class Plan:
    namespaces: int
    rootless: bool
    uid: int
    gid: int
    pidns: bool
    ops: list[dict] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"
    host: bool = False
    root: str = "/"               # the new root before the switch ("/" for %root none)
    show: list[dict] = field(default_factory=list)
    changes: dict | None = None   # {"upper": path, "lowers": [paths]} for %show changes
    limits: dict = field(default_factory=dict)   # pids, memory (bytes), cpu (cores)
    # The script runs one user + mount namespace further down, so the setup's mounts are
    # locked: it may add mounts but not undo a read-only bind or a mask (0 = off).
    script_namespaces: int = 0
    script_ops: list[dict] = field(default_factory=list)  # done there, before the exec
    host_mnt_ns: int = 0          # inode of the host's mount namespace: setup refuses to run there

    def to_json(self) -> dict:
        # Shallow: the operations are plain dicts already, and the plan is serialised
        # right away (dataclasses.asdict's deep copy cost more than the container's exec).
        return {f.name: getattr(self, f.name) for f in fields(self)}


def host_plan(spec: CellSpec, env: dict[str, str], cwd: str) -> Plan:
    """A %%host cell: no namespaces, the script runs as the kernel's own user."""
    return Plan(namespaces=0, rootless=False, uid=0, gid=0, pidns=False, host=True,
                argv=[spec.shell, "-c", spec.script], env=env, cwd=cwd)


def container_plan(spec: CellSpec, *, layers: list[str], image_env: list[str],
                   image_workdir: str | None, user_env: dict[str, str], places: Places,
                   rootless: bool, uid: int, gid: int, host_cwd: str) -> Plan:
    names = set(spec.namespaces) | ({"user"} if rootless else set())
    # Locking needs a less privileged copy of the mount namespace, whose shared mounts
    # turn into slaves: a cell that asks for shared propagation is not locked.
    lock = spec.propagation != "shared"
    # Namespaces the script must own to use (hostname, lo, IPC) go with the script's own
    # user namespace when locked; the rest belong to the cell's init.
    owned = {"uts", "ipc", "net"} & names if lock else set()
    flags = script_flags = 0
    for name in names - owned:
        flags |= NAMESPACE_FLAGS[name]
    if lock:
        script_flags = NAMESPACE_FLAGS["user"] | NAMESPACE_FLAGS["mnt"]
        for name in owned:
            script_flags |= NAMESPACE_FLAGS[name]
    plan = Plan(namespaces=flags, rootless=rootless, uid=uid, gid=gid, pidns="pid" in names,
                limits=dict(spec.limits), script_namespaces=script_flags)
    ops = plan.ops
    isolated_root = spec.root != "none"
    shared = spec.propagation == "shared"

    # 1. Propagation first, before anything is mounted (pivot_root also refuses a
    #    shared parent). "shared" keeps the host's peer groups; our own mounts then go
    #    on a mount made private first, so only the script's mounts can propagate.
    ops.append({"op": "propagation", "mode": spec.propagation, "root_switch": isolated_root})

    root = "/"
    if isolated_root:
        scratch = places.scratch
        root = plan.root = f"{scratch}/root"
        ops.append(_mount("tmpfs", "rootfs-kernel", scratch, "mode=0755", private_parent=shared))
        for sub in ("root", "upper", "work"):
            ops.append({"op": "mkdir", "path": f"{scratch}/{sub}", "mode": 0o755})
        lowers = list(reversed(layers))          # overlay wants the top layer first
        if spec.keep or spec.export:
            upper, work = ((places.keep_upper, places.keep_work) if spec.keep else
                           (places.export_upper, places.export_work))
            ops.append({"op": "mkdir", "path": upper, "mode": 0o755})
            ops.append({"op": "mkdir", "path": work, "mode": 0o755})
            if not spec.keep and places.keep_active:
                lowers.insert(0, places.keep_upper)
        else:
            upper, work = f"{scratch}/upper", f"{scratch}/work"
            if places.keep_active:
                lowers.insert(0, places.keep_upper)
        data = f"lowerdir={':'.join(_escape_layer(p) for p in lowers)},upperdir={upper}," \
               f"workdir={work}" + (",userxattr" if rootless else "")
        ops.append({"op": "mount", "source": "overlay", "target": root, "fstype": "overlay",
                    "flags": 0, "data": data, "in_root": False, "create": None,
                    "private_parent": False})
        plan.changes = {"upper": upper, "lowers": lowers}
        # A fresh sysfs shows the network namespace of whoever mounts it.
        own_sysfs = "net" in names
        _standard_filesystems(ops, plan.pidns, rootless, netns=own_sysfs and not lock)
        if own_sysfs and lock:
            # The kernel lets a user namespace mount sysfs only while the sysfs it can
            # already see is fully visible, so /sys/firmware is masked after, not before.
            ops.remove({"op": "mask", "path": "/sys/firmware"})
            plan.script_ops.append(_mount("sysfs", "sysfs", "/sys", "ro",
                                          flags_extra=MS_NOSUID | MS_NODEV | MS_NOEXEC))
            plan.script_ops.append({"op": "mask", "path": "/sys/firmware"})
    elif plan.pidns and not shared:
        # %root none: the host's tree, but a /proc that shows this cell's PID namespace.
        ops.append(_mount("proc", "proc", "/proc", "", in_root=True, flags_extra=0))

    for m in spec.mounts:
        ops.append(_user_op(m))

    if spec.root == "pivot":
        ops.append({"op": "pivot_root", "root": root})
    elif spec.root == "chroot":
        # A chrooted process may not create a user namespace: when locked, the script
        # (already in its own) does the chroot.
        (plan.script_ops if lock else ops).append({"op": "chroot", "root": root})
    if "uts" in names:
        (plan.script_ops if lock else ops).append({"op": "hostname", "name": "rootfs"})

    env = {"PATH": DEFAULT_PATH, "HOME": "/root", "TERM": "dumb", "LANG": "C.UTF-8"}
    if isolated_root:
        env.update(kv.split("=", 1) for kv in image_env if "=" in kv)
        plan.cwd = image_workdir or "/"
    else:
        plan.cwd = host_cwd
    env.update(user_env)
    env.update(spec.env)
    plan.env = env
    plan.argv = [spec.shell, "-c", spec.script]
    plan.show = [{"kind": s.kind, "path": s.path, "host_path": s.host_path} for s in spec.show]
    if not isolated_root:
        plan.changes = None
    return plan


def _standard_filesystems(ops: list[dict], pidns: bool, rootless: bool, netns: bool) -> None:
    """/proc, a minimal /dev, a read-only /sys and runc's masks, all inside the new root."""
    if pidns:
        ops.append(_mount("proc", "proc", "/proc", "", in_root=True,
                          flags_extra=MS_NOSUID | MS_NODEV | MS_NOEXEC))
    else:
        # Without a PID namespace of our own, a user namespace may not mount proc.
        ops.append(_bind("/proc", "/proc", rec=True, readonly=False, create="dir"))
    ops.append(_mount("tmpfs", "tmpfs", "/dev", "mode=0755", in_root=True,
                      flags_extra=MS_NOSUID))
    for dev in DEVICES:
        ops.append(_bind(f"/dev/{dev}", f"/dev/{dev}", rec=False, readonly=False,
                         create="file", optional=True))
    pts = "newinstance,ptmxmode=0666,mode=0620" + ("" if rootless else ",gid=5")
    ops.append(_mount("devpts", "devpts", "/dev/pts", pts, in_root=True,
                      flags_extra=MS_NOSUID | MS_NOEXEC))
    ops.append(_mount("tmpfs", "shm", "/dev/shm", "mode=1777", in_root=True,
                      flags_extra=MS_NOSUID | MS_NODEV))
    for name, target in DEV_LINKS.items():
        ops.append({"op": "symlink", "target": target, "path": f"/dev/{name}"})
    if netns:
        # A sysfs of its own shows the cell's network namespace (only lo), not the host's;
        # a user namespace may mount one once it owns a network namespace.
        ops.append(_mount("sysfs", "sysfs", "/sys", "ro", in_root=True,
                          flags_extra=MS_NOSUID | MS_NODEV | MS_NOEXEC))
    else:
        ops.append(_bind("/sys", "/sys", rec=True, readonly=True, create="dir"))
    for path in MASKED_PATHS:
        ops.append({"op": "mask", "path": path})
    for path in READONLY_PATHS:
        ops.append({"op": "readonly", "path": path})


def _mount(fstype: str, source: str, target: str, options: str, *, in_root: bool = False,
           flags_extra: int = 0, private_parent: bool = False) -> dict:
    flags, data = parse_mount_options(options)
    return {"op": "mount", "source": source, "target": target, "fstype": fstype,
            "flags": flags | flags_extra | MS_RELATIME, "data": data, "in_root": in_root,
            "create": "dir" if in_root else None, "private_parent": private_parent}


def _bind(source: str, target: str, *, rec: bool, readonly: bool, create: str,
          optional: bool = False, lineno: int = 0) -> dict:
    return {"op": "bind", "source": source, "target": target, "rec": rec,
            "readonly": readonly, "create": create, "optional": optional, "lineno": lineno}


def _user_op(m: Mount | Bind) -> dict:
    if isinstance(m, Bind):
        return _bind(m.source, m.target, rec=True, readonly=m.readonly, create="like-source",
                     lineno=m.lineno)
    op = _mount(m.fstype, "none", m.target, m.options, in_root=True)
    op["lineno"] = m.lineno
    return op


def _escape_layer(path: str) -> str:
    # overlayfs splits lowerdir on ':' and option lists on ','; escape both.
    return str(Path(path)).replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")
