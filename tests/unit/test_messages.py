"""Messages that say what happened and what to do (the parts outside the sandbox), and the
locked kernelspec."""

from __future__ import annotations

import errno
import json
import sys

import pytest

from rootfs_kernel import cli
from rootfs_kernel.sandbox import ops, report
from rootfs_kernel.sandbox.plan import Plan

EMPTY = Plan(argv=(), env={})


def _mount_plan(fstype: str, rootless: bool = True) -> Plan:
    return Plan(argv=(), env={}, rootless=rootless, ops=(
        ops.Mount("none", "/mnt", fstype, 0, "", in_root=True, create="dir", lineno=1),))


@pytest.mark.parametrize("err", [errno.EAGAIN, errno.ENOMEM])
def test_resource_exhaustion_at_clone_says_what_happened_not_restart(err):
    text = report.describe_error(EMPTY, {"kind": "clone", "errno": err})
    assert "out of processes or memory" in text and "run the cell again" in text
    assert "restart the kernel" not in text and "user namespaces may be disabled" not in text


def test_too_many_namespaces_says_so():
    text = report.describe_error(EMPTY, {"kind": "clone", "errno": errno.ENOSPC})
    assert "limit on namespaces" in text and "user.max_user_namespaces" in text


def test_a_forbidden_unshare_still_points_at_the_host_settings():
    text = report.describe_error(EMPTY, {"kind": "clone", "errno": errno.EPERM})
    assert "rootfs-kernel doctor" in text


@pytest.mark.parametrize("fstype", ["sysfs", "mqueue", "bpf"])
def test_the_rootless_hint_does_not_claim_what_fails(fstype):
    text = report.describe_error(_mount_plan(fstype), {"kind": "errno", "index": 0,
                                                       "errno": errno.EPERM})
    assert f"{fstype} is refused in a user namespace here" in text
    assert "sysfs with %unshare net" not in text
    assert "tmpfs, ramfs, proc, devpts and overlay" in text


def test_the_rootless_hint_for_cgroup2_names_the_line_that_makes_it_work():
    text = report.describe_error(_mount_plan("cgroup2"), {"kind": "errno", "index": 0,
                                                          "errno": errno.EPERM})
    assert "%unshare mnt,pid,cgroup" in text


def test_a_filesystem_an_ordinary_user_may_mount_blames_the_options():
    text = report.describe_error(_mount_plan("overlay"), {"kind": "errno", "index": 0,
                                                          "errno": errno.EPERM})
    assert "may mount overlay, but not with these options" in text


def test_root_gets_no_rootless_hint():
    text = report.describe_error(_mount_plan("sysfs", rootless=False),
                                 {"kind": "errno", "index": 0, "errno": errno.EPERM})
    assert text.endswith("Operation not permitted")


def test_the_locked_kernelspec_turns_host_access_off(tmp_path, capsys):
    assert cli.main(["install", "--locked", "--prefix", str(tmp_path)]) == 0
    spec = json.loads((tmp_path / "share/jupyter/kernels/rootfs-locked/kernel.json").read_text())
    assert spec["argv"][:3] == [sys.executable, "-m", "rootfs_kernel"]
    assert "--RootfsKernel.host_access=False" in spec["argv"]
    assert spec["env"] == {"ROOTFS_KERNEL_HOST_ACCESS": "0"}
    assert "locked" in spec["display_name"]
    assert "jupyter kernelspec remove rootfs" in capsys.readouterr().out
    # The plain install is unchanged.
    assert cli.main(["install", "--prefix", str(tmp_path)]) == 0
    plain = json.loads((tmp_path / "share/jupyter/kernels/rootfs/kernel.json").read_text())
    assert "--RootfsKernel.host_access=False" not in plain["argv"] and "env" not in plain
