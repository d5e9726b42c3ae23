"""The sandbox helper: a single-threaded process, one per kernel, that forks containers.

The kernel process has threads (ipykernel), so it must not fork; starting a Python
interpreter per cell would cost tens of milliseconds. The kernel starts this helper
once and sends it one `run` frame per cell (protocol.py).

Requests:  run {id, plan} + fds [stdout, stderr, result] | signal {id, signum, grace}
           | kill {id} | drop {what: keep|export}
Events:    ready {places, rootless, pid} | started {id, pid} | notice {id, message}
           | exited {id, status, signal, limit} | error {id, message}

When the kernel goes away (EOF on the socket, or SIGKILL via PR_SET_PDEATHSIG), every
container is killed and the helper's directory removed: nothing is left on the host.
"""

from __future__ import annotations

import errno
import gc
import os
import selectors
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
from pathlib import Path

from . import container, protocol
from . import syscalls as sc
from .cgroups import (
    CellCgroup,
    LimitsUnavailable,
    describe_rlimits,
    rlimits_for,
    sweep_stale_cgroups,
)

# Ending a cell: first its script's processes (SIGUSR1 asks the cell's init to SIGKILL
# them, so the init can still take the %show snapshots), then, if the init is not gone
# after this long, the init itself and with it the whole namespace.
SNAPSHOT_GRACE = 2.0
# A cell whose fork attempts keep failing on pids.max for this long is a fork bomb held
# by its limit: end it rather than let it spin until a timeout that may never come.
POLL_SECONDS = 0.25
FORK_BOMB_POLLS = 4


