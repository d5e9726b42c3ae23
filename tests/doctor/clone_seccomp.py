"""Run a command under a seccomp filter that refuses clone(2) with namespace flags and
allows unshare(2): a filter written against clone only, the shape that tells the two
apart (Docker's default profile refuses both to a process without CAP_SYS_ADMIN).

    /usr/bin/python3 clone_seccomp.py COMMAND [ARGS...]

clone(2) with any CLONE_NEW* flag fails with EPERM; clone3(2) with ENOSYS, as Docker's
profile answers it, so that the C library falls back to clone(2) (a filter cannot look
into clone3's arguments). Everything else is allowed. Needs libseccomp's Python bindings
(Debian: python3-seccomp), so run it with the system Python.
"""

from __future__ import annotations

import errno
import os
import sys

import seccomp

# <sched.h>: mnt, uts, ipc, user, pid, net, cgroup, time
CLONE_NEW = (0x00020000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000,
             0x02000000, 0x00000080)


def build() -> seccomp.SyscallFilter:
    filt = seccomp.SyscallFilter(seccomp.ALLOW)
    for bit in CLONE_NEW:   # one rule a flag: clone(flags & bit == bit) -> EPERM
        filt.add_rule(seccomp.ERRNO(errno.EPERM), "clone", seccomp.Arg(0, seccomp.MASKED_EQ,
                                                                       bit, bit))
    filt.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    return filt


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    build().load()
    os.execvp(sys.argv[1], sys.argv[1:])
