"""%show steps: the record of a container's setup + its plan -> steps in words (pure).

Runs in: the kernel (compare.py and labels.py, on the record sandbox/recording.py read).

The record holds numbers and tables (sandbox/recording.py); the words are made here,
from the plan's operation each step ran, the way sandbox/report.py words a failure: the
system calls that operation's function in init.c makes, as strace would write them, and
what the step did to the mount table against the step before (inspect/stepdiff.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..inspect import stepdiff
from ..inspect.mounts import Mount
from ..linux import (
    CLONE_NEWUSER,
    MS_BIND,
    MS_MOVE,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_SLAVE,
    MS_UNBINDABLE,
    NAMESPACES,
    clone_flags,
    mount_flags,
    namespace_flags,
)
from ..sandbox import ops
from ..sandbox.plan import DNS_FORWARD, Plan
from ..sandbox.recording import WHO, Record

# Who ran a step (init.c's A, B and C).
PROCESSES = {"A": "init (host)", "B": "init (PID 1)", "C": "script"}


@dataclass
class Step:
    """One step in words: what ran it, the calls it made, how long, and the mount table
    after it (compared with the step before by views/steps.py)."""

    kind: str                        # the record's (Record.kind)
    op: str | None                   # the operation's KIND (op, sop)
    process: str                     # A | B | C
    calls: list[str]
    started: float
    took: float | None               # seconds (the script's: until it ended)
    mounts: list[Mount] | None       # the table after the step
    changes: list[stepdiff.Change] = field(default_factory=list)   # vs the step before: what
                                                               # it added, changed, removed
    copied: bool = False             # a new mount namespace: the table is a copy
    note: str = ""
    missing: str | None = None       # why there is no table


def describe(plan: Plan, records: list[Record], *, ended: float | None = None,
             notes: list | None = None) -> tuple[list[Mount] | None, list[Step]]:
    """(the host's mount table, the steps) from a record and the plan it was made from.
    `ended`: when the init saw the script end; `notes`: init.c's [op index, what]."""
    noted = {(i, what) for i, what in (notes or [])}
    host: list[Mount] | None = None
    before: list[Mount] | None = None
    parsed: dict[int, list[Mount]] = {}    # tables are shared between records: parse once
    tables = stepdiff.Tables()
    steps: list[Step] = []
    # A prepared container's script began when its cell came down the pipe (the `wait`
    # the kernel adds after the exec: snapshots.py), not at the exec of its shell.
    handed = next((r.ended for r in records if r.kind == "wait"), None)
    for rec in records:
        mounts = None
        if rec.table is not None:
            mounts = parsed.get(id(rec.table))
            if mounts is None:
                mounts = parsed[id(rec.table)] = tables.parse(rec.table)
        if rec.kind == "host":
            host = before = mounts
            continue
        copied = rec.kind in ("template", "clone", "userns")   # another namespace's table
        changes = stepdiff.compare_tables(before, mounts, copied=copied) \
            if before is not None and mounts is not None else []
        op = _op(plan, rec)
        calls, note = _words(plan, rec, op, changes, noted, mounts)
        took = rec.ended - rec.started
        if rec.kind == "exec":
            took = None if ended is None else max(0.0, ended - (handed or rec.started))
        steps.append(Step(rec.kind, op and op.KIND, WHO.get(rec.kind, "B"), calls,
                          rec.started, took, mounts, changes, copied, note, rec.missing))
        if mounts is not None:
            before = mounts
    return host, steps


def _op(plan: Plan, rec: Record) -> ops.Op | None:
    listed = plan.ops if rec.kind == "op" else plan.script_ops if rec.kind == "sop" else ()
    return listed[rec.index] if 0 <= rec.index < len(listed) else None


# -- words ----------------------------------------------------------------------------------


def q(text: str) -> str:
    """A C string as strace writes it."""
    return json.dumps(text, ensure_ascii=False)


def mount_call(source: str | None, target: str, fstype: str | None, bits: int,
               data: str | None) -> str:
    def arg(v: str | None) -> str:
        return "NULL" if v is None else q(v)
    return (f"mount({arg(source)}, {q(target)}, {arg(fstype)}, {mount_flags(bits)}, "
            f"{arg(data or None)})")


def _in_root(plan: Plan, rec: Record, path: str) -> str:
    """Where an operation's path "in the root" is, as mountinfo names it: under the new
    root before the switch (B's operations), at itself after it (C's)."""
    if rec.kind == "sop" or plan.root == "/":
        return path
    return plan.root.rstrip("/") + ("/" + path.lstrip("/") if path.strip("/") else "")


def _added_at(changes: list[stepdiff.Change], path: str) -> Mount | None:
    """The mount the step added at `path` of the new root (whatever the host calls the
    directories above it)."""
    return next((c.after for c in changes
                 if c.status == "added" and c.point.endswith(path)), None)


def _not_there(path: str) -> str:
    """A path of runc's lists that this image lacks: init.c looks and goes on."""
    return f"openat2(ROOT, {q(path)}, O_PATH, RESOLVE_IN_ROOT) = -1 ENOENT"


def _map_words(line: str) -> str:
    first, outside, count = (int(x) for x in line.split())
    if count == 1:
        return f"id {first} is {outside} on the host"
    return f"ids {first}-{first + count - 1} are {outside}-{outside + count - 1} on the host"


def _words(plan: Plan, rec: Record, op: ops.Op | None, changes: list[stepdiff.Change],
           noted: set, mounts: list[Mount] | None) -> tuple[list[str], str]:
    """The calls a step made, and what it means."""
    kind, detail = rec.kind, rec.detail
    if kind == "cgroup":
        calls = [f"write({q(p)}, PID)" for p in detail.split()]
        return calls, "joins the cell's cgroup: the limits count every process it makes"
    if kind == "idmap" and detail.endswith(" template"):
        return ([], f"the user namespace whose {_map_words(detail[:-len(' template')])}, made "
                    "once with the helper's template (fd 8), not for each container: the "
                    "image's layers are shown through it (idmapped mounts), so the cell's "
                    "root owns them")
    if kind == "idmap":
        return ([f"clone({clone_flags(CLONE_NEWUSER)})",
                 f"write(\"/proc/CHILD/uid_map\", {q(detail)})",
                 f"write(\"/proc/CHILD/gid_map\", {q(detail)})",
                 "open(\"/proc/CHILD/ns/user\", O_RDONLY)"],
                f"a user namespace whose {_map_words(detail)}: the image's layers are shown "
                "through it (idmapped mounts), so the cell's root owns them")
    if kind == "netns":
        return ([f"fork() = CHILD: setresuid({plan.net_uid}, ...), "
                 f"unshare({namespace_flags(NAMESPACES['user'] | NAMESPACES['net'])})",
                 f"write(\"/proc/CHILD/uid_map\", {q(detail)})",
                 f"write(\"/proc/CHILD/gid_map\", {q(detail)})",
                 "open(\"/proc/CHILD/ns/net\", O_RDONLY)"],
                f"%net user: the cell's network namespace, owned by a user namespace of the "
                f"unprivileged id {plan.net_uid} (pasta runs as it), not by the script's: "
                "the script cannot change its addresses and routes")
    if kind == "pasta":
        argv = [*plan.pasta, "--userns", "/proc/NS/ns/user", "--netns", "/proc/NS/ns/net",
                "--pid", "/proc/NS/fd/N"]
        return ([f"execve({q(argv[0])}, [{', '.join(q(a) for a in argv)}], [])",
                 "poll([PIDFILE, PASTA_STDERR], ...)", "write(NET_READY, 0)"],
                "%net user: pasta gives the cell's namespace a tap device with the host's "
                "address and routes, and relays its connections through the host's sockets "
                "(no port forwarded either way, the host's loopback not mapped, DNS "
                f"forwarded from {DNS_FORWARD}); the cell's PID 1 waited this "
                "long for it before starting the script")
    if kind == "template":
        return (["open(\"/proc/self/ns/mnt\", O_RDONLY) = HOST",
                 f"setns(TEMPLATE, {namespace_flags(NAMESPACES['mnt'])})"],
                f"enters the helper's template mount namespace, for the clone alone: the "
                f"host's root filesystem, /proc, /dev, /sys and the mounts on the way to the "
                f"helper's and the image's directories ({len(mounts or [])} mounts), none of "
                f"the host's others; setns(HOST, ...) after the clone")
    if kind == "clone":
        bits, uid, gid = (int(x) for x in detail.split()[:3])
        calls = [f"clone({clone_flags(bits)})"]
        if bits & CLONE_NEWUSER:
            calls += ["write(\"/proc/self/setgroups\", \"deny\")",
                      f"write(\"/proc/self/uid_map\", \"0 {uid} 1\")",
                      f"write(\"/proc/self/gid_map\", \"0 {gid} 1\")"]
        if plan.net_uid >= 0:
            calls.append(f"setns(NETNS, {namespace_flags(NAMESPACES['net'])})")
        n = len(mounts or [])
        whose = "template's" if rec.detail.endswith(" template") else "host's"
        return calls, (f"the cell's PID 1 in new namespaces: its mount table is a copy of the "
                       f"{whose} {n} mounts")
    if kind == "wait":
        return (["read(3, ...)"],
                "prepared ahead while the kernel was idle, this container's shell was "
                "already running and waited for its cell: the kernel wrote the cell's text "
                "down the script pipe")
    if kind == "rlimit":
        values = dict(kv.split("=") for kv in detail.split())
        calls = [f"setrlimit(RLIMIT_{name.upper()}, {{{v}, {v}}})"
                 for name, v in values.items() if int(v) >= 0]
        return calls, "bounds without a cgroup: RLIMIT_NPROC counts the cell's processes"
    if kind == "userns":
        bits, _, line = detail.partition(" ")
        calls = [f"clone({clone_flags(int(bits))})",
                 f"write(\"/proc/SCRIPT/uid_map\", {q(line)})",
                 f"write(\"/proc/SCRIPT/gid_map\", {q(line)})"]
        if plan.idmap:
            calls += ["setresgid(0, 0, 0)", "setgroups(0, NULL)", "setresuid(0, 0, 0)"]
        n = len(mounts or [])
        return calls, (f"the script's own user and mount namespace, one level down: its "
                       f"{n} mounts are a less privileged copy, locked (it cannot undo a "
                       f"read-only bind or a mask); its {_map_words(line)}")
    if kind == "seccomp":
        return ([f"seccomp(SECCOMP_SET_MODE_FILTER, 0, {{{detail} instructions}})"],
                "the cell's seccomp filter, modelled on Docker's default profile: bpf, "
                "keyctl, perf_event_open, userfaultfd, io_uring, module loading, kexec ... "
                "answer EPERM; it holds for every process the script starts (%seccomp off "
                "lifts it)")
    if kind == "exec":
        argv = list(plan.argv)
        shown = [q(a if len(a) <= 60 else a[:57] + "...") for a in argv]
        n = len(plan.env)
        return ([f"execve({q(argv[0])}, [{', '.join(shown)}], "
                 f"[{n} variable{'' if n == 1 else 's'}])"],
                "the script starts; this step lasts until it has ended")
    if op is None:
        return [f"({kind} {rec.index})"], ""
    return _op_words(plan, rec, op, changes, noted)


def _op_words(plan: Plan, rec: Record, op: ops.Op, changes: list[stepdiff.Change],
              noted: set) -> tuple[list[str], str]:
    where = _in_root
    if isinstance(op, ops.Propagation):
        how = {"private": MS_REC | MS_PRIVATE, "slave": MS_REC | MS_SLAVE}.get(op.mode)
        if how is None and not op.root_switch:
            return [], "%propagation shared: the host's peer groups stay as they are"
        how = how or MS_PRIVATE
        return [mount_call(None, "/", None, how, None)], (
            "first, before anything is mounted: no mount of the cell's reaches the host "
            "(and pivot_root refuses a shared parent)" if op.mode != "shared" else
            "/ alone made private; the host's peer groups below it stay")
    if isinstance(op, ops.PrivateParent):
        return ([f"mount(NULL, <the mount holding {q(op.path)}>, NULL, MS_PRIVATE, NULL)"],
                "the setup's own mounts below it must not reach the host")
    if isinstance(op, ops.PrivateTree):
        return ([mount_call(None, where(plan, rec, op.path or "/"), None,
                            MS_REC | MS_PRIVATE, None)],
                "the binds above joined the host's peer groups: no mask may travel there")
    if isinstance(op, ops.Unbindable):
        return ([mount_call(None, op.path, None, MS_UNBINDABLE, None)],
                "a recursive %bind of a directory above it cannot copy the cell's own root")
    if isinstance(op, ops.Mkdir):
        calls = [f"mkdir({q(op.path)}, 0{op.mode:o})"]
        if op.uid >= 0:
            calls.append(f"fchownat(FD, \"\", {op.uid}, {op.gid}, AT_EMPTY_PATH)")
        return calls, ""
    if isinstance(op, ops.Layer):
        return ([f"open_tree(AT_FDCWD, {q(op.source)}, OPEN_TREE_CLONE)",
                 "mount_setattr(TREE, \"\", AT_EMPTY_PATH, {MOUNT_ATTR_IDMAP|MOUNT_ATTR_RDONLY,"
                 " userns})",
                 f"move_mount(TREE, \"\", AT_FDCWD, {q(op.target)}, MOVE_MOUNT_F_EMPTY_PATH)"],
                "an image layer, read-only, its owners shown through the id map")
    if isinstance(op, ops.Mount):
        target = where(plan, rec, op.target) if op.in_root else op.target
        call = mount_call(op.source, target, op.fstype, op.flags, op.data or None)
        note = ""
        if op.fstype == "overlay" and not op.in_root:
            note = "the image's layers (lowerdir, top first) under the cell's writable upperdir:" \
                   " this becomes the cell's /"
        elif op.lineno:
            note = f"%mount, header line {op.lineno}"
        return [call], note
    if isinstance(op, ops.Bind):
        target = where(plan, rec, op.target) if op.in_root else op.target
        if not changes and op.optional:
            return [f"stat({q(op.source)}) = -1 ENOENT"], "skipped: the host has no such device"
        line = f"%bind, header line {op.lineno}: " if op.lineno else ""
        if op.idmap and plan.idmap and (rec.index, "no-idmap") not in noted:
            return ([f"open_tree(AT_FDCWD, {q(op.source)}, OPEN_TREE_CLONE|AT_RECURSIVE)",
                     "mount_setattr(TREE, \"\", AT_EMPTY_PATH|AT_RECURSIVE, {MOUNT_ATTR_IDMAP"
                     + ("|MOUNT_ATTR_RDONLY" if op.readonly else "") + ", userns})",
                     f"move_mount(TREE, \"\", AT_FDCWD, {q(target)}, MOVE_MOUNT_F_EMPTY_PATH)"],
                    line + "idmapped: there, and only there, the cell acts as the files' owners")
        calls = [mount_call(op.source, target, None, MS_BIND | (MS_REC if op.rec else 0),
                            None)]
        if op.readonly:
            calls.append(f"mount_setattr({q(target)}, \"\", "
                         f"{'AT_RECURSIVE' if op.rec else '0'}, {{MOUNT_ATTR_RDONLY}})")
        if op.program:   # the %%c program runs even from a noexec host mount
            calls.append(f"mount_setattr({q(target)}, \"\", 0, {{.attr_clr = "
                         "MOUNT_ATTR_NOEXEC}})")
        return calls, line.rstrip(": ")
    if isinstance(op, ops.Mask):
        target = where(plan, rec, op.path)
        added = _added_at(changes, op.path)
        if added is None:
            return [_not_there(op.path)], f"skipped: {op.path} is not in this image"
        if added.fstype == "tmpfs":
            return ([mount_call("tmpfs", target, "tmpfs", MS_RDONLY, "size=0")],
                    "masked (runc's default): an empty read-only directory")
        return ([mount_call("/dev/null", target, None, MS_BIND, None)],
                "masked (runc's default): reads as empty")
    if isinstance(op, ops.ReadOnly):
        target = where(plan, rec, op.path)
        if not changes:
            return [_not_there(op.path)], f"skipped: {op.path} is not in this image"
        return ([mount_call(target, target, None, MS_BIND | MS_REC, None),
                 f"mount_setattr({q(target)}, \"\", AT_RECURSIVE, {{MOUNT_ATTR_RDONLY}})"],
                "read-only (runc's default): readable, not writable")
    if isinstance(op, ops.Symlink):
        return [f"symlink({q(op.target)}, {q(where(plan, rec, op.path))})"], ""
    if isinstance(op, ops.PivotRoot):
        if (rec.index, "no-pivot") in noted:
            return ([f"chdir({q(op.root)})", "pivot_root(\".\", \".\") = -1 EINVAL",
                     mount_call(".", "/", None, MS_MOVE, None), "chroot(\".\")",
                     "chdir(\"/\")"],
                    "this host's root is the initial ramfs: the new root moved over it "
                    "(runc --no-pivot)")
        n = stepdiff.counts(changes)
        return ([f"chdir({q(op.root)})", "pivot_root(\".\", \".\")",
                 mount_call(None, ".", None, MS_REC | MS_SLAVE, None),
                 "umount2(\".\", MNT_DETACH)", "chdir(\"/\")"],
                f"the new root's {n['changed']} mounts move to /; the old root, stacked on "
                f"top, is detached with the {n['removed']} mounts outside the new root (the "
                "host's, and the scratch it was built in): the cell cannot reach them")
    if isinstance(op, ops.Chroot):
        if op.root == "/":   # a locked kernel's: pivot_root came first
            return ([f"chdir({q(op.root)})", "chroot(\".\")", "chdir(\"/\")"],
                     "%root chroot in a locked kernel: the root was switched with pivot_root "
                     "first, so the seed's escape climbs back to the image's root, never "
                     "the host's")
        return ([f"chdir({q(op.root)})", "chroot(\".\")", "chdir(\"/\")"],
                "%root chroot: / is the new root for this process only; the host's mounts "
                "stay in the namespace, reachable (the seed's escape)")
    if isinstance(op, ops.Loopback):
        req = f"{{ifr_name={q(op.name)}"
        return (["socket(AF_INET, SOCK_DGRAM, 0) = SOCK",
                 f"ioctl(SOCK, SIOCGIFFLAGS, {req}}})",
                 f"ioctl(SOCK, SIOCSIFFLAGS, {req}, ifr_flags=IFF_UP|IFF_LOOPBACK|IFF_RUNNING}})"],
                "the cell's own network namespace has only lo, down: up, so 127.0.0.1 works "
                "inside the cell and reaches nothing of the host's")
    if isinstance(op, ops.Unreachable):
        return ([f"ioctl(SOCK, SIOCADDRT, {{rt_dst={q(addr)}, "
                 "rt_flags=RTF_UP|RTF_HOST|RTF_REJECT})"
                 for addr in ("HOST_ADDRESS", *op.extra.split())],
                "%net user: a reject route for every address of the host (listed before the "
                "namespace was entered) and the cloud metadata service's, so no connection "
                "relayed by pasta reaches the host's own services")
    if isinstance(op, ops.Hostname):
        return ([f"sethostname({q(op.name)}, {len(op.name.encode())})",
                 f"setdomainname({q(op.domain)}, {len(op.domain.encode())})"],
                "the cell's own names, in its own UTS namespace")
    return [op.KIND], ""
