"""Per-cell resource limits through cgroups: v2 where a writable (delegated) hierarchy
exists, else the v1 pids, memory and cpu controllers; a clear note where neither is.

Runs in: the kernel (it makes each container's cgroup and words its counters; client.py);
the helper reads the counters and removes the cgroup by the paths of watch().

The kernel makes one cgroup per container, the container's first process joins it before
it creates the namespaces (so everything inside inherits it), and the counters say, when
the cell ends, which limit, if any, ended it.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..cell import format_size

ROOT = Path("/sys/fs/cgroup")
CGROUP_LIMITS = ("pids", "memory", "cpu")   # %limit's keys a cgroup enforces (not disk)
CPU_PERIOD_US = 100_000


class LimitsUnavailable(Exception):
    """No writable cgroup hierarchy for the controllers a cell asked for."""


@dataclass
class CellCgroup:
    limits: dict
    dirs: dict[str, Path] = field(default_factory=dict)   # controller -> directory
    version: int = 1

    @classmethod
    def create(cls, name: str, limits: dict) -> CellCgroup:
        v2 = _v2_base()
        group = cls(limits, version=2 if v2 else 1)
        try:
            if v2:
                group._create_v2(v2 / name)
            else:
                group._create_v1(name)
        except OSError as err:
            group.remove()
            raise LimitsUnavailable(_advice(err)) from None
        return group

    def _create_v1(self, name: str) -> None:
        wanted = {"pids": "pids", "memory": "memory", "cpu": "cpu"}
        for key, controller in wanted.items():
            if key not in self.limits:
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
        for key in self.limits:
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
                "pids": int(self.limits["pids"]) if "pids" in self.dirs else None,
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
    for base in [ROOT / c / "rootfs-kernel" for c in ("pids", "memory", "cpu")]:
        if not base.is_dir():
            continue
        for d in base.iterdir():
            pid = d.name.split("-", 1)[0]
            if d.is_dir() and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                try:
                    d.rmdir()
                except OSError:
                    pass


def _v2_base() -> Path | None:
    """Our own cgroup v2 directory when the v2 hierarchy is mounted and delegated to us."""
    if not (ROOT / "cgroup.controllers").exists():
        return None
    try:
        line = next(ln for ln in Path("/proc/self/cgroup").read_text().splitlines()
                    if ln.startswith("0::"))
    except (OSError, StopIteration):
        return None
    base = ROOT / line[3:].lstrip("/")
    return base if os.access(base, os.W_OK) else None


def _write(path: Path, value: object) -> None:
    path.write_text(str(value))


def _advice(err: OSError) -> str:
    return (f"cgroup limits are unavailable here ({err.strerror}: {err.filename}): the cell "
            "needs a writable cgroup v2 hierarchy delegated to this user (systemd: "
            "`systemd-run --user -p Delegate=yes ...`) or, as root, the v1 pids/memory/cpu "
            "controllers")
