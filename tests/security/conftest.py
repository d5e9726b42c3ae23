"""Fixtures of the security suite: kernels driven through jupyter_client, host markers
(a kernel per module: tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import hostmarkers as hm
import pytest
from kerneldriver import KernelDriver


@pytest.fixture
def fresh_kernel():
    """For attacks that may kill or damage their kernel."""
    k = KernelDriver()
    k.ok("true")
    yield k
    k.shutdown()


@pytest.fixture
def secret():
    """A 0600 file of the kernel's own user (root's under /root as root, else in the
    user's home) that only the host-access lines could let a cell reach."""
    marker = hm.make_secret(Path("/root") if hm.ROOT else Path.home(), "own")
    yield marker
    marker.assert_unchanged()
    marker.remove()


@pytest.fixture
def public_file():
    """A host file anyone may read, in a directory of /tmp (hostmarkers.make_public_file)."""
    marker = hm.make_public_file(Path("/tmp"))
    yield marker
    marker.assert_unchanged()
    marker.remove()
    marker.path.parent.rmdir()


@pytest.fixture
def root_secret():
    """A 0600 file owned by root, also in the ordinary-user pass (placed by test.sh)."""
    marker = hm.root_secret()
    if marker is None:
        pytest.skip("no root-owned marker in this user's home: scripts/test.sh places one")
    yield marker
    marker.assert_unchanged()
    marker.remove()


@pytest.fixture
def empty_dir(tmp_path):
    os.chmod(tmp_path, 0o755)
    marker = hm.make_empty_dir(tmp_path)
    yield marker
    marker.assert_unchanged()


@pytest.fixture
def domainname():
    marker = hm.set_domainname()
    try:
        yield marker
        marker.assert_unchanged()
    finally:
        marker.restore()


@pytest.fixture
def shm():
    marker = hm.make_shm()
    try:
        yield marker
    finally:
        marker.remove()


@pytest.fixture
def locked_kernelspec(tmp_path_factory, monkeypatch):
    """`rootfs-kernel install --locked` into a directory of its own, found through
    JUPYTER_PATH the way a real install is found."""
    prefix = tmp_path_factory.mktemp("locked")
    subprocess.run([sys.executable, "-m", "rootfs_kernel.cli", "install", "--locked",
                    "--prefix", str(prefix)], check=True, capture_output=True)
    path = str(prefix / "share" / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", path + os.pathsep + os.environ.get("JUPYTER_PATH", ""))
    return "rootfs-locked"


@pytest.fixture
def scripts():
    """victim.py and kerneldriver.py where any user may read them (a checkout may be under
    /root): what another user's kernel is driven with (test_boundary_runtime.py)."""
    d = Path(tempfile.mkdtemp(prefix="rk-victim-", dir="/tmp"))
    here = Path(__file__).resolve().parent
    for src in (here / "victim.py", here.parent / "kerneldriver.py"):
        shutil.copy(src, d / src.name)
        os.chmod(d / src.name, 0o644)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)
