"""spec -> Plan (plan.py): typed operations, built right the first time; no helper needed."""

from __future__ import annotations

import pytest

from rootfs_kernel import cell
from rootfs_kernel.ids import IdRange
from rootfs_kernel.linux import MS_RDONLY, NAMESPACES
from rootfs_kernel.sandbox import ops, wire
from rootfs_kernel.sandbox.plan import (
    DNS_FORWARD,
    METADATA,
    RESOLV_CONF,
    Context,
    Places,
    Plan,
    compile_plan,
    plan_for,
    script_head,
)

PLACES = Places.under("/run/rk")
FACTS = wire.Launch(mnt_ns=4026531841)


class Image:
    layers = ["/img/a", "/img/b"]
    env = ["A=1"]
    workdir = None


IDS = IdRange(first=300000, count=65536)


def plan_of(text: str, rootless: bool = False, ids: IdRange | None = None,
            pasta: str | None = "/usr/bin/pasta", host_access: bool = True) -> Plan:
    ctx = Context(places=PLACES, rootless=rootless, uid=1000, gid=1000, cwd="/home",
                  host_env={"PATH": "/bin"}, ids=ids, pasta=pasta, host_access=host_access)
    return plan_for(cell.parse(text), Image, ctx)


def test_the_standard_filesystems_and_masks_are_typed_operations():
    plan = plan_of("%net host\ntrue")
    kinds = [type(op) for op in plan.ops]
    assert kinds[0] is ops.Propagation and kinds[-1] is ops.PivotRoot
    assert [op.path for op in plan.ops if isinstance(op, ops.Mask)][-1] == "/sys/firmware"
    assert "/proc/sys" in [op.path for op in plan.ops if isinstance(op, ops.ReadOnly)]
    assert plan.script_ops == (ops.Hostname("rootfs"),) and plan.own_layers is False


@pytest.mark.parametrize("text", ["true", "%unshare net\ntrue"])
def test_a_sysfs_of_its_own_is_mounted_and_masked_by_the_locked_script(text):
    plan = plan_of(text)
    assert "/sys/firmware" not in [op.path for op in plan.ops if isinstance(op, ops.Mask)]
    sysfs, mask = plan.script_ops[:2]
    assert (sysfs.fstype, sysfs.target, mask) == ("sysfs", "/sys", ops.Mask("/sys/firmware"))
    # ... in the network namespace the script owns, whose lo it brings up itself.
    assert plan.script_ops[2:] == (ops.Loopback("lo"), ops.Hostname("rootfs"))


def test_a_c_cells_program_is_bound_before_the_root_switch():
    ctx = Context(places=PLACES, rootless=False, uid=0, gid=0, cwd="/")
    for text, switch in (("%%c\nint main(){}", ops.PivotRoot),
                         ("%%c\n%root chroot\n%propagation shared\nint main(){}", ops.Chroot)):
        plan = plan_for(cell.parse(text), Image, ctx, c_program="/run/rk/c/cell1")
        i = next(i for i, op in enumerate(plan.ops) if isinstance(op, switch))
        assert plan.ops[i - 1] == ops.Bind("/run/rk/c/cell1", "/dev/.rootfs-kernel-cell",
                                           rec=False, readonly=True, create="file",
                                           optional=False, program=True, lineno=1)
        assert plan.argv == ("/dev/.rootfs-kernel-cell",)
    locked = plan_for(cell.parse("%%c\n%root chroot\nint main(){}"), Image, ctx, c_program="/p")
    assert isinstance(locked.ops[-1], ops.Bind) and isinstance(locked.script_ops[0], ops.Chroot)
    none = plan_for(cell.parse("%%c\n%root none\nint main(){}"), Image, ctx, c_program="/p")
    # on the host's tree, bound onto itself: its mount may run it (a noexec /run)
    assert none.argv == ("/p",) and ops.Bind("/p", "/p", rec=False, readonly=True,
                                             create="file", optional=False, program=True,
                                             in_root=False, lineno=1) in none.ops


