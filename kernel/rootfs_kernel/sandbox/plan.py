"""CellSpec + image + what the session knows -> the plan of one container (pure).

Runs in: the kernel (plan_for; wire.py encodes a plan for rootfs-init).

The plan holds the ordered setup operations (ops.py), which rootfs-init runs in one loop
(init.c), the way bubblewrap turns its options into SETUP_* operations. A new header line
adds operations here, not branches in the sandbox. What only the host can tell when the
container starts (its mount namespace, the cell's cgroup, rlimits) is not part of the
plan: the kernel passes it to the encoder as wire.Launch.
"""

from __future__ import annotations

import functools
import posixpath
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from .. import cell
from ..ids import IdRange
from ..linux import (
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_RELATIME,
    NAMESPACES,
    parse_mount_options,
)
from .ops import (
    Bind,
    Chroot,
    Hostname,
    Layer,
    Loopback,
    Mask,
    Mkdir,
    Mount,
    Op,
    PivotRoot,
    PrivateParent,
    PrivateTree,
    Propagation,
    ReadOnly,
    Symlink,
    Unbindable,
    Unreachable,
)

# The devices every container gets, bound from the host (mknod is refused in a userns).
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}
# runc's defaults: paths hidden from the container, and paths it may read but not write.
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
C_BINARY = "/dev/.rootfs-kernel-cell"   # where a %%c cell's program appears in the container
# The default shell reads the cell from a pipe (init.c: the script pipe is its fd 3), never
# from its command line (which any user reads): a cell may be any length, and the shell
# can be started before its cell exists (prepared.py). It runs the cell as its script
# file named `cell`, so its messages read `cell: 3: foo: not found` (bash: `cell: line 3:`)
# and $0 is `cell`: it starts in a directory where `cell` is a symlink to the pipe. The
# cell's first words (script_head, on its first line) close fd 3, so no process of the
# cell inherits the pipe (the shell's own copy is close-on-exec), and go to the cell's
# working directory; empty lines stand for the header lines, so the shell numbers the
# lines as the notebook does. %shell's program reads the pipe as its script file too.
SHELL = "/bin/sh"
SCRIPT_NAME = "cell"
SCRIPT_PIPE = "/proc/self/fd/3"
# The `display` command (display.c) in every container: in its own /dev (a tmpfs, so
# neither the image, %show changes nor %export see it), first on the cell's PATH; the
# default shell starts there (SCRIPT_NAME).
DISPLAY_DIR = "/dev/.rootfs-kernel"
# %net user: pasta (Debian's `passt`), as rootless podman runs it, started by the cell's
# init for the cell's network namespace (init.c adds which namespace, and where to say it
# is ready). It relays the namespace's connections through the host's sockets, so nothing
# may lead to the host itself: no port forwarded either way (-t/-u/-T/-U none: by default
# the host's loopback ports would appear on the cell's), the gateway address not mapped to
# the host's loopback (--no-map-gw); the cell's DNS server is an address pasta forwards to
# the host's resolver (which may well listen on the host's loopback).
DNS_FORWARD = "169.254.1.1"
PASTA_OPTIONS = ("--foreground", "--quiet", "--config-net", "-t", "none", "-u", "none",
                 "-T", "none", "-U", "none", "--no-map-gw", "--dns-forward", DNS_FORWARD)
RESOLV_CONF = str(Path(__file__).with_name("resolv.conf"))   # "nameserver DNS_FORWARD"
# Unreachable from %net user besides the host's own addresses: the instance metadata
# service of cloud VMs (AWS, GCP, Azure, OpenStack), which hands out the host's
# credentials.
METADATA = "169.254.169.254 fd00:ec2::254"


