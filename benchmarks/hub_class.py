"""A class on one machine: N students on deploy/jupyterhub's JupyterHub, their rootfs kernels
against the same class with IPython kernels, in one run.

    sudo python benchmarks/hub_class.py                        # 5, 10, 20 students
    sudo python benchmarks/hub_class.py --sizes 20 --rounds 1 --json out.json

The hub is started as deploy/jupyterhub/README.md says (its cgroup per student included),
every student's server once (all at once, as a class logging in); then, for each class
size, in turns (which kernel goes first alternates), every student's kernel is started and
the class runs its notebook (tests/deploy/hubclass.py: seven cells, from `echo` to a
`%show mounts` view; IPython's does the same in Python) cell by cell, the whole class on
one cell at a time, `--rounds` times. Reported: the cell round trip (execute_request sent
to execute_reply received, through the hub's proxy, the server and its WebSocket) p50, p95
and max over every cell of every student; memory per student with the kernels up (PSS of
all the student's processes: server, kernel, and for rootfs its helper and prepared
container; RSS beside it); failures (a cell that did not reply, or a kernel that died).
Nothing is asserted: the machine is shared and noisy, so compare the ratios of one run.

Needs root, jupyterhub and configurable-http-proxy (scripts/test-deploy.sh installs them);
makes the accounts rkstudent1..N (group rkstudents) when they are missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "deploy"))   # the class driver the deploy test uses

from hubclass import Hub, Seat, make_students, missing, notebook, run_class, start_servers  # noqa: E402

KERNELS = {"rootfs": "rootfs", "ipython": "python3"}


async def measure(hub: Hub, students, sizes: list[int], rounds: int) -> list[dict]:
    seats = [Seat(hub, s) for s in students]
    start = time.monotonic()
    await start_servers(seats)
    print(f"{len(seats)} servers started together in {time.monotonic() - start:.0f} s "
          f"(slowest {max(s.started for s in seats):.0f} s)", flush=True)
    rows = []
    for turn, size in enumerate(sizes):
        klass = seats[:size]
        neighbour = {s.student.name: klass[(i + 1) % size].student
                     for i, s in enumerate(klass)}
        order = list(KERNELS) if turn % 2 == 0 else list(reversed(KERNELS))
        for label in order:
            run = await run_class(klass, KERNELS[label],
                                  lambda s, label=label, near=neighbour: notebook(
                                      label, s, near[s.name]),
                                  rounds=rounds)
            row = {"students": size, "kernel": label, **run.summary(),
                   "failed": run.failures[:5]}
            rows.append(row)
            print(f"{size:3d} students  {label:8s} p50 {row['p50_ms']:7.1f} ms  "
                  f"p95 {row['p95_ms']:7.1f} ms  max {row['max_ms']:7.1f} ms  "
                  f"PSS {row['pss_mb_per_student']:6.1f} MB/student "
                  f"(kernel side {row['kernel_pss_mb_per_student']:5.1f})  "
                  f"failures {row['failures']}, reconnects {row['reconnects']}", flush=True)
            print("      p50 by cell: " + ", ".join(
                f"{k} {v:.0f}" for k, v in row["p50_ms_by_cell"].items()), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    by = {(r["students"], r["kernel"]): r for r in rows}
    lines = ["| students | cells | p50 rootfs / IPython | p95 rootfs / IPython | memory per "
             "student (PSS) rootfs / IPython | kernel side only | failures |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for size in sorted({r["students"] for r in rows}):
        a, b = by[(size, "rootfs")], by[(size, "ipython")]

        def pair(key: str, unit: str, a=a, b=b) -> str:
            return (f"{a[key]:.0f} / {b[key]:.0f} {unit} ({a[key] / b[key]:.2f}x)"
                    if b[key] else f"{a[key]:.0f} / {b[key]:.0f} {unit}")

        lines.append(f"| {size} | {a['cells']} + {b['cells']} | {pair('p50_ms', 'ms')} | "
                     f"{pair('p95_ms', 'ms')} | {pair('pss_mb_per_student', 'MB')} | "
                     f"{pair('kernel_pss_mb_per_student', 'MB')} | "
                     f"{a['failures']} + {b['failures']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="5,10,20", help="class sizes (default 5,10,20)")
    ap.add_argument("--rounds", type=int, default=2, help="times through the notebook")
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    why = missing()
    if why:
        raise SystemExit(f"hub_class: {why}")
    sizes = [int(n) for n in args.sizes.split(",")]
    students = make_students([f"rkstudent{i}" for i in range(1, max(sizes) + 1)],
                             "rkstudents")
    work = Path(tempfile.mkdtemp(prefix="rk-hub-class-"))
    hub = Hub(work, "rkstudents", env={"ROOTFS_HUB_CGROUP": "rootfs-hub-bench"},
              args=("--Spawner.http_timeout=600", "--Spawner.start_timeout=600"))
    hub.start()
    try:
        rows = asyncio.run(measure(hub, students, sizes, args.rounds))
    except BaseException:
        print(f"hub_class: the hub's log is kept in {hub.log}", file=sys.stderr)
        raise
    finally:
        hub.stop()
        for controller in ("memory", "pids", "cpu"):   # the students' cgroups went with them
            with contextlib.suppress(OSError):
                (Path("/sys/fs/cgroup") / controller / "rootfs-hub-bench").rmdir()
    shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": platform.node(), "rounds": args.rounds,
                                         "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