def test_shared_propagation_makes_the_scratch_directorys_mount_private_first():
    plan = plan_of("%propagation shared\ntrue")
    i = plan.ops.index(ops.PrivateParent(PLACES.scratch))
    assert plan.ops[i + 1].target == PLACES.scratch and plan.ops[i + 1].fstype == "tmpfs"
    assert not any(isinstance(op, ops.PrivateParent) for op in plan_of("true").ops)


def test_a_host_cell_has_the_kernels_environment_under_the_cells_env():
    ctx = Context(places=PLACES, rootless=False, uid=0, gid=0, cwd="/srv", env={"A": "1"},
                  host_env={"PATH": "/bin", "A": "0"})
    plan = plan_for(cell.parse("%%host\nls"), None, ctx)
    assert plan.host and plan.env == {"PATH": "/bin", "A": "1"}
    assert plan.ops == () and plan.layers is None
    # The host's shell reads the cell from the script pipe too, starting where `cell` is
    # that pipe; the cell's first words go to the kernel's working directory.
    assert plan.argv == ("/bin/sh", "cell") and plan.cwd == PLACES.script_dir
    assert plan.script == script_head("/srv", plan.env, 2) + "ls"


def test_kept_changes_are_the_top_lower_layer_of_the_next_cell():
    ctx = Context(places=PLACES, rootless=True, uid=1000, gid=1000, cwd="/", keep_active=True)
    for code in ("true", "%keep\ntrue", "%keep\n%export x\ntrue"):
        plan = plan_for(cell.parse(code), Image, ctx)
        assert plan.layers.lowers == (PLACES.kept, "/img/b", "/img/a")
        assert plan.layers.upper == f"{PLACES.scratch}/upper" and plan.own_layers
        overlay = next(op for op in plan.ops
                       if isinstance(op, ops.Mount) and op.fstype == "overlay")
        assert overlay.data.endswith(",userxattr") and f"lowerdir={PLACES.kept}:" in overlay.data


@pytest.mark.parametrize("code", ["%keep\ntrue", "%export x\ntrue", "%keep\n%export x\ntrue"])
def test_kept_and_exported_changes_are_written_on_the_cells_own_tmpfs(code):
    """Its size is the cell's disk=, whatever the cell keeps or exports: the kernel copies
    them out of it once the cell is gone (images/upper.py)."""
    plan = plan_of(f"%limit disk=20m\n{code}", ids=IDS)
    assert plan.layers.upper == f"{PLACES.scratch}/upper" and plan.own_layers
    tmpfs = next(op for op in plan.ops if isinstance(op, ops.Mount) and op.target == PLACES.scratch)
    assert tmpfs.fstype == "tmpfs" and f"size={20 << 20}" in tmpfs.data
    assert PLACES.kept not in plan.layers.lowers and not any(
        PLACES.dir in getattr(op, "path", "") and "keep" in getattr(op, "path", "")
        for op in plan.ops)


def test_root_mode_cells_see_the_image_through_idmapped_layers_as_an_unprivileged_root():
    plan = plan_of("true", ids=IDS)
    assert plan.idmap == "0 300000 65536"
    layers = [op for op in plan.ops if isinstance(op, ops.Layer)]
    assert [(op.source, op.target) for op in layers] == [
        ("/img/b", f"{PLACES.scratch}/l0"), ("/img/a", f"{PLACES.scratch}/l1")]
    assert plan.layers.lowers == (f"{PLACES.scratch}/l0", f"{PLACES.scratch}/l1")
    # The overlay's root takes its owner from the upper directory: the cell's root owns it.
    owned = {op.path: (op.uid, op.gid) for op in plan.ops if isinstance(op, ops.Mkdir)}
    assert owned[plan.layers.upper] == owned[f"{PLACES.scratch}/work"] == (300000, 300000)
    # ... and its /dev; the tty group of devpts is the image's group 5.
    dev = next(op for op in plan.ops if isinstance(op, ops.Mount) and op.target == "/dev")
    pts = next(op for op in plan.ops if isinstance(op, ops.Mount) and op.fstype == "devpts")
    assert "uid=300000,gid=300000" in dev.data and "gid=300005" in pts.data
    # Layers are attached before the overlay that stacks them.
    kinds = [type(op) for op in plan.ops]
    overlay = next(i for i, op in enumerate(plan.ops)
                   if isinstance(op, ops.Mount) and op.fstype == "overlay")
    assert max(i for i, k in enumerate(kinds) if k is ops.Layer) < overlay