@dataclass(frozen=True)
class Places:
    """Host directories the helper owns for this kernel (helper.py makes them)."""

    dir: str                # the helper's own directory (the %%c programs live in dir/c)
    scratch: str            # empty dir; each cell mounts its own tmpfs over it
    # %keep chain: the changes kept cells made, merged onto one layer by the kernel
    # (images/upper.py) once each cell is gone; the next cells' top lower layer.
    kept: str
    # Where the default shell of a cell on the host's tree (%root none, %%host) starts:
    # SCRIPT_NAME there is the script pipe (a container's is in its own /dev).
    script_dir: str
    # Where rootfs-init builds the template mount namespace (template.py), in its own
    # namespace: the host sees an empty directory.
    template: str

    @classmethod
    def under(cls, base: str) -> Places:
        return cls(base, f"{base}/cell", f"{base}/keep/layer", f"{base}/script",
                   f"{base}/template")


@dataclass(frozen=True)
class Context:
    """What the session knows between cells, which the plan depends on."""

    places: Places
    rootless: bool            # an ordinary user: the cell gets a user namespace too
    uid: int
    gid: int
    cwd: str                  # the kernel's working directory (%root none, %%host)
    env: Mapping[str, str] = field(default_factory=dict)       # %env of earlier cells
    host_env: Mapping[str, str] = field(default_factory=dict)  # the kernel's, for %%host
    keep_active: bool = False  # the previous cell ran with %keep: its layer is read
    ids: IdRange | None = None  # root mode: the host ids a cell's root and users get
    # Every cell's bounds unless its own %limit says otherwise (KEY: None lifts one).
    default_limits: Mapping[str, float | None] = field(default_factory=dict)
    display: str | None = None   # the host path of the `display` program (initbin.py)
    pasta: str | None = None     # the host path of pasta, for %net user (None: not there)
    host_access: bool = True     # False: a locked kernel (its %root chroot is contained)


class ImageLike(Protocol):
    layers: Sequence[object]   # paths, bottom first
    env: Sequence[str]         # KEY=VALUE
    workdir: str | None


@dataclass(frozen=True)
class Layers:
    """The overlay's layers, opened by the init for %show changes."""

    upper: str
    lowers: tuple[str, ...]   # top first


@dataclass(frozen=True)
class Plan:
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str = "/"
    script: str | None = None     # what the shell reads from the script pipe (SCRIPT_PIPE)
    host: bool = False            # %%host: no namespaces, the kernel's own user
    namespaces: int = 0           # CLONE_NEW* of the cell's init
    # The script runs one user + mount namespace further down, so the setup's mounts are
    # locked: it may add mounts but not undo a read-only bind or a mask (0 = off).
    script_namespaces: int = 0
    rootless: bool = False
    uid: int = 0
    gid: int = 0
    pidns: bool = False
    root: str = "/"               # the new root before the switch ("/" for %root none)
    ops: tuple[Op, ...] = ()
    script_ops: tuple[Op, ...] = ()   # done in the script's namespaces, before the exec
    show: tuple[cell.Show, ...] = ()
    layers: Layers | None = None  # None for %root none and %%host
    limits: dict[str, float] = field(default_factory=dict)   # pids, memory (bytes), cpu
    propagation: str = "private"
    own_layers: bool = False      # reads or writes a %keep/%export layer (prepared.py)
    # "0 FIRST COUNT": the script's uid/gid map when its root is an unprivileged range on
    # the host (ids.py), also the map of the idmapped image layers; "" keeps the identity.
    idmap: str = ""
    limits_asked: bool = False    # the cell said %limit itself (not only the defaults)
    net: str = "none"             # cell.NET_MODES
    # %net user: pasta's argv (PASTA_OPTIONS), and, in root mode, the host id it runs as,
    # which owns the user namespace that owns the cell's network namespace (its map: the
    # cell's, net_map); -1 as an ordinary user, whose cell's init's namespace owns it.
    pasta: tuple[str, ...] = ()
    net_uid: int = -1
    net_map: str = ""
    # The script's process installs the cells' seccomp filter before its exec (init.c,
    # seccomp.py); `%seccomp off` and %%host cells run without it.
    seccomp: bool = False
    # The host paths its setup takes when it may be cloned from the helper's template
    # mount namespace (template.py); () when it sees the host's own tree or mounts.
    template: tuple[str, ...] = ()


