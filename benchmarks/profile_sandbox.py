"""Where a `true` container's time goes, seen from the kernel's side of the helper.

    python benchmarks/profile_sandbox.py [N] [VARIANT] [GAP_MS]

Runs N cells of each variant through SandboxClient (the helper makes the containers;
nothing here makes namespaces), with prepared containers and without, and splits each
run at the points in time the cell's init reports (init.c, "stages"; CLOCK_MONOTONIC is
shared by every process): the cell is sent -> its container's shell is running (0 when
it was ready before the cell came: a prepared container) -> the script has ended -> the
init reports -> the kernel has the report -> run() returns. Plus the container's own
setup_seconds (its setup operations), spent before the cell came when prepared.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from dataclasses import replace

from rootfs_kernel import cell
from rootfs_kernel.images import ImageStore
from rootfs_kernel.sandbox import client as client_mod
from rootfs_kernel.sandbox.ops import Bind, Mask, ReadOnly
from rootfs_kernel.sandbox.plan import DISPLAY_DIR, Plan, plan_for

VARIANTS = {
    # name: (cell text, plan edit) - the plan is edited as data; the helper runs it.
    "default `true`": ("true", None),
    "exec /bin/true (no shell; on demand)": ("true", lambda p: replace(
        p, argv=("/bin/true",), script=None)),
    "no masks/readonly ops": ("true", lambda p: replace(
        p, ops=tuple(o for o in p.ops if not isinstance(o, Mask | ReadOnly)))),
    "only /dev/null bound (no masks)": ("true", lambda p: replace(
        p, ops=tuple(o for o in p.ops if not isinstance(o, Mask | ReadOnly)
                     and (not isinstance(o, Bind) or o.source == "/dev/null")))),
    "%root none (no overlay/pivot)": ("%root none\ntrue", None),
    "default bounds (pids, memory cgroups; disk)": ("true", lambda p: replace(
        p, limits={"pids": 1024, "memory": 2 << 30, "disk": 1 << 30})),
    "pids cgroup only": ("true", lambda p: replace(p, limits={"pids": 1024})),
    "%%host (fork+exec only)": ("%%host\ntrue", None),
    "without the display bind": ("true", lambda p: replace(
        p, ops=tuple(o for o in p.ops if not (isinstance(o, Bind)
                                              and o.target == f"{DISPLAY_DIR}/display")))),
    "%show steps (every step recorded)": ("%show steps\ntrue", None),
}


def make_plan(sb: client_mod.SandboxClient, image, text: str) -> Plan:  # noqa: ANN001
    spec = cell.parse(text)
    return plan_for(spec, None if spec.host else image, sb.context(host_env=os.environ))


STAGES = ("in container", "script started", "script ended", "reported", "kernel has report")
COLUMNS = ("total", "waited", "ended", "reported", "kernel", "returned", "setup")


def split(t_send: float, t_end: float, stages: dict[str, float] | None, setup: float) -> dict:
    """One run's times (s) by the columns above."""
    if not stages:   # %%host: no container, no stages
        return {**dict.fromkeys(COLUMNS, 0.0), "total": t_end - t_send,
                "returned": t_end - t_send}
    started = max(t_send, stages["script started"])
    return {"total": t_end - t_send, "waited": started - t_send,
            "ended": stages["script ended"] - started,
            "reported": stages["reported"] - stages["script ended"],
            "kernel": stages["kernel has report"] - stages["reported"],
            "returned": t_end - stages["kernel has report"], "setup": setup}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    only = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] != "all" else None
    # A pause after each cell (as run.py's round trips), so the next container is made.
    gap = float(sys.argv[3]) / 1e3 if len(sys.argv) > 3 else 0.02
    image = ImageStore().get("minimal")

    async def loop(sb: client_mod.SandboxClient, plan: Plan) -> list[dict[str, float]]:
        rows = []
        for i in range(n + 5):
            t_send = time.monotonic()
            # As the kernel runs a cell: done once the report and the output are in.
            run = await sb.run(plan, lambda _b: None, lambda _b: None, wait_exit=False,
                               profile=True)
            t_end = time.monotonic()
            if run.error or run.status:
                raise RuntimeError(f"{run.error or run.status}")
            await asyncio.sleep(gap)
            if i < 5:
                continue
            row = split(t_send, t_end, run.stages, run.setup_seconds or 0.0)
            rows.append(row)
        return rows

    print(f"p50 ms, n={n}; total: sent -> returned; waited: for the container's shell to "
          "run; ended: the script ran; reported: the init's report; kernel: it reached the "
          "kernel; returned: the rest of run(); setup: the setup operations (ahead of the "
          "cell when prepared)")
    print(f"\n{'variant':44}" + "".join(f"{k:>10}" for k in COLUMNS))
    for prepare in (True, False):
        sb = client_mod.SandboxClient(prepare=prepare)
        sb.start()
        try:
            for name, (text, edit) in VARIANTS.items():
                if only and only not in name:
                    continue
                plan = make_plan(sb, image, text)
                if edit:
                    plan = edit(plan)
                rows = asyncio.run(loop(sb, plan))
                label = f"{name} ({'prepared' if prepare else 'on demand'})"
                print(f"{label:44}" + "".join(
                    f"{statistics.median(r[k] for r in rows) * 1e3:10.2f}" for k in COLUMNS))
        finally:
            sb.close()


if __name__ == "__main__":
    main()
