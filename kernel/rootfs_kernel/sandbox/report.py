"""What a cell's rootfs-init writes on its result pipe -> data and words (pure).

init.c writes JSON lines: `{"init": PID}` (the cell's PID 1, as the host numbers it),
then either the report `{"status", "signal", "setup_seconds", "snapfds", "ns",
"profile"}` or `{"error": {"kind", "index", "errno", "depth"}}`. It reports numbers;
the sentences a user reads are made here, from the plan the operation came from, and,
when the host refused a step, from what hostfacts.py finds on the host (read only then).
"""

from __future__ import annotations

import json
import os

from .. import hostfacts

SETUP_FAILED = 125
DOCTOR_HINT = " Run `rootfs-kernel doctor` for the details; %%host cells still run."
# Said once when rootfs-init reports "no_pivot" (init.c's fallback on an initramfs root).
NO_PIVOT_NOTE = ("pivot_root is refused on this host's root (the initial ramfs): cells move "
                 "their root over it and chroot instead, as runc --no-pivot does; a chroot "
                 "escape still ends in the cell's root")


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


def describe_error(plan: dict, error: dict, facts: hostfacts.Facts | None = None) -> str:
    """One line for a failed setup; `facts`: the host's (read when needed, hostfacts.py)."""
    kind, err = error.get("kind"), error.get("errno") or 0
    ops = plan.get("ops") or []
    index = error.get("index", -1)
    op = ops[index] if 0 <= index < len(ops) else {}
    if kind == "clone":
        return unshare_advice(os.strerror(err), host_cause(kind, err, None, facts))
    if kind == "host-mnt-ns":
        return "refusing to set up a container in the host's mount namespace"
    if kind == "bind-source":
        return f"bind source {op.get('source')} does not exist on the host"
    if kind == "dangling":
        parts = [p for p in str(op.get("target", "")).split("/") if p]
        where = "/" + "/".join(parts[: error.get("depth", len(parts))])
        return (f"{op.get('target')}: {where} is a symlink to a path that does not exist "
                "inside the root; name a real directory")
    if kind == "cgroup":
        return (f"cannot move the cell into its cgroup ({os.strerror(err)}); "
                "run `rootfs-kernel doctor`")
    if kind == "plan":
        return "rootfs-init did not understand its plan (a bug: please report it)"
    where = f" (header line {op['lineno']})" if op.get("lineno") else ""
    what = {k: v for k, v in op.items() if k in ("op", "source", "target", "fstype", "path")}
    step = f"at {what}" if op else "in its user namespace (mapping ids, or the script's own)"
    cause = host_cause(kind, err, op or None, facts)
    if cause:
        return f"container setup failed {step}{where}: {os.strerror(err)}{cause}{DOCTOR_HINT}"
    hint = ""
    if err == 1 and plan.get("rootless"):  # EPERM
        hint = ("; an ordinary user may only mount filesystems that allow it in a user "
                "namespace (tmpfs, proc, sysfs with %unshare net, devpts, mqueue, overlay)")
    return f"container setup failed {step}{where}: {os.strerror(err)}{hint}"


def host_cause(kind: str, err: int, op: dict | None,
               facts: hostfacts.Facts | None = None) -> str:
    """' — CAUSE. Fix: FIX.' for the host condition that explains a refused step, or ''.
    Reads the host's /proc and /sys (hostfacts.py): only ever called for a failed cell."""
    try:
        found = hostfacts.explain(facts or hostfacts.read_facts(), kind, err, op)
    except (OSError, ValueError):
        return ""
    return f" — {found.detail}. Fix: {found.fix}." if found else ""


def unshare_advice(reason: str, cause: str = "") -> str:
    if cause:
        return (f"cannot create the cell's namespaces: unshare failed ({reason}){cause}"
                f"{DOCTOR_HINT}")
    return (f"cannot create the cell's namespaces: unshare failed ({reason}). "
            "The host forbids it: user namespaces may be disabled "
            "(sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, or "
            "AppArmor's kernel.apparmor_restrict_unprivileged_userns=1), or a container's "
            "seccomp profile refuses unshare." + DOCTOR_HINT)


def notes(data: dict) -> list[str]:
    """What the kernel should say once about how this host's cells are set up."""
    return [NO_PIVOT_NOTE] if data.get("no_pivot") else []


def profile(plan: dict, seconds: list[float] | None) -> list[tuple[str, str, float]] | None:
    """Per setup operation: (op, where, seconds), for benchmarks/profile_sandbox.py."""
    if seconds is None:
        return None
    out = []
    for op, secs in zip(plan.get("ops") or [], seconds, strict=False):
        where = op.get("target") or op.get("path") or op.get("root") or ""
        out.append((op["op"], where, secs))
    return out
