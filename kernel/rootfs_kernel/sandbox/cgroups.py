"""Per-cell resource limits through cgroups: v2 where the kernel may enable controllers
(as root, a cgroup of its own at the top of the hierarchy; as an ordinary user, the
subtree systemd delegates), else the v1 pids, memory and cpu controllers; a clear note
where neither is.

Runs in: the kernel (it makes each container's cgroup and words its counters; client.py);
the helper reads the counters and removes the cgroup by the paths of watch(), and, as an
ordinary user, moves itself into a leaf of its delegated cgroup (helper.delegated_home).

The kernel makes one cgroup per container, the container's first process joins it before
it creates the namespaces (so everything inside inherits it), and the counters say, when
the cell ends, which limit, if any, ended it, and how much the cell used at most
(%show limits). cgroup v2 lets a cgroup enable controllers for its children only while no
process is in it: root's cells go to /sys/fs/cgroup/rootfs-kernel (no process there),
an ordinary user's into the helper's delegated scope, next to the leaf the helper moved
itself into.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..cell import format_size

ROOT = Path("/sys/fs/cgroup")
CGROUP_LIMITS = ("pids", "memory", "cpu")   # %limit's keys a cgroup enforces (not disk)
CPU_PERIOD_US = 100_000
V2_HOME = "rootfs-kernel"   # root's cells: ROOT/V2_HOME/<helper pid>-<cell>
V2_CONTROLLERS = ("cpu", "memory", "pids")


class LimitsUnavailable(Exception):
    """No writable cgroup hierarchy for the controllers a cell asked for."""


@dataclass
class CellCgroup:
    limits: dict
    dirs: dict[str, Path] = field(default_factory=dict)   # controller -> directory
    version: int = 1

    @classmethod
    def create(cls, name: str, limits: dict, home: Home, count: bool = False) -> CellCgroup:
        """The cell's cgroup under `home` (Home.find) with `limits` written; with `count`,
        also the controllers nothing limits, to read the cell's peaks (%show limits)."""
        if home.path is None:
            raise LimitsUnavailable(home.why)
        group = cls(limits, version=home.version)
        try:
            if home.version == 2:
                group._create_v2(home.path / name)
            else:
                group._create_v1(name, count)
        except OSError as err:
            group.remove()
            raise LimitsUnavailable(_advice(_reason(err), home.version)) from None
        return group

    def _create_v1(self, name: str, count: bool) -> None:
        wanted = {"pids": "pids", "memory": "memory", "cpu": "cpu"}
        for key, controller in wanted.items():
            if key not in self.limits and not (count and key != "cpu"):
                continue
            base = ROOT / controller
            if not base.is_dir():
                raise OSError(2, f"the cgroup v1 {controller} controller is not mounted",
                              str(base))
            d = base / "rootfs-kernel" / name
            d.mkdir(parents=True)
            self.dirs[controller] = d
        if "pids" in self.limits:
            _write(self.dirs["pids"] / "pids.max", self.limits["pids"])
        if "memory" in self.limits:
            _write(self.dirs["memory"] / "memory.limit_in_bytes", self.limits["memory"])
            swap = self.dirs["memory"] / "memory.memsw.limit_in_bytes"
            if swap.exists():  # count swap too, or a hog just swaps
                _write(swap, self.limits["memory"])
        if "cpu" in self.limits:
            _write(self.dirs["cpu"] / "cpu.cfs_period_us", CPU_PERIOD_US)
            _write(self.dirs["cpu"] / "cpu.cfs_quota_us",
                   max(1000, int(self.limits["cpu"] * CPU_PERIOD_US)))

    def _create_v2(self, d: Path) -> None:
        d.mkdir()
        for key in CGROUP_LIMITS:   # one directory counts them all
            self.dirs[key] = d
        if "pids" in self.limits:
            _write(d / "pids.max", self.limits["pids"])
        if "memory" in self.limits:
            _write(d / "memory.max", self.limits["memory"])
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", 0)
        if "cpu" in self.limits:
            _write(d / "cpu.max", f"{int(self.limits['cpu'] * CPU_PERIOD_US)} {CPU_PERIOD_US}")

    def procs_files(self) -> list[str]:
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    def watch(self) -> dict:
        """What the helper needs (helper.Cgroup): the directories to remove once the
        container's last process has left, its pids limit and the files that count
        refused forks and OOM kills."""
        mem = self.dirs.get("memory")
        return {"dirs": sorted({str(d) for d in self.dirs.values()}),
                "pids": int(self.limits["pids"]) if "pids" in self.limits else None,
                "forks": str(self.dirs["pids"] / "pids.events") if "pids" in self.dirs
                else None,
                "ooms": None if mem is None else
                str(mem / ("memory.events" if self.version == 2 else "memory.oom_control"))}

    def remove(self) -> bool:
        """Remove the cell's cgroup(s); False while a process still leaves them (a cell's
        init killed with its first process exits a moment later): try again then."""
        gone = True
        for d in set(self.dirs.values()):
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as err:
                gone = gone and err.errno != errno.EBUSY
        return gone


