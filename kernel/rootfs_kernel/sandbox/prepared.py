"""Prepared containers: what each took from the host when it was made, the check when a
cell comes, and when to make the next one.

Runs in: the kernel (client.py starts them and hands cells over; the helper and
rootfs-init make them, helper.py and init.c).

When a container cell is over, the kernel asks the helper for the next one: another
rootfs-init started as the last cell's was, with the kernel's channels for the next cell,
which makes its namespaces and mounts and starts its shell; the shell waits for its script
on the script pipe (init.c). If the cell that comes has the same setup and nothing the
container took has changed since (Capture), the kernel hands the cell over by writing its
text into that pipe: nothing has to start. Otherwise the kernel closes its ends (the shell
reads an empty script, the init exits) and the cell gets a container of its own, made
when it comes. Either way every cell runs in a container no other cell has used.

What a container takes from the host and the session when it is made (Capture):
- its plan: everything rootfs-init is started with but the cell's text (setup_key), the
  image's layers and the stamp of the image they came from among it;
- the directories and files of the cell's %bind lines, by device and inode (a bind
  takes what the path names when it is made: a directory renamed over it since is not
  what the cell would bind now);
- the host's mount table, by generation (MountWatch): a recursive bind copies the
  mounts below its source, a container cloned from the host copies them all;
- for %net user, the host's addresses, by generation (AddressWatch): its init made them
  unreachable as they were (init.c);
- how many %%host cells had run: such a cell runs on the host as the kernel's user and
  may have replaced any file a container takes by path that no check above watches (the
  `display` program, the devices, a file in a layer).
A container is never made for cells whose setup depends on more than that (preparable).

When to make the next (Pool): once a cell is over, one container with its setup, made
after the kernel's reply so it never competes with a cell for the machine; and when cells
queue (Run All: a cell that comes within BURST_SECONDS of the last one's end), one more at
once when a cell is handed over, so the cell after it finds its container ready instead of
waiting for the one started after its predecessor's reply. At most one waits while the
kernel is idle.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from .plan import Plan

# A cell that comes this soon after the last one ended was queued behind it (Run All,
# nbclient, papermill): a person sends cells further apart.
BURST_SECONDS = 0.01


def preparable(plan: Plan) -> bool:
    """May a container for this plan be made before its cell exists? (pure) Not when
    its setup depends on more than the image: shared propagation (its mounts reach the
    host), layers that later cells write or remove (%keep, %export); nor when its
    program takes the cell as an argument (%shell, %%c): only the default shell reads it
    from the script pipe. Limits are fine: a prepared container gets a cgroup of its own."""
    return not (plan.host or plan.propagation == "shared" or plan.own_layers
                or plan.script is None)


# Every field of a plan but the cell's text and the views (which the container knows
# only by what it records and reports: views_key).
_SETUP_FIELDS = tuple(f.name for f in fields(Plan) if f.name not in ("script", "show"))


def views_key(plan: Plan) -> tuple[bool, bool, bool, bool]:
    """What a cell's %show lines change in its container (wire.script_tokens,
    setup_tokens): namespace ids, a look at its files, the steps' record, a cgroup
    that counts."""
    kinds = {s.kind for s in plan.show}
    return ("ns" in kinds, bool(kinds & {"mounts", "ls", "tree"}), "steps" in kinds,
            "limits" in kinds)


def setup_key(plan: Plan, profile: bool = False) -> tuple:
    """Everything a container is made from but the cell's text (pure): two plans with the
    same key start the same rootfs-init, cgroup and shell. Plans that share their
    operations (Session derives a cell's plan from its setup's) compare by identity."""
    return (*(getattr(plan, name) for name in _SETUP_FIELDS), views_key(plan),
            plan.script is None, profile)


def bind_sources(plan: Plan) -> tuple[str, ...]:
    """The host paths of the cell's own %bind lines (the other binds are the kernel's)."""
    return tuple(op.source for op in plan.ops if op.KIND == "bind" and op.lineno)


def identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of what a path names now, through symlinks, as a bind takes it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


@dataclass(frozen=True)
class Capture:
    """What a container took from the host and the session when it was made."""

    setup: tuple                       # setup_key of its plan
    sources: tuple                     # ((path, identity), ...) of its %bind lines
    mounts: int                        # the host mount table's generation
    addresses: int | None              # the host addresses' generation (%net user)
    hosts: int                         # %%host cells run before it was made


def refusal(made: Capture, now: Capture) -> str | None:
    """Why a container that captured `made` must not run the cell whose capture, taken
    as it comes, is `now`; None when it may. (pure)"""
    if made.setup != now.setup:
        return "the cell's setup differs"
    if made.hosts != now.hosts:
        return "a %%host cell ran since it was made"
    if made.mounts != now.mounts:
        return "the host's mount table changed since it was made"
    if made.sources != now.sources:
        return "a %bind source is another file or directory now"
    if made.addresses != now.addresses:
        return "the host's addresses changed since it was made (%net user)"
    return None


class MountWatch:
    """The generation of the host's mount table: one more each time it changed. The kernel
    shares the helper's mount namespace, so its /proc/self/mountinfo is the one a
    container starts from; poll() reports POLLPRI on it once per change (and re-arms),
    and asking is one system call."""

    def __init__(self) -> None:
        self.file = open("/proc/self/mountinfo", "rb")  # noqa: SIM115 - lives with us
        self.poll = select.poll()
        self.poll.register(self.file.fileno(), select.POLLPRI | select.POLLERR)
        self.poll.poll(0)
        self.value = 0

    def generation(self) -> int:
        if self.poll.poll(0):
            self.value += 1
        return self.value


class AddressWatch:
    """The generation of the host's addresses: rtnetlink's address groups tell anyone
    each change."""

    GROUPS = 0x10 | 0x100   # RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR

    def __init__(self) -> None:
        self.value = 0
        self.sock: socket.socket | None = None
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            self.sock.bind((0, self.GROUPS))
            self.sock.setblocking(False)
        except OSError:   # no rtnetlink here: every question is a change (never stale)
            self.sock = None

    def generation(self) -> int:
        if self.sock is None:
            self.value += 1
            return self.value
        seen = False
        while True:
            try:
                seen = bool(self.sock.recv(65536)) or seen
            except BlockingIOError:
                break
            except OSError:   # ENOBUFS: so many changes the queue overflowed
                seen = True
        self.value += seen
        return self.value


@dataclass
class Ready:
    """One prepared container: the helper's name for it, what it captured, the next
    cell's channels it holds (client.Channels) and what bounds it (cgroups.bounds)."""

    key: int
    capture: Capture
    chan: object
    bounds: dict


