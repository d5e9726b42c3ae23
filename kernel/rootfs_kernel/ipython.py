"""`%load_ext rootfs_kernel`: the %%rootfs cell magic for IPython and Python notebooks.

    %%rootfs [-o NAME] [--image NAME] [--root pivot|chroot|none] [--mount FSTYPE:TARGET[:OPTS]]
             [--bind HOST:TARGET[:ro]] [--show mounts|ns|changes|ls:PATH[:HOST_PATH]]
             [--keep] [--timeout S] [--env NAME=VALUE] [--limit pids=N] ...
    <the kernel's own header lines, if any>
    <shell script>

The body runs through rootfs_kernel.run() on the default sandbox (so %keep carries over
between %%rootfs cells and run() calls): output streams live, the views are displayed
as the rootfs kernel displays them, and the Result is stored as `_rootfs` (and under
NAME with -o). A failing cell raises, as a failing rootfs-kernel cell does.
"""

from __future__ import annotations

import argparse
import shlex

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from . import api


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(f"%%rootfs: {message}\n{self.format_usage()}")

    def exit(self, status: int = 0, message: str | None = None):
        raise _HelpShown


class _HelpShown(Exception):
    pass


def _parser() -> _Parser:
    p = _Parser(prog="%%rootfs", add_help=True,
                description="Run the cell as a shell script in a fresh container, as a "
                "rootfs-kernel cell. Options become header lines; the cell may start with "
                "header lines of its own (%help in a cell lists them).")
    p.add_argument("-o", "--output", metavar="NAME",
                   help="also store the Result in the variable NAME")
    p.add_argument("--image", default="minimal")
    p.add_argument("--root", default="pivot", help="pivot | chroot | none")
    p.add_argument("--mount", action="append", default=[], metavar="FSTYPE:TARGET[:OPTIONS]")
    p.add_argument("--bind", action="append", default=[], metavar="HOST_PATH:TARGET[:ro]")
    p.add_argument("--show", action="append", default=[],
                   metavar="mounts|ns|changes|ls:PATH[:HOST_PATH]")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--timeout", type=float, metavar="SECONDS")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="for this cell only")
    p.add_argument("--limit", action="append", default=[], metavar="pids=N|memory=SIZE|cpu=F")
    p.add_argument("--propagation", metavar="private|slave|shared")
    p.add_argument("--unshare", metavar="NS[,NS...]")
    p.add_argument("--net", metavar="none|user|host")
    return p


def _options(args: argparse.Namespace) -> dict:
    env = {}
    for item in args.env:
        name, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f"%%rootfs: --env expects NAME=VALUE, got {item!r}")
        env[name] = value
    return dict(image=args.image, root=args.root, mounts=args.mount, binds=args.bind,
                show=args.show, keep=args.keep, timeout=args.timeout, env=env or None,
                limits=" ".join(args.limit) or None, propagation=args.propagation,
                unshare=args.unshare, net=args.net)


def _short(err: BaseException) -> BaseException:
    """Show `Name: message` in the notebook, not a traceback through this module."""
    text = str(err) or "the cell was interrupted and its container stopped"
    err._render_traceback_ = lambda: [f"{type(err).__name__}: {text}"]
    return err


@magics_class
class RootfsMagics(Magics):
    @line_cell_magic
    def rootfs(self, line: str, cell: str | None = None):
        """Run the cell as a shell script in a fresh container (`%rootfs` shows the help)."""
        parser = _parser()
        if cell is None:
            print(parser.format_help())
            return None
        try:
            args = parser.parse_args(shlex.split(line))
        except _HelpShown:
            return None
        except ValueError as err:   # shlex: unbalanced quotes
            raise UsageError(f"%%rootfs: {err}") from None
        try:
            result = api.run(cell, check=True, echo=True, **_options(args))
        except api.ContainerError as err:
            if err.result is not None:
                self._publish(err.result, args)
            raise _short(err) from None
        except (api.HeaderError, api.ImageError, api.SandboxError) as err:
            raise _short(err) from None
        except KeyboardInterrupt as err:   # the container is gone already (api.run)
            raise _short(err) from None
        self._publish(result, args)
        return None

    def _publish(self, result: api.Result, args: argparse.Namespace) -> None:
        result.display()
        self.shell.user_ns["_rootfs"] = result
        if args.output:
            self.shell.user_ns[args.output] = result


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(RootfsMagics)


def unload_ipython_extension(ipython) -> None:
    magics = ipython.magics_manager.magics["cell"]
    magics.pop("rootfs", None)
