"""Probes of what the host's kernel allows, each tried for real in a throwaway process.

Runs in: a subprocess of its own (the functions below); probe() in its caller,
`rootfs-kernel doctor` (doctor.py).

    python -m rootfs_kernel.sandbox.probes idmap DIR     (root) can a mount of DIR be
        idmapped to an unprivileged id range (mount_setattr(MOUNT_ATTR_IDMAP)), and can
        overlayfs use that mount as a lower layer (Linux 5.19+)?
    python -m rootfs_kernel.sandbox.probes namespaces ipc,uts,...   can this user get
        these namespaces (with a user namespace of its own when not root)?

Namespaces are made as rootfs-init makes a cell's, with clone(2), not unshare(2): a
seccomp filter may refuse one and allow the other, and a cell meets clone's answer.

Each prints one JSON object: {"ok": bool, "detail": str, ...}. `probe()` runs one in a
subprocess, so that the caller (a threaded kernel, doctor) never unshares or forks
itself; the probe's mounts live in its own mount namespace and go with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile

from ..ids import DEFAULT_COUNT
from ..linux import (
    CLONE_NEWNS,
    CLONE_NEWUSER,
    MNT_DETACH,
    MS_PRIVATE,
    MS_REC,
    NAMESPACES,
    clone_flags,
)
from . import syscalls as sc

# The probe's id range: any unprivileged one does (no file is written through it).
PROBE_BASE, PROBE_COUNT = 100000, DEFAULT_COUNT


def probe(name: str, *args: str, timeout: float = 20) -> dict:
    """Run one probe in a subprocess; its JSON answer, or {"ok": False, "detail": why}."""
    try:
        done = subprocess.run([sys.executable, "-m", "rootfs_kernel.sandbox.probes", name,
                               *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"ok": False, "detail": f"the {name} probe did not answer in {timeout:g} s"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"ok": False, "detail": f"the {name} probe failed: "
                f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}"}


_SYS_CLONE = {"x86_64": 56, "aarch64": 220, "ppc64le": 120, "s390x": 120}
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class CloneRefused(OSError):
    """clone(2) refused new namespaces (the errno, and the call in the system's words)."""


def _clone(flags: int) -> int:
    """clone(2) with these namespaces, as init.c calls it (no new stack: the child goes on
    as after fork); 0 in the child. For this single-threaded probe process only."""
    pid = _libc.syscall(_SYS_CLONE[platform.machine()], flags | signal.SIGCHLD, 0, 0, 0, 0)
    if pid < 0:
        err = ctypes.get_errno()
        raise CloneRefused(err, f"clone({clone_flags(flags)}) refused: {os.strerror(err)}")
    return pid


def _userns_fd(base: int, count: int) -> int:
    """A user namespace mapping 0..count-1 to base..: a child made in it waits while we
    map it (init.c makes the id map's namespace the same way)."""
    hold_r, hold_w = os.pipe()
    pid = _clone(CLONE_NEWUSER)
    if pid == 0:
        os.close(hold_w)
        os.read(hold_r, 1)   # until the parent has opened the namespace
        os._exit(0)
    os.close(hold_r)
    try:
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(f"0 {base} {count}")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(hold_w)
        os.waitpid(pid, 0)


def idmap(directory: str) -> dict:
    """Idmap a mount of `directory` to PROBE_BASE.., then use it as an overlay lower layer."""
    if os.geteuid() != 0:
        return {"ok": False, "idmap": False, "overlay": False,
                "detail": "only root can idmap a mount (rootless cells map this user's uid)"}
    owner = os.stat(directory).st_uid
    try:
        userns = _userns_fd(PROBE_BASE, PROBE_COUNT)
    except CloneRefused as err:   # not the kernel's or the filesystem's doing: doctor says whose
        return {"ok": False, "userns": False, "errno": err.errno, "idmap": False,
                "overlay": False, "detail": f"no user namespace for the id map: {err.strerror}"}
    sc.unshare(CLONE_NEWNS)
    sc.mount(None, "/", None, MS_REC | MS_PRIVATE)
    scratch = tempfile.mkdtemp(prefix="rootfs-kernel-probe-")
    try:
        sc.mount("tmpfs", scratch, "tmpfs", 0, "mode=0700")
        for sub in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(scratch, sub))
        tree = sc.open_tree(directory)
        try:
            sc.idmap_tree(tree, userns)
        except OSError as err:
            return {"ok": False, "idmap": False, "overlay": False,
                    "detail": f"{directory}: {err.strerror} (its filesystem, "
                              f"{_fstype(directory)}, cannot be idmapped here)"}
        sc.move_mount(tree, f"{scratch}/lower")
        shifted = os.stat(f"{scratch}/lower").st_uid
        try:
            sc.mount("overlay", f"{scratch}/merged", "overlay", 0,
                     f"lowerdir={scratch}/lower,upperdir={scratch}/upper,"
                     f"workdir={scratch}/work")
        except OSError as err:
            return {"ok": False, "idmap": True, "overlay": False, "shifted_uid": shifted,
                    "detail": f"idmapped mounts work, but overlayfs refuses one as a lower "
                              f"layer: {err.strerror} (Linux 5.19+ accepts it)"}
        # The merged root is the upper layer's: look at an entry of the lower one.
        entry = next(iter(sorted(os.listdir(f"{scratch}/lower"))), None)
        seen = os.lstat(f"{scratch}/merged/{entry}").st_uid if entry else shifted
        return {"ok": True, "idmap": True, "overlay": True, "shifted_uid": shifted,
                "detail": f"{directory} ({_fstype(directory)}): uid {owner} shows as {shifted} "
                          f"through an idmapped mount, and as {seen} through an overlay on it"}
    finally:
        with contextlib.suppress(OSError):
            sc.umount2(scratch, MNT_DETACH)
        shutil.rmtree(scratch, ignore_errors=True)


def namespaces(names: str) -> dict:
    """clone(2) a child into the named namespaces (plus a user namespace when not root);
    when refused, whether unshare(2) would have been allowed (a seccomp filter that checks
    clone's flags only)."""
    flags = 0
    for name in filter(None, names.split(",")):
        flags |= NAMESPACES[name]
    if os.geteuid() != 0:
        flags |= CLONE_NEWUSER
    try:
        pid = _clone(flags)
    except CloneRefused as err:
        detail = err.strerror
        try:
            sc.unshare(flags)   # this throwaway process's own
            detail += "; unshare(2) with the same flags is allowed"
        except OSError:
            pass
        return {"ok": False, "errno": err.errno, "detail": detail}
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return {"ok": True, "detail": f"clone({clone_flags(flags)}) works"}


def _fstype(path: str) -> str:
    best, fstype = "", "?"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, fstype = point, fields[fields.index("-") + 1]
    return fstype


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    kinds = {"idmap": idmap, "namespaces": namespaces}
    if not argv or argv[0] not in kinds:
        raise SystemExit(__doc__)
    try:
        answer = kinds[argv[0]](*argv[1:])
    except OSError as err:
        answer = {"ok": False, "detail": f"{err.strerror or err}"}
    print(json.dumps(answer))


if __name__ == "__main__":
    main(sys.argv[1:])
