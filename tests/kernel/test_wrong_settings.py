"""A kernel started with a wrong setting starts, and every cell says which setting is wrong
and what it takes (a kernel that dies at start is restarted by the front-end in a loop).
Driven through jupyter_client, as a front-end does."""

from __future__ import annotations

import os

import pytest
from kerneldriver import KernelDriver


@pytest.mark.parametrize("env, argv, says", [
    ({"ROOTFS_KERNEL_LIMITS": "pids=abc"}, [],
     "ROOTFS_KERNEL_LIMITS='pids=abc': pids must be a number, got 'abc'"),
    ({"ROOTFS_KERNEL_ID_RANGE": "x"}, [],
     "ROOTFS_KERNEL_ID_RANGE='x': expected FIRST:COUNT host ids"),
    ({"ROOTFS_KERNEL_STORE_SIZE": "lots"}, [],
     "ROOTFS_KERNEL_STORE_SIZE='lots': 'lots' is not a size"),
    ({"ROOTFS_KERNEL_HOST_ACCESS": "maybe"}, [],
     "ROOTFS_KERNEL_HOST_ACCESS='maybe': takes 1 or 0"),
    ({}, ["--RootfsKernel.max_live_views=many"],
     "--RootfsKernel.max_live_views='many': takes a whole number"),
], ids=["limits", "id-range", "store-size", "host-access", "argv"])
def test_a_wrong_setting_is_said_by_every_cell(env, argv, says):
    k = KernelDriver(env={**os.environ, **env}, extra_arguments=argv)
    try:
        for code in ("echo ran", "%%host\necho ran", "%help"):
            res = k.run(code)
            assert res.reply["status"] == "error" and "ran" not in res.stdout
            assert res.reply["ename"] == "SettingError"
            assert says in res.reply["evalue"], res.reply["evalue"]
            assert "restart the kernel" in res.reply["evalue"]
            assert res.errors and res.errors[0]["ename"] == "SettingError"
        # The kernel lives and answers other requests.
        k.kc.kernel_info()
        assert k.kc.get_shell_msg(timeout=10)["content"]["status"] == "ok"
    finally:
        k.shutdown()


def test_the_argv_wins_over_the_environment(tmp_path):
    """The locked kernelspec's argv says host_access=False; a variable saying 1 does not
    unlock it. A right variable is taken where the argv says nothing."""
    k = KernelDriver(env={**os.environ, "ROOTFS_KERNEL_HOST_ACCESS": "1",
                          "ROOTFS_KERNEL_LIMITS": "pids=77"},
                     extra_arguments=["--RootfsKernel.host_access=False"])
    try:
        res = k.run("%%host\necho ran")
        assert res.reply["ename"] == "HeaderError" and "ran" not in res.stdout
        limits = k.ok("grep 'Max processes' /proc/self/limits").stdout.split()
        assert limits[2:4] == ["77", "77"], limits
    finally:
        k.shutdown()
