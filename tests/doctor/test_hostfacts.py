"""Every host condition of `rootfs-kernel doctor`, detected from a fake /proc and /sys.

For each condition: doctor names it with the fix the host's tools document, and a cell
whose setup the host refused (the error rootfs-init reports, at the operation of a real
plan) gets the same cause and fix in its one-line message.
"""

from __future__ import annotations

import errno

import pytest
from fakehost import CAPS_DOCKER, HEALTHY_MOUNTS, USER, host, mountinfo_with

from rootfs_kernel import cell, hostfacts
from rootfs_kernel.sandbox import report
from rootfs_kernel.sandbox.plan import Context, Places, Plan, plan_for

EPERM, ENOSPC, EINVAL, EACCES = errno.EPERM, errno.ENOSPC, errno.EINVAL, errno.EACCES


def plan(rootless: bool, code: str = "true") -> Plan:
    ctx = Context(places=Places.under("/tmp/rootfs-kernel-0/4242-abcd"), rootless=rootless,
                  uid=1000 if rootless else 0, gid=1000 if rootless else 0, cwd="/")

    class Image:
        layers, env, workdir = ["/store/layers/a/rootfs"], [], None

    return plan_for(cell.parse(code), Image, ctx)


def op_index(p: Plan, op: str, fstype: str | None = None) -> int:
    return next(i for i, o in enumerate(p.ops)
                if o.KIND == op and (fstype is None or getattr(o, "fstype", None) == fstype))


RUNTIME, STORE = "/tmp/rootfs-kernel-0", "/root/.local/share/rootfs-kernel"


def facts(tmp_path, euid: int = 0, **kw) -> hostfacts.Facts:
    return hostfacts.read_facts(host(tmp_path, **kw), euid=euid, dirs=(RUNTIME, STORE))


def finding(f: hostfacts.Facts, key: str) -> hostfacts.Finding:
    found = {x.key: x for x in hostfacts.diagnose(f)}
    assert key in found, [x.key for x in hostfacts.diagnose(f)]
    return found[key]


def failed(f: hostfacts.Facts) -> set[str]:
    return {x.key for x in hostfacts.diagnose(f) if not x.ok}


def message(f: hostfacts.Facts, p: dict, kind: str, err: int, index: int = -1) -> str:
    return report.describe_error(p, {"kind": kind, "index": index, "errno": err},
                                 lambda kind, err, op: hostfacts.cause(kind, err, op, f))


def test_a_healthy_host_fails_nothing(tmp_path):
    f = facts(tmp_path, cgroup="0::/", cgroup_dirs={"/": ("cpu memory pids", "cpu memory pids")})
    assert failed(f) == set(), hostfacts.diagnose(f)
    assert finding(f, "limits").ok and "cgroup v2" in finding(f, "limits").detail


# -- user namespaces ---------------------------------------------------------------------
@pytest.mark.parametrize("euid", [0, USER])
def test_max_user_namespaces_zero(tmp_path, euid):
    f = facts(tmp_path, euid=euid, max_userns=0)
    found = finding(f, "userns-limit")
    assert not found.ok and "user.max_user_namespaces = 0" in found.detail
    assert "sysctl -w user.max_user_namespaces=" in found.fix
    # root: the script's own user namespace (index -1); rootless: the cell's clone
    p = plan(rootless=euid != 0)
    text = message(f, p, "errno" if euid == 0 else "clone", ENOSPC)
    assert "No space left on device" in text and "user.max_user_namespaces" in text, text
    assert "sysctl -w user.max_user_namespaces=" in text and "%%host" in text


def test_debian_unprivileged_userns_clone_zero(tmp_path):
    f = facts(tmp_path, euid=USER, userns_clone=0)
    found = finding(f, "userns-clone")
    assert not found.ok and "sysctl -w kernel.unprivileged_userns_clone=1" in found.fix
    text = message(f, plan(True), "clone", EPERM)
    assert "kernel.unprivileged_userns_clone = 0" in text and "=1" in text, text
    # root is not concerned by the switch
    assert "userns-clone" not in failed(facts(tmp_path, euid=0, userns_clone=0))


