"""The next cell's container, made while the kernel waits for that cell.

Runs in: the kernel (preparable, to hand a cell over) and the helper (Prepared).

When a container cell has reported, the kernel asks the helper for the next one: another
rootfs-init with the same setup (wire.setup_tokens) and no script, which makes its
namespaces and mounts and waits (init.c, "warm"); the kernel gets the socket it waits
on. Made then, it never competes with a running cell for the machine. If the next cell's plan
has the same setup tokens, the kernel hands the cell over on that socket and tells the
helper ("adopt"), and only the script has to start; otherwise the kernel closes it (B
exits) and asks the helper for a container of the cell's own. Either way every cell
runs in a container no other cell has used.

What a prepared container captured must still be what a fresh one would capture, so it
is thrown away when the host's mount table changes (binds and the /sys it shows; the
helper says "stale") or before a %%host cell (which may replace a directory a %bind
would take), and never made for cells whose setup depends on more than the image:
%keep/%export layers, %limit (cgroups are joined at the start), or %propagation shared
(its mounts reach the host).
"""

from __future__ import annotations

from dataclasses import dataclass

from .plan import Plan


@dataclass
class Prepared:
    pid: int                 # process A (rootfs-init), the helper's child
    pidfd: int


def preparable(plan: Plan) -> bool:
    """May a container for this plan be made before its cell exists? (pure) Not when
    its setup depends on more than the image: limits (cgroups are joined at the start),
    shared propagation (its mounts reach the host), layers that later cells write or
    remove (%keep, %export)."""
    return not (plan.host or plan.limits or plan.propagation == "shared" or plan.own_layers)
