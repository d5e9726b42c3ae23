"""What a cell's rootfs-init writes on its result pipe -> data and words (pure).

Runs in: the kernel (client.py reads the pipe).

init.c writes JSON lines on its result socket: `{"init": PID}` (the cell's PID 1, as
the host numbers it), `{"snaps": N}` with the N layer fds it hands over (-1: they could
not be opened), then either the report `{"status", "signal", "setup_seconds", "notes",
"ns", "profile"}` or `{"error": {"kind", "index", "errno", "depth"}}`. It reports numbers;
the sentences a user reads are made here, from the plan the operation came from, and,
when the host refused a step, with the host condition the caller's `explain` finds
(the session's reads the host through hostfacts.py, and only then).
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable

from ..cell import visible
from ..linux import EXIT_CANNOT_RUN as CANNOT_RUN
from ..linux import EXIT_SETUP_FAILED as SETUP_FAILED
from ..linux import NAMESPACES, clone_flags
from .plan import Plan

__all__ = ["CANNOT_RUN", "SETUP_FAILED", "Explain", "clone_advice", "describe_error", "notes",
           "parse", "profile", "step_words"]

# What explains a refused setup step: (the init's error kind, its errno, the plan's
# operation or None) -> " — CAUSE. Fix: FIX." for the host condition behind it, or "".
Explain = Callable[[str, int, object], str]

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


def describe_error(plan: Plan, error: dict, explain: Explain | None = None) -> str:
    """One line for a failed setup; `explain`: the host condition behind a refused step."""
    kind, err = error.get("kind"), error.get("errno") or 0
    index = error.get("index", -1)
    op = plan.ops[index] if 0 <= index < len(plan.ops) else None
    # No process or memory to start one (at the container's clone, or a fork outside
    # the setup operations): no fault of the cell's lines.
    if err == errno.EAGAIN or (err == errno.ENOMEM and (kind == "clone" or op is None)):
        return (f"cannot start the cell's container ({os.strerror(err)}): the host is out "
                "of processes or memory for now (an earlier cell's processes, or another "
                "program's, may hold them). Wait for them to end or stop them, then run "
                "the cell again; %limit pids=N memory=SIZE keeps a cell within bounds")
    if kind == "clone":
        cause = explain(kind, err, None) if explain else ""
        if err == errno.ENOSPC and not cause:
            return ("cannot create the cell's namespaces: the host's limit on namespaces "
                    "is reached (sysctl user.max_user_namespaces, user.max_mnt_namespaces, "
                    "...); other containers hold them. Wait for some to end, or raise the "
                    "limit, then run the cell again")
        return clone_advice(plan, os.strerror(err), cause)
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
    if kind == "not-ours":
        parts = [p for p in str(getattr(op, "path", "")).split("/") if p]
        where = "/" + "/".join(parts[: error.get("depth", len(parts))])
        why = ("is a symbolic link" if err == errno.ELOOP else
               "is not a directory" if err == errno.ENOTDIR else
               "was there already and is another user's, or others may write it")
        return (f"refusing to set the container up in {where}: it {why}, so another local "
                "user may have made or swapped it (the kernel made its runtime directory "
                "its own). Restart the kernel for a new one, and see who can write there")
    if kind == "cgroup":
        return (f"cannot move the cell into its cgroup ({os.strerror(err)}); "
                "run `rootfs-kernel doctor`")
    if kind == "plan":
        return "rootfs-init did not understand its plan (a bug: please report it)"
    if kind == "net":
        why = {errno.ECHILD: "pasta, which gives it outbound access, exited before it was "
                             "ready: its words are above",
               errno.ETIMEDOUT: "pasta, which gives it outbound access, was not ready within "
                                "10 s"}.get(err, os.strerror(err))
        return (f"the cell's network (%net user) could not be set up: {why}. Check that "
                "`pasta` (the package passt) runs on this host and that it allows user "
                "namespaces (`rootfs-kernel doctor`), or run the cell without %net user")
    if kind == "template":
        return (f"cannot enter the helper's template mount namespace ({os.strerror(err)}), "
                "which the cell's container is cloned from: restart the kernel (a bug if it "
                "happens again: please report it)")
    if kind == "idmap":
        return (f"cannot make the user namespace of the cell's unprivileged ids "
                f"({os.strerror(err)}); run `rootfs-kernel doctor`")
    if op is not None and op.KIND == "layer" and err in (errno.EINVAL, errno.EOPNOTSUPP,
                                                          errno.EPERM):
        return ("the image's layers cannot be shown through an idmapped mount here "
                f"({os.strerror(err)}): a cell's root is an unprivileged id on the host, "
                "which needs Linux >= 5.19 and an image store on a filesystem that supports "
                "idmapped mounts (ext4, xfs, btrfs, tmpfs); run `rootfs-kernel doctor`")
    if op is not None and op.KIND == "mount" and op.fstype == "overlay" \
            and err == errno.EINVAL \
            and getattr(op, "lineno", 0):
        return (f"%mount overlay (header line {op.lineno}): the kernel refused the options "
                f"{op.data!r} (Invalid argument): overlay needs lowerdir=A:B (two or more "
                "read-only layers), or lowerdir=A,upperdir=U,workdir=W with U and W on the "
                "same filesystem (e.g. a %mount tmpfs); paths are the cell's own")
    lineno = getattr(op, "lineno", 0)
    where = f" (header line {lineno})" if lineno else ""
    step = f"at {step_words(op)}" if op else \
        "in its user namespace (mapping ids, or the script's own)"
    cause = explain(kind, err, op) if explain else ""
    if cause:
        return f"container setup failed {step}{where}: {os.strerror(err)}{cause}{DOCTOR_HINT}"
    hint = ""
    if err == errno.EPERM and plan.rootless and op is not None and op.KIND == "mount":
        hint = rootless_mount_hint(op.fstype)
    return f"container setup failed {step}{where}: {os.strerror(err)}{hint}"


def step_words(op: object) -> str:
    """A setup operation as a message names it: "the mount of tmpfs on /mnt"."""
    kind = op.KIND
    if kind == "mount":
        return f"the mount of {op.fstype} on {visible(op.target, 80)}"
    if kind == "bind":
        return f"the bind of {visible(op.source, 80)} on {visible(op.target, 80)}"
    place = next((getattr(op, k) for k in ("target", "path", "root") if k in op.FIELDS), "")
    return f"the {kind} step" + (f" at {visible(place, 80)}" if place else "")


# What `%mount` may mount when Jupyter runs as an ordinary user (checked on Linux 6.x):
# the cell's user namespace owns its mount namespace, but the kernel lets it mount only
# filesystems marked for user namespaces, and some of those only under conditions the
# container does not meet (a fresh sysfs is refused while the container's /sys hides
# paths; mqueue and bpf are refused too).
ROOTLESS_MOUNTS = "tmpfs, ramfs, proc, devpts and overlay, and cgroup2 with %unshare cgroup"


def rootless_mount_hint(fstype: str) -> str:
    if fstype == "cgroup2":
        return ("; as an ordinary user, cgroup2 mounts only in a cgroup namespace of the "
                "cell's own: add %unshare mnt,pid,cgroup")
    if fstype in ("tmpfs", "ramfs", "proc", "devpts", "overlay"):
        return (f"; an ordinary user's cell may mount {fstype}, but not with these options "
                "or sources (an overlay layer the user cannot read, say)")
    return (f"; as an ordinary user, a cell may mount {ROOTLESS_MOUNTS}; {fstype} is refused "
            "in a user namespace here (run Jupyter as root for it)")


def clone_advice(plan: Plan, reason: str, cause: str = "") -> str:
    """The cell's namespaces refused: rootfs-init makes them with clone(2) (init.c; first a
    user namespace of its own for the id map, when the plan has one), not unshare(2),
    which a seccomp filter may treat otherwise."""
    flags = clone_flags(plan.namespaces | (NAMESPACES["user"] if plan.idmap else 0))
    head = f"cannot create the cell's namespaces: clone({flags}) failed ({reason})"
    if cause:
        return f"{head}{cause}{DOCTOR_HINT}"
    return (f"{head}. The host forbids it: user namespaces may be disabled "
            "(sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, or "
            "AppArmor's kernel.apparmor_restrict_unprivileged_userns=1), a container's "
            "seccomp profile may refuse clone(2) with namespace flags, or this process is in "
            "a chroot (the kernel refuses a chrooted process new user namespaces: enter the "
            "directory with pivot_root instead)." + DOCTOR_HINT)


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


def notes(plan: Plan, found: list) -> list[str]:
    """What the setup did otherwise than the plan asked (init.c's note()), in words; the
    session says each once per kernel."""
    out = []
    for index, what in found:
        op = plan.ops[index] if 0 <= index < len(plan.ops) else None
        if what == "no-pivot":
            out.append(NO_PIVOT_NOTE)
        elif what == "no-idmap" and op is not None:
            line = f" (header line {op.lineno})" if getattr(op, "lineno", 0) else ""
            out.append(f"%bind {op.source}{line}: this filesystem cannot be idmapped, so the "
                       "cell sees its files owned by nobody (65534) and may change only what "
                       "their mode lets anyone change")
        elif what == "no-loopback":
            out.append("this cell's network namespace is its own but its lo stays down: it "
                       "keeps the kernel's user namespace (%propagation shared), which has no "
                       "CAP_NET_ADMIN here (a container started without it)")
    return out

