"""`python -m rootfs_kernel -f CONNECTION_FILE`: start the kernel (what kernel.json runs)."""

from ipykernel.kernelapp import IPKernelApp

from .kernel import RootfsKernel

if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=RootfsKernel)
