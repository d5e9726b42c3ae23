"""The next cell's container, made while the kernel waits for that cell.

After a container cell starts, the helper starts another rootfs-init with the same
setup (wire.setup_tokens) and no script: it makes its namespaces and mounts and waits
(init.c, "warm"). If the next cell's plan has the same setup tokens, it takes that
container and only its script has to start; otherwise the prepared one is killed and the
cell's own is made as before. Either way every cell runs in a container no other cell
has used.

What a prepared container captured must still be what a fresh one would capture, so it
is thrown away when the host's mount table changes (binds and the /sys it shows) or a
%%host cell runs (which may replace a directory a %bind would take), and never made for
cells whose setup depends on more than the image: %keep/%export layers, %limit (cgroups
are joined at the start), or %propagation shared (its mounts reach the host).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass


@dataclass
class Prepared:
    pid: int                 # process A (rootfs-init), the helper's child
    pidfd: int
    sock: socket.socket      # the helper's end of init.c's fd 5
    setup: list[str]         # wire.setup_tokens of the plan it was made from


def preparable(plan: dict, places: dict) -> bool:
    """May a container for this plan be made before its cell exists? (pure)"""
    if plan["host"] or plan.get("limits") or plan.get("cgroup_procs") or plan.get("rlimits"):
        return False
    if any(op["op"] == "propagation" and op["mode"] == "shared" for op in plan["ops"]):
        return False
    # Layers that later cells write or remove (%keep, %export) are the cell's own.
    own = (places["keep_upper"].rsplit("/", 1)[0], places["export_upper"].rsplit("/", 1)[0])
    return not any(prefix in str(value) for op in plan["ops"] for value in op.values()
                   for prefix in own)
