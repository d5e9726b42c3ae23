"""rootfs-kernel: a Jupyter kernel whose cells run in fresh mount-namespaced containers.

`rootfs_kernel.run(script, ...)` runs a script the same way from plain Python (api/);
`%load_ext rootfs_kernel` gives IPython the `%%rootfs` cell magic (ipython.py). Both load
lazily: importing the package stays cheap.
"""

_API = ("run", "arun", "Sandbox", "Result", "Comparison", "HeaderError", "ContainerError",
        "CellTimeout", "ImageError", "SandboxError", "SettingError")


def __getattr__(name: str):
    if name == "__version__":   # extension/package.json's, through the installed metadata
        from importlib.metadata import version

        return version("rootfs-kernel")
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'rootfs_kernel' has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    """`%load_ext rootfs_kernel`: register the %%rootfs cell magic."""
    from .ipython import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython) -> None:
    from .ipython import unload_ipython_extension as unload

    unload(ipython)