def test_a_bind_in_an_unprivileged_cell_is_idmapped():
    (bind,) = [op for op in plan_of("%bind /srv /data\ntrue", ids=IDS).ops
               if isinstance(op, ops.Bind) and op.source == "/srv"]
    assert bind.idmap and bind.rec
    (plain,) = [op for op in plan_of("%bind /srv /data\ntrue").ops
                if isinstance(op, ops.Bind) and op.source == "/srv"]
    assert not plain.idmap


@pytest.mark.parametrize("text, unprivileged", [
    ("true", True), ("%root chroot\ntrue", True), ("%root none\ntrue", False),
    ("%root none\n%unshare user\ntrue", True), ("%propagation shared\ntrue", False),
])
def test_only_the_host_access_lines_keep_the_hosts_root(text, unprivileged):
    plan = plan_of(text, ids=IDS)
    assert bool(plan.idmap) is unprivileged
    # An ordinary user's cells are that user already: no range, no idmapped layers.
    assert plan_of(text, rootless=True).idmap == ""


def test_every_cell_has_its_own_mount_pid_uts_and_ipc_namespaces_whatever_unshare_says():
    for text in ("true", "%unshare mnt\ntrue", "%unshare uts\ntrue", "%root none\ntrue"):
        plan = plan_of(text, ids=IDS)
        flags = plan.namespaces | plan.script_namespaces
        for name in ("mnt", "pid", "uts", "ipc"):
            assert flags & NAMESPACES[name], (text, name)
        assert plan.pidns
        # The script owns its UTS and IPC namespaces (hostname, its own mqueue).
        assert plan.script_namespaces & NAMESPACES["ipc"]
    # A network of its own too, owned by the script (it brings lo up), unless %net host.
    for text in ("true", "%unshare net\ntrue", "%root none\ntrue", "%root chroot\ntrue"):
        plan = plan_of(text, ids=IDS)
        assert plan.script_namespaces & NAMESPACES["net"], text
        assert not plan.namespaces & NAMESPACES["net"] and plan.net == "none"
    host = plan_of("%net host\ntrue", ids=IDS)
    assert not (host.namespaces | host.script_namespaces) & NAMESPACES["net"]
    assert not any(isinstance(op, ops.Loopback) for op in host.ops + host.script_ops)


def test_a_cells_proc_sysfs_and_cgroup_mounts_give_no_more_than_the_containers_own():
    plan = plan_of("%mount proc /mnt/p\n%mount sysfs /mnt/s\n%mount cgroup2 /mnt/c\ntrue",
                   ids=IDS)
    every = plan.ops + plan.script_ops   # the sysfs: the script's, in its own network
    masks = {op.path for op in every if isinstance(op, ops.Mask)}
    readonly = {op.path for op in every if isinstance(op, ops.ReadOnly)}
    assert {"/mnt/p/kcore", "/mnt/p/keys", "/mnt/s/firmware"} <= masks
    assert {"/mnt/p/sys", "/mnt/p/sysrq-trigger"} <= readonly
    mounts = {op.target: op for op in every if isinstance(op, ops.Mount)}
    assert mounts["/mnt/s"].flags & MS_RDONLY and mounts["/mnt/c"].flags & MS_RDONLY
    assert not mounts["/mnt/p"].flags & MS_RDONLY


def test_a_queue_filesystem_is_mounted_by_the_script_in_its_own_ipc_namespace():
    plan = plan_of("%mount mqueue /mnt/q\ntrue", ids=IDS)
    assert not any(isinstance(op, ops.Mount) and op.fstype == "mqueue" for op in plan.ops)
    (mq,) = [op for op in plan.script_ops if isinstance(op, ops.Mount) and op.fstype == "mqueue"]
    assert (mq.fstype, mq.target, mq.in_root) == ("mqueue", "/mnt/q", True)


