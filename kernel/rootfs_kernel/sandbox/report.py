"""What a cell's rootfs-init writes on its result pipe -> data and words (pure).

Runs in: the kernel (client.py reads the pipe).

init.c writes JSON lines: `{"init": PID}` (the cell's PID 1, as the host numbers it),
then either the report `{"status", "signal", "setup_seconds", "snapfds", "ns",
"profile"}` or `{"error": {"kind", "index", "errno", "depth"}}`. It reports numbers;
the sentences a user reads are made here, from the plan the operation came from.
"""

from __future__ import annotations

import json
import os

from .ops import EXIT_CANNOT_RUN as CANNOT_RUN
from .ops import EXIT_SETUP_FAILED as SETUP_FAILED
from .plan import Plan

__all__ = ["CANNOT_RUN", "SETUP_FAILED", "describe_error", "parse", "profile",
           "unshare_advice"]


def parse(data: bytes) -> dict:
    """Merge the JSON lines into one dict; a torn last line (the init was killed) is
    dropped."""
    merged: dict = {}
    for line in data.splitlines():
        try:
            merged.update(json.loads(line))
        except ValueError:
            continue
    return merged


def describe_error(plan: Plan, error: dict) -> str:
    kind, err = error.get("kind"), error.get("errno") or 0
    index = error.get("index", -1)
    op = plan.ops[index] if 0 <= index < len(plan.ops) else None
    if kind == "clone":
        return unshare_advice(os.strerror(err))
    if kind == "host-mnt-ns":
        return "refusing to set up a container in the host's mount namespace"
    if kind == "bind-source":
        return f"bind source {getattr(op, 'source', None)} does not exist on the host"
    if kind == "dangling":
        target = getattr(op, "target", "")
        parts = [p for p in str(target).split("/") if p]
        where = "/" + "/".join(parts[: error.get("depth", len(parts))])
        return (f"{target}: {where} is a symlink to a path that does not exist "
                "inside the root; name a real directory")
    if kind == "cgroup":
        return (f"cannot move the cell into its cgroup ({os.strerror(err)}); "
                "run `rootfs-kernel doctor`")
    if kind == "plan":
        return "rootfs-init did not understand its plan (a bug: please report it)"
    lineno = getattr(op, "lineno", 0)
    where = f" (header line {lineno})" if lineno else ""
    what = {} if op is None else {"op": op.KIND, **{
        k: getattr(op, k) for k in ("source", "target", "fstype", "path") if k in op.FIELDS}}
    hint = ""
    if err == 1 and plan.rootless:  # EPERM
        hint = ("; an ordinary user may only mount filesystems that allow it in a user "
                "namespace (tmpfs, proc, sysfs with %unshare net, devpts, mqueue, overlay)")
    return f"container setup failed at {what}{where}: {os.strerror(err)}{hint}"


def unshare_advice(reason: str) -> str:
    return (f"cannot create the cell's namespaces: unshare failed ({reason}). "
            "The host forbids it: user namespaces may be disabled "
            "(sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, or "
            "AppArmor's kernel.apparmor_restrict_unprivileged_userns=1), or a container's "
            "seccomp profile refuses unshare. Run `rootfs-kernel doctor` for the details; "
            "%%host cells still run.")


def profile(plan: Plan, seconds: list[float] | None) -> list[tuple[str, str, float]] | None:
    """Per setup operation: (op, where, seconds), for benchmarks/profile_sandbox.py."""
    if seconds is None:
        return None
    out = []
    for op, secs in zip(plan.ops, seconds, strict=False):
        where = (getattr(op, "target", "") or getattr(op, "path", "")
                 or getattr(op, "root", ""))
        out.append((op.KIND, where, secs))
    return out
