"""Many more mounts on a host, for the benchmarks (root only).

    python benchmarks/hostmounts.py N PROGRAM ARGS...

runs PROGRAM as if the host had N more mounts: in a mount namespace of its own, private,
made before the program starts, with N tmpfs mounts below /mnt (hidden by a tmpfs there),
which goes with the program: the old way of run.py's host-mounts row, kept as its third
variant. run.py's other two variants mount on the host itself (mount_many): a real host's
table, which the kernels share, as a host with many containers or automounts has it.
"""

from __future__ import annotations

import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
MS_REC = 1 << 14
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MNT_DETACH = 2
BASE = "/mnt"   # hidden by a tmpfs in this namespace only

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount_many(base: str, n: int, shared: bool = False) -> None:
    """A tmpfs on `base` and `n` more below it; `shared`: each in a peer group of its own,
    as on a host whose / is shared (systemd's default), where new mounts are shared too."""
    _check(_libc.mount(b"rootfs-bench", base.encode(), b"tmpfs", 0, None), f"tmpfs on {base}")
    if shared:
        _check(_libc.mount(None, base.encode(), None, MS_SHARED, None), f"make {base} shared")
    for i in range(n):
        target = f"{base}/m{i}"
        os.mkdir(target)
        _check(_libc.mount(b"rootfs-bench", target.encode(), b"tmpfs", 0, None), target)


def unmount_all(base: str) -> None:
    """Detach `base` with every mount below it."""
    _check(_libc.umount2(base.encode(), MNT_DETACH), f"umount {base}")


def main() -> None:
    n = int(sys.argv[1])
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS) (needs root)")
    _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    mount_many(BASE, n)
    os.execvp(sys.argv[2], sys.argv[2:])


if __name__ == "__main__":
    main()
