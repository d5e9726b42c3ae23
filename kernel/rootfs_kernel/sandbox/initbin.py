"""Where rootfs-init (init.c) lives, and how it is compiled.

A wheel carries it next to this module (hatch_build.py compiles it while the wheel is
built). A source checkout without one compiles it on first use into the user's cache,
keyed by the source's hash, so an edited init.c is never run stale.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("init.c")
PACKAGED = Path(__file__).with_name("rootfs-init")


class InitMissing(RuntimeError):
    pass


def compile_to(out: Path, source: Path = SOURCE) -> None:
    """cc -O2, static when the C library allows it (no dynamic loader at every cell)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise InitMissing("rootfs-kernel needs a C compiler to build its container init "
                          "(apt-get install gcc libc6-dev), or a wheel that carries it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent)) / out.name
    try:
        base = [cc, "-O2", "-Wall", "-o", str(tmp), str(source)]
        done = subprocess.run([*base, "-static"], capture_output=True, text=True)
        if done.returncode:
            done = subprocess.run(base, capture_output=True, text=True)
        if done.returncode:
            raise InitMissing(f"compiling {source} failed:\n{done.stderr.strip()}")
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def path() -> Path:
    """The rootfs-init to run: the packaged one, else one compiled from init.c."""
    if PACKAGED.is_file() and os.access(PACKAGED, os.X_OK):
        return PACKAGED
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    built = cache / "rootfs-kernel" / f"rootfs-init-{digest}"
    if not built.is_file():
        compile_to(built)
    return built
