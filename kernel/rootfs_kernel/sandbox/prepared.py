"""The next cell's container, made while the kernel waits for that cell.

Runs in: the kernel (preparable, to hand a cell over).

When a container cell is over, the kernel asks the helper for the next one: another
rootfs-init started as the last cell's was (wire.match_key), with the kernel's channels
for the next cell, which makes its namespaces and mounts and starts its shell; the shell
waits for its script on the script pipe (init.c). Made then, it never competes with a
running cell for the machine. If the next cell's plan matches, the kernel hands the cell
over by writing its text into that pipe and tells the helper ("adopt"): nothing has to
start; otherwise the kernel closes its ends (the shell reads an empty script, the init
exits) and asks the helper for a container of the cell's own. Either way every cell runs
in a container no other cell has used.

What a prepared container captured must still be what a fresh one would capture, so it
is thrown away when the host's mount table has changed since it was asked for (binds and
the /sys it shows; the kernel asks its /proc/self/mountinfo when the cell comes), when
the host's addresses have (a %net user container made them unreachable as they were), or
before a %%host cell (which may replace a directory a %bind would take), and never made
for cells whose setup depends on more than the image: %keep/%export layers or
%propagation shared (its mounts reach the host). Its bounds are its own: the kernel makes
its cgroup with it (a cell's limits must match, wire.match_key).
"""

from __future__ import annotations

from .plan import Plan


def preparable(plan: Plan) -> bool:
    """May a container for this plan be made before its cell exists? (pure) Not when
    its setup depends on more than the image: shared propagation (its mounts reach the
    host), layers that later cells write or remove (%keep, %export); nor when its
    program takes the cell as an argument (%shell, %%c): only the default shell reads it
    from the script pipe. Limits are fine: a prepared container gets a cgroup of its own."""
    return not (plan.host or plan.propagation == "shared" or plan.own_layers
                or plan.script is None)
