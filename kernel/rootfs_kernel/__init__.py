"""rootfs-kernel: a Jupyter kernel whose cells run in fresh mount-namespaced containers."""

__version__ = "0.1.0"
