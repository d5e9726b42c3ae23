"""What every cell gets: fresh namespaces, a fresh copy-on-write root, /proc, /dev."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from kerneldriver import ROOT, host_mounts, kernel_mounts

from rootfs_kernel.ids import IdRange


def _ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


def test_each_cell_has_its_own_mount_namespace(kernel):
    first = kernel.ok("readlink /proc/self/ns/mnt; mount -t tmpfs none /mnt; "
                      "grep -c ' /mnt ' /proc/self/mountinfo").stdout.split()
    second = kernel.ok("readlink /proc/self/ns/mnt; grep -c ' /mnt ' /proc/self/mountinfo "
                       "|| true").stdout.split()
    assert first[0].startswith("mnt:[") and first[0] != _ns("mnt") != second[0]
    # The kernel recycles namespace inode numbers once a namespace is gone, so the ids
    # may repeat; what proves a new namespace is that the first cell's mount is absent.
    assert first[1] == "1" and second[1] == "0"


def test_pid_namespace_makes_the_shell_a_small_pid(kernel):
    res = kernel.ok("echo $$; ps -e -o pid= | wc -l")
    pid, count = res.stdout.split()
    assert int(pid) <= 3
    assert int(count) <= 5, res.stdout  # init, sh, ps, wc: no host process is visible


def test_the_script_runs_as_root_of_a_user_namespace_of_its_own(kernel):
    # Rootless: the cell's user namespace maps root to the kernel's user. As root too,
    # the script sits in an identity-mapped user namespace below the cell's, which locks
    # the setup's mounts (see test_setup_mounts_are_locked).
    res = kernel.ok("readlink /proc/self/ns/user; id -u; cat /proc/self/uid_map")
    userns, uid, *uid_map = res.stdout.split()
    assert uid == "0" and userns != _ns("user")
    # As root the cell's root is an unprivileged id range of the host (ids.py), never 0.
    first = IdRange().first
    assert uid_map == ([str(0), str(first), "65536"] if ROOT else ["0", "0", "1"])


def test_setup_mounts_are_locked(kernel, tmp_path):
    """The script may mount, but not undo a read-only bind or a mask made for it."""
    os.chmod(tmp_path, 0o777)
    res = kernel.run(f"%bind {tmp_path} /data ro\n"
                     "mount -o remount,bind,rw /data 2>&1; touch /data/x 2>&1\n"
                     "umount /proc/keys 2>&1; mount -o remount,rw /proc/sys 2>&1\n"
                     "mount -t tmpfs none /mnt && echo own-mount-ok")
    assert not (tmp_path / "x").exists()
    assert "Read-only file system" in res.stdout
    assert "own-mount-ok" in res.stdout
    assert kernel.ok("wc -c < /proc/keys").stdout.strip() == "0"


def test_writes_are_gone_in_the_next_cell(kernel):
    kernel.ok("echo data > /etc/written; rm /etc/hostname; test -f /etc/written")
    res = kernel.ok("ls /etc")
    assert "written" not in res.stdout
    assert "hostname" in res.stdout


def test_keep_carries_changes_until_a_cell_runs_without_it(kernel):
    kernel.ok("%keep\necho one > /kept1")
    kernel.ok("%keep\ntest -f /kept1 && echo two > /kept2")
    res = kernel.ok("cat /kept1 /kept2; echo three > /kept3")
    assert res.stdout.split() == ["one", "two"]
    res = kernel.ok("ls /")
    assert "kept1" not in res.stdout and "kept3" not in res.stdout


def test_keep_records_deletions(kernel):
    kernel.ok("%keep\nrm /etc/hostname")
    res = kernel.run("test -e /etc/hostname")
    assert not res.ok
    assert "hostname" in kernel.ok("ls /etc").stdout


def test_pivot_root_detaches_the_host_tree(kernel):
    from rootfs_kernel.inspect.mounts import parse_mountinfo

    cell = parse_mountinfo(kernel.ok("cat /proc/self/mountinfo").stdout)
    assert (cell[0].mount_point, cell[0].fstype) == ("/", "overlay")
    # Only the container's own trees below its root, whatever the host mounts.
    assert all(m.mount_point.split("/")[1] in ("proc", "dev", "sys") for m in cell[1:]), \
        [m.mount_point for m in cell]
    # No mount of the host is in the namespace (the same filesystem at the same root: the
    # host's / at least, had its tree stayed), but the host's /sys and the cgroups on it,
    # bound read-only as runc does. The devices and `display` are single files bound on
    # purpose: their roots are those files, no host mount's.
    with open("/proc/self/mountinfo") as f:
        host = {(m.major, m.minor, m.root) for m in parse_mountinfo(f.read())}
    leaked = [m.mount_point for m in cell if (m.major, m.minor, m.root) in host
              and not (m.mount_point + "/").startswith("/sys/")]
    assert leaked == []


ESCAPE_C = r"""
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
/* The classic escape: chroot into a subdirectory without entering it, climb out of it
   with "..", then make what was reached the root again. Prints the file argv[1]. */
