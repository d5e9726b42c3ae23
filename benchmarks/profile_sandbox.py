"""Where a `true` container's time goes, seen from the kernel's side of the helper.

    python benchmarks/profile_sandbox.py [N]

Runs N `true` cells through SandboxClient (the helper makes the namespaces; nothing here
calls rootfs_kernel.sandbox.container) and stamps each frame the helper sends:

    send run -> "started" (helper forked A) -> "exited" (A reaped) -> pipes at EOF -> run()
    returns; plus the container's own setup_seconds (B's setup operations).

To see inside the helper and its forks, run it under py-spy:
    py-spy record --subprocesses --idle -r 2000 -f raw -o /tmp/sb.txt -- \
        python benchmarks/profile_sandbox.py 500
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time

from rootfs_kernel import cell
from rootfs_kernel.images import ImageStore
from rootfs_kernel.sandbox import client as client_mod
from rootfs_kernel.sandbox import protocol
from rootfs_kernel.sandbox.plan import Places, container_plan, host_plan

VARIANTS = {
    # name: (cell text, plan edit) - the plan is edited as data; the helper runs it.
    "default `true`": ("true", None),
    "exec /bin/true (no sh -c)": ("true", lambda p: p.update(argv=["/bin/true"])),
    "no masks/readonly ops": ("true", lambda p: p.update(
        ops=[o for o in p["ops"] if o["op"] not in ("mask", "readonly")])),
    "only /dev/null bound (no masks)": ("true", lambda p: p.update(
        ops=[o for o in p["ops"] if o["op"] not in ("mask", "readonly")
             and (o["op"] != "bind" or o["source"] == "/dev/null")])),
    "%root none (no overlay/pivot)": ("%root none\ntrue", None),
    "%%host (fork+exec only)": ("%%host\ntrue", None),
}


def make_plan(sb: client_mod.SandboxClient, image, text: str) -> dict:  # noqa: ANN001
    places = Places(scratch=sb.places["scratch"], keep_upper=sb.places["keep_upper"],
                    keep_work=sb.places["keep_work"], keep_active=False)
    spec = cell.parse(text)
    if spec.host:
        return host_plan(spec, dict(os.environ), os.getcwd()).to_json()
    return container_plan(spec, layers=[str(p) for p in image.layers], image_env=image.env,
                          image_workdir=image.workdir, user_env={}, places=places,
                          rootless=sb.rootless, uid=os.getuid(), gid=os.getgid(),
                          host_cwd=os.getcwd()).to_json()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    only = sys.argv[2] if len(sys.argv) > 2 else None
    stamps: dict[str, float] = {}
    recv = protocol.recv

    def stamped_recv(sock):  # noqa: ANN001, ANN202
        msg, fds = recv(sock)
        stamps.setdefault(msg.get("event", "?"), time.perf_counter())
        return msg, fds

    client_mod.protocol.recv = stamped_recv  # only this process's view of the frames
    image = ImageStore().get("minimal")
    sb = client_mod.SandboxClient()
    sb.start()

    async def loop(plan: dict) -> list[dict[str, float]]:
        rows = []
        for i in range(n + 5):
            stamps.clear()
            t_send = time.perf_counter()
            run = await sb.run(json.loads(json.dumps(plan)), lambda _b: None, lambda _b: None)
            t_end = time.perf_counter()
            if run.error or run.status:
                raise RuntimeError(f"{run.error or run.status}")
            if i < 5:
                continue
            rows.append({
                "send->started": stamps["started"] - t_send,
                "started->exited": stamps["exited"] - stamps["started"],
                "exited->returned": t_end - stamps["exited"],
                "total": t_end - t_send,
                "setup_seconds": run.setup_seconds or 0.0,
            })
        return rows

    keys = ["total", "send->started", "started->exited", "exited->returned", "setup_seconds"]
    print(f"{'variant (n=' + str(n) + ', p50 ms)':32}" + "".join(f"{k:>17}" for k in keys))
    try:
        for name, (text, edit) in VARIANTS.items():
            if only and only not in name:
                continue
            plan = make_plan(sb, image, text)
            if edit:
                edit(plan)
            rows = asyncio.run(loop(plan))
            print(f"{name:32}" + "".join(
                f"{statistics.median(r[k] for r in rows) * 1e3:17.2f}" for k in keys))
    finally:
        sb.close()


if __name__ == "__main__":
    main()