def plan_for(spec: cell.CellSpec, image: ImageLike | None, ctx: Context, *,
             c_program: str | None = None) -> Plan:
    """The plan of one cell: image is None for %%host; c_program is a %%c cell's
    compiled program (a host path), which the container runs instead of a shell."""
    env = {**ctx.env, **dict(spec.env)}
    if spec.host:
        return host_plan(spec, {**_with_display(ctx.host_env, ctx.display), **env}, ctx.cwd,
                         ctx.places.script_dir)
    return container_plan(spec, layers=[str(p) for p in image.layers], image_env=image.env,
                          image_workdir=image.workdir, user_env=env, places=ctx.places,
                          keep_active=ctx.keep_active, rootless=ctx.rootless, uid=ctx.uid,
                          gid=ctx.gid, host_cwd=ctx.cwd, ids=ctx.ids, c_program=c_program,
                          default_limits=ctx.default_limits, display=ctx.display,
                          pasta=ctx.pasta, host_access=ctx.host_access)


def _with_display(env: Mapping[str, str], display: str | None, where: str | None = None
                  ) -> dict[str, str]:
    """`env` with the directory of the display program first on its PATH: `where` in a
    container, else where it was built (a cell that keeps the host's tree)."""
    out = dict(env)
    if display:
        head = where or str(Path(display).parent)
        out["PATH"] = f"{head}:{out['PATH']}" if out.get("PATH") else head
    return out


def bounds(own: Sequence[tuple[str, float | None]],
           defaults: Mapping[str, float | None]) -> dict[str, float]:
    """A cell's limits: the defaults under its own %limit line; KEY=none lifts one."""
    merged = {**defaults, **dict(own)}
    return {k: v for k, v in merged.items() if v is not None}


def host_plan(spec: cell.CellSpec, env: dict[str, str], cwd: str, script_dir: str) -> Plan:
    """A %%host cell: no namespaces, the script runs as the kernel's own user (the host's
    shell, reading the cell from the script pipe as a container's does)."""
    argv, start, script = _script(spec, cwd, env, script_dir)
    return Plan(argv=argv, env=env, cwd=start, script=script, host=True)


def script_head(cwd: str, env: Mapping[str, str], line: int = 1) -> str:
    """The default shell's first words, before the cell's text: close the script pipe's
    fd 3, go to the cell's working directory (as its process would have started there:
    physically, "/" if it cannot), leave OLDPWD as the environment had it, then one
    newline per header line (the shell counts the cell's lines as the notebook does)."""
    if "\n" in cwd:   # one line: printf makes the newlines (a trailing "/" keeps them)
        where = '"$(printf \'%b/\' ' + \
            shlex.quote(cwd.replace("\\", "\\\\").replace("\n", "\\n")) + ')"'
    else:
        where = shlex.quote(cwd)
    old = f"OLDPWD={shlex.quote(env['OLDPWD'])}" \
        if "\n" not in env.get("OLDPWD", "\n") else "unset OLDPWD"
    return f"exec 3<&-; cd -P -- {where} 2>/dev/null || cd /; {old};" + "\n" * (line - 1)


def _script(spec: cell.CellSpec, cwd: str, env: Mapping[str, str], start: str
            ) -> tuple[tuple[str, ...], str, str | None]:
    """(argv, the directory it starts in, what goes down the script pipe) of a cell's
    script; `start`: where the default shell finds `cell`. A cell whose own mounts hide
    /proc/self/fd or that directory hands its text to `-c` instead (named `cell` all the
    same): the one case it is on a command line."""
    lines = "\n" * (spec.script_line - 1)
    if _runs_named(spec, start):
        return ((SHELL, SCRIPT_NAME), start,
                script_head(cwd, env, spec.script_line) + spec.script)
    if spec.shell != SHELL and not _covered(spec, "/proc/self"):
        return (spec.shell, SCRIPT_PIPE), cwd, lines + spec.script
    name = (SCRIPT_NAME,) if spec.shell == SHELL else ()
    return (spec.shell, "-c", lines + spec.script, *name), cwd, None


def _runs_named(spec: cell.CellSpec, start: str) -> bool:
    """Does the default shell run the cell as `cell`, from `start`?"""
    return spec.shell == SHELL and not _covered(spec, "/proc/self") \
        and not _covered(spec, start)


