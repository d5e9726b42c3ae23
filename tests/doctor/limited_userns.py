"""Run a command where every further user namespace is refused (user.max_user_namespaces=0).

    python limited_userns.py [--as-user UID:GID] COMMAND [ARGS...]

This host's root cannot change the host-wide limit, but the limit is per user namespace:
the command runs in a new user namespace mapped one to one onto the host's ids (so files,
devices and groups look as they do outside), whose own user.max_user_namespaces is 0.
Creating a user namespace in it then fails with ENOSPC, as on RHEL-like hosts with the
sysctl at 0. With --as-user the command runs as that (ordinary) user in there. Run as root.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWUSER = 0x10000000


def main(argv: list[str]) -> None:
    ids = None
    if argv[:1] == ["--as-user"]:
        uid, gid = (int(x) for x in argv[1].split(":"))
        ids, argv = (uid, gid), argv[2:]
    if not argv:
        raise SystemExit(__doc__)
    unshared_r, unshared_w = os.pipe()
    mapped_r, mapped_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(unshared_r)
        os.close(mapped_w)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWUSER) != 0:
            os._exit(f"unshare: {os.strerror(ctypes.get_errno())}" and 125)
        os.write(unshared_w, b"u")
        if os.read(mapped_r, 1) != b"m":
            os._exit(125)
        with open("/proc/sys/user/max_user_namespaces", "w") as f:
            f.write("0")
        if ids is not None:
            os.setgroups([])
            os.setresgid(ids[1], ids[1], ids[1])
            os.setresuid(ids[0], ids[0], ids[0])
        os.execvp(argv[0], argv)
    os.close(unshared_w)
    os.close(mapped_r)
    if os.read(unshared_r, 1) != b"u":
        raise SystemExit("limited_userns: the child could not create its user namespace")
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write("0 0 4294967295")   # every id is itself: only capabilities change
    os.write(mapped_w, b"m")
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status) if status else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
