"""A plan (plan.py) + what its launch adds (Launch) -> rootfs-init's plan tokens. Pure.

Runs in: the kernel (encode, template_tokens).

The tokens never go on a command line, which any local user reads in /proc/PID/cmdline
(a prepared container keeps its init's for the kernel's life): the kernel packs them
into a memfd (pack: each token NUL-terminated), which rootfs-init reads as its fd 6 and
closes; its argv is its name alone. Every value is one token, so paths cross without
quoting: only a NUL byte cannot (cell.py refuses it where it is typed). The sequence is
the wire version (ops.VERSION: rootfs-init refuses a plan of another schema), `key value`
pairs, `op KIND NFIELDS VALUE...` / `sop ...` for the setup and script operations (ops.py;
init.c parses them by the header generated from it), and `argv` last, followed by the
script's own argv. The cell's text is not among them: the shell reads it from the script
pipe (plan.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from .ops import VERSION, Op
from .plan import Plan

__all__ = ["VERSION", "Launch", "encode", "pack", "setup_tokens", "script_tokens",
           "template_tokens"]

RLIMITS = ("nproc", "as")   # the setrlimit fallback for %limit, in init.c's names


@dataclass(frozen=True)
class Launch:
    """What the kernel adds to a plan as it launches its container, which only the host
    can tell then: the host's mount namespace, the cell's cgroups, the rlimit fallback."""

    mnt_ns: int                               # init.c refuses to set up in this namespace
    cgroup_procs: tuple[str, ...] = ()        # the cell's cgroup(s): A joins them first
    rlimits: dict[str, int] = field(default_factory=dict)   # nproc, as: without cgroups
    idmap: bool = False       # the helper's user namespace of the id map (fd 7)
    template: bool = False    # cloned from the helper's template (fd 8: template.py)


def _text(value: object) -> str:
    if value is True or value is False:
        return "1" if value else "0"
    return str(value)


@functools.lru_cache(maxsize=2048)   # most operations repeat from cell to cell
def _op(tag: str, op: Op) -> tuple[str, ...]:
    return (tag, op.KIND, str(len(op.WIRE)), *(_text(getattr(op, f)) for f in op.WIRE))


def encode(plan: Plan, facts: Launch, *, parent: int, profile: bool = False,
           warm: bool = False) -> list[str]:
    """rootfs-init's plan, as tokens (pack makes its bytes). `parent` is the helper's pid
    (the init dies with it); `warm`: made before its cell exists (prepared.py), named so
    until its script ends."""
    return [VERSION, "parent", str(parent), *(("warm", "1") if warm else ()),
            *setup_tokens(plan, facts), *script_tokens(plan, profile=profile)]


def pack(tokens: list[str]) -> bytes:
    """The bytes rootfs-init reads from its plan fd: every token NUL-terminated."""
    return b"".join(t.encode("utf-8", "surrogateescape") + b"\0" for t in tokens)


def setup_tokens(plan: Plan, facts: Launch) -> list[str]:
    """Everything that makes the container: two plans with the same setup tokens can use
    the same prepared container."""
    t = ["host", _text(plan.host)]
    for procs in facts.cgroup_procs:
        t += ["cgroup", procs]
    for name in RLIMITS:
        if name in facts.rlimits:
            t += [name, str(facts.rlimits[name])]
    if plan.host:
        return t
    if not facts.mnt_ns:  # init.c's guard against setting up on the host
        raise ValueError("the host's mount namespace is unknown (Launch.mnt_ns)")
    if facts.idmap:
        t += ["fromidmap", "1"]
    if facts.template:
        t += ["fromtemplate", "1"]
    t += ["ns", str(plan.namespaces), "lock", str(plan.script_namespaces),
          "pidns", _text(plan.pidns), "rootless", _text(plan.rootless),
          "uid", str(plan.uid), "gid", str(plan.gid),
          "hostmnt", str(facts.mnt_ns), "root", plan.root]
    if plan.idmap:
        t += ["idmap", plan.idmap]
    if plan.pasta:   # %net user: the init starts pasta for the cell's network namespace
        for arg in plan.pasta:
            t += ["pasta", arg]
        if plan.net_uid >= 0:
            t += ["netuid", str(plan.net_uid), "netmap", plan.net_map]
    if any(s.kind == "steps" for s in plan.show):
        # Recorded while the container is made, so a setup key: a prepared container made
        # after a `%show steps` cell records too, and only such a cell takes it.
        t += ["steps", "1"]
    if plan.layers is not None:  # opened for %show changes; always, so any cell may
        for path in (plan.layers.upper, *plan.layers.lowers):  # take a prepared one
            t += ["snap", path]
    for op in plan.ops:
        t += _op("op", op)
    for op in plan.script_ops:
        t += _op("sop", op)
    return t


def script_tokens(plan: Plan, *, profile: bool = False) -> list[str]:
    """What the script's process is started with: its environment, working directory and
    argv (the cell's text only when it is `-c`'s argument), and what to report."""
    kinds = {s.kind for s in plan.show}
    t = ["profile", _text(profile), "nsids", _text("ns" in kinds),
         # the kernel reads the script's files through /proc/<init> (snapshots.py)
         "look", _text(bool(kinds & {"mounts", "ls", "tree"})),
         "script", _text(plan.script is not None), "seccomp", _text(plan.seccomp),
         "cwd", plan.cwd]
    for key, value in plan.env.items():
        t += ["env", f"{key}={value}"]
    return [*t, "argv", *plan.argv]



def template_tokens(root: str, keep: tuple[str, ...], recursive: tuple[str, ...], *,
                    parent: int, idmap: str = "") -> list[str]:
    """rootfs-init's plan to make the helper's template mount namespace (template.py) in
    the directory `root`: the mounts on the way to each path of `keep`, each alone, and to
    each of `recursive`, with the mounts below it; and the user namespace of the id map
    `idmap` ("0 FIRST COUNT") the containers' idmapped mounts take."""
    t = [VERSION, "parent", str(parent), "template", "1", "root", root]
    if idmap:
        t += ["idmap", idmap]
    for path in keep:
        t += ["keep", path]
    for path in recursive:
        t += ["rkeep", path]
    return [*t, "argv"]