# -- AppArmor (Ubuntu 23.10+) ------------------------------------------------------------
def test_apparmor_restriction_is_named_with_the_profile_and_the_sysctl(tmp_path):
    f = facts(tmp_path, euid=USER, apparmor=True, apparmor_restrict=1,
              apparmor_profiles=["unprivileged_userns (enforce)", "lsb_release (enforce)"])
    found = finding(f, "apparmor")
    assert not found.ok and "apparmor_restrict_unprivileged_userns = 1" in found.detail
    assert "rootfs-kernel doctor --apparmor-profile" in found.fix
    assert "apparmor_parser -r" in found.fix
    assert "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in found.fix
    # The namespace is created, then mapping the ids (before any operation) is refused ...
    text = message(f, plan(True), "errno", EPERM)
    assert "mapping ids" in text and "--apparmor-profile" in text, text
    # ... or the first mount is.
    p = plan(True)
    text = message(f, p, "errno", EPERM, index=1)
    assert "apparmor_restrict_unprivileged_userns" in text, text


def test_apparmor_with_the_profile_loaded_or_as_root_passes(tmp_path):
    profiles = ["rootfs-kernel-init (unconfined)", "unprivileged_userns (enforce)"]
    f = facts(tmp_path, euid=USER, apparmor=True, apparmor_restrict=1,
              apparmor_profiles=profiles)
    assert "apparmor" not in failed(f)
    assert "allows rootfs-init" in finding(f, "apparmor").detail
    assert "apparmor" not in failed(facts(tmp_path, euid=0, apparmor=True, apparmor_restrict=1))
    # the sysctl without AppArmor enabled restricts nothing
    assert "apparmor" not in failed(facts(tmp_path, euid=USER, apparmor=False,
                                          apparmor_restrict=1))


# -- containers: seccomp, capabilities, /proc masks --------------------------------------
def test_docker_default_root_no_sys_admin_and_seccomp(tmp_path):
    f = facts(tmp_path, euid=0, seccomp=2, caps=CAPS_DOCKER, dockerenv=True,
              mounts=mountinfo_with(
                  "600 500 0:50 / /proc/kcore rw - tmpfs tmpfs ro",
                  root_line="500 400 0:45 / / rw,relatime - overlay overlay rw,lowerdir=/l"))
    assert f.container == "docker"
    assert {"seccomp", "caps", "proc-masks"} <= failed(f)
    caps = finding(f, "caps")
    assert "--cap-add SYS_ADMIN" in caps.fix and "--privileged" in caps.fix
    assert "capabilities.add: [SYS_ADMIN]" in caps.fix
    assert "seccomp=unconfined" in finding(f, "seccomp").fix
    assert "systempaths=unconfined" in finding(f, "proc-masks").fix
    assert "procMount: Unmasked" in finding(f, "proc-masks").fix
    text = message(f, plan(False), "clone", EPERM)
    # the call rootfs-init made: a filter may refuse clone(2) and allow unshare(2)
    assert "clone(CLONE_NEWNS|CLONE_NEWPID|SIGCHLD) failed (Operation not permitted)" in text
    assert "unshare" not in text.split(" — ")[0], text
    assert "seccomp=unconfined" in text and "the docker container" in text, text


def test_podman_rootless_user_namespace_root(tmp_path):
    f = facts(tmp_path, euid=0, uid_map="0 1000 1\n1 100000 65536", containerenv=True)
    assert f.userns_root and f.container == "podman"
    assert "root of a user namespace" in finding(f, "user").detail


def test_masked_proc_explains_a_refused_proc_mount(tmp_path):
    f = facts(tmp_path, euid=USER, mounts=mountinfo_with(
        "601 22 0:51 / /proc/keys rw - tmpfs tmpfs ro",
        "602 22 0:6 /null /proc/kcore rw - devtmpfs udev rw"))
    assert f.proc_masked == ("/proc/keys", "/proc/kcore")
    p = plan(True)
    text = message(f, p, "errno", EPERM, index=op_index(p, "mount", "proc"))
    assert "systempaths=unconfined" in text and "the mount of proc on /proc" in text, text


def test_a_vm_made_from_a_container_image_is_not_called_a_container(tmp_path):
    """This project's own machines keep the /.dockerenv of the image they were made from."""
    assert facts(tmp_path, dockerenv=True).container is None


# -- what the cells themselves use: their seccomp filter, pasta ----------------------------
def test_a_kernel_without_errno_filters_fails_every_cell_and_says_what_runs_one(tmp_path):
    f = facts(tmp_path, seccomp_actions="kill_process kill_thread trap allow")
    assert "seccomp-filter" in failed(f)
    found = finding(f, "seccomp-filter")
    assert not found.optional and "CONFIG_SECCOMP_FILTER" in found.detail
    assert "%seccomp off" in found.fix and "locked kernel refuses" in found.fix
    assert finding(facts(tmp_path / "ok"), "seccomp-filter").ok


