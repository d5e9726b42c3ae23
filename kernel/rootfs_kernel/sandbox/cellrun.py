"""A cell's run as the kernel learns it: the init's report, the snapshots, the use of its
writable layer; its interrupt and timeout, delivered while it runs (asyncio).

Runs in: the kernel (client.py starts the run, supervises it and calls collect once the
result socket is read).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import cgroups, report, snapshots
from .channels import Once, PipeReader
from .plan import Plan


@dataclass
class CellRun:
    """What one run of a plan came to (SandboxClient.run)."""

    status: int | None = None
    signal: int | None = None
    error: str | None = None          # setup failure reported by the container
    setup_seconds: float | None = None
    snapshots: list[dict] = field(default_factory=list)
    interrupted: bool = False
    timed_out: bool = False
    limit: str | None = None          # which cgroup limit ended (part of) the cell
    profile: list | None = None       # per setup operation (op, where, seconds), on request
    # On request too: when (time.monotonic) the cell reached its container, its script
    # started and ended, the init reported, and the kernel had the report.
    stages: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)   # what the setup did otherwise (words)
    disk_full: bool = False           # the cell filled its writable layer (%limit disk)
    # A prepared container's: when (time.monotonic) the kernel wrote the cell down the
    # pipe its shell waited on (the `wait` of %show steps).
    handed_over: float | None = None
    # run(upper=True): the overlay's upper directory on the cell's tmpfs, an fd the caller
    # closes; it keeps that tmpfs after the cell's namespace has gone (%keep, %export).
    upper: int | None = None


async def collect(readers: list[PipeReader], chunks: list[bytes], release: Once, plan: Plan,
                  run: CellRun, finished: asyncio.Future | None, bounds: dict,
                  upper: bool = False, explain: report.Explain | None = None) -> None:
    """Read the init's report (report.py), take the snapshots while the init still
    holds the cell's namespace (snapshots.py), then release it. With `finished`, the
    cell ends here, once its output is complete too, without waiting for the
    namespace teardown. `bounds`: what bounded the cell (%show limits); `upper`: hand
    the overlay's upper directory over (CellRun.upper); `explain`: what explains a step
    the host refused (report.describe_error)."""
    try:
        await readers[2].eof
        data = report.parse(b"".join(chunks))
        if "error" in data:
            run.error = report.describe_error(plan, data["error"], explain)
        if "status" in data:
            run.status, run.signal = data["status"], data.get("signal")
            run.setup_seconds = data.get("setup_seconds")
            run.profile = report.profile(plan, data.get("profile"))
            if data.get("stages"):
                names = ("in container", "script started", "script ended", "reported")
                run.stages = {**dict(zip(names, data["stages"], strict=True)),
                              "kernel has report": time.monotonic()}
            # The overlay's layers, then the %show steps record (init.c).
            fds = readers[2].fds
            layer_fds = fds[:data["snaps"]] if data.get("snaps", 0) > 0 else None
            steps_fd = fds[-1] if data.get("steps") and fds else None
            if run.handed_over is not None:
                data["handed_over"] = run.handed_over
            # The cell's cgroup counters, read by its init when the script ended.
            run.limit = cgroups.verdict(plan.limits, *data.get("cgroup", (0, 0)))
            written = None
            if layer_fds and plan.layers:   # the upper, on the cell's tmpfs
                run.disk_full, written = _full(layer_fds[0]), _used(layer_fds[0])
                if upper:
                    run.upper = os.dup(layer_fds[0])
            data["limits"] = {"bounds": bounds, "usage": data.get("usage"),
                              "events": data.get("cgroup"), "disk": written,
                              "ended_by": run.limit}
            if plan.show and "init" in data:
                run.snapshots = snapshots.take(plan.show, data["init"], data, layer_fds,
                                               plan.idmap, _store_layers(plan),
                                               steps_fd=steps_fd)
            run.notes = report.notes(plan, data.get("notes") or [])
    finally:
        release.close()
    if finished is not None:
        await asyncio.gather(readers[0].eof, readers[1].eof)
        if run.status is not None and not finished.done():
            finished.set_result({"status": run.status, "signal": run.signal})


def _store_layers(plan: Plan) -> tuple[str, ...] | None:
    """The image store's layers below the overlay, top first (an idmapped one by its
    source), or None when one of them is a %keep layer, which cells change."""
    if plan.layers is None or plan.own_layers:
        return None
    sources = {op.target: op.source for op in plan.ops if op.KIND == "layer"}
    return tuple(sources.get(lower, lower) for lower in plan.layers.lowers)


def _full(fd: int) -> bool:
    """Did the cell fill the tmpfs that holds its writable layer (%limit disk)?"""
    st = os.fstatvfs(fd)
    return st.f_blocks > 0 and st.f_bavail * 100 < st.f_blocks   # less than 1% left


def _used(fd: int) -> int:
    """Bytes the cell wrote to the tmpfs that holds its writable layer."""
    st = os.fstatvfs(fd)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


async def supervise(send: Callable[[dict], None], cid: int, done: asyncio.Future,
                    timeout: float | None, interrupt: asyncio.Event | None, grace: float,
                    run: CellRun) -> dict:
    """Wait for the container to end; deliver interrupts and the timeout meanwhile, through
    `send` (the helper's: SandboxClient.send)."""
    deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
    while True:
        waits = [done]
        stop = None
        if interrupt is not None and not interrupt.is_set():
            stop = asyncio.ensure_future(interrupt.wait())
            waits.append(stop)
        left = None if deadline is None else deadline - asyncio.get_running_loop().time()
        finished, _ = await asyncio.wait(waits, timeout=left,
                                         return_when=asyncio.FIRST_COMPLETED)
        if stop is not None and not stop.done():
            stop.cancel()
        if done in finished:
            return done.result()
        if stop is not None and stop in finished:
            run.interrupted = True
            send({"op": "signal", "id": cid, "signum": int(signal.SIGINT), "grace": grace})
            interrupt = None   # one interrupt is enough; the helper escalates
            continue
        if deadline is not None and not run.timed_out:
            run.timed_out = True
            send({"op": "kill", "id": cid})
            deadline = None


def forward(source: asyncio.Future, target: asyncio.Future) -> None:
    """Settle `target` as `source` was settled (unless it was already)."""
    if target.done() or source.cancelled():
        return
    if source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())
