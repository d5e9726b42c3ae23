"""%image --build, %export and %limit, through the kernel."""

from __future__ import annotations

import os
import time

import pytest
from kerneldriver import (
    KernelDriver,
    bound_by,
    cgroup_limits_here,
    children,
    comm,
    needs_cgroups,
    wait_for,
)

from rootfs_kernel.images import ImageStore


def test_export_saves_the_cells_root_as_a_new_image(kernel, image_name):
    res = kernel.ok(f"%export {image_name}\necho kept > /etc/exported; rm /etc/hostname")
    assert f"exported image {image_name}" in res.stderr
    res = kernel.ok(f"%image {image_name}\ncat /etc/exported; ls /etc")
    assert res.stdout.splitlines()[0] == "kept"
    assert "hostname" not in res.stdout.split()
    assert len(ImageStore().get(image_name).layers) == len(ImageStore().get("minimal").layers) + 1


def test_export_of_a_failed_cell_saves_nothing(kernel, image_name):
    res = kernel.run(f"%export {image_name}\ntouch /x; exit 1")
    assert not res.ok and "saved nothing" in res.stderr
    assert not ImageStore().exists(image_name)


def test_export_with_keep_includes_the_kept_changes(kernel, image_name):
    kernel.ok("%keep\necho one > /one")
    kernel.ok(f"%keep\n%export {image_name}\necho two > /two")
    kernel.ok("true")  # ends the chain
    res = kernel.ok(f"%image {image_name}\ncat /one /two")
    assert res.stdout.split() == ["one", "two"]


def test_image_build_shows_a_progress_bar(kernel, image_name):
    res = kernel.ok(f"%image {image_name} --build busybox\nbusybox true && echo built")
    assert res.stdout == "built\n"
    bars = [d for d in res.displays if "application/vnd.jupyter.widget-view+json" in d["data"]]
    assert len(bars) == 1 and bars[0]["transient"]["display_id"]
    # When the build is over the widget is replaced, under the same display id, by a
    # static line: a reopened notebook shows it instead of a missing widget model.
    (final,) = [u for u in res.updates
                if u["transient"]["display_id"] == bars[0]["transient"]["display_id"]]
    assert list(final["data"]) == ["text/plain"]
    assert final["data"]["text/plain"].startswith(f"image {image_name} ready")


def test_unknown_build_kind_is_a_header_error(kernel):
    res = kernel.run("%image x --build fedora\ntrue")
    assert res.reply["ename"] == "HeaderError" and "unknown image kind" in res.reply["evalue"]




LIMITS = "application/vnd.rootfs-kernel.limits+json"


def held(res, mechanism: str) -> dict[str, dict]:
    """The cell's %show limits rows by key, once its payload says `mechanism` held it."""
    (payload,) = [d["data"][LIMITS] for d in res.displays if LIMITS in d["data"]]
    assert payload["mechanism"] == mechanism, payload["title"]
    return {r["key"]: r for r in payload["rows"]}


@bound_by
def test_a_fork_bomb_is_held_by_the_pids_limit(kernel, mechanism):
    """cgroup: pids.max refuses the forks, the helper counts them and ends the cell;
    setrlimit: RLIMIT_NPROC refuses them and the shell ends. Either way well before the
    cell's %timeout, and the next cell runs."""
    start = time.monotonic()
    res = kernel.run("%limit pids=40\n%timeout 20\n%show limits\nbomb() { bomb | bomb; }; bomb",
                     timeout=60)
    assert time.monotonic() - start < 15 and res.reply["ename"] != "Timeout", res.reply
    pids = held(res, mechanism)["pids"]
    assert pids["limit"] == 40
    if mechanism == "setrlimit":
        assert pids["by"] == "RLIMIT_NPROC" and "Cannot fork" in res.stderr
        assert res.reply["ename"] == "ExitStatus"
    else:
        assert pids["by"] == f"{mechanism} pids.max" and pids["used"] <= 40, pids
        assert res.reply["ename"] == "LimitExceeded"
        assert "pids limit (40)" in res.reply["evalue"]
    assert kernel.ok("echo alive").stdout == "alive\n"


@bound_by
def test_a_pids_limit_a_cell_runs_into_holds_and_the_cell_goes_on(kernel, mechanism):
    """Fewer than the 8 processes asked for start, the script goes on; a cgroup counts the
    refused forks and the kernel says so, setrlimit counts nothing (and %show limits says
    that)."""
    # dash ends a script whose fork fails: the forks happen in a subshell that may fail
    # (what it started prints at once, and lives until the script is done)
    res = kernel.ok("%limit pids=5\n%show limits\n"
                    "(for i in 1 2 3 4 5 6 7 8; do (echo started; exec sleep 2) & done; wait) "
                    "2>/dev/null\nsleep 1; echo after")
    assert res.stdout.endswith("after\n") and 0 < res.stdout.count("started") < 8, res.stdout
    pids = held(res, mechanism)["pids"]
    if mechanism == "setrlimit":
        assert pids["used_by"] == "not counted without a cgroup"
        assert "refused" not in res.stderr
    else:
        assert "the pids limit (5) refused" in res.stderr


