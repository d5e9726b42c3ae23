"""JupyterHub's LocalProcessSpawner, with each student in cgroups of their own.

A student's server, every kernel it starts and every cell of those kernels are processes
of one cgroup per controller (cgroup v1: memory, pids, cpu), made by the hub (root) before
the server starts, so that together they take at most:

- `Spawner.mem_limit` bytes of memory (JupyterHub's own setting, which LocalProcessSpawner
  alone only passes on as $MEM_LIMIT; here the kernel's OOM killer enforces it, in this
  student's processes only). A cell's writable layer is a tmpfs, so it counts here too;
- `Spawner.cpu_limit` CPUs (JupyterHub's own setting; CFS quota). Students also share the
  CPU equally, whatever number of kernels each runs: each cgroup weighs the same;
- `StudentSpawner.pids_limit` processes and threads (what systemd's TasksMax is).

When the hub stops a server, whatever of the student's is still in the cgroup is killed
and the cgroups removed, as systemd does with a unit's control group. On a host where the
v1 controllers are not writable (cgroup v2 with systemd) nothing is bounded and the hub
says so once: there, jupyterhub-systemdspawner sets the same limits on a unit per server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Integer, Unicode

CGROUPS = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000


class StudentSpawner(LocalProcessSpawner):
    pids_limit = Integer(0, config=True, help="""Processes and threads one student's server,
        kernels and cells may have together (0: no limit).""")
    cgroup_parent = Unicode("rootfs-hub", config=True, help="""The cgroup under each v1
        controller that holds one cgroup per student.""")

    _warned = False

    def limit_files(self) -> dict[str, dict[str, int]]:
        """controller -> {file: value} for the limits that are set."""
        files: dict[str, dict[str, int]] = {}
        if self.mem_limit:
            files["memory"] = {"memory.limit_in_bytes": self.mem_limit}
            if (CGROUPS / "memory/memory.memsw.limit_in_bytes").exists():  # swap counts too
                files["memory"]["memory.memsw.limit_in_bytes"] = self.mem_limit
        if self.pids_limit:
            files["pids"] = {"pids.max": self.pids_limit}
        if self.cpu_limit:
            files["cpu"] = {"cpu.cfs_period_us": CPU_PERIOD_US,
                            "cpu.cfs_quota_us": max(1000, int(self.cpu_limit * CPU_PERIOD_US))}
        return files

    def cgroup_dirs(self) -> dict[str, Path]:
        return {c: CGROUPS / c / self.cgroup_parent / self.user.name
                for c in self.limit_files()}

    def make_cgroups(self) -> list[Path]:
        """The student's cgroups with their limits; their cgroup.procs files, [] where the
        v1 controllers cannot be written."""
        wanted = self.limit_files()
        if not all(os.access(CGROUPS / c, os.W_OK) for c in wanted):
            if wanted and not StudentSpawner._warned:
                StudentSpawner._warned = True
                self.log.warning("No writable cgroup v1 %s controllers: students' servers "
                                 "are not bounded (use jupyterhub-systemdspawner on a "
                                 "systemd host)", ", ".join(sorted(wanted)))
            return []
        procs = []
        for controller, d in self.cgroup_dirs().items():
            d.mkdir(parents=True, exist_ok=True)
            for name, value in wanted[controller].items():
                (d / name).write_text(str(value))
            procs.append(d / "cgroup.procs")
        return procs

    def make_preexec_fn(self, name):
        become_student = super().make_preexec_fn(name)
        procs = self.make_cgroups()

        def preexec():   # after fork, before exec: join the cgroups while still root
            for path in procs:
                with open(path, "w") as f:
                    f.write(str(os.getpid()))
            become_student()

        return preexec

    async def stop(self, now=False):
        await super().stop(now=now)
        await self.remove_cgroups()

    async def remove_cgroups(self) -> None:
        """Kill what the server left (kernels, cells, their children) and remove the
        cgroups."""
        dirs = [d for d in self.cgroup_dirs().values() if d.is_dir()]
        for _ in range(50):
            pids = {int(p) for d in dirs for p in (d / "cgroup.procs").read_text().split()}
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if not pids:
                break
            await asyncio.sleep(0.1)
        for d in dirs:
            with contextlib.suppress(OSError):
                d.rmdir()