def test_no_pasta_is_a_missing_feature_named_with_its_package(tmp_path):
    f = facts(tmp_path, pasta=False)
    found = finding(f, "pasta")
    assert not found.ok and found.optional and "%net user" in found.detail
    assert "apt-get install passt" in found.fix
    there = finding(facts(tmp_path / "with"), "pasta")
    assert there.ok and str(tmp_path / "with" / "usr/bin/pasta") in there.detail


# -- kernels and filesystems -------------------------------------------------------------
def test_no_overlayfs(tmp_path):
    f = facts(tmp_path, filesystems=["nodev\ttmpfs", "nodev\tproc", "\text4"])
    assert "overlay" in failed(f) and "modprobe overlay" in finding(f, "overlay").fix
    p = plan(False)
    text = message(f, p, "errno", errno.ENODEV, index=op_index(p, "mount", "overlay"))
    assert "modprobe overlay" in text, text


def test_overlay_in_a_user_namespace_needs_5_11(tmp_path):
    f = facts(tmp_path, euid=USER, release="5.10.0-28-amd64")
    found = finding(f, "overlay-userns")
    assert not found.ok and "5.11" in found.detail
    p = plan(True)
    text = message(f, p, "errno", EPERM, index=op_index(p, "mount", "overlay"))
    assert "5.11" in text and "as root" in text, text
    assert "overlay-userns" not in failed(facts(tmp_path, euid=0, release="5.10.0-28-amd64"))
    assert "overlay-userns" not in failed(facts(tmp_path, euid=USER, release="5.11.0"))


CONTAINER_ROOT = "500 400 0:45 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u"


def test_a_containers_overlay_root_under_keep_and_export(tmp_path):
    f = facts(tmp_path, mounts=mountinfo_with(root_line=CONTAINER_ROOT))
    assert f.runtime_fs == "overlay" and f.store_fs == "overlay"
    runtime, store = finding(f, "runtime-overlay"), finding(f, "store-overlay")
    assert "--tmpfs /tmp" in runtime.fix and "emptyDir" in runtime.fix
    assert "%keep" in runtime.detail and "whiteouts" in runtime.detail
    assert f"a volume at {STORE}" in store.fix
    # every cell's upper is on the tmpfs of its own, a %keep cell's too: an overlay the
    # kernel refuses has another cause
    for code in ("true", "%keep\ntrue", "%export x\ntrue"):
        p = plan(False, code)
        text = message(f, p, "errno", EINVAL, index=op_index(p, "mount", "overlay"))
        assert "--tmpfs" not in text, text
    # with a tmpfs at /tmp only the store is left
    g = facts(tmp_path, mounts=mountinfo_with(
        "510 500 0:46 / /tmp rw - tmpfs tmpfs rw", root_line=CONTAINER_ROOT))
    assert "runtime-overlay" not in failed(g) and "store-overlay" in failed(g)


def test_initramfs_root(tmp_path):
    f = facts(tmp_path, mounts=mountinfo_with(
        root_line="1 1 0:2 / / rw - rootfs rootfs rw,size=1024k"))
    found = finding(f, "root-ramfs")
    assert f.root_absolute and "pivot_root refuses it" in found.detail
    assert "runc --no-pivot" in found.detail
    p = plan(False)
    text = message(f, p, "errno", EINVAL, index=op_index(p, "pivot_root"))
    assert "initial ramfs" in text, text


def test_chroot_root(tmp_path):
    f = facts(tmp_path, mounts=mountinfo_with(root_line=None))
    found = finding(f, "root-chroot")
    assert not found.ok and "in a chroot" in found.detail and "EPERM" in found.detail
    assert "pivot_root . ." in found.fix and "mount --bind DIR DIR" not in found.fix
    p = plan(False)
    text = message(f, p, "errno", EINVAL, index=op_index(p, "propagation"))
    assert "not even a mount point" in text and "pivot_root" in text, text
    # root mode: the id map's user namespace is refused first
    assert "in a chroot" in message(f, p, "clone", EPERM)


CHROOT_ROOT = "700 28 254:1 /srv/chroot / rw,relatime - ext4 /dev/vda1 rw"