def test_the_chroot_comes_first_among_the_scripts_own_operations():
    plan = plan_of("%root chroot\n%unshare net\ntrue", ids=IDS)
    assert isinstance(plan.script_ops[0], ops.Chroot)
    assert any(isinstance(op, ops.Mount) and op.fstype == "sysfs" for op in plan.script_ops[1:])


def test_a_locked_kernels_chroot_is_made_inside_the_pivoted_root():
    """Unlocked, the script chroots into the new root on the host's tree (the seed's
    escape reaches the host); locked, the root is pivoted first and the script chroots
    within it, so the escape climbs back to the image's root only."""
    free = plan_of("%root chroot\ntrue", ids=IDS)
    assert not any(isinstance(op, ops.PivotRoot) for op in free.ops)
    assert free.script_ops[0] == ops.Chroot(free.root)
    locked = plan_of("%root chroot\ntrue", ids=IDS, host_access=False)
    assert locked.ops[-1] == ops.PivotRoot(locked.root)
    assert locked.script_ops[0] == ops.Chroot("/")
    assert plan_of("true", ids=IDS, host_access=False).ops == plan_of("true", ids=IDS).ops


def test_disk_bounds_the_cells_tmpfs_and_shm_is_bounded_too():
    plan = plan_of("%limit disk=64m\ntrue", ids=IDS)
    scratch = next(op for op in plan.ops if isinstance(op, ops.Mount) and
                   op.target == PLACES.scratch)
    assert f"size={64 << 20}" in scratch.data
    shm = next(op for op in plan.ops if isinstance(op, ops.Mount) and op.target == "/dev/shm")
    assert f"size={64 << 20}" in shm.data


def test_shared_propagation_makes_the_new_roots_binds_private_before_the_masks():
    plan = plan_of("%propagation shared\n%bind /srv /srv\ntrue", ids=IDS)
    i = plan.ops.index(ops.PrivateTree(""))
    assert max(j for j, op in enumerate(plan.ops) if isinstance(op, ops.Bind) and
               op.source.startswith("/dev/")) < i
    assert min(j for j, op in enumerate(plan.ops) if isinstance(op, ops.Mask)) > i
    # The cell's own %bind comes after: it keeps the propagation the experiment is about.
    assert next(j for j, op in enumerate(plan.ops) if isinstance(op, ops.Bind) and
                op.source == "/srv") > i
    assert ops.PrivateTree("") not in plan_of("true").ops


def test_the_compile_of_a_c_cell_sees_the_host_read_only_and_writes_only_its_work_dir():
    ctx = Context(places=PLACES, rootless=False, uid=0, gid=0, cwd="/", ids=IDS)
    plan = compile_plan(ctx, "/run/rk/c/cell1.c", "int main(void) { }\n",
                        ["gcc", "-o", "cell1", "cell1.c"], {"pids": 64, "disk": 20 << 20},
                        [("/usr", "dir", None), ("/bin", "link", "usr/bin"),
                         ("/etc/ld.so.cache", "file", None)])
    binds = {op.source: op for op in plan.ops if isinstance(op, ops.Bind)}
    assert binds["/usr"].readonly and binds["/usr"].rec
    assert binds["/etc/ld.so.cache"].readonly and binds["/etc/ld.so.cache"].create == "file"
    assert ops.Symlink("usr/bin", "/bin") in plan.ops
    # Nothing else of the host: not its /, /home, /root or /etc.
    assert not {"/", "/home", "/root", "/etc"} & set(binds)
    writable = [op for op in plan.ops if isinstance(op, ops.Bind) and not op.readonly
                and op.source not in {f"/dev/{d}" for d in ("null", "zero", "full", "random",
                                                              "urandom", "tty")}]
    assert writable == []   # the work directory is a tmpfs
    # The source is no host file: it comes down the script pipe (fd 3), written into the
    # work directory by the compile's own id, so no idmapped mount is needed to read it.
    assert not any(source.startswith("/run/rk") for source in binds)
    assert plan.script == "int main(void) { }\n"
    assert plan.argv == ("/bin/sh", "-c", "umask 077 && cat >cell1.c <&3 && exec 3<&- && "
                         "exec gcc -o cell1 cell1.c")
    # Each tmpfs gcc may write is the cell's disk= in size; the kernel reads the work
    # directory's after the compile, as a cell's upper layer.
    tmpfs = {op.target: op.data for op in plan.ops if isinstance(op, ops.Mount)
             and op.fstype == "tmpfs" and op.target in (plan.root, "/tmp", "/run/rk/c")}
    assert len(tmpfs) == 3 and all(f"size={20 << 20}" in data for data in tmpfs.values())
    assert plan.layers.upper == f"{plan.root}/run/rk/c" and plan.layers.lowers == ()
    assert isinstance(plan.ops[-1], ops.PivotRoot) and plan.idmap == "0 300000 65536"
    assert plan.cwd == "/run/rk/c" and plan.limits == {"pids": 64, "disk": 20 << 20}


