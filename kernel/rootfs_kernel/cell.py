"""The cell language: leading `%` header lines -> a CellSpec (pure, touches nothing).

A cell is a POSIX shell script. Lines at its top that start with `%` configure the
container the script runs in; `%%host` as the very first line runs it on the host.
"""

from __future__ import annotations

import difflib
import math
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .linux import NAMESPACES

ROOT_MODES = ("pivot", "chroot", "none")
PROPAGATIONS = ("private", "slave", "shared")
# A cell's network: a namespace of its own with only `lo` (none, the default), the same
# plus outbound access through pasta without the host's addresses (user), or the host's
# own network (host: a host-access line).
NET_MODES = ("none", "user", "host")
# Filesystems a process may mount inside a mount namespace it owns (FS_USERNS_MOUNT),
# plus the ones root may mount anyway.
FSTYPES = ("tmpfs", "ramfs", "proc", "sysfs", "devpts", "mqueue", "cgroup2", "overlay", "bpf")
SHOW_KINDS = ("mounts", "ls", "changes", "ns", "layers", "tree", "steps", "limits")
# The views `%show KIND ... vs NAME` takes: an earlier cell's side is kept by `%label`.
VS_KINDS = ("mounts", "ls", "tree", "steps")
# A `%label`: what names an earlier cell's container for `vs`.
LABEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# An image's name in the store, in `%image`, `%export` and `rootfs-kernel image`.
IMAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DEFAULT_IMAGE = "minimal"
# The images rootfs-kernel builds by kind (`%image NAME --build KIND`, `rootfs-kernel
# image build KIND`), each under its kind's name: the kernel makes them by that name, so
# a cell's image of the same name would shadow them.
BUILD_KINDS = ("minimal", "busybox", "debian")
# The PATH of a script whose image sets none (Docker's default).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# What no program can be handed: NUL ends a C string (an argument, an environment
# string, a token of the NUL-joined hand-over to a prepared container), and a surrogate
# outside surrogateescape's U+DC80-U+DCFF (undecodable bytes of a file name) has no
# byte form at all. Refused where the user's text enters, not where it breaks.
_UNCARRIABLE = re.compile("[\x00\ud800-\udc7f]")
# A header line also refuses the other control characters (a tab separates words): in
# a path or a value they are a paste accident or an attempt to forge output.
_HEADER_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udc7f]")
_INVISIBLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
# Linux takes at most 32 pages (MAX_ARG_STRLEN, 128 KiB) in one argument or environment
# string, NUL included, and about a quarter of the stack (ARG_MAX, 2 MiB by default)
# for all of them together: the script, the setup and the environment share that.
MAX_ARG_STRLEN = 128 * 1024
MAX_ENV_TOTAL = 1 << 20
# What the system calls a header line's words end up in take: a path of at most PATH_MAX
# bytes (its NUL included) made of names of at most NAME_MAX bytes, and mount(2) options
# of at most one page (the kernel copies one page of them). Longer text is refused at its
# line, not by the container's init with an errno.
PATH_MAX = 4096
NAME_MAX = 255
MOUNT_OPTIONS_MAX = 4096
# Each %mount or %bind line is a few of rootfs-init's setup operations (a proc mount and
# its masks, fifteen): this many of them always fit its plan (ops.MAX_OPS).
MAX_MOUNT_LINES = 32
# %%c's flags are part of the compiler's `sh -c` command line, one argument string.
MAX_C_FLAGS = 64 * 1024


def visible(text: str, limit: int = 160) -> str:
    """`text` fit for a message: control characters escaped, long text shortened."""
    shown = _INVISIBLE.sub(lambda m: ascii(m.group(0))[1:-1], text)
    return shown if len(shown) <= limit else shown[:limit] + f"... ({len(text)} characters)"


class HeaderError(ValueError):
    """A header line is wrong. The message names the line and what was expected."""

    def __init__(self, lineno: int, line: str, problem: str, usage: str | None = None):
        self.lineno, self.line, self.problem, self.usage = lineno, line, problem, usage
        hint = f"\n  expected: {usage}" if usage else ""
        super().__init__(f"line {lineno}: `{visible(line.strip())}`: {problem}{hint}")


