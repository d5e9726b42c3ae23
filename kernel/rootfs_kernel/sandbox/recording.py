"""%show steps: the record rootfs-init keeps of a container's setup, read (pure).

Runs in: the kernel (snapshots.py reads the memfd the init handed over; views/calls.py
words each step with the plan).

With `steps 1` in its plan (wire.py), init.c times every step of the setup and copies the
mount table after each into a memfd it hands to the kernel (init.c, "%show steps"): A,
the helper's child, records the host's table, the cgroups it joins, the user namespace of
the id map, its entry into the helper's template mount namespace and a %net user cell's
network; B, the cell's PID 1, the clone that made it and each setup operation; C, the
script's process, its own user namespace, its operations and the exec. Each step is a
line `step KIND INDEX STARTED ENDED SIZE DETAIL` followed by SIZE bytes of mountinfo (-1:
the table is the step before's; -2, -3: none).
"""

from __future__ import annotations

from dataclasses import dataclass

# Which of init.c's processes takes each kind of step (A, B or C).
WHO = {"host": "A", "cgroup": "A", "idmap": "A", "netns": "A", "template": "A",
       "clone": "B", "op": "B",
       "wait": "C", "rlimit": "B", "pasta": "A", "userns": "C", "sop": "C",
       "seccomp": "C", "exec": "C"}
_MISSING = {-2: "the mount table could not be read", -3: "the mount table was not kept: "
            "the record's budget (16 MiB) was spent"}


@dataclass(frozen=True)
class Record:
    """One `step` of init.c's record."""

    kind: str            # host | cgroup | idmap | netns | template | clone | op | wait | rlimit
                         # | pasta | userns | sop | seccomp | exec
    index: int           # the operation's index (op, sop), else -1
    started: float       # CLOCK_MONOTONIC seconds
    ended: float
    table: str | None    # the mount table after the step (mountinfo), None: see missing
    detail: str          # what only the recording process knew ("" for none)
    missing: str | None = None


def read(data: bytes) -> list[Record]:
    """The record as init.c wrote it; a torn last step (the init was killed) is dropped."""
    out: list[Record] = []
    prev: str | None = None
    at = 0
    while at < len(data):
        end = data.find(b"\n", at)
        if end < 0:
            break
        head = data[at:end].decode("utf-8", "surrogateescape").split(" ", 6)
        at = end + 1
        if len(head) != 7 or head[0] != "step":
            raise ValueError(f"not a step record: {' '.join(head)[:80]!r}")
        _, kind, index, started, ended, size, detail = head
        n = int(size)
        table: str | None = None
        if n >= 0:
            if at + n > len(data):
                break
            table = prev = data[at:at + n].decode("utf-8", "surrogateescape")
            at += n
        elif n == -1:
            table = prev
        out.append(Record(kind, int(index), float(started), float(ended), table,
                          "" if detail == "-" else detail, _MISSING.get(n)))
    return out
