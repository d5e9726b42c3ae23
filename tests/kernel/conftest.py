"""Fixtures: a kernel per module, or a fresh one per test."""

from __future__ import annotations

import pytest
from kerneldriver import KernelDriver


@pytest.fixture(scope="module")
def kernel():
    k = KernelDriver()
    k.ok("true")  # the first cell of a new user may build the default image
    yield k
    k.shutdown()


@pytest.fixture
def fresh_kernel():
    k = KernelDriver()
    yield k
    k.shutdown()