@dataclass(frozen=True)
class Mount:
    """`%mount FSTYPE TARGET [OPTIONS]`: a filesystem mounted at TARGET inside the cell."""

    fstype: str
    target: str
    options: str = ""
    lineno: int = 0


@dataclass(frozen=True)
class Bind:
    """`%bind HOST_PATH TARGET [ro]`: a host path made visible at TARGET inside the cell."""

    source: str
    target: str
    readonly: bool = False
    lineno: int = 0


@dataclass(frozen=True)
class Show:
    """`%show KIND [ARGS] [vs NAME]`: a comparison view taken when the script ends; with
    `against`, next to the same view of the cell labelled NAME instead of the host."""

    kind: str
    path: str | None = None
    host_path: str | None = None
    against: str | None = None
    lineno: int = field(default=0, compare=False)   # for messages: not what the view is


@dataclass(frozen=True)
class CellSpec:
    script: str
    script_line: int = 1          # the cell's line the script starts on (after the header)
    host: bool = False
    image: str = DEFAULT_IMAGE
    image_lineno: int = 0
    root: str = "pivot"
    propagation: str = "private"
    namespaces: frozenset[str] = frozenset({"mnt", "pid"})
    mounts: tuple[Mount | Bind, ...] = ()
    keep: bool = False
    timeout: float | None = None
    env: tuple[tuple[str, str], ...] = ()
    shell: str = "/bin/sh"
    show: tuple[Show, ...] = ()
    help: bool = False
    c_flags: str | None = None    # %%c: the script is C source; these are extra gcc flags
    limits: tuple[tuple[str, float], ...] = ()   # %limit: pids, memory, cpu, disk, output
    build: str | None = None      # %image NAME --build [KIND]: build NAME from KIND if missing
    export: str | None = None     # %export NAME: save the resulting root as image NAME
    export_lineno: int = 0
    export_replace: bool = False  # %export NAME --replace: NAME may exist already
    net: str = "none"             # %net none|user|host (NET_MODES)
    net_lineno: int = 0
    seccomp: bool = True          # %seccomp off: the script runs without the cells' filter
    label: str | None = None      # %label NAME: kept for `%show ... vs NAME` in later cells


@dataclass(frozen=True)
class Magic:
    name: str
    usage: str
    summary: str
    parse: object = field(repr=False, default=None)