def test_a_chroot_whose_directory_is_a_mount_point(tmp_path):
    """mount --bind DIR DIR; chroot DIR: / is a mount point, and PID 1 (in the same mount
    namespace) has that mount at DIR: the kernel refuses new user namespaces all the same."""
    seen_by_init = [*HEALTHY_MOUNTS, CHROOT_ROOT.replace(" / rw", " /srv/chroot rw")]
    for euid in (0, USER):
        f = facts(tmp_path, euid=euid, mounts=mountinfo_with(root_line=CHROOT_ROOT),
                  pid1_mounts=seen_by_init)
        assert f.chroot_dir == "/srv/chroot" and f.root_mount == "ext4"
        found = finding(f, "root-chroot")
        assert not found.ok and "PID 1 sees this root at /srv/chroot" in found.detail
        assert "mount --rbind /srv/chroot /srv/chroot && cd /srv/chroot && pivot_root . ." \
            in found.fix, found.fix
        text = message(f, plan(euid != 0), "clone", EPERM)
        assert "in a chroot" in text and "pivot_root" in text, text
        assert "max_user_namespaces" not in text and "seccomp" not in text, text
    # PID 1 sees the same mount as its own /: no chroot; in another mount namespace
    # (no such mount id there): not known, nothing said
    for init in (mountinfo_with(root_line=CHROOT_ROOT), HEALTHY_MOUNTS):
        f = facts(tmp_path, mounts=mountinfo_with(root_line=CHROOT_ROOT), pid1_mounts=init)
        assert f.chroot_dir is None and "root-chroot" not in failed(f)


def test_wsl2(tmp_path):
    f = facts(tmp_path, release="5.15.153.1-microsoft-standard-WSL2",
              mounts=mountinfo_with(root_line="30 1 8:32 / / rw,relatime - ext4 /dev/sdc rw"))
    assert f.wsl and not f.root_shared
    assert "WSL2" in finding(f, "kernel").detail
    prop = finding(f, "propagation")
    assert "mount --make-rshared /" in prop.fix and "%propagation shared" in prop.detail


# -- cgroups -----------------------------------------------------------------------------
SCOPE = "user.slice/user-1000.slice/user@1000.service/app.slice/jupyter.scope"


def test_cgroup_v2_only_not_delegated(tmp_path):
    f = facts(tmp_path, euid=USER + 1, cgroup=f"0::/{SCOPE}",
              cgroup_dirs={SCOPE: ("cpu memory pids", "")})
    found = finding(f, "limits")
    assert not found.ok and found.optional
    assert "belongs to root" in found.detail and "setrlimit" in found.detail


def test_cgroup_v2_delegated_but_holding_processes(tmp_path):
    """systemd-run --user --scope -p Delegate=yes: the scope is ours, its controllers are
    available, but the kernel's own processes sit in it, so none can be enabled below."""
    f = facts(tmp_path, euid=USER, cgroup=f"0::/{SCOPE}",
              cgroup_dirs={SCOPE: ("cpu memory pids", "")})
    assert f.cgroups.v2_delegated
    found = finding(f, "limits")
    assert not found.ok and "subtree_control" in found.detail and "setrlimit" in found.detail
    assert "child cgroup" in found.fix


def test_cgroup_v2_delegated_with_controllers_below(tmp_path):
    f = facts(tmp_path, euid=USER, cgroup=f"0::/{SCOPE}",
              cgroup_dirs={SCOPE: ("cpu memory pids", "memory pids")})
    found = finding(f, "limits")
    assert found.ok and "memory, pids" in found.detail


V1 = mountinfo_with("39 23 0:29 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755",
                    "40 39 0:30 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids",
                    "41 39 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
                    "42 39 0:32 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw",
                    cgroup2=False)


def test_cgroup_v1_as_root_and_as_an_ordinary_user(tmp_path):
    f = facts(tmp_path, euid=USER, mounts=V1)
    assert f.cgroups.v1 == {"pids", "memory"}
    found = finding(f, "limits")
    assert not found.ok and "v1 controllers belong to root" in found.detail
    root = finding(facts(tmp_path, euid=0, mounts=V1), "limits")
    assert root.ok and "cgroup v1 (memory, pids)" in root.detail
    # a container's runtime mounts them read-only
    ro = [line.replace(" rw - cgroup", " ro - cgroup") for line in V1]
    found = finding(facts(tmp_path, euid=0, mounts=ro), "limits")
    assert not found.ok and "read-only" in found.detail and "setrlimit" in found.detail


# -- report.py keeps its generic words where no condition is found -----------------------
def test_no_known_cause_keeps_the_generic_message(tmp_path):
    f = facts(tmp_path)
    text = message(f, plan(False), "clone", EPERM)
    assert "user namespaces may be disabled" in text and "rootfs-kernel doctor" in text
    assert "refuse clone(2) with namespace flags" in text
    assert "chroot" in text and "pivot_root" in text
