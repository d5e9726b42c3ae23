"""The directories and /etc files every built (non-imported) image starts from."""

from __future__ import annotations

import os
from pathlib import Path

# merged-/usr, as Debian, Fedora and Arch ship it
USR_LINKS = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}
DIRS = {
    "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755, "usr/lib": 0o755, "usr/lib64": 0o755,
    "usr/local": 0o755, "usr/local/bin": 0o755, "usr/share": 0o755,
    "dev": 0o755, "etc": 0o755, "home": 0o755, "mnt": 0o755, "opt": 0o755,
    "proc": 0o555, "root": 0o700, "run": 0o755, "srv": 0o755, "sys": 0o555,
    "tmp": 0o1777, "var": 0o755, "var/tmp": 0o1777, "var/log": 0o755,
}


def etc_files(pretty_name: str, os_id: str) -> dict[str, str]:
    return {
        "etc/passwd": (
            "root:x:0:0:root:/root:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
        "etc/group": "root:x:0:\nnogroup:x:65534:\n",
        "etc/hostname": "rootfs\n",
        "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
        # hosts: dns too, for a cell with `%net user` (its resolv.conf names pasta's resolver)
        "etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
        "etc/os-release": (
            f'NAME="{pretty_name}"\n'
            f'PRETTY_NAME="{pretty_name}"\n'
            f"ID={os_id}\n"
            "HOME_URL=\"https://github.com/rootfs-kernel/rootfs-kernel\"\n"
        ),
    }


def make_skeleton(root: Path, pretty_name: str, os_id: str) -> None:
    for rel, mode in DIRS.items():
        path = root / rel
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)  # explicit: the umask must not change the image
    for link, target in USR_LINKS.items():
        os.symlink(target, root / link)
    os.symlink("../proc/self/mounts", root / "etc/mtab")
    for rel, text in etc_files(pretty_name, os_id).items():
        (root / rel).write_text(text, encoding="utf-8")
        os.chmod(root / rel, 0o644)


def finish(root: Path, copied: set[Path]) -> None:
    """The last step of a build from the host's files: directories made on the way to
    copied files get 0755 whatever the umask (the skeleton's keep their modes), and what
    we generated one fixed time, so that building twice gives the same layer digest."""
    for top, dirs, _files in os.walk(root):
        for d in dirs:
            path = Path(top, d)
            if not path.is_symlink() and str(path.relative_to(root)) not in DIRS:
                os.chmod(path, 0o755)
    set_fixed_mtimes(root, copied)


def set_fixed_mtimes(root: Path, keep: set[Path], mtime: int = 0) -> None:
    """Give everything we generated one fixed time, so the layer digest is reproducible.

    Files copied from the host (``keep``) keep the host's times.
    """
    for top, dirs, files in os.walk(root, topdown=False):
        for name in files + dirs:
            path = Path(top, name)
            if path not in keep:
                os.utime(path, (mtime, mtime), follow_symlinks=False)
    os.utime(root, (mtime, mtime))
