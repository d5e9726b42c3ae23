"""Fixtures: a fresh kernel per test (a kernel per module: tests/conftest.py)."""

from __future__ import annotations

import pytest
from kerneldriver import KernelDriver


@pytest.fixture
def fresh_kernel():
    k = KernelDriver()
    yield k
    k.shutdown()
