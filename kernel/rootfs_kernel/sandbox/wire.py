"""A plan (plan.py, as JSON data) -> the argv of rootfs-init (init.c). Pure.

Every value becomes one argv string, so paths and scripts cross without quoting: only
a NUL byte cannot (execve refuses it, as it would refuse it in the script itself). The
sequence is `key value` pairs, `op NAME ARGS...` / `sop NAME ARGS...` for the setup and
script operations (a fixed number of ARGS per NAME, the same table as init.c's arity()),
and `argv` last, followed by the script's own argv.
"""

from __future__ import annotations

VERSION = "rootfs-init-1"

# For each operation, the plan keys that become its arguments, in init.c's order.
ARGS = {
    "propagation": ("mode", "root_switch"),
    "mkdir": ("path", "mode"),
    "mount": ("source", "target", "fstype", "flags", "data", "in_root", "create",
              "private_parent"),
    "bind": ("source", "target", "rec", "readonly", "create", "optional"),
    "mask": ("path",),
    "readonly": ("path",),
    "symlink": ("target", "path"),
    "pivot_root": ("root",),
    "chroot": ("root",),
    "hostname": ("name",),
}


def _text(value: object) -> str:
    if value is None or value is False:
        return "" if value is None else "0"
    if value is True:
        return "1"
    return str(value)


def _op(kind: str, op: dict) -> list[str]:
    args = [_text(op.get(key)) for key in ARGS[op["op"]]]
    if op["op"] == "mount":
        # plan.py says whether the target's parent mount must be made private; the helper
        # replaces True by that mount's path (it depends on the host's mount table).
        if op.get("private_parent") is True:
            raise ValueError("a mount with private_parent needs its mount point resolved")
        args[7] = op.get("private_parent") or ""
    return [kind, op["op"], *args]


def encode(plan: dict, *, parent: int) -> list[str]:
    """argv[1:] for rootfs-init. `parent` is the helper's pid (the init dies with it)."""
    return [VERSION, "parent", str(parent), *setup_tokens(plan), *script_tokens(plan)]


def encode_prepared(plan: dict, *, parent: int) -> list[str]:
    """argv[1:] for a container prepared ahead of its cell (init.c, "warm")."""
    return [VERSION, "parent", str(parent), "warm", "1", *setup_tokens(plan)]


def encode_cell(plan: dict) -> bytes:
    """What a prepared container receives when its cell comes: the script's tokens."""
    return b"\0".join(t.encode("utf-8", "surrogateescape")
                      for t in [VERSION, *script_tokens(plan)])


def setup_tokens(plan: dict) -> list[str]:
    """Everything that makes the container: two plans with the same setup tokens can use
    the same prepared container."""
    t = ["host", _text(plan["host"])]
    for procs in plan.get("cgroup_procs") or ():
        t += ["cgroup", procs]
    rlimits = plan.get("rlimits") or {}
    for name in ("nproc", "as"):
        if name in rlimits:
            t += [name, str(rlimits[name])]
    if plan["host"]:
        return t
    if not plan.get("host_mnt_ns"):  # init.c's guard against setting up on the host
        raise ValueError("the plan lacks the host's mount namespace (helper._complete)")
    t += ["ns", str(plan["namespaces"]), "lock", str(plan["script_namespaces"]),
          "pidns", _text(plan["pidns"]), "rootless", _text(plan["rootless"]),
          "uid", str(plan["uid"]), "gid", str(plan["gid"]),
          "hostmnt", str(plan["host_mnt_ns"]), "root", plan["root"]]
    changes = plan.get("changes")
    if changes:  # opened for %show changes; always, so any cell may take a prepared one
        for path in (changes["upper"], *changes["lowers"]):
            t += ["snap", path]
    for op in plan["ops"]:
        t += _op("op", op)
    for op in plan["script_ops"]:
        t += _op("sop", op)
    return t


def script_tokens(plan: dict) -> list[str]:
    """What only the cell itself decides: its script, environment and what to report."""
    t = ["profile", _text(bool(plan.get("profile"))),
         "nsids", _text(any(s["kind"] == "ns" for s in plan.get("show", ())))]
    t += ["cwd", plan["cwd"]]
    for key, value in plan["env"].items():
        t += ["env", f"{key}={value}"]
    return [*t, "argv", *plan["argv"]]
