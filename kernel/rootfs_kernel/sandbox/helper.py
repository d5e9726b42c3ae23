"""The sandbox helper: a single-threaded process, one per kernel, that starts containers.

Runs in: the helper process (python -m rootfs_kernel.sandbox.helper, started by client.py).

The kernel process has threads (ipykernel), so it must not fork; starting a Python
interpreter per cell would cost tens of milliseconds. The kernel starts this helper
once and sends it one `run` frame per cell (protocol.py); the helper posix_spawns the
cell's rootfs-init (init.c) with the plan as its argv (wire.py), and never forks itself.

Requests:  run {id, plan, profile} + fds [stdout, stderr, result, release, script]
           | prepare {key, plan, profile} + the same fds (the next cell's container, made
             now: prepared.py) | adopt {id, key} (the kernel gave cell id to it)
           | signal {id, signum, grace} | kill {id} | drop {what: keep|export}
Events:    ready {places, rootless, pid} | started {id, pid} | notice {id, message}
           | unprepared {key, message}
           | exited {id, status, signal, limit} | error {id, message}

When the kernel goes away (EOF on the socket, or SIGKILL via PR_SET_PDEATHSIG), every
container is killed and the helper's directory removed: nothing is left on the host.
"""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..rmtree import remove_tree
from . import ops, protocol, wire
from . import syscalls as sc
from .cgroups import (
    CGROUP_LIMITS,
    CellCgroup,
    LimitsUnavailable,
    describe_rlimits,
    rlimits_for,
    sweep_stale_cgroups,
)
from .plan import Places, Plan
from .prepared import Prepared, preparable

# Ending a cell: first its script's processes (SIGUSR1 asks the cell's init to SIGKILL
# them, so the init can still take the %show snapshots), then, if the init is not gone
# after this long, the init itself and with it the whole namespace.
SNAPSHOT_GRACE = 2.0
# A cell whose fork attempts keep failing on pids.max for this long is a fork bomb held
# by its limit: end it rather than let it spin until a timeout that may never come.
POLL_SECONDS = 0.25
# A killed container's init leaves its cgroup a moment after the helper reaps it.
RETIRE_SECONDS = 0.05
FORK_BOMB_POLLS = 4
# The helper ignores SIGINT (the kernel's interrupt is for the cell); its cells must not.
_SPAWN_SIGDEF = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                 signal.SIGUSR1, signal.SIGPIPE, signal.SIGCHLD)


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
            try:
                remove_tree(entry)
            except OSError:   # left for the next sweep: never a reason not to start
                pass


@dataclass
class Cell:
    """A running cell's container, as the helper supervises it."""

    pid: int                          # its rootfs-init (process A)
    pidfd: int
    host: bool                        # %%host: the script itself, in its own session
    cgroup: CellCgroup | None
    kill_at: float | None = None      # when to escalate (interrupt grace, snapshot grace)
    ending: bool = False              # asked to end: the next escalation is SIGKILL
    fork_fails: int = 0               # pids.max events seen so far
    strikes: int = 0                  # polls in a row with new refused forks
    ended_by: str | None = None       # the limit that ended it, in words


