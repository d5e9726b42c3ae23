"""`python -m rootfs_kernel -f CONNECTION_FILE`: start the kernel (what kernel.json runs)."""

import os
import sys

# The debugger is IPython's, not this kernel's: skip debugpy's start-up check and note.
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

if __name__ == "__main__":
    # A client waiting to connect is connected while the rest is imported (ports.py).
    from . import ports

    ports.bind_early(sys.argv[1:])

from .app import RootfsKernelApp  # noqa: E402
from .kernel import RootfsKernel  # noqa: E402

if __name__ == "__main__":
    # Cells never run Python in this process: its own stdout and stderr are the kernel's
    # log, not cell output. Without ipykernel's OutStream a cell also no longer waits,
    # twice, for the IOPub thread to flush streams that hold nothing.
    # --help-all lists the kernel's settings (settings.py) where ipykernel lists its
    # IPython kernel's options, which this kernel does not have.
    RootfsKernelApp.classes = [RootfsKernel, *(c for c in RootfsKernelApp.classes
                                               if c.__name__ != "IPythonKernel")]
    RootfsKernelApp.launch_instance(kernel_class=RootfsKernel, outstream_class=None)