int main(int argc, char **argv) {
    mkdir("escape-dir", 0755);
    if (chroot("escape-dir") != 0) { perror("chroot"); return 2; }
    for (int i = 0; i < 64; i++) chdir("..");
    chroot(".");
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "r");
        if (!f) { perror(argv[i]); continue; }
        char buf[256] = {0};
        fread(buf, 1, sizeof buf - 1, f);
        printf("escaped: %s\n", buf);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def escape_binary(tmp_path_factory):
    import subprocess

    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed")
    # Where anyone may walk (a pytest tmp dir is its user's only): the escaped cell is an
    # unprivileged id on the host in root mode, and may read what anyone may read.
    d = Path(tempfile.mkdtemp(prefix="rootfs-kernel-escape-", dir="/tmp"))
    os.chmod(d, 0o755)
    (d / "escape.c").write_text(ESCAPE_C)
    subprocess.run(["gcc", "-static", "-O1", "-o", str(d / "escape"), str(d / "escape.c")],
                   check=True)
    (d / "host-secret").write_text("host-only")
    os.chmod(d / "host-secret", 0o644)
    (d / "host-private").write_text("owner-only")
    os.chmod(d / "host-private", 0o600)
    yield d
    shutil.rmtree(d)


def test_chroot_can_be_escaped_but_pivot_root_cannot(kernel, escape_binary):
    secret, private = escape_binary / "host-secret", escape_binary / "host-private"
    run = f"%bind {escape_binary}/escape /escape ro\ncd /tmp && /escape {secret} {private}"
    res = kernel.run(run.replace("%bind", "%root chroot\n%bind", 1))
    assert res.ok and "escaped: host-only" in res.stdout, (res.stdout, res.stderr)
    # The escape reaches the host's tree, but not as the host's root (in root mode: an
    # unprivileged id; rootless: the kernel's own user, who owns the file).
    if ROOT:
        assert "owner-only" not in res.stdout and "Permission denied" in res.stderr
    res = kernel.run(run)
    assert "escaped" not in res.stdout
    assert "No such file" in res.stderr


def test_root_none_sees_the_hosts_tmp(kernel, tmp_path_factory):
    marker = Path("/tmp") / f"rootfs-kernel-marker-{os.getpid()}"
    marker.write_text("x")
    try:
        res = kernel.ok("%root none\nls /tmp")
        assert marker.name in res.stdout
        res = kernel.ok("ls /tmp")
        assert marker.name not in res.stdout
    finally:
        marker.unlink()


def test_proc_and_dev(kernel):
    res = kernel.ok("ls /dev; head -c 4 /dev/zero | wc -c; echo x > /dev/null; "
                    "grep -c ' /dev/pts ' /proc/self/mountinfo; cat /proc/1/comm")
    for name in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx"):
        assert name in res.stdout.split()
    assert "\n4\n" in res.stdout
    assert "python" in res.stdout.split()[-1] or "rootfs" in res.stdout.split()[-1]


def test_tmpfs_mount_is_in_the_cell_and_not_on_the_host(kernel):
    before = kernel_mounts()   # the host's own /tmp may be a tmpfs (Fedora, Debian 13)
    res = kernel.ok("%mount tmpfs /tmp size=1m\nmount | grep ' /tmp '; touch /tmp/x; ls /tmp")
    assert "none on /tmp type tmpfs" in res.stdout
    assert kernel_mounts() == before and "/tmp tmpfs none" not in before
    assert not any("size=1024k" in line for line in open("/proc/self/mountinfo"))


def test_proc_sys_is_read_only_and_kcore_masked(kernel):
    res = kernel.run("echo 1 > /proc/sys/kernel/domainname")
    assert not res.ok and "Read-only" in res.stderr
    res = kernel.ok("wc -c < /proc/keys; grep -c '/proc/sys ' /proc/self/mountinfo")
    assert res.stdout.split()[0] == "0"


def test_background_process_does_not_outlive_the_cell(kernel):
    tag = f"{os.getpid() % 1000 + 1000}.5"
    kernel.ok(f"sleep {tag} >/dev/null 2>&1 &\necho started")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        # The sleep itself; not the container's init, whose argv carries the script while
        # it finishes tearing the namespace down after the report (a made-on-demand one).
        assert not (cmd.split(b"\0")[0].endswith(b"sleep") and tag.encode() in cmd), \
            f"sleep {tag} survived its cell as pid {pid}"


@pytest.mark.rootonly
def test_propagation_private_by_default_and_shared_on_request(kernel, shared_peer):
    peer = shared_peer
    kernel.ok(f"%root none\nmkdir -p {peer}/a; mount -t tmpfs none {peer}/a")
    assert f"{peer}/a" not in host_mounts()
    kernel.ok(f"%root none\n%propagation shared\nmount -t tmpfs none {peer}/a")
    assert f"{peer}/a" in host_mounts()


@pytest.mark.rootonly
def test_shared_propagation_with_pivot_root_leaves_the_hosts_mounts_alone(kernel,
                                                                          shared_peer):
    """Detaching the old root must not propagate to the host's peers (runc's rslave)."""
    import subprocess

    peer = shared_peer
    (peer / "inner").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "hosttmp", str(peer / "inner")], check=True)
    kernel.ok(f"%propagation shared\n%bind {peer} /shared\nls /shared")
    kernel.ok(f"%propagation shared\n%root chroot\n%bind {peer} /shared\ntrue")
    assert f"{peer}/inner" in host_mounts()
    assert str(peer) in host_mounts()


def test_network_namespace_gets_its_own_sysfs(kernel):
    res = kernel.ok("%unshare net\nls /sys/class/net; mount | grep ' /sys ' | tail -1")
    interfaces, mount_line = res.stdout.splitlines()[:-1], res.stdout.splitlines()[-1]
    assert interfaces == ["lo"]  # the host's interfaces are not there
    assert mount_line.startswith("sysfs on /sys type sysfs (ro")
