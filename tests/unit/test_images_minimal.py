"""The default image, built from the host's own programs."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rootfs_kernel.images import ImageStore

KERNEL_DIR = Path(__file__).resolve().parents[2] / "kernel"


@pytest.fixture(scope="module")
def minimal(tmp_path_factory: pytest.TempPathFactory):
    store = ImageStore(root=tmp_path_factory.mktemp("store"))
    return store.get("minimal")


def test_minimal_builds_on_first_use(minimal) -> None:
    assert minimal.name == "minimal"
    assert minimal.env == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"]
    assert len(minimal.layers) == 1
    assert minimal.meta["layers"][0]["digest"].startswith("sha256:")


def test_minimal_layout(minimal) -> None:
    root = minimal.layers[0]
    for link, target in {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib",
                         "lib64": "usr/lib64"}.items():
        assert os.readlink(root / link) == target
    for d in "dev etc home mnt opt proc root run srv sys tmp var".split():
        assert (root / d).is_dir() and not (root / d).is_symlink(), d
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert "rootfs-kernel minimal" in (root / "etc/os-release").read_text()
    assert (root / "etc/passwd").read_text().startswith("root:x:0:0:")
    assert (root / "etc/group").is_file() and (root / "etc/hostname").is_file()
    for prog in ["sh", "ls", "cat", "mount", "umount", "grep", "stat", "id", "sleep"]:
        assert os.access(root / "usr/bin" / prog, os.X_OK) or os.path.lexists(
            root / "usr/sbin" / prog), prog


def test_minimal_has_no_setuid_files_and_is_owned_by_builder(minimal) -> None:
    for top, dirs, files in os.walk(minimal.layers[0]):
        for name in dirs + files:
            st = os.lstat(os.path.join(top, name))
            assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), name
            assert st.st_uid == os.geteuid()


def test_dynamic_loader_is_where_binaries_expect_it(minimal) -> None:
    from rootfs_kernel.images.hostfiles import elf_interpreter

    root = minimal.layers[0]
    interp = elf_interpreter(os.path.realpath(root / "usr/bin/ls"))
    if interp is None:
        pytest.skip("the host's ls is static")
    assert (root / interp.lstrip("/")).resolve().is_file()
    # resolve inside the image: every hop stays below root
    assert str((root / interp.lstrip("/")).resolve()).startswith(str(root.resolve()))


def test_minimal_digest_is_reproducible(minimal, tmp_path: Path) -> None:
    again = ImageStore(root=tmp_path).get("minimal")
    assert again.meta["layers"] == minimal.meta["layers"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chroot"), reason="chroot needs root")
def test_minimal_runs_in_chroot(minimal) -> None:
    root = str(minimal.layers[0])
    result = subprocess.run(
        ["chroot", root, "/bin/sh", "-c", "ls / && mount -l >/dev/null; echo ok"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.stdout.rstrip().endswith("ok"), result.stderr
    assert "error while loading shared libraries" not in result.stderr
    assert "usr" in result.stdout.split()
    for cmd in ["id -u", "findmnt --version", "grep --version", "stat /", "ps --help",
                "readlink /bin", "env", "whoami"]:
        prog = cmd.split()[0]
        if not os.path.lexists(Path(root, "usr/bin", prog)) and not os.path.lexists(
                Path(root, "usr/sbin", prog)):
            continue  # the host lacks it; the builder skips it
        r = subprocess.run(["chroot", root, "/bin/sh", "-c", cmd],
                           capture_output=True, text=True, timeout=30)
        assert "error while loading shared libraries" not in r.stderr, (cmd, r.stderr)
        assert "not found" not in r.stderr, (cmd, r.stderr)


CONCURRENT = textwrap.dedent(
    """
    import json, sys
    from rootfs_kernel.images import ImageStore
    img = ImageStore(root=sys.argv[1]).get("minimal")
    print(json.dumps(img.meta["layers"]))
    """
)


def test_concurrent_builds_yield_one_intact_image(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(KERNEL_DIR)}
    procs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT, str(tmp_path)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    assert json.loads(outs[0][0]) == json.loads(outs[1][0])
    store = ImageStore(root=tmp_path)
    assert store.names() == ["minimal"]
    assert len(list((tmp_path / "layers").iterdir())) == 1
    assert list((tmp_path / "tmp").iterdir()) == []
    assert (store.load("minimal").layers[0] / "usr/bin/ls").exists()
