"""`rootfs-kernel install | doctor | image ...`"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

KERNEL_NAME = "rootfs"


def kernel_json() -> dict:
    """The kernelspec, pointing at this interpreter (the wheel ships the same as shared-data)."""
    return {"argv": [sys.executable, "-m", "rootfs_kernel", "-f", "{connection_file}"],
            "display_name": "Rootfs (sh)", "language": "shell", "interrupt_mode": "signal",
            "metadata": {"debugger": False}}


def install(args: argparse.Namespace) -> int:
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kernel.json").write_text(json.dumps(kernel_json(), indent=2))
        dest = KernelSpecManager().install_kernel_spec(
            tmp, KERNEL_NAME, user=args.user, prefix=sys.prefix if args.sys_prefix else args.prefix)
    print(f"installed kernelspec {KERNEL_NAME!r} in {dest}")
    return 0


def doctor(args: argparse.Namespace) -> int:
    from .doctor import run_checks

    ok = True
    for check in run_checks():
        mark = "ok  " if check.ok else ("warn" if check.optional else "FAIL")
        print(f"[{mark}] {check.name}: {check.detail}")
        if check.advice and not check.ok:
            print(f"       -> {check.advice}")
        ok = ok and (check.ok or check.optional)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rootfs-kernel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("install", help="install the Jupyter kernelspec 'rootfs'")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for this user only")
    where.add_argument("--sys-prefix", action="store_true", help="into sys.prefix (venvs)")
    where.add_argument("--prefix", help="into PREFIX/share/jupyter/kernels")
    p.set_defaults(func=install)
    p = sub.add_parser("doctor", help="check that this host allows what the kernel needs")
    p.set_defaults(func=doctor)
    try:
        from .images.cli import add_image_commands
    except ImportError:
        pass
    else:
        add_image_commands(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
