"""Containers prepared for the next cell (sandbox/prepared.py) while the kernel is idle.

A cell that takes a prepared container must see what a container made for it then would
show: the host's mounts and directories as they are when the cell runs, a fresh root. One
test per reason a prepared container must not run the cell that comes (prepared.py's
Capture): each passes only because of its own check.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
from kerneldriver import (
    ROOT,
    KernelDriver,
    alive,
    bound_by,
    comm,
    descendants,
    kernel_mounts,
    prepared_containers,
    wait_for,
)

from rootfs_kernel import cell
from rootfs_kernel.images import ImageStore
from rootfs_kernel.sandbox.plan import Context, Places, plan_for
from rootfs_kernel.sandbox.prepared import preparable


def test_the_next_cells_container_waits_ready_and_is_used_once():
    k = KernelDriver()
    try:
        mounts = kernel_mounts()
        k.ok("echo one > /tmp/first")
        assert wait_for(lambda: len(prepared_containers(k.pid)) == 1)
        [(a, b)] = prepared_containers(k.pid)
        lines = k.ok("cat /tmp/first 2>&1; echo $$").stdout.splitlines()
        # Fresh root (the previous cell's file is gone); the script is PID 2 as ever.
        assert "No such file" in lines[0] and lines[1] == "2"
        # The prepared container ran this cell and is gone; a new one waits for the next.
        assert wait_for(lambda: not alive(b))
        assert wait_for(lambda: [p for p in prepared_containers(k.pid) if p != [a, b]] != [])
        assert kernel_mounts() == mounts
        tree = descendants(k.pid)
    finally:
        k.shutdown()
    assert wait_for(lambda: not any(alive(p) for p in tree))


def test_off_switch_prepares_nothing():
    k = KernelDriver(env={**os.environ, "ROOTFS_KERNEL_PREPARE": "0"})
    try:
        k.ok("true")
        k.ok("true")
        time.sleep(0.3)
        assert prepared_containers(k.pid) == []
    finally:
        k.shutdown()


def test_a_directory_replaced_by_a_host_cell_is_bound_as_it_is_now(fresh_kernel, tmp_path):
    """A %%host cell may replace what a %bind takes: the container prepared before it
    (holding the old directory) must not run the next cell."""
    k = fresh_kernel
    data = tmp_path / "data"
    data.mkdir()
    (data / "old").touch()
    assert k.ok(f"%bind {data} /data\nls /data").stdout == "old\n"
    k.ok(f"%%host\nrm -rf {data} && mkdir {data} && touch {data}/new")
    assert k.ok(f"%bind {data} /data\nls /data").stdout == "new\n"


def test_a_bind_source_renamed_over_is_bound_as_it_is_now(fresh_kernel, tmp_path):
    """Another directory renamed into a %bind source's place by the host (no mount, no
    %%host cell): the container prepared with the old one bound what is not there any
    more (Capture.sources: the source's device and inode)."""
    k = fresh_kernel
    data, new = tmp_path / "data", tmp_path / "new"
    data.mkdir()
    (data / "old").touch()
    new.mkdir()
    (new / "new").touch()
    bind = f"%bind {data} /data\nls /data"
    assert k.ok(bind).stdout == "old\n"
    assert wait_for(lambda: len(prepared_containers(k.pid)) == 1)
    data.rename(tmp_path / "was-data")
    new.rename(data)
    assert k.ok(bind).stdout == "new\n"


@pytest.mark.rootonly
@pytest.mark.skipif(not ROOT, reason="mounting on the host needs root")
def test_a_mount_made_below_a_bind_source_is_seen_by_the_next_cell(fresh_kernel, tmp_path):
    """A mount made on the host below a %bind source after the next container was
    prepared (the source itself is the same directory): a recursive bind takes it, so the
    prepared one, which has not, is not used (Capture.mounts: the mount table's
    generation)."""
    k = fresh_kernel
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    bind = f"%bind {data} /data\nls /data/sub"
    assert k.ok(bind).stdout == ""
    assert wait_for(lambda: len(prepared_containers(k.pid)) == 1)
    subprocess.run(["mount", "-t", "tmpfs", "rk-test", str(data / "sub")], check=True)
    try:
        (data / "sub" / "on-the-mount").touch()
        assert k.ok(bind).stdout == "on-the-mount\n"
    finally:
        subprocess.run(["umount", str(data / "sub")], check=True)


def test_an_image_exported_again_elsewhere_is_the_one_the_next_cell_gets(fresh_kernel):
    """Another kernel exports the image again while a container of the old one waits
    prepared: the next cell of the same text runs on the new image (Session keys its
    image and plan on the image's stamp; the prepared container's plan, of the old
    layers, is not this cell's)."""
    k, name = fresh_kernel, f"rk-again-{uuid.uuid4().hex[:8]}"
    other = KernelDriver()
    try:
        k.ok(f"%export {name}\necho one > /version")
        cat = f"%image {name}\ncat /version"
        assert k.ok(cat).stdout == "one\n"
        assert wait_for(lambda: len(prepared_containers(k.pid)) == 1)
        other.ok(f"%export {name} --replace\necho two > /version")
        assert k.ok(cat).stdout == "two\n"
    finally:
        other.shutdown()
        ImageStore().remove(name)


def test_a_host_cell_ends_the_containers_prepared_before_it(tmp_path):
    """A %%host cell runs on the host as the kernel's user and may replace any file a
    container takes by path, beyond the cell's own %bind lines: here the `display`
    program every container binds (in a cache of this kernel's own). The container
    prepared before it is not used after it."""
    cache = tmp_path / "cache"
    k = KernelDriver(env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    try:
        def next_pid_ns() -> str:
            # the PID namespace of the container prepared for the next cell (its PID 1)
            assert wait_for(lambda: len(prepared_containers(k.pid)) == 1)
            (ready,) = prepared_containers(k.pid)
            return os.readlink(f"/proc/{ready[1]}/ns/pid")

        k.ok("true")
        # (what is watched: without a host cell the next cell runs in the one prepared)
        ready = next_pid_ns()
        assert k.ok("readlink /proc/self/ns/pid").stdout.strip() == ready
        ready = next_pid_ns()
        # The program is this kernel's own where it was compiled for it (in the cache given
        # above); an installed wheel carries one every kernel shares, which is not replaced.
        own = list(cache.glob("rootfs-kernel/display-*/display"))
        if own:
            (program,) = own
            k.ok(f"%%host\nprintf '#!/bin/sh\\necho replaced\\n' > {program}.new && "
                 f"chmod 755 {program}.new && mv {program}.new {program}")
            shown, ns = k.ok("display anything\nreadlink /proc/self/ns/pid").stdout.split()
            assert shown == "replaced"
        else:
            k.ok("%%host\ntrue")
            ns = k.ok("readlink /proc/self/ns/pid").stdout.strip()
        # either way the container made before the host cell is not the next cell's
        assert ns != ready
    finally:
        k.shutdown()


def test_a_net_line_is_not_run_in_the_container_prepared_without_it(fresh_kernel):
    """A cell's network is its container's, made with it: a `%net host` cell after a plain
    one (whose container, with a network namespace of its own, waits ready) runs on the
    host's network, and a plain cell after a `%net host` one in a namespace of its own."""
    k = fresh_kernel
    host = os.readlink("/proc/self/ns/net")
    k.ok("true")
    assert wait_for(lambda: len(prepared_containers(k.pid)) == 1)
    assert k.ok("%net host\nreadlink /proc/self/ns/net").stdout.strip() == host
    assert wait_for(lambda: len(prepared_containers(k.pid)) == 1)
    assert k.ok("readlink /proc/self/ns/net").stdout.strip() != host


def test_cells_sent_back_to_back_find_the_next_container_made_while_one_runs(fresh_kernel):
    """Run All: a cell queued behind the last one (it comes as that one ends) has the
    container for the cell after it made at once, while it runs; a cell that comes later
    does not compete with one (the next is made after its reply)."""
    k = fresh_kernel
    k.ok("true")
    assert wait_for(lambda: len(prepared_containers(k.pid)) == 1)
    first, second = k.kc.execute("true"), k.kc.execute("sleep 3")   # as Run All sends them
    while k.kc.get_shell_msg(timeout=30)["parent_header"].get("msg_id") != first:
        pass
    # The second cell runs in the container prepared for it (a rootfs-warm until its
    # script ends); the one for the cell after it waits beside it.
    assert wait_for(lambda: _sleeping(k) and len(prepared_containers(k.pid)) == 2, 2.5)
    while k.kc.get_shell_msg(timeout=30)["parent_header"].get("msg_id") != second:
        pass
    time.sleep(0.2)
    k.kc.execute("sleep 2")
    assert wait_for(lambda: _sleeping(k), 1.5)
    assert len(prepared_containers(k.pid)) == 1   # its own: the next is made after it


def _sleeping(k: KernelDriver) -> bool:
    return any(comm(p) == "sleep" for p in descendants(k.pid))


@pytest.mark.rootonly
@pytest.mark.skipif(not ROOT, reason="mounting on the host needs root")
def test_a_mount_made_on_the_host_after_the_cell_is_seen_by_the_next(fresh_kernel, tmp_path):
    """The host's mount table changed since the next container was prepared: it is
    thrown away, so the next cell's %bind takes the new mount."""
    k = fresh_kernel
    data = tmp_path / "data"
    data.mkdir()
    k.ok(f"%bind {data} /data\nls /data")
    assert wait_for(lambda: len(prepared_containers(k.pid)) == 1)
    subprocess.run(["mount", "-t", "tmpfs", "rk-test", str(data)], check=True)
    try:
        (data / "on-the-new-mount").touch()
        res = k.ok(f"%bind {data} /data\nls /data; grep -c ' /data ' /proc/self/mountinfo")
        assert res.stdout.split() == ["on-the-new-mount", "1"]
    finally:
        subprocess.run(["umount", str(data)], check=True)


def test_a_setup_that_fails_fails_the_same_way_every_time(kernel):
    for _ in range(3):
        res = kernel.run("%bind /no/such/dir /x\ntrue")
        assert not res.ok
        assert "bind source /no/such/dir does not exist on the host" in res.reply["evalue"]
    assert kernel.ok("echo fine").stdout == "fine\n"


def test_what_may_be_prepared():
    class Image:
        layers, env, workdir = ["/img"], [], None

    def plan(text: str, keep_active: bool = False):
        ctx = Context(places=Places.under("/h"), rootless=False, uid=0, gid=0, cwd="/",
                      keep_active=keep_active)
        return plan_for(cell.parse(text), Image, ctx)

    assert preparable(plan("true"))
    assert preparable(plan("%root chroot\n%mount tmpfs /tmp\n%show mounts\ntrue"))
    assert not preparable(plan("%keep\ntrue"))
    assert not preparable(plan("true", keep_active=True))   # reads the kept layer
    assert not preparable(plan("%export snap\ntrue"))
    assert preparable(plan("%limit pids=10\ntrue"))   # it gets a cgroup of its own
    assert not preparable(plan("%propagation shared\ntrue"))
    assert not preparable(plan("%%host\ntrue"))


# What a cell reads of its pids bound, by what holds it: its cgroup's pids.max (v1: the
# pids hierarchy's; v2: the unified one's), or RLIMIT_NPROC. Read inside the cell (with
# %net host its /sys is the host's, read-only; a cell's own network has a sysfs of its
# own): the cgroup is gone with the container.
PIDS_BOUND = {
    "cgroup v1": "p=$(grep '^[0-9]*:pids:' /proc/self/cgroup | cut -d: -f3)\n"
                 "[ \"$p\" != / ] && cat /sys/fs/cgroup/pids$p/pids.max",
    "cgroup v2": "p=$(grep '^0::' /proc/self/cgroup | cut -d: -f3)\n"
                 "[ \"$p\" != / ] && cat /sys/fs/cgroup$p/pids.max",
    "setrlimit": "set -- $(grep 'Max processes' /proc/self/limits); echo $3",
}


@bound_by
def test_a_cell_is_bounded_whether_or_not_its_container_was_prepared(kernel, mechanism):
    """A prepared container is bounded like the previous cell (in a cgroup of its own
    for a %limit, where cgroups can be made); a cell with other limits gets a container
    of its own (found by the pids-limit test)."""
    def pids_bound(text: str) -> str:
        return kernel.ok(f"%net host\n{text}\n{PIDS_BOUND[mechanism]}").stdout.strip()

    kernel.ok("true")
    assert wait_for(lambda: len(prepared_containers(kernel.km.provisioner.pid)) == 1)
    # The default bound, in a prepared one: RLIMIT_NPROC (the cell's root is an
    # unprivileged id, counted in its own user namespace), no cgroup to join.
    limits = kernel.ok("grep 'Max processes' /proc/self/limits").stdout.split()
    assert limits[2:4] == ["1024", "1024"], limits
    assert pids_bound("%limit pids=10\ntrue") == "10"   # not the prepared default one
    assert pids_bound("%limit pids=10\ntrue") == "10"   # prepared with these limits


@pytest.mark.parametrize("header", ["", "%root chroot\n", "%propagation shared\n", "%root none\n"])
def test_the_script_inherits_only_stdin_stdout_and_stderr(kernel, header):
    """No fd of the init (result and release pipes, the overlay layers) or of the kernel's
    script pipe reaches a program the script runs, in a prepared container or one of its
    own; the shell's own other fds (its script, as a shell holds a script file) are
    close-on-exec."""
    script = ("/bin/sh -c 'ls /proc/$$/fd'; echo --\n"
              "for f in /proc/$$/fd/*; do n=${f##*/}; case $n in 0|1|2) ;; *)\n"
              # (the glob's own directory fd is gone by now)
              "  [ -e /proc/$$/fdinfo/$n ] || continue\n"
              "  sed -n 's/^flags:[[:space:]]*//p' /proc/$$/fdinfo/$n;; esac; done\n")
    for _ in range(3):
        children, _, flags = kernel.ok(header + script).stdout.partition("--\n")
        assert children.split() == ["0", "1", "2"]
        for value in flags.split():   # octal open flags: O_CLOEXEC is 02000000
            assert int(value, 8) & 0o2000000, flags


def test_a_cell_of_any_length_runs_from_the_script_pipe(kernel):
    """The shell reads the cell from a pipe, not from one argument of `sh -c` (128 KiB at
    most): a 10 MB cell runs to its last line, in a prepared container or one of its
    own; its stdin is still /dev/null and $0 is `cell`, the script's name."""
    filler = (": " + "x" * 97 + "\n") * 100_000   # 10 MB of the shell's no-op
    for header in ("", "%mount tmpfs /mnt\n"):   # prepared for the first, then not
        res = kernel.ok(header + "echo first\n" + filler + "echo last; echo $0; cat; "
                        "read x || echo no-input", timeout=120)
        assert res.stdout == "first\nlast\ncell\nno-input\n", res.stdout[-200:]


def test_a_script_that_ends_early_does_not_wait_for_the_rest(kernel):
    start = time.monotonic()
    res = kernel.run("exit 3\n" + (": " + "x" * 97 + "\n") * 100_000, timeout=120)
    assert res.reply["evalue"].startswith("the script exited with status 3"), res.reply
    assert time.monotonic() - start < 60
    assert kernel.ok("echo after").stdout == "after\n"


def test_env_and_working_directory_are_the_cells_own_in_a_prepared_container(kernel):
    """A prepared container was started with the environment of the cell before: a cell
    whose %env differs gets one made with its own."""
    kernel.ok("%env SPEED_X=1\ntrue")
    assert kernel.ok("echo $SPEED_X").stdout == "1\n"
    assert kernel.ok("%env SPEED_X=2\necho $SPEED_X").stdout == "2\n"
    assert kernel.ok("echo $SPEED_X; pwd; echo ${OLDPWD-unset}").stdout == "2\n/\nunset\n"
    res = kernel.run("foo-no-such-command")
    assert res.stderr == "cell: 1: foo-no-such-command: not found\n", res.stderr
