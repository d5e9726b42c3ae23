"""%show limits without a kernel: the payload from the kernel's record of a cell, the
lines every view draws (the golden file the renderer is checked against too), the HTML
bars, the widget, and what bounded the cell in words (cgroups.bounds)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from rootfs_kernel.sandbox import cgroups
from rootfs_kernel.views import LIMITS_MIME_TYPE, view_bundle
from rootfs_kernel.views.limits import limits_lines, limits_payload, render_limits_html

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "limits"
GOLDEN = json.loads((FIXTURES / "limits.json").read_text())
SCHEMA = json.loads((Path(cgroups.__file__).parents[1] / "views" /
                     "limits.schema.json").read_text())
MIB = 1 << 20


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_the_kernel_builds_and_draws_the_golden_payloads(name):
    case = GOLDEN[name]
    payload = limits_payload(case["record"])
    assert payload == case["payload"]
    jsonschema.validate(payload, SCHEMA)
    assert limits_lines(payload) == case["lines"]
    data, _ = view_bundle(payload, widget=False)
    assert data["text/plain"] == "\n".join(case["lines"])
    assert data[LIMITS_MIME_TYPE] is payload


def test_the_peaks_next_to_the_limits_and_what_measured_them():
    hog = GOLDEN["v2-memory-hog"]["payload"]
    memory, pids, cpu, disk = hog["rows"]
    assert (memory["by"], memory["used"], memory["used_by"]) == (
        "cgroup v2 memory.max", 32 * MIB, "memory.peak")
    assert memory["fraction"] == 1.0 and memory["used_text"] == "32 MiB (100%)"
    assert (pids["by"], pids["used"], pids["used_by"]) == ("RLIMIT_NPROC", 4, "pids.peak")
    assert cpu["limit"] is None and cpu["fraction"] is None
    assert cpu["used_text"] == "0.41 s CPU"
    assert disk["used_text"] == "12 KiB (0%)"
    assert GOLDEN["v2-memory-hog"]["lines"][-1] == (
        "ended: the memory limit (32 MiB) ended 1 process(es) (OOM kill)")
    # without a cgroup: getrusage's figures, and pids not counted
    plain = GOLDEN["setrlimit"]["payload"]
    assert plain["mechanism"] == "setrlimit" and plain["cgroup"] == []
    memory, pids, cpu, _ = plain["rows"]
    assert memory["used"] == 5000 * 1024 and "getrusage" in memory["used_by"]
    assert pids["used"] is None and pids["used_text"] == "-"
    assert cpu["by"] == "nothing: it needs a cgroup" and cpu["used"] == pytest.approx(0.123456)
    assert GOLDEN["setrlimit"]["lines"][-1].startswith("note: cgroup limits are unavailable")


def test_refused_forks_and_oom_kills_are_said_when_no_limit_ended_the_cell():
    record = {**GOLDEN["v2-fork-bomb"]["record"], "ended_by": None, "events": [7, 2]}
    lines = limits_lines(limits_payload(record))
    assert lines[-2:] == ["refused: 7 fork(s) at the pids limit", "OOM kills: 2"]


def test_html_has_a_bar_per_peak_in_the_error_colour_when_reached():
    html = render_limits_html(GOLDEN["v2-fork-bomb"]["payload"])
    pids = html[html.index('data-key="pids"'):html.index('data-key="cpu"')]
    assert "width:100.0%" in pids and "--jp-error-color1" in pids
    cpu = html[html.index('data-key="cpu"'):html.index('data-key="disk"')]
    assert "width:" not in cpu   # a CPU share is a rate: no bar
    evil = {**GOLDEN["setrlimit"]["payload"], "note": "<script>x</script>"}
    assert "<script>" not in render_limits_html(evil)


def test_the_widget_shows_a_bar_per_limit_and_closes_what_it_made():
    data, _ = view_bundle(GOLDEN["v2-memory-hog"]["payload"])
    assert "application/vnd.jupyter.widget-view+json" in data
    from rootfs_kernel.views.widget import build_widget

    w = build_widget(GOLDEN["v2-memory-hog"]["payload"])
    bars = [row.children[0] for row in w.children[1:5]]
    assert [b.value for b in bars[:2]] == [1.0, pytest.approx(4 / 1024)]
    assert bars[0].bar_style == "danger" and bars[2].layout.visibility == "hidden"
    w.close_all()
    assert w.comm is None and all(b.comm is None for b in bars)


def test_bounds_say_what_holds_each_limit():
    class Group:   # a CellCgroup as made: its version, limits written and directories
        version, limits = 2, {"memory": 32 * MIB, "cpu": 0.5}
        dirs = {"memory": Path("/sys/fs/cgroup/rootfs-kernel/1-2")}

    limits = {"memory": 32 * MIB, "pids": 1024, "cpu": 0.5, "disk": 1 << 30}
    held = cgroups.bounds(limits, Group, {"nproc": 1024})
    assert [r["by"] for r in held["rows"]] == [
        "cgroup v2 memory.max", "RLIMIT_NPROC", "cgroup v2 cpu.max", "tmpfs size"]
    assert held["cgroup"] == {"version": 2, "dirs": ["/sys/fs/cgroup/rootfs-kernel/1-2"]}
    none = cgroups.bounds(limits, None, {"nproc": 1024, "as": 32 * MIB}, "why")
    assert [r["by"] for r in none["rows"]] == [
        "RLIMIT_AS (per process)", "RLIMIT_NPROC", "nothing: it needs a cgroup", "tmpfs size"]
    assert none["note"] == "why" and none["cgroup"] is None
    assert cgroups.bounds({}, None, {})["rows"][0] == {"key": "memory", "limit": None,
                                                      "by": None}
