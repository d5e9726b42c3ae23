"""Which containers are cloned from the helper's template mount namespace, and when the
kernel has it made again (sandbox/template.py, plan.py's Plan.template)."""

from __future__ import annotations

from rootfs_kernel import cell
from rootfs_kernel.ids import IdRange
from rootfs_kernel.sandbox.plan import RESOLV_CONF, Context, Places, plan_for
from rootfs_kernel.sandbox.template import ALWAYS, Template

PLACES = Places.under("/run/rootfs-kernel/1-ab")


class Image:
    layers, env, workdir = ["/store/layers/a/rootfs"], [], None


class Other:
    layers, env, workdir = ["/store/layers/b/rootfs"], [], None


def plan(text: str, *, rootless: bool = False, host_access: bool = True, image=Image):
    ctx = Context(places=PLACES, rootless=rootless, uid=0, gid=0, cwd="/",
                  ids=None if rootless else IdRange(), display="/cache/display/display",
                  pasta="/usr/bin/pasta", host_access=host_access)
    spec = cell.parse(text, host_access=host_access)
    return plan_for(spec, None if spec.host else image, ctx)


def test_a_default_container_names_every_host_path_its_setup_takes():
    assert set(plan("true").template) == {PLACES.dir, "/store/layers/a/rootfs",
                                          "/cache/display/display"}
    assert RESOLV_CONF in plan("%net user\ntrue").template
    assert plan("%root chroot\ntrue", host_access=False).template   # pivots first


def test_cells_that_see_the_hosts_tree_or_mounts_are_cloned_from_the_hosts_namespace():
    """%root none and an unlocked %root chroot keep the host's tree; %bind takes a host
    path with the mounts below it; slave and shared propagation receive the host's mount
    events; an ordinary user's init may not enter a namespace of the host's."""
    for text in ("%root none\ntrue", "%root chroot\ntrue", "%bind /tmp /x\ntrue",
                 "%propagation slave\ntrue", "%propagation shared\ntrue", "%%host\ntrue"):
        assert plan(text).template == (), text
    assert plan("true", rootless=True).template == ()


def test_the_template_is_made_again_when_the_mount_table_changed_or_a_path_is_new():
    t, first = Template(True), plan("true")
    assert t.use(first, 0) == (True, tuple(sorted({*first.template, *ALWAYS})))
    assert t.use(first, 0) == (True, None)
    assert t.use(first, 1) == (True, tuple(sorted({*first.template, *ALWAYS})))
    other = plan("true", image=Other)
    use, paths = t.use(other, 1)   # another image's layers: both images' paths
    assert use and {"/store/layers/a/rootfs", "/store/layers/b/rootfs"} <= set(paths)
    assert t.use(first, 1) == (True, None)
    assert t.use(plan("%root none\ntrue"), 1) == (False, None)
    t.failed()
    assert t.use(first, 1) == (False, None)
    assert Template(False).use(first, 0) == (False, None)