def runtime_base() -> Path:
    """Where helpers keep their per-kernel directories ($XDG_RUNTIME_DIR, else /tmp)."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(xdg) if xdg and os.access(xdg, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"rootfs-kernel-{os.getuid()}"


def sweep_stale(base: Path) -> None:
    """Remove directories of helpers that died without cleaning up (SIGKILL)."""
    if not base.is_dir():
        return
    for entry in base.iterdir():
        pid = entry.name.split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            remove_tree(entry)


def remove_tree(path: Path) -> None:
    """rmtree that also clears overlayfs work dirs (mode 000) a user made in a userns."""

    def fix(func, p, exc):  # noqa: ANN001
        if isinstance(exc[1], OSError) and exc[1].errno == errno.EBUSY:
            # A dying cell's namespace may still hold a mount on it for a moment.
            for _ in range(40):
                time.sleep(0.05)
                try:
                    return func(p)
                except OSError as again:
                    if again.errno != errno.EBUSY:
                        break
        parent = os.path.dirname(p)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IRWXU)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, stat.S_IRWXU)
        func(p)

    shutil.rmtree(path, onerror=fix)


class Helper:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sel = selectors.DefaultSelector()
        self.cells: dict[int, dict] = {}      # id -> {pid, pidfd, host, kill_at}
        base = runtime_base()
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        sweep_stale(base)
        sweep_stale_cgroups()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=base))
        self.places = {"dir": str(self.dir), "scratch": str(self.dir / "cell"),
                       "keep_upper": str(self.dir / "keep/upper"),
                       "keep_work": str(self.dir / "keep/work"),
                       "export_upper": str(self.dir / "export/upper"),
                       "export_work": str(self.dir / "export/work")}
        (self.dir / "cell").mkdir()

    def serve(self) -> None:
        protocol.send(self.sock, {"event": "ready", "places": self.places,
                                  "rootless": os.geteuid() != 0, "pid": os.getpid()})
        self.sel.register(self.sock, selectors.EVENT_READ, None)
        try:
            while True:
                for key, _ in self.sel.select(self._timeout()):
                    if key.data is None:
                        self._request()
                    else:
                        self._reap(key.data)
                self._escalate()
        except protocol.Closed:
            pass
        finally:
            self.shutdown()

    def _request(self) -> None:
        msg, fds = protocol.recv(self.sock)
        op, cid = msg.get("op"), msg.get("id")
        try:
            if op == "run":
                self._run(cid, msg["plan"], fds)
            elif op == "signal" and cid in self.cells:
                self._signal(cid, msg["signum"])
                if msg.get("grace") is not None:
                    self.cells[cid]["kill_at"] = time.monotonic() + msg["grace"]
            elif op == "kill" and cid in self.cells:
                self._end(cid)
            elif op == "drop":
                # Kept or exported layers: written by cells (as root in a user namespace
                # when rootless), so the helper, their owner, removes them.
                what = self.dir / {"keep": "keep", "export": "export"}[msg["what"]]
                if what.exists():
                    remove_tree(what)
        except Exception as err:  # noqa: BLE001 - report, keep serving
            protocol.send(self.sock, {"event": "error", "id": cid, "message": str(err)})
        finally:
            for fd in fds:
                os.close(fd)

    def _run(self, cid: int, plan: dict, fds: list[int]) -> None:
        stdout, stderr, result = fds
        me = os.getpid()
        group = None
        if plan.get("limits"):
            try:
                group = CellCgroup.create(f"{me}-{cid}", plan["limits"])
                plan["cgroup_procs"] = group.procs_files()
            except LimitsUnavailable as err:
                # Without cgroups, setrlimit still holds a fork bomb or a hog back (per
                # process for memory); cpu shares need a cgroup.
                plan["rlimits"] = rlimits_for(plan["limits"])
                protocol.send(self.sock, {"event": "notice", "id": cid, "message": (
                    f"{err}; using setrlimit instead ({describe_rlimits(plan['rlimits'])}"
                    f"{'; cpu is not limited' if 'cpu' in plan['limits'] else ''})")})
        plan["host_mnt_ns"] = os.stat("/proc/self/ns/mnt").st_ino
        try:
            pid = container.start(plan, stdout, stderr, result, me)
        except container.SetupError as err:
            container.report(result, {"error": str(err)})
            if group is not None:
                group.remove()
            protocol.send(self.sock, {"event": "exited", "id": cid,
                                      "status": container.SETUP_FAILED, "signal": None})
            return
        pidfd = os.pidfd_open(pid)
        self.cells[cid] = {"pid": pid, "pidfd": pidfd, "host": plan["host"], "kill_at": None,
                           "cgroup": group, "fork_fails": 0, "strikes": 0, "ended_by": None}
        self.sel.register(pidfd, selectors.EVENT_READ, cid)
        protocol.send(self.sock, {"event": "started", "id": cid, "pid": pid})

    def _end(self, cid: int) -> None:
        """Kill the cell's script now and its init after SNAPSHOT_GRACE."""
        cell = self.cells[cid]
        if cell["host"]:
            self._signal(cid, signal.SIGKILL)
            return
        cell["ending"] = True
        cell["kill_at"] = time.monotonic() + SNAPSHOT_GRACE
        self._signal(cid, signal.SIGUSR1)

    def _signal(self, cid: int, signum: int) -> None:
        cell = self.cells[cid]
        try:
            if cell["host"]:
                os.killpg(cell["pid"], signum)  # a %%host cell is its own session
            else:
                os.kill(cell["pid"], signum)    # A forwards to B, B to its whole namespace
        except ProcessLookupError:
            pass

    def _reap(self, cid: int) -> None:
        cell = self.cells.pop(cid)
        self.sel.unregister(cell["pidfd"])
        os.close(cell["pidfd"])
        _, status = os.waitpid(cell["pid"], 0)
        if cell["host"]:
            try:  # what a %%host script left in the background does not outlive it
                os.killpg(cell["pid"], signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = 128 + sig if sig else os.WEXITSTATUS(status)
        limit = cell["ended_by"]
        if cell["cgroup"] is not None:
            limit = limit or cell["cgroup"].verdict()
            cell["cgroup"].remove()
        protocol.send(self.sock, {"event": "exited", "id": cid, "status": code, "signal": sig,
                                  "limit": limit})

    def _timeout(self) -> float | None:
        deadlines = [c["kill_at"] for c in self.cells.values() if c["kill_at"]]
        wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        if any(c["cgroup"] is not None and "pids" in c["cgroup"].limits
               for c in self.cells.values()):
            wait = POLL_SECONDS if wait is None else min(wait, POLL_SECONDS)
        return wait

    def _escalate(self) -> None:
        now = time.monotonic()
        for cid, cell in self.cells.items():
            group = cell["cgroup"]
            if group is not None and "pids" in group.limits and not cell["ended_by"]:
                fails = group.pids_max_events()
                cell["strikes"] = cell["strikes"] + 1 if fails > cell["fork_fails"] else 0
                cell["fork_fails"] = fails
                if cell["strikes"] >= FORK_BOMB_POLLS:
                    cell["ended_by"] = (f"the pids limit ({group.limits['pids']}) ended the "
                                        f"cell: it kept trying to create processes "
                                        f"({fails} forks refused)")
                    self._end(cid)
            if cell["kill_at"] and cell["kill_at"] <= now:
                cell["kill_at"] = None
                if cell.get("ending"):
                    self._signal(cid, signal.SIGKILL)
                else:
                    self._end(cid)

    def shutdown(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for cid in list(self.cells):
            self._signal(cid, signal.SIGKILL)
        for cell in self.cells.values():
            try:
                os.waitpid(cell["pid"], 0)
            except ChildProcessError:
                pass
            if cell["cgroup"] is not None:
                cell["cgroup"].remove()
        remove_tree(self.dir)


def _terminate(*_args: object) -> None:
    # Leave through the serve loop's cleanup; a second SIGTERM (the parent's death signal
    # and a front-end's own) must not cut that cleanup short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(0)


def main() -> None:
    fd = int(sys.argv[1])
    # Every cell forks this process: keep the collector from touching (and so copying)
    # the pages of objects that live as long as the helper.
    gc.collect()
    gc.freeze()
    # The kernel's interrupt (SIGINT to its process group) is for the cell, not for us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    os.set_inheritable(fd, False)  # no cell process may hold the kernel's channel
    sc.set_parent_death_signal(signal.SIGTERM)
    sc.set_process_name("rootfs-helper")
    Helper(socket.socket(fileno=fd)).serve()


if __name__ == "__main__":
    main()