def _covered(spec: cell.CellSpec, path: str) -> bool:
    """Does one of the cell's own mounts hide `path` (a mount on it or above it; a proc
    over /proc shows the same /proc/self)?"""
    for m in spec.mounts:
        target = posixpath.normpath(m.target)   # absolute already (cell.py)
        if path == target or path.startswith(target.rstrip("/") + "/"):
            if not (getattr(m, "fstype", "") == "proc" and target == "/proc"):
                return True
    return False


# Every container cell gets these, whatever %unshare says (as Docker does): its own mount
# table, process tree (so every process ends with the cell), hostname and IPC objects.
ALWAYS = frozenset({"mnt", "pid", "uts", "ipc"})
SHM_SIZE = 64 << 20   # /dev/shm, as Docker's default


def container_plan(spec: cell.CellSpec, *, layers: list[str], image_env: Sequence[str],
                   image_workdir: str | None, user_env: Mapping[str, str], places: Places,
                   keep_active: bool, rootless: bool, uid: int, gid: int, host_cwd: str,
                   ids: IdRange | None = None, c_program: str | None = None,
                   default_limits: Mapping[str, float | None] = MappingProxyType({}),
                   display: str | None = None, pasta: str | None = None,
                   host_access: bool = True) -> Plan:
    # Locking needs a less privileged copy of the mount namespace, whose shared mounts
    # turn into slaves: a cell that asks for shared propagation is not locked, and is
    # host root (a host-access line, like %%host).
    lock = spec.propagation != "shared"
    isolated_root = spec.root != "none"
    # Root mode: the script's root is an unprivileged id range on the host (ids), except
    # in `%root none` cells, which keep the host's identity unless they ask for a user
    # namespace of their own.
    unprivileged = ids is not None and lock and (isolated_root or "user" in spec.namespaces)
    idmap = ids.map_line() if unprivileged else ""
    owner = ids.first if unprivileged else -1
    # Every cell has a network of its own (only lo) unless `%net host`.
    names = set(ALWAYS) | (set(spec.namespaces) & {"cgroup"}) | \
        ({"net"} if spec.net != "host" else set())
    # Namespaces the script must own to use (hostname, lo, IPC, its mqueue) go with the
    # script's own user namespace when locked; the rest belong to the cell's init. The
    # network pasta configures (%net user) is not the script's to change: as an ordinary
    # user it is the init's (the init's user namespace owns it, pasta joins that); in
    # root mode rootfs-init makes it in a user namespace of an unprivileged id, which
    # pasta runs as, and the init joins it before its clone (net_uid).
    user_net = spec.net == "user"
    if user_net and not pasta:
        raise cell.HeaderError(spec.net_lineno, "%net user", (
            "outbound access needs pasta on the host (the Debian/Ubuntu and Fedora package "
            "`passt`), which this host lacks: install it, or run the cell without %net "
            "user (its own network, with only lo)"))
    owned = {"uts", "ipc", "net"} & names if lock else set()
    if user_net:
        owned.discard("net")
    flags = script_flags = 0
    for name in names - owned | ({"user"} if rootless else set()):
        if not (name == "net" and user_net and not rootless):
            flags |= NAMESPACES[name]
    if lock:
        script_flags = NAMESPACES["user"] | NAMESPACES["mnt"]
        for name in owned:
            script_flags |= NAMESPACES[name]
    ops_: list[Op] = []
    script_ops: list[Op] = []
    shared = spec.propagation == "shared"
    limits = bounds(spec.limits, default_limits)
    # The default shell runs its script `cell` from a directory of its own (_script).
    start = DISPLAY_DIR if isolated_root else places.script_dir
    named = c_program is None and _runs_named(spec, start)

    # 1. Propagation first, before anything is mounted (pivot_root also refuses a
    #    shared parent). "shared" keeps the host's peer groups; our own mounts then go
    #    on a mount made private first, so only the script's mounts can propagate.
    ops_.append(Propagation(spec.propagation, isolated_root))
    if user_net:
        ops_.append(Unreachable(METADATA))

    root = "/"
    layers_ = None
    own_layers = False
    if isolated_root:
        scratch = places.scratch
        root = f"{scratch}/root"
        if shared:
            ops_.append(PrivateParent(scratch))
        # The cell's tmpfs: its writable layer lives here, so `disk` bounds what it writes,
        # kept or exported too (the kernel copies them out of it once the cell is gone).
        size = f",size={int(limits['disk'])}" if "disk" in limits else ""
        ops_.append(_mount("tmpfs", "rootfs-kernel", scratch, "mode=0755" + size))
        ops_.append(Mkdir(f"{scratch}/root", 0o755))
        lowers: list[str] = []
        for i, layer in enumerate(reversed(layers)):  # overlay wants the top layer first
            if unprivileged:
                lowers.append(f"{scratch}/l{i}")
                ops_.append(Layer(layer, lowers[-1]))
            else:
                lowers.append(layer)
        upper, work = f"{scratch}/upper", f"{scratch}/work"
        if keep_active:
            lowers.insert(0, places.kept)   # written as the cells wrote it: in their range
        # Its upper is read by the kernel after the cell (%keep, %export), or it reads the
        # kept layer, which later cells change: a container of its own, made when it comes.
        own_layers = keep_active or spec.keep or bool(spec.export)
        ops_.append(Mkdir(upper, 0o755, owner, owner))
        ops_.append(Mkdir(work, 0o755, owner, owner))
        data = f"lowerdir={':'.join(_escape_layer(p) for p in lowers)},upperdir={upper}," \
               f"workdir={work}" + (",userxattr" if rootless else "")
        ops_.append(Mount("overlay", root, "overlay", 0, data, in_root=False, create=""))
        ops_.append(Unbindable(scratch))
        layers_ = Layers(upper, tuple(lowers))
        # A fresh sysfs shows the network namespace of whoever mounts it, and only
        # that namespace's owner may mount one.
        own_sysfs = "net" in names
        # The kernel lets a user namespace mount sysfs only while the sysfs it can
        # already see is fully visible, so when the script mounts it (locked), the
        # script masks /sys/firmware after, not the setup before.
        late_sysfs = own_sysfs and "net" in owned
        ops_ += _standard_filesystems(True, rootless, netns=own_sysfs and not late_sysfs,
                                      mask_firmware=not late_sysfs, shared=shared, owner=owner)
        if late_sysfs:
            script_ops += _sysfs("/sys", lineno=0)
        if display:
            ops_.append(Bind(display, f"{DISPLAY_DIR}/display", rec=False, readonly=True,
                             create="file", optional=False))
        if named:   # where the default shell starts
            ops_.append(Symlink(SCRIPT_PIPE, f"{DISPLAY_DIR}/{SCRIPT_NAME}"))
    elif not shared:
        # %root none: the host's tree, but a /proc that shows this cell's PID namespace
        # (with shared propagation it would replace the host's own /proc).
        ops_.append(_mount("proc", "proc", "/proc", "", in_root=True))

    if user_net and (isolated_root or not shared):
        # The cell's resolver: pasta's forwarding address (a %root none cell's mount
        # namespace is its own too; with shared propagation it would be the host's).
        ops_.append(Bind(RESOLV_CONF, "/etc/resolv.conf", rec=False, readonly=True,
                         create="file", optional=False))
    for m in spec.mounts:
        # Filesystems that belong to a namespace the script owns are mounted by the
        # script (mqueue: its IPC namespace; sysfs: its network namespace).
        own = lock and isinstance(m, cell.Mount) and (
            m.fstype == "mqueue" or (m.fstype == "sysfs" and "net" in owned))
        (script_ops if own else ops_).extend(_user_ops(m, idmap=unprivileged))
    if c_program is not None:
        # %%c: the compiled program, not a shell; in its own root it is bound (read-only)
        # before the root switch hides the host's path; on the host's tree, bound onto
        # itself. Either way its mount may run it: the runtime directory may be noexec.
        if isolated_root:
            ops_.append(Bind(c_program, C_BINARY, rec=False, readonly=True, create="file",
                             optional=False, program=True, lineno=1))
            argv = (C_BINARY,)
        else:
            ops_.append(Bind(c_program, c_program, rec=False, readonly=True, create="file",
                             optional=False, program=True, in_root=False, lineno=1))
            argv = (c_program,)

    if spec.root == "pivot":
        ops_.append(PivotRoot(root))
    elif spec.root == "chroot" and not host_access:
        # A locked kernel reaches the host through no line: the root is switched with
        # pivot_root first (the old root detached), then the script chroots within it, so
        # the seed's escape climbs back to the image's root, not the host's.
        ops_.append(PivotRoot(root))
        script_ops.insert(0, Chroot("/"))
    elif spec.root == "chroot":
        # A chrooted process may not create a user namespace: when locked, the script
        # (already in its own) does the chroot, first of its own operations.
        (script_ops.insert(0, Chroot(root)) if lock else ops_.append(Chroot(root)))
    if "net" in names and not user_net:
        (script_ops if "net" in owned else ops_).append(Loopback())
    (script_ops if lock else ops_).append(Hostname("rootfs"))

    env = {"PATH": cell.DEFAULT_PATH, "HOME": "/root", "TERM": "dumb", "LANG": "C.UTF-8"}
    if isolated_root:
        env.update(kv.split("=", 1) for kv in image_env if "=" in kv)
        cwd = image_workdir or "/"
    else:
        cwd = host_cwd
    env = _with_display(env, display, DISPLAY_DIR if isolated_root else None)
    env.update(user_env)
    env.update(spec.env)
    script = None
    if c_program is None:
        argv, cwd, script = _script(spec, cwd, env, start)
    # Root mode (an ordinary user's init may not enter a namespace of the host's user
    # namespace), a root switched with pivot_root, no %bind, no propagation from the host:
    # nothing of the host's tree or mounts reaches the script but what the setup takes.
    template: tuple[str, ...] = ()
    pivots = spec.root == "pivot" or (spec.root == "chroot" and not host_access)
    if not rootless and pivots and spec.propagation == "private" and \
            not any(isinstance(m, cell.Bind) for m in spec.mounts):
        taken = {places.dir, *layers}
        taken.update(op.source for op in ops_ if isinstance(op, Bind)
                     and not op.source.startswith(("/dev/", "/sys")))
        template = tuple(sorted(taken))
    return Plan(argv=argv, env=env, cwd=cwd, script=script, namespaces=flags,
                script_namespaces=script_flags, rootless=rootless, uid=uid, gid=gid,
                pidns=True, root=root,
                ops=tuple(ops_), script_ops=tuple(script_ops), show=spec.show,
                layers=layers_, limits=limits, propagation=spec.propagation,
                own_layers=own_layers, idmap=idmap, limits_asked=bool(spec.limits),
                net=spec.net, pasta=(pasta, *PASTA_OPTIONS) if user_net else (),
                net_uid=ids.first if user_net and ids is not None else -1,
                net_map=ids.map_line() if user_net and ids is not None else "",
                seccomp=spec.seccomp, template=template)


