"""Fixtures every folder may use: a kernel driven through jupyter_client (kerneldriver.py)."""

from __future__ import annotations

import uuid

import pytest
from kerneldriver import KernelDriver


@pytest.fixture(scope="module")
def kernel():
    """One kernel per test module, its first cell run."""
    k = KernelDriver()
    k.ok("true")  # the first cell of a new user may build the default image
    yield k
    k.shutdown()


@pytest.fixture
def image_name():
    """A name for an image a test makes in the default store, removed after it."""
    from rootfs_kernel.images import ImageStore

    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    store = ImageStore()
    if store.exists(name):
        store.remove(name)