def _one_of(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


def _absolute(path: str, what: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"{what} must be an absolute path, got {visible(path)!r}")
    if any(part == ".." for part in path.split("/")):
        raise ValueError(f"{what} {visible(path)!r} contains '..'; name the directory "
                         "directly")
    _fits_path(path, what)
    return posixpath.normpath(path)


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _fits_path(path: str, what: str) -> None:
    """A path Linux can take: PATH_MAX bytes with its NUL, names of NAME_MAX bytes."""
    size = _bytes(path)
    if size >= PATH_MAX:
        raise ValueError(f"{what} is {size} bytes long, and Linux takes a path of at most "
                         f"{PATH_MAX - 1} bytes (PATH_MAX); name a shorter path")
    for name in path.split("/"):
        if _bytes(name) > NAME_MAX:
            raise ValueError(f"{what} has a name of {_bytes(name)} bytes "
                             f"({visible(name, 40)!r}), and Linux takes names of at most "
                             f"{NAME_MAX} bytes (NAME_MAX); name a shorter path")


def _image_name(name: str) -> str:
    if not IMAGE_NAME.match(name):
        raise ValueError(f"{name!r} is not an image name (lower-case letters, digits, . _ -)")
    return name


def _p_image(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    name, *rest = args
    build = None
    if rest:
        if rest[0] != "--build" or len(rest) > 2:
            raise TypeError
        build = rest[1] if len(rest) == 2 else name
        _one_of(build, BUILD_KINDS, "image kind to build")
    return replace(spec, image=_image_name(name), image_lineno=lineno, build=build)


def _p_export(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    name, *rest = args
    if rest not in ([], ["--replace"]):
        raise TypeError
    replacing = rest == ["--replace"]
    if name in BUILD_KINDS and not replacing:
        raise ValueError(
            f"{name} is a built-in image (the kernel makes it by that name"
            f"{'; every new kernel starts from it' if name == 'minimal' else ''}), and "
            f"%export {name} would shadow it: save under a name of your own, e.g. "
            f"`%export my-{name}` then `%image my-{name}` (or, to replace it on purpose, "
            f"`%export {name} --replace`; `rootfs-kernel image rm {name}` brings the "
            "built-in back)")
    return replace(spec, export=_image_name(name), export_lineno=lineno,
                   export_replace=replacing)


def _p_root(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    (mode,) = args
    return replace(spec, root=_one_of(mode, ROOT_MODES, "root mode"))


def _p_mount(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    if len(args) not in (2, 3):
        raise TypeError
    fstype, target, *opts = args
    _one_of(fstype, FSTYPES, "filesystem type")
    options = opts[0] if opts else ""
    if _bytes(options) >= MOUNT_OPTIONS_MAX:
        raise ValueError(f"OPTIONS are {_bytes(options)} bytes, and mount(2) takes at most "
                         f"one page of them ({MOUNT_OPTIONS_MAX - 1} bytes); leave out what "
                         "the filesystem does not need")
    m = Mount(fstype, _absolute(target, "TARGET"), options, lineno)
    return _with_mount(spec, m)


def _with_mount(spec: CellSpec, m: Mount | Bind) -> CellSpec:
    if len(spec.mounts) >= MAX_MOUNT_LINES:
        raise ValueError(f"a cell takes at most {MAX_MOUNT_LINES} %mount and %bind lines; "
                         "mount more from the script itself (`mount -t tmpfs none /mnt` "
                         "works in every cell)")
    return replace(spec, mounts=spec.mounts + (m,))


def _p_bind(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    if len(args) not in (2, 3):
        raise TypeError
    source, target, *mode = args
    if mode and mode[0] not in ("ro", "rw"):
        raise ValueError(f"the third word must be 'ro' or 'rw', got {mode[0]!r}")
    b = Bind(_absolute(source, "HOST_PATH"), _absolute(target, "TARGET"), mode == ["ro"], lineno)
    return _with_mount(spec, b)


def _p_propagation(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    (mode,) = args
    return replace(spec, propagation=_one_of(mode, PROPAGATIONS, "propagation"))


def _p_unshare(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    (names,) = args
    chosen = {n.strip() for n in names.split(",") if n.strip()}
    for n in chosen:
        _one_of(n, tuple(NAMESPACES), "namespace")
    return replace(spec, namespaces=frozenset(chosen | {"mnt"}))


def _p_net(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    (mode,) = args
    return replace(spec, net=_one_of(mode, NET_MODES, "network"), net_lineno=lineno)


def _p_keep(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    if args:
        raise TypeError
    return replace(spec, keep=True)


def _p_timeout(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    (value,) = args
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"SECONDS must be a number, got {value!r}") from None
    if not 0 < seconds <= 7 * 24 * 3600:
        raise ValueError(f"SECONDS must be between 0 and one week, got {value}")
    return replace(spec, timeout=seconds)


def _p_env(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    if not args:
        raise TypeError
    assignment = " ".join(args)  # `%env A=hello world` means what it says
    name, eq, value = assignment.partition("=")
    if not eq or not _ENV_NAME.match(name):
        raise ValueError("expected NAME=VALUE with a shell variable name, got "
                         f"{visible(assignment)!r}")
    size = env_size(name, value)
    if size > MAX_ARG_STRLEN:
        raise ValueError(
            f"{name}=... is {size} bytes, and Linux hands a program at most "
            f"{MAX_ARG_STRLEN} bytes (128 KiB) in one environment string: every later "
            "cell would fail to start. Put a value this long in a file instead (a cell "
            "with %keep, or %export, keeps it for later cells)")
    return replace(spec, env=spec.env + ((name, value),))


def _check_env_total(spec: CellSpec, earlier: Mapping[str, str], line: str,
                     lineno: int) -> None:
    total = sum(env_size(k, v) for k, v in {**earlier, **dict(spec.env)}.items())
    if total > MAX_ENV_TOTAL:
        raise HeaderError(lineno, line, (
            f"with it, the variables set by %env would take {total} bytes; the kernel keeps "
            f"them under {MAX_ENV_TOTAL} (1 MiB) so that a cell's script, setup and "
            "environment fit in what Linux hands a starting program (ARG_MAX): put large "
            "values in a file instead"))


def env_size(name: str, value: str) -> int:
    """Bytes `NAME=VALUE` takes in a program's environment (its NUL included)."""
    return len(f"{name}={value}".encode("utf-8", "surrogateescape")) + 1


def _p_shell(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    (path,) = args
    return replace(spec, shell=_absolute(path, "PATH"))


def _label_name(name: str) -> str:
    if not LABEL_NAME.match(name):
        raise ValueError(f"{visible(name)!r} is not a label (letters, digits, . _ -, at "
                         "most 64)")
    return name


def _p_show(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    if not args:
        raise TypeError
    kind, *rest = args
    _one_of(kind, SHOW_KINDS, "view")
    against = None
    if "vs" in rest:
        at = rest.index("vs")
        if at != len(rest) - 2:
            raise ValueError("`vs` ends the line with the label of an earlier cell: "
                             f"`%show {kind}{' PATH' if kind == 'ls' else ''} vs NAME`")
        if kind not in VS_KINDS:
            raise ValueError(f"`%show {kind}` has no `vs`: {', '.join(VS_KINDS)} compare "
                             "with an earlier cell labelled by `%label NAME`")
        against = _label_name(rest[-1])
        rest = rest[:at]
    if kind == "ls":
        if len(rest) not in (1, 2):
            raise ValueError("`%show ls` takes PATH and an optional HOST_PATH")
        if against and len(rest) == 2:
            raise ValueError("`%show ls PATH vs NAME` compares with cell NAME's PATH, not a "
                             "host path: drop HOST_PATH or `vs NAME`")
        path = _absolute(rest[0], "PATH")
        # Without HOST_PATH the cell is compared with its image (or, %root none, the host).
        host = _absolute(rest[1], "HOST_PATH") if len(rest) == 2 else None
        view = Show("ls", path, host, against, lineno)
    elif kind == "tree" and len(rest) == 1:
        # the mounts at and below PATH, each with the mounts it sits on (a host's thousands
        # of mounts are not drawn to show the few one experiment is about)
        view = Show("tree", _absolute(rest[0], "PATH"), None, against, lineno)
    elif rest:
        raise ValueError(f"`%show {kind}` takes no arguments"
                         + (" but PATH" if kind == "tree" else "")
                         + (" but `vs NAME`" if kind in VS_KINDS else ""))
    else:
        view = Show(kind, against=against, lineno=lineno)
    return replace(spec, show=spec.show + (view,))


def _p_label(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    (name,) = args
    return replace(spec, label=_label_name(name))


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kmgt]?)i?b?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def format_size(n: float, decimals: int | None = None) -> str:
    """bytes -> `512 B`, `64 MiB`, `1.5 GiB` (what parse_size reads back, near enough);
    with `decimals`, that many digits after the point (`120.6 KiB`; bytes whole)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            break
        n /= 1024
    if decimals is None:
        return f"{n:g} B" if unit == "B" else f"{n:.3g} {unit}"
    return f"{n:.0f} B" if unit == "B" else f"{n:.{decimals}f} {unit}"


# The largest size anything takes (a limit, the image store's bound): more than any
# host has, and far from where the kernel's counters (u64 bytes, pages) overflow.
MAX_SIZE = 1 << 50


def parse_size(text: str) -> int:
    """`64m`, `1.5G`, `512MiB`, `100000` -> bytes (at most MAX_SIZE)."""
    m = _SIZE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a size; write e.g. 64m, 1g or 100000")
    value = float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    if not value <= MAX_SIZE:   # also inf: a number of 309 digits
        raise ValueError(f"{visible(text, 40)!r} is more than any host has; sizes go up "
                         f"to {MAX_SIZE >> 40}t (1 PiB)")
    return int(value)


LIMIT_KEYS = ("pids", "memory", "cpu", "disk", "output")
SIZE_KEYS = ("memory", "disk", "output")
# What each limit can be: what the kernel's interfaces take (pids.max and PID_MAX_LIMIT,
# cpu.cfs_quota_us of 1 ms per CPU_PERIOD to one per CPU Linux runs on), and sizes in
# which a shell still starts (output, what the kernel shows of the cell, may be 0).
PIDS_RANGE = (2, 4_194_304)
CPU_RANGE = (0.01, 8192.0)
SIZE_MIN = 1 << 20


def parse_limits(words: list[str]) -> tuple[tuple[str, float | None], ...]:
    """`pids=N memory=SIZE cpu=FRACTION disk=SIZE output=SIZE` -> (("pids", N), ...); shared
    with the kernel-wide defaults. KEY=none lifts a default (None). output is what the
    kernel shows of the cell (output.py), not a bound of the container."""
    out: dict[str, float | None] = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or key not in LIMIT_KEYS:
            raise ValueError("expected pids=N, memory=SIZE, cpu=FRACTION, disk=SIZE or "
                             f"output=SIZE (or KEY=none), got {word!r}")
        if value == "none":
            out[key] = None
            continue
        try:
            if key == "pids":
                out[key] = int(value)
            elif key in SIZE_KEYS:
                out[key] = parse_size(value)
            else:
                out[key] = float(value)
        except ValueError as err:
            raise ValueError(f"{key}: {err}" if key in SIZE_KEYS else
                             f"{key} must be a number, got {visible(value, 40)!r}") from None
        _in_range(key, out[key], visible(word, 60))
    return tuple(out.items())


def _in_range(key: str, value: float, word: str) -> None:
    if key in SIZE_KEYS:   # parse_size bounded them from above
        if key != "output" and value < SIZE_MIN:
            raise ValueError(f"{word} is too small for a shell to start ({key} >= 1m)")
        return
    low, high = PIDS_RANGE if key == "pids" else CPU_RANGE
    if isinstance(value, float) and math.isnan(value):
        raise ValueError(f"{key} must be a number, got {word}")
    if value < low:
        raise ValueError(f"{word} is too small: " + (
            "pids >= 2 (a shell needs a process besides the cell's init)" if key == "pids"
            else "cpu >= 0.01 (1 ms in every 100 ms, the least the kernel schedules)"))
    if value > high:
        raise ValueError(f"{word} is more than Linux has: " + (
            f"pids <= {high} (PID_MAX_LIMIT)" if key == "pids" else
            f"cpu <= {high:g} (the most CPUs Linux runs on)")
            + f"; to lift the limit write {key}=none")


def _p_limit(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    if not args:
        raise TypeError
    return replace(spec, limits=tuple({**dict(spec.limits), **dict(parse_limits(args))}.items()))


def _p_seccomp(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    (mode,) = args
    return replace(spec, seccomp=_one_of(mode, ("on", "off"), "seccomp mode") == "on")


def _p_help(spec: CellSpec, args: list[str], lineno: int) -> CellSpec:
    if args:
        raise TypeError
    return replace(spec, help=True)


MAGICS: dict[str, Magic] = {
    m.name: m
    for m in (
        Magic("image", "%image NAME [--build [KIND]]", "Use image NAME as the cell's root "
              "filesystem (default: minimal); --build makes it first from KIND (minimal, "
              "busybox, debian), with a progress bar.", _p_image),
        Magic("root", "%root pivot|chroot|none", "Switch the root with pivot_root (default), "
              "with chroot, or keep the host's root.", _p_root),
        Magic("mount", "%mount FSTYPE TARGET [OPTIONS]", "Mount a filesystem (tmpfs, proc, "
              "mqueue, ...) at TARGET inside the cell, e.g. `%mount tmpfs /tmp size=10m`.",
              _p_mount),
        Magic("bind", "%bind HOST_PATH TARGET [ro]", "Bind-mount a host path at TARGET inside "
              "the cell, read-only with `ro`.", _p_bind),
        Magic("propagation", "%propagation private|slave|shared", "Mount propagation of the "
              "cell's namespace (default private: no cell mount reaches the host).",
              _p_propagation),
        Magic("unshare", "%unshare net,cgroup,user", "Namespaces the cell gets besides "
              "mnt, pid, uts, ipc and net, which every cell has (net: see %net); with "
              "%root none, user makes the cell's root an unprivileged id on the host.",
              _p_unshare),
        Magic("net", "%net none|user|host", "The cell's network: its own with only lo "
              "(none, the default), the same plus outbound access through pasta that "
              "reaches no address of the host (user), or the host's own network (host).",
              _p_net),
        Magic("keep", "%keep", "Carry this cell's filesystem changes into the next cell.",
              _p_keep),
        Magic("timeout", "%timeout SECONDS", "Kill the cell's container after SECONDS.",
              _p_timeout),
        Magic("env", "%env NAME=VALUE", "Set an environment variable for this and every "
              "later cell.", _p_env),
        Magic("shell", "%shell PATH", "Run the script with PATH (inside the image) instead of "
              "/bin/sh.", _p_shell),
        Magic("show", "%show mounts | ls PATH [HOST_PATH] | changes | ns | layers | tree "
              "[PATH] | steps | limits [vs NAME]",
              "After the cell, show its mount table, a listing, its changes or its "
              "namespaces next to the host's (ls PATH: next to the image before the cell; "
              "with HOST_PATH: next to that host path), the image's layers with the cell's "
              "own on top, both mount trees as a picture (tree PATH: the mounts at and "
              "below PATH and those they sit on), how its container was built, "
              "step by step, or what bounded it (cgroup or rlimit) and what it used at "
              "most; `vs NAME` (mounts, ls, tree, steps): next to the cell labelled NAME "
              "instead.", _p_show),
        Magic("label", "%label NAME", "Name this cell's container: a later `%show mounts "
              "vs NAME` (or ls, tree, steps) compares with it, e.g. pivot_root against "
              "chroot.", _p_label),
        Magic("export", "%export NAME [--replace]", "Save the cell's resulting root "
              "filesystem (image plus this cell's changes) as image NAME, like docker "
              "commit; --replace overwrites an existing image NAME.", _p_export),
        Magic("limit", "%limit pids=N memory=SIZE cpu=FRACTION disk=SIZE output=SIZE",
              "Bound the cell: processes, memory (e.g. 64m), CPU share (e.g. 0.5 of a "
              "core), what it may write (disk), what the notebook is sent of its output; "
              "every cell has pids=1024 disk=1g output=64m unless the kernel says "
              "otherwise; KEY=none lifts one.", _p_limit),
        Magic("seccomp", "%seccomp on|off", "The cell's seccomp filter (default on, "
              "modelled on Docker's default profile: bpf, keyctl, perf_event_open, "
              "userfaultfd, io_uring, module loading, ... answer EPERM); off lifts it.",
              _p_seccomp),
        Magic("help", "%help", "List every header line with one sentence each.", _p_help),
    )
}

HOST_USAGE = "%%host or %%c [GCC_FLAGS] (first line only)"


def help_text() -> str:
    width = max(len(m.usage) for m in MAGICS.values())
    lines = [f"{m.usage:<{width}}  {m.summary}" for m in MAGICS.values()]
    lines.append(f"{'%%host':<{width}}  Run the cell on the host, outside any namespace "
                 "(first line only).")
    lines.append(f"{'%%c [GCC_FLAGS]':<{width}}  The cell is C: compiled with the host's gcc, "
                 "run in the container (first line only).")
    lines.append(f"{'display FILE':<{width}}  A command in every cell's script: show a PNG, "
                 "JPEG, GIF, SVG, HTML or Markdown file below the cell (--html, --markdown, "
                 "... pick the kind).")
    return "Header lines (at the top of a cell; the rest is a shell script):\n" + "\n".join(
        "  " + line for line in lines
    )


def parse(code: str, *, host_access: bool = True,
          env: Mapping[str, str] | None = None) -> CellSpec:
    """Split a cell into its header lines and script, or raise HeaderError.

    With host_access=False (a locked kernel) every line that reaches the host
    (HOST_ACCESS_LINES) is refused. `env`: the variables earlier cells set with %env,
    so that a %env line that would make the whole too large is refused where it is.
    """
    lines = code.split("\n")
    spec = CellSpec(script="")
    start = 0
    first = lines[0].strip() if lines else ""
    if first == "%%host" or first == "%%c" or first.startswith("%%c "):
        _check_text(lines[0], 1, header=True)
        if first == "%%host":
            _check_host_access(host_access, 1, lines[0], "%%host")
            spec, start = replace(spec, host=True), 1
        else:
            spec, start = replace(spec, c_flags=_c_flags(lines[0])), 1
    i = start
    while i < len(lines) and lines[i].lstrip().startswith("%"):
        line = lines[i]
        if spec.host:
            raise HeaderError(i + 1, line, "a %%host cell runs on the host and takes no "
                              "header lines; remove it or drop %%host")
        _check_text(line, i + 1, header=True)
        before = len(spec.env)
        spec = _parse_line(spec, line, i + 1, host_access)
        if len(spec.env) > before:
            _check_env_total(spec, env or {}, line, i + 1)
        i += 1
    script = "\n".join(lines[i:])
    bad = _UNCARRIABLE.search(script)
    if bad is not None:  # one search over the script, then find its line
        n = i + script.count("\n", 0, bad.start())
        _check_text(lines[n], n + 1, header=False)
    spec = replace(spec, script=script, script_line=i + 1)
    _check_combinations(spec, lines[start:i], start)
    return spec


def _check_text(line: str, lineno: int, header: bool) -> None:
    """Refuse what cannot reach a program (any line) or has no place in a header line."""
    m = (_HEADER_UNSAFE if header else _UNCARRIABLE).search(line)
    if m is None:
        return
    char, column = m.group(0), m.start() + 1
    code = ascii(char)[1:-1]
    if char == "\x00":
        problem = (f"a NUL byte (\\x00) at column {column}: no program can be handed one "
                   "(it ends a C string); remove it" +
                   ("" if header else " (a script that needs one writes it with printf '\\0')"))
    elif "\ud800" <= char <= "\udfff":
        problem = (f"a character with no UTF-8 form ({code}) at column {column}: no program "
                   "can be handed it; remove it")
    else:
        problem = (f"a control character ({code}) at column {column}: header lines take "
                   "printable text only; remove it")
    raise HeaderError(lineno, line, problem)


def _c_flags(line: str) -> str:
    """`%%c FLAGS`: the flags must split into words, and the kernel names the program."""
    flags = line.strip()[3:].strip()
    try:
        words = shlex.split(flags)
    except ValueError as err:
        raise HeaderError(1, line, f"cannot split the gcc flags into words ({err})",
                          HOST_USAGE) from None
    size = _bytes(shlex.join(words))
    if size > MAX_C_FLAGS:
        raise HeaderError(1, line, f"the gcc flags take {size} bytes on the compiler's "
                          f"command line; at most {MAX_C_FLAGS} (64 KiB): put long "
                          "definitions in the source (#define) instead", HOST_USAGE)
    for word in words:
        if word.startswith(("-o", "--output")):
            raise HeaderError(1, line, f"{word}: the kernel names the compiled program "
                              "itself (and runs it in the cell); drop -o", HOST_USAGE)
    return flags


# Each line that reaches the host, and what it grants: a locked kernel refuses them all.
HOST_ACCESS_LINES = {
    "%%host": "runs the cell on the host itself, outside any namespace",
    "%root none": "keeps the host's root filesystem as the cell's",
    "%bind": "makes a host path visible, and writable, inside the cell",
    "%propagation shared": "lets the cell's mounts reach the host, with the host's "
                           "privileges",
    # Reads only, but as the kernel's user (root in many setups): names, sizes and owners
    # of any host directory. `%show ls PATH` alone compares with the image: no host read.
    "%show ls PATH HOST_PATH": "lists a host directory next to the cell's, read as the "
                               "kernel's user",
    "%net host": "puts the cell on the host's network, where every service listening on "
                 "the host's loopback or addresses (the Jupyter server, other kernels' "
                 "ports, databases) answers it",
    # Not a path to the host, but the defence that keeps the host kernel's rarely needed
    # calls (bpf, keyctl, perf_event_open, userfaultfd, io_uring, ...) from the cell.
    "%seccomp off": "lifts the cell's seccomp filter: the host kernel's rarely needed "
                    "calls (bpf, keyctl, perf_event_open, userfaultfd, io_uring, ...) are "
                    "open to it",
}


def _host_access_line(name: str, args: list[str]) -> str | None:
    if name == "bind":
        return "%bind"
    if name == "root" and args == ["none"]:
        return "%root none"
    if name == "propagation" and args == ["shared"]:
        return "%propagation shared"
    if name == "show" and args[:1] == ["ls"] and len(args) > 2:
        return "%show ls PATH HOST_PATH"
    if name == "net" and args == ["host"]:
        return "%net host"
    if name == "seccomp" and args == ["off"]:
        return "%seccomp off"
    return None


def _check_host_access(allowed: bool, lineno: int, line: str, which: str | None) -> None:
    if allowed or which is None:
        return
    raise HeaderError(lineno, line, f"this kernel is locked (host access is off): {which} "
                      f"{HOST_ACCESS_LINES[which]}. Cells of a locked kernel reach the host "
                      "through no line; work inside the image (%image, %keep, %export), or "
                      "ask whoever runs this Jupyter for an unlocked kernel")


def _check_combinations(spec: CellSpec, header: list[str], offset: int) -> None:
    """Lines that are each fine but make no sense together."""
    if spec.net == "host" and "net" in spec.namespaces:
        n, line = next((n, line) for n, line in enumerate(header, offset + 1)
                       if line.strip().split()[:1] == ["%unshare"])
        raise HeaderError(n, line, "%unshare net asks for a network namespace of the "
                          "cell's own, and `%net host` for the host's network; drop one "
                          "of them")
    if spec.root != "none":
        return
    for n, line in enumerate(header, offset + 1):
        word = line.strip().split()[:2]
        if word[:1] == ["%keep"]:
            raise HeaderError(n, line, "%keep carries root filesystem changes, and "
                              "`%root none` has no root filesystem of its own; drop one of them")
        if word[:1] == ["%export"]:
            raise HeaderError(n, line, "%export saves the cell's root filesystem, and "
                              "`%root none` has none of its own; use %root pivot or chroot")
        if word in (["%show", "changes"], ["%show", "layers"]):
            raise HeaderError(n, line, f"`%show {word[1]}` reads the cell's overlay, and "
                              "`%root none` has none; use %root pivot or chroot")


def _parse_line(spec: CellSpec, line: str, lineno: int, host_access: bool = True) -> CellSpec:
    text = line.strip()
    if text.startswith("%%"):
        raise HeaderError(lineno, line, "a cell magic (%%host, %%c) must be the first line",
                          HOST_USAGE)
    try:
        words = shlex.split(text[1:])
    except ValueError as err:
        raise HeaderError(lineno, line, f"cannot split the line into words ({err})") from None
    if not words:
        raise HeaderError(lineno, line, "a lone '%'; name a header line (see %help)")
    name, args = words[0], words[1:]
    magic = MAGICS.get(name)
    if magic is None:
        known = ", ".join("%" + n for n in MAGICS)
        close = difflib.get_close_matches(name, MAGICS, n=1, cutoff=0.6)
        hint = f"did you mean `%{close[0]}`? " if close else ""
        raise HeaderError(lineno, line, f"unknown header line %{visible(name)}; {hint}"
                          f"known: {known}, %%host, %%c")
    _check_host_access(host_access, lineno, line, _host_access_line(name, args))
    try:
        return magic.parse(spec, args, lineno)  # type: ignore[operator]
    except (TypeError, ValueError) as err:
        # A wrong number of words unpacks into ValueError/TypeError with Python's wording;
        # say it in the cell language's terms instead.
        problem = str(err) if isinstance(err, ValueError) and "unpack" not in str(err) else (
            f"wrong number of arguments ({len(args)} given)"
        )
        raise HeaderError(lineno, line, problem, magic.usage) from None