# What a %%c compile sees of the host: the compiler, its libraries and headers, and how
# the dynamic loader finds them. Not /home, /root, /etc at large, /var, /tmp or /run.
COMPILER_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                  "/etc/ld.so.cache", "/etc/alternatives")


def compile_plan(ctx: Context, source: str, text: str, gcc: Sequence[str], limits: Mapping,
                 host_paths: Sequence[tuple[str, str, str | None]]) -> Plan:
    """%%c's compile: the host's compiler and headers, read-only, in a container of its
    own (pivot_root, PID/IPC/UTS namespaces, runc's masks, the unprivileged ids in root
    mode), where only its work directory (`source`'s, a tmpfs there) and /tmp are
    writable: gcc's flags can name any path, but can change nothing of the host's and
    read only the compiler's own files and the cell's `text`. That comes down the script
    pipe and is written to `source` in the work directory, by the compile's own id: no
    host file of the source exists for another user to read, and none needs an idmapped
    mount for the compile to read it (tmpfs has them from Linux 6.3 on, ramfs not at all).
    Then `gcc` runs there, umask 077. What gcc writes stays within the cell's `disk`
    (each tmpfs's size); the kernel copies the program out of the work directory's tmpfs
    (Plan.layers.upper, handed over as a cell's upper layer) once the compile is over.
    `host_paths`: COMPILER_PATHS as the host has them, (path, "dir" | "file" | "link",
    link target)."""
    root = f"{ctx.places.scratch}/root"
    workdir, name = posixpath.split(source)
    unprivileged = ctx.ids is not None
    owner = ctx.ids.first if unprivileged else -1
    ids = f",uid={owner},gid={owner}" if unprivileged else ""
    size = f",size={int(limits['disk'])}" if "disk" in limits else ""
    names = set(ALWAYS) | ({"user"} if ctx.rootless else set())
    flags = sum(NAMESPACES[n] for n in names - {"uts", "ipc"})
    # gcc needs no network: the compile gets a namespace of its own, not even lo up.
    script_flags = sum(NAMESPACES[n] for n in ("user", "mnt", "uts", "ipc", "net"))
    ops_: list[Op] = [
        Propagation("private", True),
        _mount("tmpfs", "rootfs-kernel", ctx.places.scratch, "mode=0755"),
        Mkdir(root, 0o755),
        _mount("tmpfs", "rootfs-cc", root, "mode=0755" + size),   # pivot_root wants a mount
    ]
    for path, kind, target in host_paths:
        if kind == "link":   # merged /usr: /bin -> usr/bin, as on the host
            ops_.append(Symlink(target or "", path))
        else:
            ops_.append(Bind(path, path, rec=kind == "dir", readonly=True, create=kind,
                             optional=True))
    ops_ += [
        *_standard_filesystems(True, ctx.rootless, netns=False, mask_firmware=True,
                               owner=owner),
        _mount("tmpfs", "tmp", "/tmp", "mode=1777" + ids + size, in_root=True,
               flags_extra=MS_NOSUID | MS_NODEV),
        _mount("tmpfs", "rootfs-cc-work", workdir, "mode=0755" + ids + size, in_root=True,
               flags_extra=MS_NOSUID | MS_NODEV),
        PivotRoot(root),
    ]
    # The script pipe is the shell's fd 3 (init.c); gcc does not inherit it.
    argv = (SHELL, "-c", f"umask 077 && cat >{shlex.quote(name)} <&3 && exec 3<&- && "
            f"exec {shlex.join(gcc)}")
    env = {"PATH": cell.DEFAULT_PATH, "HOME": "/tmp", "LANG": "C.UTF-8"}
    return Plan(argv=argv, env=env, cwd=workdir, script=text, namespaces=flags,
                script_namespaces=script_flags, rootless=ctx.rootless, uid=ctx.uid,
                gid=ctx.gid, pidns=True, root=root, ops=tuple(ops_),
                script_ops=(Hostname("rootfs-cc"),), limits=dict(limits),
                layers=Layers(f"{root}{workdir}", ()),
                idmap=ctx.ids.map_line() if unprivileged else "", seccomp=True)


