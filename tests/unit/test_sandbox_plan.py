"""spec -> Plan (plan.py): typed operations, built right the first time; no helper needed."""

from __future__ import annotations

import json

import pytest

from rootfs_kernel import cell
from rootfs_kernel.sandbox import ops, wire
from rootfs_kernel.sandbox.plan import Context, Places, Plan, plan_for

PLACES = Places.under("/run/rk")
FACTS = wire.HostFacts(mnt_ns=4026531841)


class Image:
    layers = ["/img/a", "/img/b"]
    env = ["A=1"]
    workdir = None


def plan_of(text: str, rootless: bool = False) -> Plan:
    ctx = Context(places=PLACES, rootless=rootless, uid=1000, gid=1000, cwd="/home",
                  host_env={"PATH": "/bin"})
    return plan_for(cell.parse(text), Image, ctx)


@pytest.mark.parametrize("text", [
    "true", "%%host\nls", "%root none\n%show ns\ntrue", "%keep\n%show changes\ntrue",
    "%mount tmpfs /tmp size=1m\n%bind /etc /mnt/etc ro\n%root chroot\n%unshare uts,net\n"
    "%limit pids=10\n%show ls /etc\n%env X=1\necho 'a b'\n",
    "%propagation shared\ntrue",
])
def test_a_plan_crosses_to_the_helper_and_back_unchanged(text):
    plan = plan_of(text)
    again = Plan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again == plan
    assert wire.encode(again, FACTS, parent=3) == wire.encode(plan, FACTS, parent=3)


def test_the_standard_filesystems_and_masks_are_typed_operations():
    plan = plan_of("true")
    kinds = [type(op) for op in plan.ops]
    assert kinds[0] is ops.Propagation and kinds[-1] is ops.PivotRoot
    assert [op.path for op in plan.ops if isinstance(op, ops.Mask)][-1] == "/sys/firmware"
    assert "/proc/sys" in [op.path for op in plan.ops if isinstance(op, ops.ReadOnly)]
    assert not plan.script_ops and plan.own_layers is False


def test_a_sysfs_of_its_own_is_mounted_and_masked_by_the_locked_script():
    plan = plan_of("%unshare net\ntrue")
    assert "/sys/firmware" not in [op.path for op in plan.ops if isinstance(op, ops.Mask)]
    sysfs, mask = plan.script_ops[:2]
    assert (sysfs.fstype, sysfs.target, mask) == ("sysfs", "/sys", ops.Mask("/sys/firmware"))


def test_a_c_cells_program_is_bound_before_the_root_switch():
    ctx = Context(places=PLACES, rootless=False, uid=0, gid=0, cwd="/")
    for text, switch in (("%%c\nint main(){}", ops.PivotRoot),
                         ("%%c\n%root chroot\n%propagation shared\nint main(){}", ops.Chroot)):
        plan = plan_for(cell.parse(text), Image, ctx, c_program="/run/rk/c/cell1")
        i = next(i for i, op in enumerate(plan.ops) if isinstance(op, switch))
        assert plan.ops[i - 1] == ops.Bind("/run/rk/c/cell1", "/dev/.rootfs-kernel-cell",
                                           rec=False, readonly=True, create="file",
                                           optional=False, lineno=1)
        assert plan.argv == ("/dev/.rootfs-kernel-cell",)
    locked = plan_for(cell.parse("%%c\n%root chroot\nint main(){}"), Image, ctx, c_program="/p")
    assert isinstance(locked.ops[-1], ops.Bind) and isinstance(locked.script_ops[0], ops.Chroot)
    none = plan_for(cell.parse("%%c\n%root none\nint main(){}"), Image, ctx, c_program="/p")
    assert none.argv == ("/p",) and not any(isinstance(op, ops.Bind) and op.source == "/p"
                                            for op in none.ops)


def test_shared_propagation_makes_the_scratch_directorys_mount_private_first():
    plan = plan_of("%propagation shared\ntrue")
    i = plan.ops.index(ops.PrivateParent(PLACES.scratch))
    assert plan.ops[i + 1].target == PLACES.scratch and plan.ops[i + 1].fstype == "tmpfs"
    assert not any(isinstance(op, ops.PrivateParent) for op in plan_of("true").ops)


def test_a_host_cell_has_the_kernels_environment_under_the_cells_env():
    ctx = Context(places=PLACES, rootless=False, uid=0, gid=0, cwd="/srv", env={"A": "1"},
                  host_env={"PATH": "/bin", "A": "0"})
    plan = plan_for(cell.parse("%%host\nls"), None, ctx)
    assert plan.host and plan.env == {"PATH": "/bin", "A": "1"} and plan.cwd == "/srv"
    assert plan.ops == () and plan.layers is None


def test_kept_changes_are_the_top_lower_layer_of_the_next_cell():
    ctx = Context(places=PLACES, rootless=True, uid=1000, gid=1000, cwd="/", keep_active=True)
    plan = plan_for(cell.parse("true"), Image, ctx)
    assert plan.layers.lowers == (PLACES.keep_upper, "/img/b", "/img/a")
    assert plan.layers.upper == f"{PLACES.scratch}/upper" and plan.own_layers
    overlay = next(op for op in plan.ops if isinstance(op, ops.Mount) and op.fstype == "overlay")
    assert overlay.data.endswith(",userxattr") and f"lowerdir={PLACES.keep_upper}:" in overlay.data