class Pool:
    """The prepared containers of one kernel, and when to make the next."""

    def __init__(self, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self.clock = clock
        self.ready: list[Ready] = []           # oldest first, made or being made
        self.mounts = MountWatch()
        self.addresses = AddressWatch()
        self.hosts = 0                         # %%host cells run so far
        self.next: tuple[Plan, bool] | None = None   # what to make once the loop is free
        self.ended = float("-inf")             # when the last cell ended (clock)
        self.why: str | None = None            # why the last one refused was

    def capture(self, plan: Plan, profile: bool) -> Capture:
        """What a container made for this plan now would take."""
        return Capture(setup_key(plan, profile),
                       tuple((p, identity(p)) for p in bind_sources(plan)),
                       self.mounts.generation(),
                       self.addresses.generation() if plan.net == "user" else None,
                       self.hosts)

    def take(self, plan: Plan, profile: bool) -> Ready | None:
        """The container prepared for this cell, if one may run it; the others are
        closed. A %%host cell takes none and leaves them: the next cell refuses them
        (Capture.hosts)."""
        if plan.host:
            self.hosts += 1
            return None
        found = None
        if self.ready:
            now = self.capture(plan, profile)
            while self.ready:
                ready = self.ready.pop(0)
                why = refusal(ready.capture, now)
                if why is None and found is None:
                    found = ready
                else:
                    self.why = why
                    ready.chan.close()
        return found

    def queued(self) -> bool:
        """Did this cell queue behind the last (Run All)?"""
        return self.clock() - self.ended < BURST_SECONDS

    def ahead(self, plan: Plan, profile: bool) -> bool:
        """Make one more now, for the cell after this one? When cells queue and none is
        waiting already."""
        return self.enabled and not self.ready and preparable(plan) and self.queued()

    def ended_cell(self, plan: Plan, profile: bool, ok: bool) -> None:
        """A cell is over: what to make for the next one, once the loop is free."""
        self.ended = self.clock()
        if self.enabled and ok and preparable(plan):
            self.next = (plan, profile)

    def wanted(self) -> tuple[Plan, bool] | None:
        """What to make now (after a cell): its setup, unless one waits with it already."""
        want, self.next = self.next, None
        if want is None:
            return None
        if self.ready and self.ready[-1].capture.setup == setup_key(*want):
            return None
        self.drop_all()
        return want

    def add(self, ready: Ready) -> None:
        self.ready.append(ready)

    def forget(self, key: int) -> None:
        """The helper could not make it: the next cell gets one of its own."""
        for ready in [r for r in self.ready if r.key == key]:
            self.ready.remove(ready)
            ready.chan.close()

    def drop_all(self) -> None:
        """Close our ends of every prepared container: their shells read an empty script."""
        while self.ready:
            self.ready.pop().chan.close()