class Helper:
    def __init__(self, sock: socket.socket, init: str):
        self.sock = sock
        self.init = init  # the rootfs-init binary (initbin.py)
        self.sel = selectors.DefaultSelector()
        self.cells: dict[int, Cell] = {}
        base = runtime_base()
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        sweep_stale(base)
        sweep_stale_cgroups()
        self.dir = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=base))
        if os.geteuid() == 0:
            # A cell's root is an unprivileged id (ids.py) that must walk to its root by
            # path (%root chroot; and the chroot escape reaches the host's / as it does
            # anywhere): search, not list. The kept layers' own directories stay 0700.
            for d in (base, self.dir):
                os.chmod(d, 0o711)
        self.places = Places.under(str(self.dir))
        (self.dir / "cell").mkdir()
        # Where no container may be set up (init.c checks): the host's mount namespace.
        self.mnt_ns = os.stat("/proc/self/ns/mnt").st_ino
        self.said_rlimits = False                 # the setrlimit fallback is said once
        self.prepared: dict[int, Prepared] = {}   # key -> started, not yet adopted
        self.retiring: list[CellCgroup] = []      # cgroups whose last process is leaving
        # key -> what adopt answers for a container that is gone already: its exit
        # status (reaped before the adopt came), or why it could not be made.
        self.ended_prepared: dict[int, int | str] = {}

    def serve(self) -> None:
        protocol.send(self.sock, {"event": "ready", "places": self.places.to_json(),
                                  "rootless": os.geteuid() != 0, "pid": os.getpid()})
        self.sel.register(self.sock, selectors.EVENT_READ, None)
        try:
            while True:
                for key, _ in self.sel.select(self._timeout()):
                    if key.data is None:
                        self._request()
                    elif isinstance(key.data, tuple):
                        self._reap_prepared(*key.data)
                    else:
                        self._reap(key.data)
                self._escalate()
        except (protocol.Closed, BrokenPipeError, ConnectionResetError):
            pass  # the kernel went away
        finally:
            self.shutdown()

    def _request(self) -> None:
        msg, fds = protocol.recv(self.sock)
        op, cid = msg.get("op"), msg.get("id")
        try:
            if op == "run":
                self._run(cid, Plan.from_json(msg["plan"]), fds, msg.get("profile", False))
            elif op == "signal" and cid in self.cells:
                self._signal(cid, msg["signum"])
                if msg.get("grace") is not None:
                    self.cells[cid].kill_at = time.monotonic() + msg["grace"]
            elif op == "prepare":
                self._prepare(msg["key"], Plan.from_json(msg["plan"]), fds,
                              msg.get("profile", False))
            elif op == "adopt":
                self._adopt(cid, msg["key"])
            elif op == "kill" and cid in self.cells:
                self._end(cid)
            elif op == "drop":
                # Kept or exported layers: written by cells (as root in a user namespace
                # when rootless), so the helper, their owner, removes them.
                what = self.dir / {"keep": "keep", "export": "export"}[msg["what"]]
                if what.exists():
                    remove_tree(what)
        except Exception as err:  # noqa: BLE001 - report, keep serving
            protocol.send(self.sock, {"event": "error", "id": cid, "message": str(err),
                                      "errno": getattr(err, "errno", None)})
        finally:
            for fd in fds:
                os.close(fd)

    def _bounds(self, name: str, plan: Plan, cid: int | None) -> tuple[wire.HostFacts,
                                                                         CellCgroup | None]:
        """The container's cgroup (made now, joined by its first process) or, where no
        cgroup can be made, the setrlimit fallback, said once per kernel.

        The default pids bound of a cell whose root is unprivileged (root mode's id range,
        or an ordinary user) is RLIMIT_NPROC, counted per user namespace: joining a v1
        cgroup costs its first process a grace period of the kernel's RCU, which a cell
        that asked for nothing should not wait for. A cell's own %limit pids gets the
        cgroup, whose counters say when the limit was hit."""
        limits = {k: v for k, v in plan.limits.items() if k in CGROUP_LIMITS}
        nproc = {}
        if "pids" in limits and not plan.limits_asked and (plan.idmap or plan.rootless):
            nproc = {"nproc": int(limits.pop("pids"))}
        if not limits:
            return wire.HostFacts(self.mnt_ns, rlimits=nproc), None
        try:
            group = CellCgroup.create(name, limits)
            return wire.HostFacts(self.mnt_ns, cgroup_procs=tuple(group.procs_files()),
                                  rlimits=nproc), group
        except LimitsUnavailable as err:
            # Without cgroups, setrlimit still holds a fork bomb or a hog back (per
            # process for memory); cpu shares need a cgroup.
            facts = wire.HostFacts(self.mnt_ns, rlimits=rlimits_for(limits))
            # Said once per kernel (the host will not change), and only to a cell that
            # asked for limits itself: the default bounds are the README's, not news.
            if plan.limits_asked and not self.said_rlimits:
                self.said_rlimits = True
                protocol.send(self.sock, {"event": "notice", "id": cid, "message": (
                    f"{err}; using setrlimit instead ({describe_rlimits(facts.rlimits)}"
                    f"{'; cpu is not limited' if 'cpu' in limits else ''}), in this and "
                    "later cells")})
            return facts, None

    def _run(self, cid: int, plan: Plan, fds: list[int], profile: bool) -> None:
        me = os.getpid()
        facts, group = self._bounds(f"{me}-{cid}", plan, cid)
        try:
            pid = self._spawn_init(wire.encode(plan, facts, parent=me, profile=profile), fds)
        except OSError as err:
            if group is not None:
                self._retire(group)
            if err.errno != errno.E2BIG:
                raise
            # %shell's script is one argv string of `-c`: Linux takes 128 KiB at most.
            os.write(fds[1], f"rootfs-kernel: the cell is too long for `{plan.argv[0]} -c` "
                             "(128 KiB at most; the default /bin/sh takes cells of any "
                             "length)\n".encode())
            protocol.send(self.sock, {"event": "exited", "id": cid,
                                      "status": ops.EXIT_CANNOT_RUN, "signal": None})
            return
        except BaseException:
            if group is not None:
                self._retire(group)
            raise
        self._started(cid, Cell(pid, os.pidfd_open(pid), plan.host, group))

    def _started(self, cid: int, cell: Cell) -> None:
        self.cells[cid] = cell
        self.sel.register(cell.pidfd, selectors.EVENT_READ, cid)
        protocol.send(self.sock, {"event": "started", "id": cid, "pid": cell.pid})

    # -- prepared containers (prepared.py) ----------------------------------------------
    def _prepare(self, key: int, plan: Plan, fds: list[int], profile: bool) -> None:
        """Start the next cell's container now, with the kernel's pipes for that cell: it
        sets up, starts its shell, and the shell waits on the script pipe, where the
        kernel writes the cell when it comes (client.py), then says "adopt"."""
        try:
            if not preparable(plan):
                raise ValueError("this plan's container is made when its cell comes")
            # Its own cgroup, made now: the cell it gets is bounded like any other.
            facts, group = self._bounds(f"{os.getpid()}-w{key}", plan, None)
            try:
                pid = self._spawn_init(wire.encode(plan, facts, parent=os.getpid(),
                                                   profile=profile, warm=True), fds)
            except BaseException:
                if group is not None:
                    self._retire(group)
                raise
        except Exception as err:  # noqa: BLE001 - the kernel makes the cell's own instead
            self._remember(key, str(err))
            protocol.send(self.sock, {"event": "unprepared", "key": key, "message": str(err)})
            return
        pidfd = os.pidfd_open(pid)
        self.sel.register(pidfd, selectors.EVENT_READ, ("prepared", key))
        self.prepared[key] = Prepared(pid, pidfd, group)

    def _adopt(self, cid: int, key: int) -> None:
        """The kernel gave cell `cid` to the prepared container `key`: supervise it."""
        ready = self.prepared.pop(key, None)
        if ready is None:  # it has ended already (a script that short, or a failure)
            ended = self.ended_prepared.pop(key, ops.EXIT_SETUP_FAILED)
            if isinstance(ended, str):
                protocol.send(self.sock, {"event": "error", "id": cid, "message": ended})
            else:
                protocol.send(self.sock, {"event": "exited", "id": cid, "status": ended,
                                          "signal": None})
            return
        self.sel.unregister(ready.pidfd)
        self._started(cid, Cell(ready.pid, ready.pidfd, host=False, cgroup=ready.cgroup))

    def _reap_prepared(self, _tag: str, key: int) -> None:
        """A prepared container ended before the helper heard it was adopted: closed by
        the kernel, its setup failed, or its cell was that quick (see _adopt)."""
        ready = self.prepared.pop(key, None)
        if ready is None:  # adopted in the same round of events: a cell's now (_reap)
            return
        self.sel.unregister(ready.pidfd)
        os.close(ready.pidfd)
        _, status = os.waitpid(ready.pid, 0)
        if ready.cgroup is not None:
            self._retire(ready.cgroup)
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        self._remember(key, 128 + sig if sig else os.WEXITSTATUS(status))

    def _remember(self, key: int, ended: int | str) -> None:
        self.ended_prepared[key] = ended
        while len(self.ended_prepared) > 16:  # only the last few can still be adopted
            self.ended_prepared.pop(next(iter(self.ended_prepared)))

    def _spawn_init(self, args: list[str], fds: list[int]) -> int:
        """posix_spawn rootfs-init with these fds as 1, 2, ... (init.c: the cell's output
        pipes, result socket, release and script pipes)."""
        # Move the fds above the numbers they are to become, so no dup2 overwrites another.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]
        try:
            actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                       *((os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(high, 1))]
            return os.posix_spawn(self.init, [self.init, *args], {}, file_actions=actions,
                                  setsigdef=_SPAWN_SIGDEF, setsigmask=())
        finally:
            for fd in high:
                os.close(fd)

    def _end(self, cid: int) -> None:
        """Kill the cell's script now and its init after SNAPSHOT_GRACE."""
        cell = self.cells[cid]
        if cell.host:
            self._signal(cid, signal.SIGKILL)
            return
        cell.ending = True
        cell.kill_at = time.monotonic() + SNAPSHOT_GRACE
        self._signal(cid, signal.SIGUSR1)

    def _signal(self, cid: int, signum: int) -> None:
        cell = self.cells[cid]
        try:
            if cell.host:
                os.killpg(cell.pid, signum)  # a %%host cell is its own session
            else:
                os.kill(cell.pid, signum)    # A forwards to B, B to its whole namespace
        except ProcessLookupError:
            pass

    def _reap(self, cid: int) -> None:
        cell = self.cells.pop(cid)
        self.sel.unregister(cell.pidfd)
        os.close(cell.pidfd)
        _, status = os.waitpid(cell.pid, 0)
        if cell.host:
            try:  # what a %%host script left in the background does not outlive it
                os.killpg(cell.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        code = 128 + sig if sig else os.WEXITSTATUS(status)
        limit = cell.ended_by
        if cell.cgroup is not None:
            limit = limit or cell.cgroup.verdict()
            self._retire(cell.cgroup)
        protocol.send(self.sock, {"event": "exited", "id": cid, "status": code, "signal": sig,
                                  "limit": limit})

    def _retire(self, group: CellCgroup) -> None:
        """Remove a container's cgroup now, or as soon as its last process has left."""
        if not group.remove():
            self.retiring.append(group)

    def _timeout(self) -> float | None:
        deadlines = [c.kill_at for c in self.cells.values() if c.kill_at]
        wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        if self.retiring:
            self.retiring = [g for g in self.retiring if not g.remove()]
            wait = RETIRE_SECONDS if wait is None else min(wait, RETIRE_SECONDS)
        if any(c.cgroup is not None and "pids" in c.cgroup.limits
               for c in self.cells.values()):
            wait = POLL_SECONDS if wait is None else min(wait, POLL_SECONDS)
        return wait

    def _escalate(self) -> None:
        now = time.monotonic()
        for cid, cell in self.cells.items():
            group = cell.cgroup
            if group is not None and "pids" in group.limits and not cell.ended_by:
                fails = group.pids_max_events()
                cell.strikes = cell.strikes + 1 if fails > cell.fork_fails else 0
                cell.fork_fails = fails
                if cell.strikes >= FORK_BOMB_POLLS:
                    cell.ended_by = (f"the pids limit ({group.limits['pids']}) ended the "
                                     f"cell: it kept trying to create processes "
                                     f"({fails} forks refused)")
                    self._end(cid)
            if cell.kill_at and cell.kill_at <= now:
                cell.kill_at = None
                if cell.ending:
                    self._signal(cid, signal.SIGKILL)
                else:
                    self._end(cid)

    def shutdown(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for ready in self.prepared.values():
            # Its B waits on a socket the kernel holds; A's death takes it (PDEATHSIG).
            os.kill(ready.pid, signal.SIGKILL)
            os.waitpid(ready.pid, 0)
            if ready.cgroup is not None:
                self._retire(ready.cgroup)
        for cid in list(self.cells):
            self._signal(cid, signal.SIGKILL)
        for cell in self.cells.values():
            try:
                os.waitpid(cell.pid, 0)
            except ChildProcessError:
                pass
            if cell.cgroup is not None:
                self._retire(cell.cgroup)
        deadline = time.monotonic() + SNAPSHOT_GRACE
        while self.retiring and time.monotonic() < deadline:
            time.sleep(RETIRE_SECONDS)
            self.retiring = [g for g in self.retiring if not g.remove()]
        remove_tree(self.dir)


def _terminate(*_args: object) -> None:
    # Leave through the serve loop's cleanup; a second SIGTERM (the parent's death signal
    # and a front-end's own) must not cut that cleanup short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(0)


def main() -> None:
    fd, init = int(sys.argv[1]), sys.argv[2]
    # The kernel's interrupt (SIGINT to its process group) is for the cell, not for us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    os.set_inheritable(fd, False)  # no cell process may hold the kernel's channel
    sc.set_parent_death_signal(signal.SIGTERM)
    sc.set_process_name("rootfs-helper")
    Helper(socket.socket(fileno=fd), init).serve()


if __name__ == "__main__":
    main()
