"""Fixtures of the reliability suite (helpers live in rkutil.py)."""

from __future__ import annotations

import os

import pytest
from rkutil import KernelDriver


@pytest.fixture(scope="module")
def rk():
    k = KernelDriver()
    k.ok("true")  # the first cell of a new user may build the default image
    yield k
    k.shutdown()


@pytest.fixture
def hostdir(tmp_path):
    """A directory the kernel's user owns and every cell user may enter."""
    os.chmod(tmp_path, 0o755)
    d = tmp_path / "host"
    d.mkdir()
    return d