def test_net_user_is_pastas_namespace_which_the_script_cannot_change():
    root = plan_of("%net user\ntrue", ids=IDS)
    # Root mode: rootfs-init makes it in a user namespace of the cell's first id (pasta
    # runs as that id); as an ordinary user, the init's clone makes it (its user
    # namespace owns it). Never the script's: no CLONE_NEWNET among the script's flags.
    assert not (root.namespaces | root.script_namespaces) & NAMESPACES["net"]
    assert (root.net_uid, root.net_map) == (IDS.first, IDS.map_line())
    rootless = plan_of("%net user\ntrue", rootless=True)
    assert rootless.namespaces & NAMESPACES["net"]
    assert not rootless.script_namespaces & NAMESPACES["net"] and rootless.net_uid == -1
    for plan in (root, rootless):
        every = plan.ops + plan.script_ops
        assert not any(isinstance(op, ops.Loopback) for op in every)   # pasta brings lo up
        assert ops.Unreachable(METADATA) in plan.ops and "169.254.169.254" in METADATA
        assert ops.Bind(RESOLV_CONF, "/etc/resolv.conf", rec=False, readonly=True,
                        create="file", optional=False) in plan.ops
        # No port forwarded either way, the host's loopback not mapped to the gateway.
        argv = " ".join(plan.pasta)
        assert plan.pasta[0] == "/usr/bin/pasta" and "--config-net" in argv
        for option in ("-t none", "-u none", "-T none", "-U none", "--no-map-gw",
                       f"--dns-forward {DNS_FORWARD}"):
            assert option in argv, option
        # The namespace's owner (the init) mounts its sysfs, not the script.
        assert any(isinstance(op, ops.Mount) and op.fstype == "sysfs" and op.target == "/sys"
                   for op in plan.ops)
        assert not any(isinstance(op, ops.Mount) and op.fstype == "sysfs"
                       for op in plan.script_ops)
    tokens = wire.setup_tokens(root, FACTS)
    assert tokens[tokens.index("netuid") + 1] == str(IDS.first)
    assert [tokens[i + 1] for i, t in enumerate(tokens) if t == "pasta"] == list(root.pasta)
    assert "pasta" not in wire.setup_tokens(plan_of("true", ids=IDS), FACTS)
    assert open(RESOLV_CONF).read() == f"nameserver {DNS_FORWARD}\n"


def test_net_user_without_pasta_names_the_line_and_the_package():
    with pytest.raises(cell.HeaderError) as info:
        plan_of("%image busybox\n%net user\ntrue", pasta=None)
    assert info.value.lineno == 2 and "passt" in info.value.problem


def test_the_compile_of_a_c_cell_has_a_network_of_its_own():
    ctx = Context(places=PLACES, rootless=False, uid=0, gid=0, cwd="/", ids=IDS)
    plan = compile_plan(ctx, "/run/rk/c/cell1.c", "", ["gcc"], {}, [])
    assert plan.script_namespaces & NAMESPACES["net"]