@functools.cache   # the same few variants for every cell; operations are immutable
def _standard_filesystems(pidns: bool, rootless: bool, netns: bool, mask_firmware: bool,
                          shared: bool = False, owner: int = -1) -> tuple[Op, ...]:
    """/proc, a minimal /dev, a read-only /sys and runc's masks, all inside the new root.
    `owner`: the host id of the cell's root when it is unprivileged (its /dev is its own)."""
    out: list[Op] = []
    ids = f",uid={owner},gid={owner}" if owner >= 0 else ""
    if pidns:
        out.append(_mount("proc", "proc", "/proc", "", in_root=True,
                          flags_extra=MS_NOSUID | MS_NODEV | MS_NOEXEC))
    else:
        # Without a PID namespace of our own, a user namespace may not mount proc.
        out.append(Bind("/proc", "/proc", rec=True, readonly=False, create="dir",
                        optional=False))
    out.append(_mount("tmpfs", "tmpfs", "/dev", "mode=0755" + ids, in_root=True,
                      flags_extra=MS_NOSUID))
    out += (Bind(f"/dev/{dev}", f"/dev/{dev}", rec=False, readonly=False, create="file",
                 optional=True) for dev in DEVICES)
    # The tty group (5) of the image, as the host numbers it.
    pts = "newinstance,ptmxmode=0666,mode=0620" + ("" if rootless else
                                                   f",gid={max(owner, 0) + 5}")
    out.append(_mount("devpts", "devpts", "/dev/pts", pts, in_root=True,
                      flags_extra=MS_NOSUID | MS_NOEXEC))
    out.append(_mount("tmpfs", "shm", "/dev/shm", f"mode=1777,size={SHM_SIZE}" + ids,
                      in_root=True, flags_extra=MS_NOSUID | MS_NODEV))
    out += (Symlink(target, f"/dev/{name}") for name, target in DEV_LINKS.items())
    if netns:
        # A sysfs of its own shows the cell's network namespace (only lo), not the host's;
        # a user namespace may mount one once it owns a network namespace.
        out.append(_mount("sysfs", "sysfs", "/sys", "ro", in_root=True,
                          flags_extra=MS_NOSUID | MS_NODEV | MS_NOEXEC))
    else:
        out.append(Bind("/sys", "/sys", rec=True, readonly=True, create="dir", optional=False))
    if shared:
        # The binds above are peers of the host's /sys and devices: make the new root's
        # mounts private before the masks, or a mask would be stacked on the host's path.
        out.append(PrivateTree(""))
    out += _masks("", proc=True, sys=mask_firmware)
    return tuple(out)


