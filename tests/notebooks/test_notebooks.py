"""Each notebook runs top to bottom and shows what it is about.

The checks read tagged cells (cell metadata "tags") and the comparison views' JSON
payloads; they avoid what varies between machines: mount ids, device numbers, the host's
other mounts and files, temporary paths.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbhelpers import NOTEBOOKS, ROOT, rows

from rootfs_kernel.views import TREE_MIME_TYPE as TREE_MIME

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None,
                               reason="%%c cells need gcc on the host")


def host_pretty_name() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line
    pytest.skip("the host has no PRETTY_NAME in /etc/os-release")


def test_every_notebook_uses_the_rootfs_kernel():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    # numbered 01, 02, ... without a gap, and every one a chapter of the book
    assert [n[:3] for n in names] == [f"{i:02d}-" for i in range(1, len(names) + 1)]
    toc_file = NOTEBOOKS.parent / "book" / "_toc.yml"   # not in the rootless pass's copy
    toc = toc_file.read_text() if toc_file.is_file() else None
    assert toc is None or all(f"file: {n[:-6]}" in toc or f"root: {n[:-6]}" in toc
                              for n in names), toc
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "rootfs", name


def test_saved_outputs_name_only_the_default_image_store():
    # scripts/run-notebooks.py writes in place only with the default store, so a saved
    # mount table shows the layers where a reader's own run (as root) would find them.
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        stores = set(re.findall(r"([\w./-]*)/rootfs-kernel/layers/", path.read_text()))
        assert stores <= {"/root/.local/share"}, (path.name, stores)


def test_01_mount_namespace_alone(notebook):
    nb = notebook("01-mount-namespace-alone")
    # %root none: the host's /tmp, note and all, in a new mount namespace.
    assert "written on the host" in nb.stream("check-root-none-tmp")
    ns = nb.payload("check-root-none-tmp", "ns")
    assert rows(ns, "mnt")[0]["status"] == "differs"
    # The mount table is inherited: every host mount is there; the only extra is /proc.
    mounts = nb.payload("check-mounts-inherited", "mounts")
    assert mounts["summary"]["only-host"] == 0
    assert {r["key"] for r in rows(mounts, status="only-cell")} <= {"/proc"}
    assert mounts["summary"]["same"] + mounts["summary"]["differs"] > 0
    # A default (pivot_root) cell has the image's /tmp instead.
    assert "this /tmp belongs to the image" in nb.stream("check-pivot-tmp")
    assert not os.path.exists("/tmp/rootfs-kernel-nb1")


def test_02_tmpfs_inside_not_on_the_host(notebook):
    nb = notebook("02-tmpfs-over-tmp")
    inside = nb.stream("check-tmpfs-inside")
    assert "none on /tmp type tmpfs" in inside
    # /tmp is empty: nothing between the ls header and the next command's header.
    assert re.search(r"\$ ls -A /tmp\n\$ mount -l", inside), inside
    host = nb.stream("check-tmpfs-host")
    assert not re.search(r"^none on /tmp ", host, re.M), host
    assert "stayed in its namespace" in host
    view = nb.payload("check-tmpfs-view", "mounts")
    tmp = rows(view, "/tmp", "only-cell")
    assert tmp and tmp[0]["cell"]["fstype"] == "tmpfs", rows(view, "/tmp")
    assert "entries in /tmp: 0" in nb.stream("check-tmpfs-view")


def test_03_propagation(notebook):
    nb = notebook("03-propagation")
    if not ROOT:
        assert "not root" in nb.stream("prop-setup")
        assert "not a mount point" in nb.stream("check-prop-shared-cell")
        return
    assert re.search(r"/tmp/rootfs-kernel-nb3\s+shared", nb.stream("prop-setup"))
    # shared: the cell's mount reached the host's peer
    assert "shared-cell" in nb.stream("check-prop-shared-cell")
    assert "shared-cell" in nb.stream("check-prop-shared-host")
    # the tree at the throwaway mount point: its peer link from the cell's copy to the host's
    [tree] = [o.data[TREE_MIME] for o in nb.cell("check-prop-shared-cell").outputs
              if o.output_type == "display_data" and TREE_MIME in o.data]
    nodes = {n["id"]: n for s in tree["sides"] for n in s["nodes"]}
    assert all(n["mount_point"] in ("/", "/tmp") or
               n["mount_point"].startswith("/tmp/rootfs-kernel-nb3") for n in nodes.values())
    assert any(ln["kind"] == "peer" and {ln["from"][:4], ln["to"][:4]} == {"cell", "host"}
               and nodes[ln["from"]]["mount_point"] == "/tmp/rootfs-kernel-nb3"
               for ln in tree["links"]), tree["text"]
    # private: mounted inside, absent on the host
    assert "private-cell" in nb.stream("check-prop-private-cell")
    host = nb.stream("check-prop-private-host")
    assert "shared-cell" in host and "private-cell" not in host
    # and nothing is left behind
    assert "nothing left" in nb.stream("cleanup")
    with open("/proc/self/mountinfo") as f:
        assert "rootfs-kernel-nb3" not in f.read()
    assert not os.path.exists("/tmp/rootfs-kernel-nb3")


def test_04_chroot_listing(notebook):
    nb = notebook("04-chroot")
    out = nb.stream("check-chroot-listing")
    assert "rootfs-kernel minimal" in out
    listing = nb.payload("check-chroot-listing", "listing")
    assert [s["label"] for s in listing["sides"]] == ["cell", "host"]   # `%show ls / /`
    # (a row present on both sides and alike stores one side: payload schema version 2)
    cell_names = {r["key"].rstrip("/") for r in listing["rows"] if r["status"] != "only-host"}
    host_names = {r["key"].rstrip("/") for r in listing["rows"] if r["status"] != "only-cell"}
    assert cell_names == set(out.splitlines()[:-1])  # ls / in the cell, minus os-release
    assert host_names == set(os.listdir("/"))         # the host's / as this test sees it
    assert set(nb.stream("check-chroot-host").splitlines()[:-1]) == {
        n for n in os.listdir("/") if not n.startswith(".")}


def test_05_rootfs_is_the_image(notebook):
    nb = notebook("05-rootfs-is-the-image")
    seed = {"bin", "dev", "etc", "home", "lib", "mnt", "opt", "proc", "root", "run", "sbin",
            "sys", "tmp", "usr", "var"}
    assert seed <= set(nb.stream("check-rootfs-minimal").split())
    assert "busybox" in nb.stream("check-rootfs-busybox")
    # The seed's own example: Debian's root, built on first use (--build).
    assert 'PRETTY_NAME="Debian GNU/Linux' in nb.stream("check-rootfs-debian")
    assert set(nb.stream("check-rootfs-host").split()) == {
        n for n in os.listdir("/") if not n.startswith(".")}
    # The kernel is not in the rootfs: the cell runs on the host's kernel.
    release = platform.release()
    assert nb.stream("check-uname-cell").splitlines()[0] == release
    assert nb.stream("check-uname-host").strip() == release
    assert "/boot: not in this rootfs" in nb.stream("check-uname-cell")


@needs_gcc
def test_06_escape_works_under_chroot_not_pivot_root(notebook):
    nb = notebook("06-pivot-root-vs-chroot")
    host = host_pretty_name()
    assert host in nb.stream("check-escape-host")
    chroot = nb.stream("check-escape-chroot")
    assert host in chroot and "filesystem of /: overlay" not in chroot, chroot
    pivot = nb.stream("check-escape-pivot")
    assert "rootfs-kernel minimal" in pivot and "filesystem of /: overlay" in pivot, pivot
    if "rootfs-kernel minimal" not in host:
        assert host not in pivot
    root = rows(nb.payload("check-pivot-mounts", "mounts"), "/")
    assert [r["cell"]["fstype"] for r in root if r["cell"]] == ["overlay"]
    # The two containers side by side (%label pivot, %show steps vs pivot): the steps that
    # differ are exactly the root switch's, pivot_root there and chroot here (and, as root,
    # where the container's namespace is cloned from).
    pivot, chroot = _root_switch(nb.payload("check-steps-vs-pivot", "steps-vs"))
    assert 'pivot_root(".", ".")' in pivot["calls"] and "chroot(" not in pivot["calls"]
    assert 'chroot(".")' in chroot["calls"] and "pivot_root" not in chroot["calls"]


@needs_gcc
def test_07_seed_c_programs(notebook):
    nb = notebook("07-seed-c-programs")
    one = nb.stream("check-seed1")
    assert one.index("Parent - start a container!") < one.index(
        "Container - inside the container!") < one.index("Parent - container stopped!")
    assert re.search(r"\$ ls /tmp\nmade-by-the-parent\n", one), one  # the parent's /tmp
    two = nb.stream("check-seed2")
    child, _, parent = two.partition("Parent - container stopped!")
    assert "none on /tmp type tmpfs" in child
    assert re.search(r"\$ ls /tmp\n\$ mount", child), child               # empty inside
    assert "made-by-the-parent" in parent and "no mount on /tmp in the parent" in parent
    three = nb.stream("check-seed3")
    assert "without MS_PRIVATE  : the child's tmpfs propagated" in three
    assert "with MS_PRIVATE first: the child's tmpfs stayed" in three
    [err] = nb.errors("check-c-error")
    assert err.ename == "CompileError" and "undefined_name" in err.evalue


@needs_gcc
def test_08_docker_three_steps(notebook):
    nb = notebook("08-docker-three-steps")
    ns = nb.payload("check-isolate", "ns")
    for name in ("mnt", "pid", "uts", "ipc", "net"):
        assert rows(ns, name)[0]["status"] == "differs", name
    out = nb.stream("check-isolate")
    assert re.search(r"^\s+1 ", out, re.M) and out.split()[-1] == "lo", out
    # Limits: fork() refused below pids=16, and the kernel names the limit that ended a cell.
    unavailable = "cgroup limits are unavailable here"
    if unavailable in nb.stream("check-limit", "stderr"):
        # An ordinary user without a delegated cgroup: the kernel says so and falls back
        # to setrlimit, which still holds fork() back below the limit.
        assert "using setrlimit instead (RLIMIT_NPROC=16" in nb.stream("check-limit", "stderr")
        m = re.search(r"fork\(\) failed after (\d+) children", nb.stream("check-limit"))
        assert m and int(m.group(1)) < 16, nb.stream("check-limit")
        # said once per kernel, not again for the memory limit
        assert unavailable not in nb.stream("check-memory-limit", "stderr")
        return
    m = re.search(r"fork\(\) failed after (\d+) children", nb.stream("check-limit"))
    assert m and int(m.group(1)) < 16, nb.stream("check-limit")
    [err] = nb.errors("check-limit-message")
    assert err.ename == "LimitExceeded" and "pids limit (8)" in err.evalue
    [err] = nb.errors("check-memory-limit")
    assert err.ename == "LimitExceeded" and "memory limit (32 MiB)" in err.evalue
    # %show limits: each limit held by a cgroup file, the peaks next to them
    limits = nb.limits("check-show-limits")
    held = {r["key"]: r for r in limits["rows"]}
    assert limits["mechanism"].startswith("cgroup v"), limits
    assert held["pids"]["limit"] == 32 and held["pids"]["by"].endswith("pids.max")
    assert 7 <= held["pids"]["used"] <= 32, held["pids"]   # the shell and its 6 sleeps
    assert held["memory"]["used"] >= 16 << 20, held["memory"]   # tail held 16 MiB
    assert held["cpu"]["by"].endswith(("cpu.max", "cpu.cfs_quota_us"))
    assert nb.payload("check-change-root", "listing")
    changes = {r["key"]: r["status"] for r in nb.payload("check-all-three", "changes")["rows"]}
    assert changes.get("/etc/motd") in ("only-cell", "differs")   # added (or changed)
    assert changes.get("/etc/os-release") == "only-host"         # deleted
    kinds = [p["kind"] for p in nb.payloads("check-all-three")]
    assert kinds == ["ns", "mounts", "changes"]


def _root_switch(vs: dict) -> tuple[dict, dict]:
    """A pivot_root cell's steps against a chroot cell's (`%show steps vs`): the root switch
    the one step each took alone, besides (root mode) the pivot cell's entry into the
    helper's template namespace, which a chroot cell, keeping the host's mounts out of
    sight, does not take. (pivot's step, chroot's step), whichever side each is on."""
    differ = [r for r in vs["rows"] if r["status"] != "same"]
    template = [r for r in differ if "setns(TEMPLATE" in (r.get("host") or r["cell"])["calls"]]
    assert len(template) <= 1 and (not template or ROOT), differ
    switch = [r for r in differ if r not in template]
    assert sorted(r["status"] for r in switch) == ["only-cell", "only-host"], differ
    sides = [r.get("host") or r["cell"] for r in switch]
    return tuple(sorted(sides, key=lambda v: "chroot(" in v["calls"]))


def _step(p: dict, start: str, by: str) -> dict:
    """The first of this cell's steps (in a `vs` view: a step the other cell alone made has
    no cell side) that `by` made with calls starting `start`."""
    return next(r for r in p["rows"] if "cell" in r
                and (r["cell"]["calls"] or "").startswith(start) and r["cell"]["process"] == by)


def test_09_how_a_container_is_built(notebook):
    nb = notebook("09-how-a-container-is-built")
    default = nb.payload("default", "steps")
    pivot = _step(default, "chdir(", "init (PID 1)")
    assert 'pivot_root(".", ".")' in pivot["cell"]["calls"]
    with open("/proc/self/mountinfo") as f:
        host = {line.split()[4] for line in f}
    # every host mount the container held is gone with the old root (as root it held only
    # the template's few; as an ordinary user, all of the host's)
    gone = {k["key"] for k in pivot["children"]["rows"] if k["status"] == "only-host"
            and not k["key"].startswith("$CELL")}    # (the container's building site too)
    assert gone and gone <= host | {"/"}, gone
    if not ROOT:
        assert host - {"/"} <= gone
    overlay = _step(default, 'mount("overlay"', "init (PID 1)")
    assert [k["cell"]["fstype"] for k in overlay["children"]["rows"]] == ["overlay"]
    # the script counts the mounts the last step left it
    name, count = nb.stream("default").split()
    assert name == "rootfs" and default["rows"][-1]["cell"]["mounts"] == f"({count})"
    # chroot: done by the script, the host's mounts kept out of sight only
    # (against the first cell's: the root switch is the one step that differs)
    switched, chroot = _root_switch(nb.payload("chroot", "steps-vs"))
    assert 'pivot_root(".", ".")' in switched["calls"]
    assert 'chroot(".")' in chroot["calls"] and chroot["process"] == "script"
    # %unshare net,cgroup: cgroup with the container, net with the script
    # (against the first cell's: the container's clone differs, the script's is the same)
    unshare = nb.payload("unshare", "steps-vs")
    container = _step(unshare, "clone(", "init (PID 1)")
    assert "CLONE_NEWCGROUP" in container["cell"]["calls"] and container["status"] == "differs"
    assert "CLONE_NEWCGROUP" not in container["host"]["calls"]
    assert "CLONE_NEWNET" in _step(unshare, "clone(", "script")["cell"]["calls"]
    assert nb.stream("unshare").split() == ["lo"]
    # made ahead (unless the host's mounts changed between the two cells): the whole setup,
    # the script's shell started, then the shell's wait on the script pipe for the cell
    prepared = nb.payload("prepared", "steps-vs")
    calls = [r["cell"]["calls"] or "" for r in prepared["rows"] if "cell" in r]
    if any(c.startswith("read(3, ") for c in calls):
        assert calls[-1].startswith("read(3, ") and calls[-2].startswith('execve("/bin/sh"')
        assert "pivot_root" in " ".join(calls[:-1])
        assert prepared["rows"][-1]["cell"]["process"] == "script"
    else:
        assert calls[-1].startswith('execve("/bin/sh"')
    # display: the cell's own mount table, drawn by the cell
    (svg,) = [o.data["image/svg+xml"] for o in nb.cell("display").outputs
              if o.output_type == "display_data"]
    assert svg.startswith("<svg") and "overlay" in svg and "</svg>" in svg
