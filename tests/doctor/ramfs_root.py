"""Run a command whose root is the initial ramfs, as on a system that never left its initramfs.

    python ramfs_root.py [--chroot | --bound-chroot | --pivot-root] COMMAND [ARGS...]  (root)

pivot_root(2) refuses such a root with EINVAL ("the current root is on the rootfs
(initial ramfs) mount"), and so do the systems that boot from an initramfs and stay there
(some embedded and live systems, some VMs and container sandboxes).

Every mount namespace has the kernel's rootfs, the initial ramfs, at its bottom; the real
root filesystem is mounted over it. In a mount namespace of its own, this script detaches
that root filesystem, so the namespace's root is the rootfs itself, joins its own mount
namespace again (setns puts the root and working directory at the namespace's root), and
mounts the host's top-level directories back onto directories there (open_tree +
move_mount, from a descriptor of the old root), with a fresh /tmp and /run. The command
then runs with a ramfs root in which every program, virtualenv and checkout of the host is
where it was. The directories it had to create in the rootfs are removed afterwards (the
rootfs is the host's, hidden under its root filesystem); the mounts die with the namespace.

With --chroot, the root is instead a directory on a ramfs that is not a mount point, as in
a build chroot: there even making the namespace's mounts private fails with EINVAL.

With --bound-chroot, that directory is made a mount point first (`mount --rbind DIR DIR`)
and then entered with chroot, from a system whose init stays outside it, as on any host: a
PID namespace of its own whose PID 1 sits at the mount namespace's root and mounts the
namespace's /proc in the chroot. The kernel refuses user namespaces to a chrooted process
(EPERM), however its root is mounted.

With --pivot-root, the same directory is entered as `rootfs-kernel doctor` advises instead:
its command (hostfacts.PIVOT_INTO, pivot_root(8) in a mount namespace of its own) runs
with COMMAND in place of `jupyter lab`.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shlex
import subprocess
import sys
import tempfile

CLONE_NEWNS, CLONE_NEWPID = 0x00020000, 0x20000000
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
MNT_DETACH = 2
SYS_OPEN_TREE, SYS_MOVE_MOUNT = 428, 429    # the same numbers on x86_64 and aarch64
OPEN_TREE_CLONE, AT_RECURSIVE, MOVE_MOUNT_F_EMPTY_PATH = 1, 0x8000, 0x4
# Host directories that are not brought in: the command gets its own /tmp and /run, and
# the kernel's /proc, /sys and /dev as they are.
FRESH = ("tmp", "run")
SKIP = {"proc", "sys", "dev", "lost+found", *FRESH}
LOCK = "/run/lock/rootfs-kernel-ramfs-root.lock"   # one user of the host's rootfs at a time

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.syscall.restype = ctypes.c_long


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"ramfs_root: {what}: {os.strerror(err)}")
    return result


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    enc = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    _check(libc.mount(enc[0], enc[1], enc[2], flags, enc[3]), f"mount {source} on {target}")


def _clone_tree(path: str) -> int:
    """A detached copy of the mount tree at path (open_tree), to be attached later."""
    return _check(libc.syscall(SYS_OPEN_TREE, -100, path.encode(),
                               OPEN_TREE_CLONE | AT_RECURSIVE | os.O_CLOEXEC),
                  f"open_tree {path}")


def _attach(tree: int, target: str) -> None:
    _check(libc.syscall(SYS_MOVE_MOUNT, tree, b"", -100, target.encode(),
                        MOVE_MOUNT_F_EMPTY_PATH), f"move_mount {target}")
    os.close(tree)


def _host_tree() -> tuple[dict[str, int], dict[str, str]]:
    """The host's top-level directories as detached mount trees, and its symlinks there."""
    trees, links = {}, {}
    for name in sorted(os.listdir("/")):
        host = f"/{name}"
        if name in SKIP or not (os.path.isdir(host) or os.path.islink(host)):
            continue
        if os.path.islink(host):                    # merged /usr: bin -> usr/bin
            links[name] = os.readlink(host)
        else:
            trees[name] = _clone_tree(host)
    for name in ("proc", "sys", "dev"):
        trees[name] = _clone_tree(f"/{name}")
    return trees, links


