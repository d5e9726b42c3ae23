"""Run a command where every further user namespace is refused (user.max_user_namespaces=0).

    python limited_userns.py COMMAND [ARGS...]

Only a process with CAP_SYS_RESOURCE can change the host-wide limit (this project's test
machines have none), but the limit is kept per user namespace, and a namespace's own
creator may set it there. So the command runs in a new user namespace whose
user.max_user_namespaces is 0: creating a user namespace in it fails with ENOSPC, as on
RHEL-like hosts with the sysctl at 0. Every id keeps its number: as root the namespace maps
all ids onto themselves (the command is root, files and devices look as outside); as an
ordinary user it maps that user onto itself (the command is that ordinary user, without
capabilities once it execs).
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWUSER = 0x10000000
LIMIT = "/proc/sys/user/max_user_namespaces"
libc = ctypes.CDLL(None, use_errno=True)


def _unshare() -> None:
    if libc.unshare(CLONE_NEWUSER) != 0:
        raise SystemExit(f"limited_userns: unshare: {os.strerror(ctypes.get_errno())}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def as_root(argv: list[str]) -> int:
    """A child makes the namespace; only a parent outside it may map every id."""
    made_r, made_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(made_r)
        os.close(mapped_w)
        _unshare()
        os.write(made_w, b"u")
        if os.read(mapped_r, 1) != b"m":
            os._exit(125)
        _write(LIMIT, "0")
        os.execvp(argv[0], argv)
    os.close(made_w)
    os.close(mapped_r)
    if os.read(made_r, 1) != b"u":
        raise SystemExit("limited_userns: the child could not create its user namespace")
    for name in ("uid_map", "gid_map"):
        _write(f"/proc/{pid}/{name}", "0 0 4294967295")
    os.write(mapped_w, b"m")
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def as_user(argv: list[str]) -> None:
    """An ordinary user maps itself; it holds every capability in the namespace until
    it execs, long enough to set the limit."""
    uid, gid = os.geteuid(), os.getegid()
    _unshare()
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _write(LIMIT, "0")
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    if os.geteuid() == 0:
        sys.exit(as_root(sys.argv[1:]))
    as_user(sys.argv[1:])
