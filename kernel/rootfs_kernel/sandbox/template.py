"""The helper's template mount namespace: what it holds, and when to make it again (pure).

Runs in: the kernel (client.py asks the helper for it; init.c makes it and clones the
containers from it; helper.py keeps it).

A container's clone(CLONE_NEWNS) copies every mount of the namespace it is cloned from,
its setup makes them private one by one, and its root switch detaches them all: on a host
with thousands of mounts (a Kubernetes node's volumes, other containers' roots,
automounts) that is most of the time a container takes to make. In root mode the helper
keeps a namespace of its own that holds only what a container takes from the host: the
root filesystem, /proc (the setup reaches its fds through it), /dev (the devices it
binds), /sys with the mounts below it (bound into a cell on the host's network), and
each mount on the way to the paths its plans name (Plan.template: the helper's directory,
the image's layers, the `display` program, pasta's resolv.conf), each alone. A container
is cloned from it (init.c: its first process enters it for the clone alone) when its plan
allows: not for the cells that see the host's own tree or mounts (%root none, an unlocked
%root chroot, %bind, %propagation slave or shared), nor an ordinary user's, whose init
may not enter a namespace of the host's user namespace.

What the template holds goes stale when the host's mount table changes (a new mount on
the way to the image store, say): the kernel has the helper make it again before the
next container that uses it, as it does when a plan names a path it does not hold.
"""

from __future__ import annotations

from .plan import Plan

ALWAYS = ("/dev", "/proc")   # each alone
RECURSIVE = ("/sys",)        # with the mounts below it (the cgroup hierarchies)


class Template:
    """The kernel's account of the helper's template: the paths it holds and the mount
    table's generation it was made at."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled                  # root mode, and the helper could make it
        self.paths: frozenset[str] = frozenset()
        self.generation: int | None = None
        self.idmap = ""            # the id map whose user namespace was made with it

    def use(self, plan: Plan, generation: int) -> tuple[bool, tuple[str, ...] | None]:
        """(whether the container for `plan` is cloned from the template, the paths of a
        new template to have made first, or None when the one there holds them). The
        user namespace of the plan's id map is made with it, once, not for each
        container."""
        if not self.enabled or not plan.template:
            return False, None
        if self.generation == generation and self.paths.issuperset(plan.template) \
                and self.idmap == plan.idmap:
            return True, None
        self.generation, self.idmap = generation, plan.idmap
        self.paths = self.paths.union(plan.template)
        return True, tuple(sorted(self.paths.union(ALWAYS)))

    def idmap_for(self, plan: Plan) -> bool:
        """Is the user namespace of the id map made with the template this plan's?"""
        return self.enabled and bool(plan.idmap) and self.idmap == plan.idmap

    def failed(self) -> None:
        """The helper could not make it: containers are cloned from the host's namespace."""
        self.enabled = False
