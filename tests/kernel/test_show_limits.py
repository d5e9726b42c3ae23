"""%show limits through a real kernel: what bounded the cell and what it used, as root
(cgroups here: v1 on this project's machine; the VM target proves v2) and as an ordinary
user (no cgroup to make here: setrlimit, and getrusage for the peaks)."""

from __future__ import annotations

from kerneldriver import cgroup_limits_here

MIME = "application/vnd.rootfs-kernel.limits+json"


def limits_of(res) -> dict:
    (data,) = [d["data"] for d in res.displays if MIME in d["data"]]
    assert data["text/plain"].splitlines()[0] == data[MIME]["title"]
    assert "<table" in data["text/html"]
    return data[MIME]


def test_peaks_next_to_each_limit(kernel):
    res = kernel.ok("%limit pids=40 memory=256m\n%show limits\n"
                    "for i in 1 2 3 4 5 6; do sleep 0.3 & done\n"
                    "head -c 24m /dev/zero | tail > /dev/null\nwait; echo done")
    assert res.stdout == "done\n"
    p = limits_of(res)
    rows = {r["key"]: r for r in p["rows"]}
    assert rows["disk"]["by"] == "tmpfs size" and rows["disk"]["limit"] == 1 << 30
    assert rows["cpu"]["limit"] is None and rows["cpu"]["used"] > 0
    # tail held the 24 MiB "line": the peak memory says so, however it was measured
    assert rows["memory"]["used"] >= 24 << 20, rows["memory"]
    if cgroup_limits_here():
        version = p["mechanism"]
        assert version in ("cgroup v1", "cgroup v2") and p["cgroup"], p
        assert rows["memory"]["by"] in ("cgroup v1 memory.limit_in_bytes",
                                        "cgroup v2 memory.max")
        assert rows["pids"]["by"].endswith("pids.max") and rows["pids"]["limit"] == 40
        # the shell, its six sleeps, head and tail: at least 7 at once, never over 40
        assert rows["pids"]["used_by"] == "pids.peak" and 7 <= rows["pids"]["used"] <= 40
    else:
        assert p["mechanism"] == "setrlimit" and p["cgroup"] == []
        assert rows["memory"]["by"] == "RLIMIT_AS (per process)"
        assert rows["pids"]["by"] == "RLIMIT_NPROC" and rows["pids"]["used"] is None
        assert "getrusage" in rows["memory"]["used_by"]
        assert "cgroup limits are unavailable" in (p["note"] or "")


def test_a_plain_cell_shows_its_default_bounds_and_usage(kernel):
    p = limits_of(kernel.ok("%show limits\necho hi > /tmp/f"))
    rows = {r["key"]: r for r in p["rows"]}
    assert rows["pids"]["limit"] == 1024
    # an unprivileged root's default pids bound is RLIMIT_NPROC (root's cells are one too)
    assert rows["pids"]["by"] == "RLIMIT_NPROC"
    assert rows["memory"]["limit"] is None and rows["memory"]["by"] == "-"
    assert rows["disk"]["used"] > 0   # the file the cell wrote into its writable layer
    assert p["ended_by"] is None and p["forks_refused"] == 0 and p["oom_kills"] == 0


def test_the_limit_that_ended_the_cell_is_shown(kernel):
    res = kernel.run("%limit memory=32m\n%show limits\nhead -c 300m /dev/zero | tail > /dev/null")
    p = limits_of(res)
    if cgroup_limits_here():
        assert res.reply["ename"] == "LimitExceeded"
        assert p["ended_by"] == "the memory limit (32 MiB) ended 1 process(es) (OOM kill)"
        assert p["oom_kills"] == 1 and p["rows"][0]["fraction"] == 1.0
    else:   # RLIMIT_AS: tail's allocation fails instead
        assert p["ended_by"] is None and p["rows"][0]["by"] == "RLIMIT_AS (per process)"