def _masks(under: str, *, proc: bool, sys: bool) -> list[Op]:
    """runc's masked and read-only paths, for a /proc and/or /sys mounted at `under`+/proc
    and `under`+/sys (the container's own, or a cell's %mount of one elsewhere)."""
    out: list[Op] = []
    for path in MASKED_PATHS:
        top, _, rest = path[1:].partition("/")
        if (top == "proc" and proc) or (top == "sys" and sys):
            out.append(Mask(f"{under}/{top}/{rest}" if under == "" else f"{under}/{rest}"))
    if proc:
        out += (ReadOnly(p if under == "" else f"{under}/{p[len('/proc/'):]}")
                for p in READONLY_PATHS)
    return out


def _sysfs(target: str, lineno: int) -> list[Op]:
    """A sysfs the cell asked for gives no more than the container's own /sys: read-only,
    nosuid/nodev/noexec, /sys/firmware masked."""
    return [_mount("sysfs", "sysfs", target, "ro", in_root=True, lineno=lineno,
                   flags_extra=MS_NOSUID | MS_NODEV | MS_NOEXEC),
            *_masks(target, proc=False, sys=True)]


def _mount(fstype: str, source: str, target: str, options: str, *, in_root: bool = False,
           flags_extra: int = 0, lineno: int = 0) -> Mount:
    flags, data = parse_mount_options(options)
    return Mount(source, target, fstype, flags | flags_extra | MS_RELATIME, data,
                 in_root=in_root, create="dir" if in_root else "", lineno=lineno)


def _user_ops(m: cell.Mount | cell.Bind, *, idmap: bool) -> list[Op]:
    """A %bind or %mount line: never more than the container's own /proc and /sys give."""
    if isinstance(m, cell.Bind):
        return [Bind(m.source, m.target, rec=True, readonly=m.readonly, create="like-source",
                     optional=False, idmap=idmap, lineno=m.lineno)]
    if m.fstype == "sysfs":
        return _sysfs(m.target, m.lineno)
    extra = MS_RDONLY if m.fstype in ("cgroup", "cgroup2") else 0  # no cgroups of its own
    out: list[Op] = [_mount(m.fstype, "none", m.target, m.options, in_root=True,
                            flags_extra=extra, lineno=m.lineno)]
    if m.fstype == "proc":
        out += _masks(m.target, proc=True, sys=False)
    return out


def _escape_layer(path: str) -> str:
    # overlayfs splits lowerdir on ':' and option lists on ','; escape both.
    return str(Path(path)).replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")
