"""Fixtures every folder may use: a kernel driven through jupyter_client (kerneldriver.py)."""

from __future__ import annotations

import pytest
from kerneldriver import KernelDriver


@pytest.fixture(scope="module")
def kernel():
    """One kernel per test module, its first cell run."""
    k = KernelDriver()
    k.ok("true")  # the first cell of a new user may build the default image
    yield k
    k.shutdown()
