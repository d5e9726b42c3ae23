"""CPU time per cell in a Run All, by process: where a notebook's cells spend the machine.

    python benchmarks/cpu_per_cell.py [N]

Starts a rootfs kernel and an IPython kernel in turn, sends N different small cells at
once to each (`echo N` / `print(N)`, as Run All does), waits for the last reply, and reads
from /proc/PID/stat what each process of the kernel's tree used meanwhile: its own user +
system time, and that of the children it reaped (for the helper: every container and its
shell). CPU time, not wall time, so other load on the machine moves it little; the kernel
work a process causes outside its own context (a network namespace's teardown in a
kworker) is not in it. Prints ms per cell for each process and the wall time per cell.
"""

from __future__ import annotations

import os
import sys
import time

from jupyter_client.manager import start_new_kernel

HZ = os.sysconf("SC_CLK_TCK")


def _times(pid: int) -> tuple[int, int] | None:
    """(own user+system, reaped children's user+system) in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def _tree(pid: int) -> list[int]:
    out = [pid]
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children") as f:
                kids = f.read().split()
        except OSError:
            continue
        for kid in kids:
            out += _tree(int(kid))
    return out


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    module = next((w for w in words[1:] if not w.startswith("-")), words[0] if words else "?")
    return os.path.basename(module)


def measure(kernel: str, n: int) -> dict:
    km, kc = start_new_kernel(kernel_name=kernel)
    try:
        template = "echo {}" if kernel == "rootfs" else "print({})"
        kc.execute_interactive(template.format(-1), timeout=60, output_hook=lambda msg: None)
        time.sleep(1)   # the next container prepared, the kernel idle
        procs = _tree(km.provisioner.process.pid)
        before = {p: _times(p) for p in procs}
        start = time.perf_counter()
        ids = {kc.execute(template.format(i)) for i in range(n)}
        while ids:
            ids.discard(kc.get_shell_msg(timeout=120)["parent_header"].get("msg_id"))
        wall = time.perf_counter() - start
        time.sleep(0.5)   # the last container reaped
        rows = {}
        for p in procs:
            after, was = _times(p), before[p]
            if after is None or was is None:
                continue
            rows[f"{_name(p)} ({p})"] = ((after[0] - was[0]) / HZ * 1e3 / n,
                                         (after[1] - was[1]) / HZ * 1e3 / n)
        return {"wall": wall * 1e3 / n, "rows": rows}
    finally:
        km.shutdown_kernel(now=True)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    for kernel in ("rootfs", "python3"):
        got = measure(kernel, n)
        print(f"{kernel}: {n} cells at once, {got['wall']:.2f} ms a cell (wall)")
        for name, (own, reaped) in got["rows"].items():
            print(f"  {name:40} own {own:5.2f} ms/cell   reaped children {reaped:5.2f} ms/cell")


if __name__ == "__main__":
    main()
