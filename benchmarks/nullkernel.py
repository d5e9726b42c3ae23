"""A kernel that does nothing: ipykernel's own cost of a cell, the floor of any kernel
built on it (rootfs-kernel is one, IPython another).

    python benchmarks/nullkernel.py -f CONNECTION_FILE

run.py starts it as one more kernel of the round trips and Run All: every execute_request
gets an "ok" reply at once, through the same ipykernel message loop, sockets, status
messages and jupyter_client as the other kernels' cells.
"""

from __future__ import annotations

from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel


class NullKernel(Kernel):
    implementation = "null"
    implementation_version = "0"
    banner = "a kernel that does nothing (rootfs-kernel's benchmarks)"
    language_info = {"name": "shell", "mimetype": "text/x-sh", "file_extension": ".sh"}
    _execute_sleep = 0.0   # as rootfs-kernel's (kernel.py): no pause before each reply

    async def do_execute(self, code, silent, store_history=True, user_expressions=None,
                         allow_stdin=False, **kwargs):
        return {"status": "ok", "execution_count": self.execution_count, "payload": [],
                "user_expressions": {}}


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=NullKernel)
