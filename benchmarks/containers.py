"""Fresh containers running `true`, through the SandboxClient of whichever rootfs_kernel
this Python imports (run.py runs it with this version's and an earlier one's, --before).

    python benchmarks/containers.py N on-demand|prepared [--no-template]

Prints one JSON line: the milliseconds of each of N runs after five warm-ups, from
SandboxClient.run() called to the container gone (wait_exit: its namespaces torn down),
as a cell's kernel would wait for it. `on-demand`: nothing prepared, every container
made when its run comes (plan encoded, helper's spawn, rootfs-init's setup, the shell's
exec, all on the clock); `prepared`: the next one made while the previous one's caller
waits 20 ms, as a notebook's kernel does between cells (its setup off the clock).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import time

from rootfs_kernel import cell
from rootfs_kernel.images import ImageStore
from rootfs_kernel.sandbox.client import SandboxClient
from rootfs_kernel.sandbox.plan import plan_for


def main() -> None:
    n, mode = int(sys.argv[1]), sys.argv[2]
    kwargs = {"prepare": mode == "prepared"}
    if "--no-template" in sys.argv[3:] and \
            "template" in inspect.signature(SandboxClient).parameters:
        kwargs["template"] = False
    client = SandboxClient(**kwargs)
    client.start()
    try:
        plan = plan_for(cell.parse("true"), ImageStore().get("minimal"), client.context())

        async def loop() -> list[float]:
            out = []
            for i in range(5 + n):
                t0 = time.perf_counter()
                run = await client.run(plan, _drop, _drop)
                took = (time.perf_counter() - t0) * 1e3
                if run.error or run.status:
                    raise SystemExit(f"`true` failed: {run.error or run.status}")
                if i >= 5:
                    out.append(took)
                await asyncio.sleep(0.02)
            return out

        print(json.dumps(asyncio.run(loop())))
    finally:
        client.close()


def _drop(_data: bytes) -> None:
    pass


if __name__ == "__main__":
    main()
