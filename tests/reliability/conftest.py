"""Fixtures of the reliability suite (helpers live in rkutil.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def rk(kernel):
    """The module's kernel (tests/conftest.py)."""
    return kernel


@pytest.fixture
def hostdir():
    """A directory the kernel's user owns and every cell user may reach: not under
    pytest's own tmp dir, which only its user may enter (a cell's root is an unprivileged
    id on the host when the kernel runs as root)."""
    top = Path(tempfile.mkdtemp(prefix="rootfs-kernel-hostdir-", dir="/tmp"))
    os.chmod(top, 0o755)
    d = top / "host"
    d.mkdir()
    yield d
    shutil.rmtree(top, ignore_errors=True)
