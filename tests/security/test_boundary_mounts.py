"""Issue 13, what a cell's own mounts and namespaces reach: classes 2 (%mount options on the
host), 3 (host sysctls and sysfs), 4 (%propagation shared), 7 (shared IPC, UTS, cgroups)
and defence in depth (root in a cell is not root on the host)."""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

import hostmarkers as hm
import pytest
from kerneldriver import ROOT, KernelDriver


def _c(body: str, includes: str = "") -> str:
    return ("%%c\n#include <stdio.h>\n#include <stdlib.h>\n#include <unistd.h>\n"
            "#include <fcntl.h>\n#include <sys/stat.h>\n" + includes +
            "int main(void) {\n" + body + "\nreturn 0;\n}\n")


# -- class 2: %mount sources and options mean paths in the cell's rootfs ---------------------------
def test_class2_overlay_lower_layers_are_not_host_paths(kernel, public_file):
    """A file anyone may read: only the path's meaning keeps it out (a 0600 one would be
    kept out by root's cells being an unprivileged id too, see the defence tests)."""
    res = kernel.run(f"%mount overlay /mnt lowerdir={public_file.path.parent}:/etc\n"
                     f"cat /mnt/{public_file.path.name}", timeout=30)
    public_file.assert_unread(hm.texts_of(res))
    # The mount failed: the image has no such directory.
    assert not res.ok and "No such file or directory" in res.errors[0]["evalue"]


def test_class2_overlay_upper_and_work_dirs_are_not_host_paths(kernel, tmp_path):
    os.chmod(tmp_path, 0o755)
    upper, work = hm.make_empty_dir(tmp_path), hm.make_empty_dir(tmp_path)
    kernel.run(f"%mount overlay /mnt lowerdir=/etc:/usr,upperdir={upper.path},"
               f"workdir={work.path}\necho written > /mnt/rk-written", timeout=30)
    upper.assert_unchanged()
    work.assert_unchanged()


def test_class2_overlay_layer_by_layer_options_are_not_host_paths(kernel, public_file):
    """Linux 6.8's one-layer-per-option form (`lowerdir+=DIR`) names paths too. (A %mount
    line cannot name a source: the plan's is always "none", and a `source=` option is
    refused by the kernel as a second one.)"""
    probe = kernel.run("%mount overlay /mnt lowerdir+=/usr,lowerdir+=/etc\ntrue", timeout=30)
    if not probe.ok:
        pytest.skip(f"this host's overlayfs has no lowerdir+= ({probe.errors})")
    res = kernel.run(f"%mount overlay /mnt lowerdir+={public_file.path.parent},"
                     f"lowerdir+=/etc\ncat /mnt/{public_file.path.name}", timeout=30)
    public_file.assert_unread(hm.texts_of(res))
    assert not res.ok and "No such file or directory" in res.errors[0]["evalue"]


# -- class 3: no host sysctl or sysfs file is writable from a cell ---------------------------------
def test_class3_a_proc_the_cell_mounts_cannot_write_host_sysctls(kernel, domainname):
    kernel.run("%mount proc /mnt\necho rk-changed > /mnt/sys/kernel/domainname", timeout=30)
    domainname.assert_unchanged()


KSM = Path("/sys/kernel/mm/ksm/sleep_millisecs")


@pytest.mark.skipif(not KSM.exists(), reason="no ksm in this host's sysfs")
def test_class3_a_sysfs_the_cell_mounts_is_not_the_hosts_to_write(kernel):
    before = KSM.read_text()
    try:
        kernel.run(f"%mount sysfs /mnt\necho {int(before) + 7} > /mnt/kernel/mm/ksm/"
                   "sleep_millisecs", timeout=30)
        assert KSM.read_text() == before, "a cell changed the host's sysfs"
    finally:
        if ROOT and KSM.read_text() != before:
            KSM.write_text(before)


def test_class3_the_containers_own_proc_sys_is_read_only(kernel, domainname):
    res = kernel.run("echo rk-changed > /proc/sys/kernel/domainname", timeout=30)
    assert not res.ok
    domainname.assert_unchanged()


