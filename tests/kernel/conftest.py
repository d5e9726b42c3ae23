"""Fixtures: a fresh kernel per test (a kernel per module: tests/conftest.py), a shared
host mount to propagate through."""

from __future__ import annotations

import subprocess

import pytest
from kerneldriver import KernelDriver


@pytest.fixture
def fresh_kernel():
    k = KernelDriver()
    yield k
    k.shutdown()


@pytest.fixture
def shared_peer(tmp_path):
    """A host directory bound onto itself and made shared (root only): a mount under it
    in a namespace with a peer of it shows on the host too. Everything mounted on or
    under it is unmounted after, also what came back over the peer group."""
    peer = tmp_path / "peer"
    peer.mkdir()
    subprocess.run(["mount", "--bind", str(peer), str(peer)], check=True)
    subprocess.run(["mount", "--make-shared", str(peer)], check=True)
    try:
        yield peer
    finally:
        while subprocess.run(["umount", "-R", str(peer)], capture_output=True).returncode == 0:
            pass
