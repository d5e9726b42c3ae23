"""A %%host cell finds the kernel's own programs (rootfs-kernel, jupyter) first on PATH,
as an activated virtualenv would, even when the front-end started the kernel with a PATH
that does not name the kernel's environment (notebook 10 runs `rootfs-kernel image`)."""

from __future__ import annotations

import os
import sys

from kerneldriver import KernelDriver


def test_a_host_cell_runs_the_kernels_own_rootfs_kernel():
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    k = KernelDriver(env={**env, "PATH": "/usr/bin:/bin"})
    try:
        r = k.ok("%%host\ncommand -v rootfs-kernel; echo \"$PATH\"")
        found, path = r.stdout.splitlines()
        own = os.path.dirname(sys.executable)
        assert found == os.path.join(own, "rootfs-kernel")
        assert path.endswith(f":{own}:/usr/bin:/bin")   # after `display`'s directory
    finally:
        k.shutdown()