# -- class 4: %propagation shared is a host-access line; its setup leaves no mounts behind ---------
@pytest.mark.skipif(not ROOT, reason="needs a mount namespace whose / is shared (root)")
def test_class4_a_shared_cell_leaves_no_masks_on_a_shared_host(tmp_path, monkeypatch):
    """The kernel runs in a mount namespace of its own whose / is shared, so the machine's
    mounts are not touched; there, a %propagation shared cell must add no mount."""
    spec = tmp_path / "kernels" / "rootfs-shared-host"
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": ["unshare", "--mount", "--propagation", "shared", sys.executable, "-m",
                 "rootfs_kernel", "-f", "{connection_file}"],
        "display_name": "shared host", "language": "shell", "interrupt_mode": "signal"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    k = KernelDriver(kernel_name="rootfs-shared-host")
    try:
        k.ok("true")
        before = hm.mount_points_of(k.pid)
        for _ in range(2):
            k.ok("%propagation shared\ntrue")
        after = hm.mount_points_of(k.pid)
        assert sorted(set(after) - set(before)) == []
    finally:
        k.shutdown()


# -- class 7: IPC and UTS of the host, and its cgroups ---------------------------------------------
def _shm_attack(key: int) -> str:
    return _c(f"int id = shmget({key}, 0, 0);\n"
              "if (id < 0) { perror(\"shmget\"); return 0; }\n"
              "char *p = shmat(id, 0, SHM_RDONLY);\n"
              "if (p == (void *)-1) perror(\"shmat\"); else printf(\"read %.40s\\n\", p);\n"
              "if (shmctl(id, IPC_RMID, 0)) perror(\"IPC_RMID\");",
              "#include <sys/shm.h>\n")


def test_class7_a_default_cell_neither_reads_nor_removes_host_shared_memory(kernel, shm):
    res = kernel.run(_shm_attack(shm.key) + "\n", timeout=60)
    listing = kernel.run("cat /proc/sysvipc/shm", timeout=30)
    shm.assert_unread(hm.texts_of(res, listing))
    shm.assert_unchanged()


@pytest.mark.skipif(not ROOT, reason="only root can give the host a domainname of its own")
def test_class7_a_default_cell_has_a_uts_namespace_of_its_own(kernel, domainname):
    res = kernel.run("cat /proc/sys/kernel/domainname; uname -n", timeout=30)
    domainname.assert_unread(hm.texts_of(res))


def test_class7_a_cell_cannot_rename_the_host(kernel, domainname):
    host = os.uname().nodename
    kernel.run(f"hostname rk-{secrets.token_hex(4)}\n", timeout=30)
    assert os.uname().nodename == host
    domainname.assert_unchanged()


def test_class7_mqueues_a_cell_makes_are_not_the_hosts(kernel):
    name = f"rk-q-{secrets.token_hex(6)}"
    kernel.run(f"%mount mqueue /mnt\ntouch /mnt/{name}", timeout=30)
    assert not hm.host_mqueue_exists(name), "a cell made a queue in the host's namespace"


@pytest.mark.parametrize("unshare", ["", "%unshare mnt,pid,cgroup\n"])
def test_class7_a_cells_cgroup_mount_makes_no_host_cgroup(kernel, unshare):
    name = f"rk-cg-{secrets.token_hex(6)}"
    try:
        kernel.run(f"{unshare}%mount cgroup2 /mnt\nmkdir /mnt/{name}", timeout=30)
        assert hm.host_cgroups_named(name) == []
    finally:
        hm.remove_cgroups(hm.host_cgroups_named(name))


# -- defence in depth: root in a cell is not root on the host --------------------------------------
def _escape_and_read(path: Path) -> str:
    return _c('mkdir("/rk-esc", 0700);\n'
              'if (chroot("/rk-esc")) { perror("chroot"); return 1; }\n'
              'for (int i = 0; i < 64; i++) if (chdir("..")) break;\n'
              'if (chroot(".")) { perror("chroot ."); return 1; }\n'
              f'FILE *f = fopen("{path}", "r");\n'
              'if (!f) { perror("open"); return 1; }\n'
              'char line[256];\n'
              'while (fgets(line, sizeof line, f)) fputs(line, stdout);')


def test_defence_a_chroot_escape_shows_the_host_as_an_unprivileged_user(kernel, root_secret):
    code = _escape_and_read(root_secret.path).replace("%%c\n", "%%c\n%root chroot\n", 1)
    res = kernel.run(code, timeout=60)
    root_secret.assert_unread(hm.texts_of(res))


def test_defence_a_host_path_leaked_into_a_pivot_cell_is_not_roots(kernel, root_secret):
    res = kernel.run(f"%mount overlay /mnt lowerdir={root_secret.path.parent}:/etc\n"
                     f"cat /mnt/{root_secret.path.name}", timeout=30)
    root_secret.assert_unread(hm.texts_of(res))