@bound_by
def test_a_memory_hog_is_held_by_the_memory_limit(kernel, mechanism):
    """cgroup: memory.max, the OOM killer ends the hog and the kernel says which limit;
    setrlimit: RLIMIT_AS refuses its allocation (per process)."""
    res = kernel.run("%limit memory=32m\n%show limits\nhead -c 300m /dev/zero | tail > /dev/null")
    memory = held(res, mechanism)["memory"]
    assert memory["limit"] == 32 << 20
    if mechanism == "setrlimit":
        assert memory["by"] == "RLIMIT_AS (per process)"
        assert res.reply["ename"] == "ExitStatus" and "memory exhausted" in res.stderr
    else:
        assert memory["by"] == f"{mechanism} " + (
            "memory.max" if mechanism == "cgroup v2" else "memory.limit_in_bytes"), memory
        assert memory["used"] <= 32 << 20, memory
        assert res.reply["ename"] == "LimitExceeded"
        assert "memory limit (32 MiB)" in res.reply["evalue"] and "OOM" in res.reply["evalue"]
    assert kernel.ok("echo alive").stdout == "alive\n"


def _cell_cgroups(helper: str) -> list[str]:
    """The cgroups the kernel made for its cells (named HELPER-N): under each v1
    controller's rootfs-kernel/, root's v2 home, or next to a user's helper in its
    delegated v2 scope."""
    from rootfs_kernel.sandbox import cgroups

    bases = [cgroups.ROOT / c / "rootfs-kernel" for c in cgroups.CGROUP_LIMITS]
    bases.append(cgroups.ROOT / cgroups.V2_HOME)
    with open(f"/proc/{helper}/cgroup") as f:
        own = next((ln[3:].strip() for ln in f if ln.startswith("0::")), None)
    if own:
        bases.append((cgroups.ROOT / own.lstrip("/")).parent)
    return [str(d) for b in bases if b.is_dir() for d in b.iterdir()
            if d.is_dir() and d.name.split("-")[0] == helper]


@needs_cgroups
@bound_by
def test_limits_leave_no_cgroup_behind(kernel, mechanism):
    """A cell with a %limit gets a cgroup of its own, and so does the container prepared
    for the next cell; no cgroup outlives the container it was made for."""
    (helper,) = [str(pid) for pid in children(kernel.pid) if comm(pid) == "rootfs-helper"]
    made = set()
    for _ in range(3):
        kernel.ok("%limit pids=50 memory=64m cpu=0.5\ntrue")
        made.update(_cell_cgroups(helper))
        kernel.ok("true")
    assert made, "no cell cgroup was seen: the test looks in the wrong place"

    def empty() -> list[str]:
        out = []
        for path in _cell_cgroups(helper):
            with open(os.path.join(path, "cgroup.procs")) as f:
                if not f.read().strip():
                    out.append(path)
        return out

    # A container that has just ended is reaped (and its cgroup removed) a moment later.
    assert wait_for(lambda: not empty()), empty()


@pytest.mark.skipif(cgroup_limits_here(), reason="cgroups with controllers are writable here "
                    "(root with v1, or a delegated v2 subtree)")
def test_limits_without_writable_cgroups_say_so_and_run():
    fresh = KernelDriver()    # said once per kernel: the shared one may have said it
    try:
        res = fresh.ok("%limit pids=50\necho ran")
        assert res.stdout == "ran\n"
        assert "cgroup limits are unavailable" in res.stderr and "setrlimit" in res.stderr
        again = fresh.ok("%limit pids=50 memory=64m\necho again")
        assert again.stdout == "again\n" and again.stderr == "", again.stderr
    finally:
        fresh.shutdown()


@bound_by
def test_a_fork_bomb_stays_within_its_pids_limit_as_root_and_as_a_user(kernel, mechanism):
    """With cgroups or with RLIMIT_NPROC (no cgroup to make: a cell's root is an
    unprivileged id, root's too), the bomb never holds more processes than the limit."""
    # The script forks once, before the bomb: had it forked the bomb's pipeline itself, its
    # second fork could be refused by then and dash would end it (status 2, no count line).
    res = kernel.run("%limit pids=30\n%show limits\nbomb() { bomb | bomb & }; bomb 2>/dev/null &\n"
                     "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done\n"
                     "set -- /proc/[0-9]*; echo processes $#", timeout=60)
    counts = [int(line.split()[1]) for line in res.stdout.splitlines()
              if line.startswith("processes ")]
    if not counts and cgroup_limits_here():
        # On a busy host the count may come after the helper's fork-bomb watch (forks
        # refused by pids.max for a second) ended the cell: held, and said so.
        assert res.reply.get("ename") == "LimitExceeded", res.reply
        assert "pids limit (30) ended the cell" in res.reply["evalue"], res.reply
    else:
        # A few dying processes are still listed after the controller released their
        # slot; an unlimited bomb would be in the thousands.
        assert counts and counts[0] <= 45, res.stdout
    pids = held(res, mechanism)["pids"]
    assert pids["limit"] == 30 and pids["by"] == (
        "RLIMIT_NPROC" if mechanism == "setrlimit" else f"{mechanism} pids.max")
    assert kernel.ok("echo alive").stdout == "alive\n"
