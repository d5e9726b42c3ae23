"""The ``debian`` image: a real Debian root filesystem, as in the seed.

As root it runs debootstrap into the layer directory; as an ordinary user it runs
``mmdebstrap --mode=unshare`` (a user namespace, no root needed) writing a tar, which
is unpacked like an imported layer. Both use the Debian mirror the machine's apt
sources already name. A minbase bookworm takes about 40 s and 200 MB.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..cell import DEFAULT_PATH
from ..rmtree import remove_tree
from .errors import ImageError
from .layertar import extract_layer
from .store import BuildContext, Builder, BuildOutput

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"
VARIANTS = ("minbase", "buildd", "fakechroot", "-")  # debootstrap's; "-" is its default
ENV = [f"PATH={DEFAULT_PATH}", "HOME=/root", "LANG=C.UTF-8"]


def apt_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The first non-security Debian archive URI in the apt sources, else deb.debian.org."""
    files = [etc_apt / "sources.list"]
    d = etc_apt / "sources.list.d"
    if d.is_dir():
        files += sorted(d.iterdir())
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        uris: list[str] = []
        if path.suffix == ".sources":  # deb822
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
                if "deb" in fields.get("Types", "").split():
                    uris += fields.get("URIs", "").split()
        else:
            for line in text.splitlines():
                parts = re.sub(r"\[[^\]]*\]", "", line).split()
                if len(parts) >= 2 and parts[0] == "deb":
                    uris.append(parts[1])
        for uri in uris:
            if uri.startswith(("http://", "https://")) and "security" not in uri:
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def host_suite() -> str:
    try:
        text = Path("/etc/os-release").read_text(encoding="utf-8")
    except OSError:
        return DEFAULT_SUITE
    fields = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', text, re.M))
    if fields.get("ID") == "debian" and fields.get("VERSION_CODENAME"):
        return fields["VERSION_CODENAME"]
    return DEFAULT_SUITE


def _run(cmd: list[str], progress: Callable[[float | None, str], None], hint: str) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "LC_ALL": "C"})
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-15:]
        if line.startswith(("I: ", "W: ")):
            progress(None, line[3:])
    if proc.wait() != 0:
        raise ImageError(f"{cmd[0]} failed ({hint}):\n" + "\n".join(tail))


def _strip_special(root: Path) -> None:
    """Drop device nodes (the container gets its own /dev) and setuid/setgid bits
    (imports drop them too, so an export of this image reads back identically)."""
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                os.unlink(path)
            elif st.st_mode & (stat.S_ISUID | stat.S_ISGID) and not stat.S_ISLNK(st.st_mode):
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))


def debian_builder(suite: str | None = None, variant: str = "minbase",
                   mirror: str | None = None) -> Builder:
    suite = suite or host_suite()
    mirror = mirror or apt_mirror()
    if variant not in VARIANTS:
        raise ImageError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", suite):
        raise ImageError(f"invalid suite {suite!r} (e.g. bookworm, trixie, sid)")

    def build(ctx: BuildContext) -> BuildOutput:
        rootfs = ctx.new_layer_dir()
        if os.geteuid() == 0:
            tool = shutil.which("debootstrap")
            if tool is None:
                raise ImageError("building debian as root needs debootstrap: "
                                 "`apt-get install debootstrap`")
            cmd = [tool, f"--variant={variant}", suite, str(rootfs), mirror]
            if variant == "-":
                cmd.pop(1)
            ctx.progress(0.02, f"debootstrap {suite} ({variant}) from {mirror}")
            _run(cmd, ctx.progress, f"suite {suite}, mirror {mirror}")
            cache = rootfs / "var/cache/apt/archives"
            for deb in cache.glob("*.deb") if cache.is_dir() else []:
                deb.unlink()
            _strip_special(rootfs)
        else:
            tool = shutil.which("mmdebstrap")
            if tool is None:
                raise ImageError(
                    "building debian as an ordinary user needs mmdebstrap (and "
                    "unprivileged user namespaces with subuids): `apt-get install "
                    "mmdebstrap uidmap`; or build as root with debootstrap")
            out = ctx.scratch_dir("mmdebstrap") / "rootfs.tar"
            cmd = [tool, "--mode=unshare", "--skip=output/dev", "--format=tar", suite,
                   str(out), mirror]
            if variant != "-":
                cmd.insert(2, f"--variant={variant}")
            ctx.progress(0.02, f"mmdebstrap {suite} ({variant}) from {mirror}")
            _run(cmd, ctx.progress, f"suite {suite}, mirror {mirror}")
            ctx.progress(0.8, "unpacking")
            with open(out, "rb") as f:
                extract_layer(f, rootfs, f"mmdebstrap output {out.name}")
            remove_tree(out.parent)
        os.chmod(rootfs, 0o755)
        ctx.progress(0.9, "computing the layer digest")
        layer = ctx.add_layer(rootfs)
        return BuildOutput(
            layers=[layer],
            config={"Env": list(ENV), "Cmd": ["/bin/bash"]},
            source=f"debian {suite} {variant} from {mirror}",
            extra={"suite": suite, "variant": variant, "mirror": mirror},
        )

    return build