def _populate(root: str, trees: dict[str, int], links: dict[str, str]) -> list[str]:
    """Attach the trees and links at root, with a fresh /tmp and /run; returns the
    directories and links it had to create."""
    made = []

    def where(name: str) -> str:
        inside = os.path.join(root, name)
        if not os.path.isdir(inside):
            os.mkdir(inside, 0o755)
            made.append(inside)
        return inside

    for name, target in links.items():
        inside = os.path.join(root, name)
        if not os.path.lexists(inside):
            os.symlink(target, inside)
            made.append(inside)
    for name, tree in trees.items():
        _attach(tree, where(name))
    for name in FRESH:
        _mount("tmpfs", where(name), "tmpfs", 0, "mode=1777")
    return made


def ramfs_root(argv: list[str]) -> int:
    """The initial ramfs as the root (see the module's docstring); returns the exit code."""
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _check(libc.unshare(CLONE_NEWNS), "unshare")
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        trees, links = _host_tree()
        own_ns = os.open("/proc/self/ns/mnt", os.O_RDONLY)
        _check(libc.umount2(b"/", MNT_DETACH), "detach the root filesystem")
        _check(libc.setns(own_ns, CLONE_NEWNS), "setns")   # now at the namespace's root
        made: list[str] = []
        try:
            made = _populate("/", trees, links)
            pid = os.fork()
            if pid == 0:
                os.execvp(argv[0], argv)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        finally:
            # The rootfs is the host's: take back what was created in it.
            for path in sorted(made, reverse=True):
                with contextlib.suppress(OSError):
                    if os.path.islink(path):
                        os.unlink(path)
                    else:
                        while libc.umount2(path.encode(), MNT_DETACH) == 0:
                            pass
                        os.rmdir(path)


@contextlib.contextmanager
def _directory_root(flags: int = CLONE_NEWNS):
    """A directory on a ramfs that is not a mount point, with the host's top-level
    directories attached, in a mount namespace (and the namespaces of flags) of its own."""
    _check(libc.unshare(flags), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    top = tempfile.mkdtemp(prefix="rk-ramfs-")
    try:
        _mount("rk-ramfs", top, "ramfs", 0, "mode=0755")
        root = os.path.join(top, "root")
        os.mkdir(root, 0o755)
        _populate(root, *_host_tree())
        yield root
    finally:   # the ramfs goes with the namespace; its mount point is the host's
        libc.umount2(top.encode(), MNT_DETACH)
        os.rmdir(top)


def _run_chrooted(root: str, argv: list[str]) -> int:
    """argv chrooted into root, in a child; its exit code (other children are reaped too,
    as an init reaps them)."""
    pid = os.fork()
    if pid == 0:
        os.chroot(root)
        os.chdir("/")
        os.execvp(argv[0], argv)
    while True:
        done, status = os.waitpid(-1, 0)
        if done == pid:
            return os.waitstatus_to_exitcode(status)


def chroot_root(argv: list[str]) -> int:
    """A directory on a ramfs that is not a mount point as the root (--chroot)."""
    with _directory_root() as root:
        return _run_chrooted(root, argv)


def bound_chroot(argv: list[str]) -> int:
    """The --chroot directory made a mount point, then chrooted into (--bound-chroot)."""
    with _directory_root(CLONE_NEWNS | CLONE_NEWPID) as root:
        _mount(root, root, None, MS_BIND | MS_REC)          # mount --rbind DIR DIR
        pid = os.fork()
        if pid == 0:   # PID 1 of the new PID namespace: the system's init, outside the chroot
            _mount("proc", os.path.join(root, "proc"), "proc", 0)
            os._exit(_run_chrooted(root, argv))
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)


def pivot_root(argv: list[str]) -> int:
    """The --chroot directory entered with doctor's command (--pivot-root)."""
    from rootfs_kernel.hostfacts import PIVOT_INTO

    with _directory_root() as root:
        line = PIVOT_INTO.replace("DIR", root).replace("exec jupyter lab", 'exec "$@"')
        return subprocess.run(["sh", "-c", f"{line} sh {shlex.join(argv)}"]).returncode


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--chroot"] and args[1:]:
        sys.exit(chroot_root(args[1:]))
    if args[:1] == ["--bound-chroot"] and args[1:]:
        sys.exit(bound_chroot(args[1:]))
    if args[:1] == ["--pivot-root"] and args[1:]:
        sys.exit(pivot_root(args[1:]))
    if not args or args[0] in ("--chroot", "--bound-chroot", "--pivot-root"):
        raise SystemExit(__doc__)
    sys.exit(ramfs_root(args))
