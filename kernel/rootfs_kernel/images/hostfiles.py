"""Copying host programs into an image, with the shared libraries they load."""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

from ..cell import DEFAULT_PATH
from .errors import ImageError

# The host's programs live under these prefixes; the image is merged-/usr.
_USR_MERGE = (("/bin/", "/usr/bin/"), ("/sbin/", "/usr/sbin/"), ("/lib/", "/usr/lib/"),
              ("/lib64/", "/usr/lib64/"), ("/lib32/", "/usr/lib32/"))
_PT_INTERP = 3


def image_path(host_path: str) -> str:
    """Where a host file goes in a merged-/usr image."""
    for prefix, usr in _USR_MERGE:
        if host_path.startswith(prefix):
            return usr + host_path[len(prefix):]
    return host_path


def elf_interpreter(path: str) -> str | None:
    """The PT_INTERP of an ELF file (its dynamic loader), None if static or not ELF."""
    with open(path, "rb") as f:
        ident = f.read(64)
        if len(ident) < 52 or ident[:4] != b"\x7fELF":
            return None
        is64, little = ident[4] == 2, ident[5] == 1
        end = "<" if little else ">"
        if is64:
            phoff, = struct.unpack_from(end + "Q", ident, 32)
            phentsize, phnum = struct.unpack_from(end + "HH", ident, 54)
        else:
            phoff, = struct.unpack_from(end + "I", ident, 28)
            phentsize, phnum = struct.unpack_from(end + "HH", ident, 42)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            ph = f.read(phentsize)
            if is64:
                p_type, _flags, p_offset, _va, _pa, p_filesz = struct.unpack_from(
                    end + "IIQQQQ", ph)
            else:
                p_type, p_offset, _va, _pa, p_filesz = struct.unpack_from(end + "IIIII", ph)
            if p_type == _PT_INTERP:
                f.seek(p_offset)
                return f.read(p_filesz).rstrip(b"\0").decode()
    return None


def shared_libraries(program: str, interpreter: str) -> list[str]:
    """Paths of the libraries ``program`` loads, asking the host's dynamic loader."""
    # `ld.so --list` is what ldd runs; it resolves the libraries without running main().
    result = subprocess.run(
        [interpreter, "--list", program], capture_output=True, text=True,
        env={"LC_ALL": "C", "PATH": DEFAULT_PATH},
    )
    if result.returncode != 0:
        raise ImageError(
            f"cannot list the libraries of {program}: {result.stderr.strip() or result.stdout}"
        )
    libs = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if "=> not found" in line:
            raise ImageError(f"{program} needs {line.split()[0]}, which the host lacks")
        if "=>" in line:
            path = line.split("=>", 1)[1].strip().split(" (")[0]
        else:
            path = line.split(" (")[0]
        if path.startswith("/"):
            libs.append(path)
    return libs


class HostInstaller:
    """Copies host files into an image root, keeping their names working.

    Each file is copied once, at its real (symlink-resolved) path; the name it was
    asked for becomes a relative symlink to it, as on the host. setuid and setgid bits
    are dropped: the image is for looking around, not for privilege.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.copied: set[Path] = set()  # image paths holding host content and times

    def _dest(self, host_path: str) -> Path:
        return self.root / image_path(host_path).lstrip("/")

    def install_file(self, host_path: str) -> Path:
        real = os.path.realpath(host_path)
        named = os.path.join(os.path.realpath(os.path.dirname(host_path)),
                             os.path.basename(host_path))
        dest = self._dest(real)
        if not os.path.lexists(dest):
            dest.parent.mkdir(parents=True, exist_ok=True)
            st = os.stat(real)
            shutil.copyfile(real, dest)
            os.chmod(dest, stat.S_IMODE(st.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
            os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
            self.copied.add(dest)
        link = self._dest(named)
        if link != dest and not os.path.lexists(link):
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(dest, link.parent), link)
        return dest

    def install_program(self, name_or_path: str) -> Path | None:
        """Install a program and its libraries; None when the host has no such program."""
        path = name_or_path if "/" in name_or_path else shutil.which(name_or_path,
                                                                     path=DEFAULT_PATH)
        if path is None:
            return None
        dest = self.install_file(path)
        interp = elf_interpreter(os.path.realpath(path))
        if interp is not None:
            self.install_file(interp)
            for lib in shared_libraries(os.path.realpath(path), interp):
                self.install_file(lib)
        return dest
