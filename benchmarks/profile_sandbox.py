"""Where a `true` container's time goes, seen from the kernel's side of the helper.

    python benchmarks/profile_sandbox.py [N] [VARIANT]

Runs N cells of each variant through SandboxClient (the helper makes the containers;
nothing here makes namespaces), with prepared containers and without, and splits each
run at the points in time the cell's init reports (init.c, "stages"; CLOCK_MONOTONIC is
shared by every process): the cell reaches its container (set up by then) -> its script
starts -> ends -> the init reports -> the kernel has the report -> run() returns. Plus
the container's own setup_seconds (its setup operations).
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
    "exec /bin/true (no sh -c)": ("true", lambda p: replace(p, argv=("/bin/true",))),
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


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    only = sys.argv[2] if len(sys.argv) > 2 else None
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
            if i < 5:
                continue
            row, last = {"total": t_end - t_send}, t_send
            for stage in STAGES:
                at = (run.stages or {}).get(stage, last)
                row[f"-> {stage}"], last = at - last, at
            row["-> returned"] = t_end - last
            row["setup_seconds"] = run.setup_seconds or 0.0
            rows.append(row)
        return rows

    keys = ["total", *(f"-> {s}" for s in STAGES), "-> returned", "setup_seconds"]
    short = ["total", "container", "started", "ended", "reported", "kernel", "returned",
             "setup"]
    print(f"p50 ms, n={n}; after total, each column is the time since the previous one:")
    print("  " + "; ".join(f"{a} = {b}" for a, b in zip(short[1:], keys[1:], strict=True)))
    print(f"\n{'variant':44}" + "".join(f"{k:>10}" for k in short))
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
                    f"{statistics.median(r[k] for r in rows) * 1e3:10.2f}" for k in keys))
        finally:
            sb.close()


if __name__ == "__main__":
    main()
