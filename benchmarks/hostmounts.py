"""Run a program as if the host had N more mounts: a mount namespace of its own (root only).

    python benchmarks/hostmounts.py N PROGRAM ARGS...

run.py starts two rootfs kernels through this, one with N=0 and one with N=2000, and
times their cells in turns: each kernel (and its helper and containers) sees its own
namespace as the host's, so the only difference is the size of the mount table. The
namespace is private and goes with the kernel: nothing is mounted on the real host.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
MS_REC = 1 << 14
MS_PRIVATE = 1 << 18
BASE = "/mnt"   # hidden by a tmpfs in this namespace only

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def main() -> None:
    n = int(sys.argv[1])
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS) (needs root)")
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    _check(_libc.mount(b"rootfs-bench", BASE.encode(), b"tmpfs", 0, None), f"tmpfs on {BASE}")
    for i in range(n):
        target = f"{BASE}/m{i}"
        os.mkdir(target)
        _check(_libc.mount(b"rootfs-bench", target.encode(), b"tmpfs", 0, None), target)
    os.execvp(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
