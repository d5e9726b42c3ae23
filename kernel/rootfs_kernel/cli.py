"""`rootfs-kernel install | doctor | image ...`"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from . import kernelspec
from .cell import BUILD_KINDS, format_size
from .images import ImageError


def install(args: argparse.Namespace) -> int:
    from jupyter_client.kernelspec import KernelSpecManager

    name = kernelspec.LOCKED_NAME if args.locked else kernelspec.NAME
    with tempfile.TemporaryDirectory() as tmp:
        spec = kernelspec.write(Path(tmp) / name, locked=args.locked)
        dest = KernelSpecManager().install_kernel_spec(
            str(spec), name, user=args.user, prefix=sys.prefix if args.sys_prefix else args.prefix)
    print(f"installed kernelspec {name!r} in {dest}")
    if args.locked:
        print("its cells reach the host through no line (%%host, %root none, %bind, "
              "%propagation shared and %show ls are refused); remove the unlocked kernelspec if it "
              f"must not be offered next to it: `jupyter kernelspec remove {kernelspec.NAME}`")
    return 0


def doctor(args: argparse.Namespace) -> int:
    from . import doctor as dr

    if args.apparmor_profile:
        from .sandbox import initbin

        try:
            init = initbin.path()
        except initbin.InitMissing as err:
            print(f"rootfs-kernel: {err}", file=sys.stderr)
            return 1
        print(dr.apparmor_profile(str(init.resolve())), end="")
        return 0
    checks = dr.run_checks(cell=not args.no_cell)
    ok = all(check.ok or check.optional for check in checks)
    if args.json:
        print(json.dumps({"ok": ok, "checks": dr.as_json(checks)}, indent=2))
        return 0 if ok else 1
    for check in checks:
        mark = "ok  " if check.ok else ("warn" if check.optional else "FAIL")
        print(f"[{mark}] {check.name}: {check.detail}")
        if check.advice and not check.ok:
            print(f"       -> {check.advice}")
    return 0 if ok else 1


class TerminalProgress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = ""

    def __call__(self, fraction: float | None, message: str) -> None:
        if fraction is None:
            line = f"  {message}"
        else:
            done = int(30 * max(0.0, min(1.0, fraction)))
            line = f"  [{'#' * done}{'.' * (30 - done)}] {fraction * 100:5.1f}% {message}"
        if self.tty:
            sys.stderr.write("\r" + line[:120].ljust(len(self.last)))
        elif message != self.last:
            sys.stderr.write(line + "\n")
        self.last = line[:120] if self.tty else message
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty and self.last:
            sys.stderr.write("\n")


def image_cmd(args: argparse.Namespace) -> int:
    from .images import commands

    progress = TerminalProgress()
    try:
        if args.image_command == "list":
            for row in commands.image_list():
                state = format_size(row.get("size", 0)) if row["built"] else "not built yet"
                print(f"{row['name']:<20} {state:>12}  {row.get('source', '')}")
            print(commands.store_line())
        elif args.image_command == "build":
            img = commands.image_build(args.kind, args.name, suite=args.suite,
                                       variant=args.variant, mirror=args.mirror,
                                       replace=args.replace, progress=progress)
            progress.done()
            print(f"built image {img.name} ({len(img.layers)} layer(s))")
        elif args.image_command == "import":
            img = commands.image_import(args.file, args.name, ref=args.ref,
                                        replace=args.replace, progress=progress)
            progress.done()
            print(f"imported image {img.name} ({len(img.layers)} layer(s))")
        elif args.image_command == "export":
            path = commands.image_export(args.name, args.file, progress=progress)
            progress.done()
            print(f"exported {args.name} to {path}")
        elif args.image_command == "inspect" and args.layers:
            from .views import layers_payload, render_text

            payload = layers_payload(commands.image_layers(args.name), image=args.name,
                                     title=f"Layers of image {args.name} (bottom to top)")
            print("\n\n".join(render_text(payload, path=p, max_lines=None) for p in
                              [(), *((r["key"],) for r in payload["rows"])]))
        elif args.image_command == "inspect":
            print(json.dumps(commands.image_inspect(args.name), indent=2, default=str))
        elif args.image_command == "rm":
            removed = commands.image_rm(args.name)
            print(f"removed image {args.name} and {len(removed)} unused layer(s)")
    finally:
        progress.done()
    return 0


def _image_parsers(sub: argparse._SubParsersAction) -> None:
    image = sub.add_parser("image", help="list, build, import, export, inspect, rm images")
    image.set_defaults(func=image_cmd)
    isub = image.add_subparsers(dest="image_command", required=True)
    isub.add_parser("list", help="images in the store")
    p = isub.add_parser("build", help="build an image: minimal, busybox or debian")
    p.add_argument("kind", choices=BUILD_KINDS)
    p.add_argument("name", nargs="?", help="name in the store (default: the kind)")
    p.add_argument("--suite", help="debian: suite (default: the host's codename)")
    p.add_argument("--variant", default="minbase", help="debian: debootstrap variant")
    p.add_argument("--mirror", help="debian: mirror (default: from apt sources)")
    p.add_argument("--replace", action="store_true", help="replace an existing image")
    p = isub.add_parser("import", help="import a docker-save tarball or an OCI layout")
    p.add_argument("file")
    p.add_argument("name", nargs="?")
    p.add_argument("--ref", help="which image of a multi-image archive")
    p.add_argument("--replace", action="store_true")
    p = isub.add_parser("export", help="write an image as an OCI layout tar")
    p.add_argument("name")
    p.add_argument("file")
    p = isub.add_parser("inspect", help="metadata and layer paths as JSON")
    p.add_argument("name")
    p.add_argument("--layers", action="store_true",
                   help="each layer's changes, whiteouts and opaque dirs, as %%show layers")
    p = isub.add_parser("rm", help="remove an image and its unused layers")
    p.add_argument("name")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rootfs-kernel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("install", help=f"install the Jupyter kernelspec {kernelspec.NAME!r}")
    p.add_argument("--locked", action="store_true",
                   help=f"install {kernelspec.LOCKED_NAME!r} instead: a kernel for shared "
                        "machines that refuses every line reaching the host")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for this user only")
    where.add_argument("--sys-prefix", action="store_true", help="into sys.prefix (venvs)")
    where.add_argument("--prefix", help="into PREFIX/share/jupyter/kernels")
    p.set_defaults(func=install)
    p = sub.add_parser("doctor", help="check that this host allows what the kernel needs")
    p.add_argument("--json", action="store_true", help="the checks as JSON")
    p.add_argument("--no-cell", action="store_true",
                   help="only read the host's settings; do not run a cell")
    p.add_argument("--apparmor-profile", action="store_true",
                   help="print an AppArmor profile that lets this installation's container "
                        "init create user namespaces (Ubuntu 23.10+)")
    p.set_defaults(func=doctor)
    _image_parsers(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ImageError as err:
        print(f"rootfs-kernel: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
