"""Issue 21, class 1: the chroot escape of `%root chroot` in a locked kernel.

The classic escape (mkdir d; chroot d; chdir("..") until the top; chroot(".")), as a %%c
cell. Unlocked, it reaches the host's / (the seed's lesson: chroot can be escaped; in
root mode as the unprivileged id). Locked, the cell's root is pivoted into the container
before the script's chroot, so the escape climbs back only to the image's root: no host
marker, not the kernel's connection file, and `/` lists as the image's root.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import hostmarkers as hm
import pytest
from kerneldriver import KernelDriver

# The escape, then what it reached: "/" listed, and each probe path read, stat'ed or absent.
ESCAPE_C = r"""%%c
%root chroot
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
static const char *probes[] = {PROBES NULL};
static const char *write_to = WRITE;
int main(void) {
    mkdir("/escape-dir", 0755);
    chdir("/");
    if (chroot("/escape-dir") != 0) { perror("chroot"); return 2; }
    for (int i = 0; i < 64; i++) chdir("..");
    if (chroot(".") != 0) { perror("chroot ."); return 3; }
    chdir("/");
    DIR *d = opendir("/");
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') printf("ls %s\n", e->d_name);
    for (int i = 0; probes[i]; i++) {
        struct stat st;
        char buf[200] = {0};
        int fd = open(probes[i], O_RDONLY);
        if (fd >= 0 && read(fd, buf, sizeof buf - 1) >= 0) printf("read %s %s\n", probes[i], buf);
        else if (stat(probes[i], &st) == 0) printf("exists %s\n", probes[i]);
        else printf("absent %s\n", probes[i]);
    }
    if (write_to) printf("%s\n", open(write_to, O_CREAT | O_EXCL | O_WRONLY, 0644) >= 0
                                ? "wrote" : "refused");
    return 0;
}
"""


@pytest.fixture
def public_marker():
    """A world-readable file in a directory anyone may write: the unlocked escape (an
    unprivileged id in root mode) reads it; a locked one must not even find it."""
    d = Path(tempfile.mkdtemp(prefix="rootfs-kernel-chroot-", dir="/tmp"))
    os.chmod(d, 0o777)
    path = d / "public"
    value = hm.token("public")
    path.write_text(value)
    os.chmod(path, 0o644)
    yield path, value
    shutil.rmtree(d)


def _escape(k: KernelDriver, *probes: Path, write: Path | None = None
            ) -> tuple[list[str], dict[str, str]]:
    code = ESCAPE_C.replace("PROBES", "".join(f"{json.dumps(str(p))}, " for p in probes))
    code = code.replace("WRITE", json.dumps(str(write)) if write else "NULL")
    res = k.run(code, timeout=90)
    assert res.ok, (res.stdout, res.stderr, res.reply)
    listed = sorted(line[3:] for line in res.stdout.splitlines() if line.startswith("ls "))
    found = {}
    for line in res.stdout.splitlines():
        how, _, rest = line.partition(" ")
        if how in ("read", "exists", "absent", "wrote", "refused"):
            path, _, content = rest.partition(" ")
            found[path or "write"] = how if how != "read" else f"read {content}"
    return listed, found


def _image_root(k: KernelDriver) -> list[str]:
    return sorted(k.ok("ls /", timeout=30).stdout.split())


def test_a_locked_kernels_chroot_escape_lands_in_the_image(locked_kernelspec, secret,
                                                           public_marker):
    k = KernelDriver(kernel_name=locked_kernelspec)
    try:
        image = _image_root(k)
        connection = Path(k.km.connection_file)
        planted = public_marker[0].parent / "planted"
        listed, found = _escape(k, secret.path, connection, public_marker[0], write=planted)
        # The escape "succeeds" (chroot can always be climbed out of), and what it reaches
        # is the container's root: the image's directories, nothing of the host.
        assert [n for n in listed if n != "escape-dir"] == image, listed
        assert found == {**{str(p): "absent" for p in (secret.path, connection,
                                                       public_marker[0])},
                         "write": "refused"}, found
        assert not planted.exists()
        secret.assert_unread(json.dumps(found))
        # and the next plain cell still runs in a fresh container
        assert "escape-dir" not in _image_root(k)
    finally:
        k.shutdown()


def test_an_unlocked_kernels_chroot_escape_still_reaches_the_host(kernel, public_marker):
    """The seed's lesson stays: chroot does not confine a root process."""
    path, value = public_marker
    planted = path.parent / "planted"
    listed, found = _escape(kernel, path, write=planted)
    assert found[str(path)] == f"read {value}", found
    assert found["write"] == "wrote" and planted.exists()
    assert "escape-dir" not in listed   # the host's /, where the cell made nothing