def verdict(limits: dict, refused_forks: int, oom_kills: int) -> str | None:
    """The counters of a cell's cgroup (its init reads them when the script has ended,
    init.c) -> which limit ended (part of) the cell, in words; None when none was hit."""
    notes = []
    if oom_kills and "memory" in limits:
        notes.append(f"the memory limit ({format_size(limits['memory'])}) ended {oom_kills} "
                     "process(es) (OOM kill)")
    if refused_forks and "pids" in limits:
        notes.append(f"the pids limit ({limits['pids']}) refused {refused_forks} fork(s)")
    return "; ".join(notes) or None


# The file each limit is written to, per cgroup version; the rlimit that stands in for it.
LIMIT_FILES = {2: {"pids": "pids.max", "memory": "memory.max", "cpu": "cpu.max"},
               1: {"pids": "pids.max", "memory": "memory.limit_in_bytes",
                   "cpu": "cpu.cfs_quota_us"}}
RLIMIT_NAMES = {"pids": ("nproc", "RLIMIT_NPROC"), "memory": ("as", "RLIMIT_AS")}


def bounds(limits: dict, group: CellCgroup | None, rlimits: dict[str, int],
           why: str | None = None) -> dict:
    """What bounds a cell, limit by limit, as %show limits shows it: the value and what
    holds it (a cgroup file, an rlimit, the tmpfs size, or nothing), the cell's cgroup
    and, where there is none, why."""
    rows = []
    for key in ("memory", "pids", "cpu", "disk"):
        value = limits.get(key)
        rlimit = RLIMIT_NAMES.get(key, ("", ""))
        if key == "disk":
            by = "tmpfs size" if value is not None else None
        elif group is not None and key in group.limits:
            by = f"cgroup v{group.version} {LIMIT_FILES[group.version][key]}"
        elif rlimit[0] in rlimits:
            by = rlimit[1] + (" (per process)" if key == "memory" else "")
        else:
            by = None if value is None else "nothing: it needs a cgroup"
        rows.append({"key": key, "limit": value, "by": by})
    cgroup = None if group is None else {
        "version": group.version, "dirs": sorted({str(d) for d in group.dirs.values()})}
    return {"cgroup": cgroup, "rows": rows, "note": why}


def for_container(name: str, limits: dict, *, asked: bool, unprivileged: bool, count: bool,
                  home: Home | None
                  ) -> tuple[CellCgroup | None, dict[str, int], dict, LimitsUnavailable | None]:
    """A container's cgroup, made now and joined by its first process, or, where no cgroup
    can be made, the setrlimit fallback: (the cgroup, the rlimits, what bounds the cell
    (bounds), why there is no cgroup). `count`: a cgroup that counts what the cell uses
    (%show limits), even with nothing to limit.

    The default pids bound of a cell whose root is unprivileged (root mode's id range, or
    an ordinary user) is RLIMIT_NPROC, counted per user namespace: joining a v1 cgroup
    costs its first process a grace period of the kernel's RCU, which a cell that asked
    for nothing should not wait for. A cell's own %limit pids gets the cgroup, whose
    counters say when the limit was hit."""
    held = {k: v for k, v in limits.items() if k in CGROUP_LIMITS}
    nproc = {}
    if "pids" in held and not asked and unprivileged:
        nproc = {"nproc": int(held.pop("pids"))}
    if not held and not count:
        return None, nproc, bounds(limits, None, nproc), None
    try:
        group = CellCgroup.create(name, held, home, count=count)
    except LimitsUnavailable as err:
        # Without cgroups, setrlimit still holds a fork bomb or a hog back (per process
        # for memory); cpu shares need a cgroup.
        rlimits = {**nproc, **rlimits_for(held)}
        return None, rlimits, bounds(limits, None, rlimits, str(err)), err
    return group, nproc, bounds(limits, group, nproc), None


def rlimits_for(limits: dict) -> dict[str, int]:
    """The setrlimit fallback: processes (counted per user namespace since Linux 5.14,
    so a rootless cell's count is its own) and address space per process."""
    out = {}
    if "pids" in limits:
        out["nproc"] = int(limits["pids"])
    if "memory" in limits:
        out["as"] = int(limits["memory"])
    return out


