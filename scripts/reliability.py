#!/usr/bin/env python3
"""Print the reliability figures the README quotes: cells run, leaks found, interrupt
latency, fork bomb and memory hog outcomes, time to recover.

    python scripts/reliability.py [--rounds N] [--interrupts N] [--json]

Drives the installed kernelspec `rootfs` through jupyter_client, as a front-end does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The reliability tests' helpers, and tests/ where they find theirs (as pytest has it).
TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS / "reliability"), str(TESTS)]

from rkutil import KernelDriver, cell_mix, leaks, run_interrupt, settle  # noqa: E402

BOMB = "%limit pids=40\n%timeout 20\nbomb() { bomb | bomb & }; bomb; wait; sleep 60"
HOG = "%limit memory=32m\nhead -c 300m /dev/zero | tail > /dev/null"


def outcome(k: KernelDriver, code: str) -> dict:
    start = time.monotonic()
    res = k.run(code, timeout=120)
    ended = time.monotonic()
    alive = k.run("echo alive", timeout=60)
    return {"seconds": round(ended - start, 2),
            "error": res.reply.get("ename"), "message": res.reply.get("evalue", ""),
            "notes": [ln[:160] for ln in res.stderr.splitlines()
                      if ln.startswith("rootfs-kernel:")][:1],
            "recover_seconds": round(time.monotonic() - ended, 3),
            "next_cell_ok": alive.ok and alive.stdout == "alive\n"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6,
                    help="rounds of the cell mix (22 cells each, interrupt included)")
    ap.add_argument("--interrupts", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    figures: dict = {"user": "root" if os.geteuid() == 0 else "ordinary user"}
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o777)
        k = KernelDriver()
        try:
            k.ok("true")
            for _, code in cell_mix(tmp):          # warm-up round
                k.run(code)
            before = settle(k.pid, tmp)
            cells = 0
            start = time.monotonic()
            for _ in range(args.rounds):
                for _, code in cell_mix(tmp):
                    k.run(code)
                    cells += 1
                run_interrupt(k)
                cells += 1
            elapsed = time.monotonic() - start
            found = leaks(before, settle(k.pid, tmp))
            figures["cells"] = cells
            figures["cells_per_second"] = round(cells / elapsed, 1)
            figures["leaks"] = {"mounts": len(found["mounts"]) + len(found["lost_mounts"]),
                                "processes": len(found["processes"]),
                                "fds": max(0, found["fds"]), "rss_growth_mb": found["rss_mb"],
                                "temp_dirs": len(found["runtime"]),
                                "cgroups": len(found["cgroups"])}
            lat = []
            for _ in range(args.interrupts):
                res, seconds = run_interrupt(k)
                if res.reply.get("ename") == "Interrupted":
                    lat.append(seconds)
            figures["interrupt"] = {
                "trials": args.interrupts, "ended": len(lat),
                "p50_s": round(statistics.median(lat), 3) if lat else None,
                "max_s": round(max(lat), 3) if lat else None}
            figures["fork_bomb"] = outcome(k, BOMB)
            figures["memory_hog"] = outcome(k, HOG)
        finally:
            k.shutdown()

    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    lk = figures["leaks"]
    rows = [
        ("run as", figures["user"]),
        ("cells run", f"{figures['cells']} ({figures['cells_per_second']}/s)"),
        ("leaked mounts", lk["mounts"]), ("leaked processes", lk["processes"]),
        ("leaked fds", lk["fds"]), ("RSS growth (MB)", lk["rss_growth_mb"]),
        ("leaked temp/runtime entries", lk["temp_dirs"]), ("leaked cgroups", lk["cgroups"]),
        ("interrupt -> idle p50 / max (s)",
         f"{figures['interrupt']['p50_s']} / {figures['interrupt']['max_s']} "
         f"({figures['interrupt']['ended']}/{figures['interrupt']['trials']} ended)"),
    ]
    for name in ("fork_bomb", "memory_hog"):
        o = figures[name]
        what = f"{o['error']}: {o['message']}" if o["error"] else "ran to the end (no limit)"
        if o["notes"]:
            what += f" [{o['notes'][0]}]"
        rows.append((name.replace("_", " "), f"{what} in {o['seconds']} s"))
        rows.append(("  recover, next cell ok", f"{o['recover_seconds']} s, {o['next_cell_ok']}"))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