def describe_rlimits(rlimits: dict[str, int]) -> str:
    words = []
    if "nproc" in rlimits:
        words.append(f"RLIMIT_NPROC={rlimits['nproc']}")
    if "as" in rlimits:
        words.append(f"RLIMIT_AS={format_size(rlimits['as'])} per process")
    return ", ".join(words) or "nothing to limit"


def sweep_stale_cgroups() -> None:
    """Remove cell cgroups left by helpers that were killed (named PID-CELL)."""
    for base in [ROOT / c / "rootfs-kernel" for c in ("pids", "memory", "cpu")] + [
            ROOT / V2_HOME]:
        if not base.is_dir():
            continue
        for d in base.iterdir():
            pid = d.name.split("-", 1)[0]
            if d.is_dir() and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                try:
                    d.rmdir()
                except OSError:
                    pass


@dataclass(frozen=True)
class Home:
    """Where this kernel's cells' cgroups go: `path` (v2: their parent; v1: None, each
    controller's hierarchy has its own rootfs-kernel/), or why they cannot be made."""

    version: int
    path: Path | None
    why: str | None = None

    @classmethod
    def find(cls, delegated: str | None, why: str | None) -> Home:
        """`delegated`/`why`: what the helper found (its ready event): the cgroup v2 subtree
        delegated to it as an ordinary user, or why there is none."""
        if not (ROOT / "cgroup.controllers").exists():
            return cls(1, ROOT)   # v1 or hybrid: the controllers' own hierarchies
        if os.geteuid() != 0:
            if delegated is None:
                return cls(2, None, _advice(why or "no cgroup was delegated", 2))
            return cls(2, Path(delegated))
        try:
            return cls(2, root_home())
        except OSError as err:
            return cls(2, None, _advice(_reason(err), 2))


def root_home() -> Path:
    """Root's cgroup v2 home: /sys/fs/cgroup/rootfs-kernel, a cgroup no process is in,
    below which cpu, memory and pids are enabled (and at the top too, if systemd had not).
    """
    home = ROOT / V2_HOME
    home.mkdir(exist_ok=True)
    for d in (ROOT, home):
        enable_controllers(d)
    return home


def enable_controllers(d: Path) -> None:
    """Enable for d's children the controllers of V2_CONTROLLERS that d has."""
    have = set((d / "cgroup.controllers").read_text().split())
    on = set((d / "cgroup.subtree_control").read_text().split())
    missing = [c for c in V2_CONTROLLERS if c in have and c not in on]
    if missing:
        _write(d / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


def delegating(argv: list[str]) -> list[str]:
    """The helper's command line for an ordinary user on a cgroup v2 host: inside a
    transient scope of its own that systemd's user manager delegates to the user
    (`systemd-run --user --scope -p Delegate=yes`), where the helper can make its cells'
    cgroups (helper.delegated_home). Unchanged where there is no such manager."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if (os.geteuid() == 0 or not (ROOT / "cgroup.controllers").exists() or not runtime
            or not os.path.exists(os.path.join(runtime, "systemd", "private"))):
        return argv   # systemd-run --user talks to the manager on this socket
    run = shutil.which("systemd-run")
    if run is None:
        return argv
    return [run, "--user", "--scope", "--quiet", "--collect", "-p", "Delegate=yes",
            "--", *argv]


def _write(path: Path, value: object) -> None:
    path.write_text(str(value))


def _reason(err: OSError) -> str:
    return f"{err.strerror}: {err.filename}" if err.filename else str(err.strerror)


def _advice(reason: str, version: int) -> str:
    """Why there is no cgroup for the cell, and what would give it one: root's and an
    ordinary user's remedies differ."""
    where = f"({reason})"
    if os.geteuid() == 0:
        home = (f"in {ROOT / V2_HOME} (cgroup v2)" if version == 2 else
                "in the cgroup v1 pids, memory and cpu hierarchies")
        return (f"cgroup limits are unavailable here {where}: as root the kernel makes its "
                f"cells' cgroups {home}; in a container, give it a writable cgroup "
                "hierarchy of its own (cgroup v2 with --cgroupns=private)")
    return (f"cgroup limits are unavailable here {where}: the cell needs a cgroup v2 "
            "subtree delegated to this user: systemd's user manager gives the kernel one "
            "(`loginctl enable-linger USER`, or log in; the kernel then starts its helper "
            "with `systemd-run --user --scope -p Delegate=yes`), as does a JupyterHub "
            "spawner's unit with Delegate=yes")
