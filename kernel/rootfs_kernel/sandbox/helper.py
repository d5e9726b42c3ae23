"""The sandbox helper: a single-threaded process, one per kernel, that starts containers.

Runs in: the helper process (python -m rootfs_kernel.sandbox.helper, started by client.py).

The kernel process has threads (ipykernel), so it leaves starting processes to this
helper, started once per kernel; starting a Python interpreter per cell would cost tens
of milliseconds. The kernel plans each container and encodes rootfs-init's plan (wire.py)
with its bounds (its cgroup, made by the kernel, or rlimits) into a memfd; the helper
posix_spawns rootfs-init (init.c) with it and the cell's channels as fds (its argv is its
name alone: nothing on a command line, which any user may read), never forks itself, and
watches the container: the signals the kernel asks for, a fork bomb its pids limit
holds, and the end. It imports the standard library's basics only, so it costs the
machine little memory while it waits (benchmarks/run.py: idle memory).

Requests:  run {id, host, cgroup, idmap, template} + fds [stdout, stderr, result,
             release, script, plan] | prepare {key, cgroup, idmap, template} + the same
             fds (the next cell's container, made now: prepared.py) | adopt {id, key} (the
             kernel gave cell id to it) | signal {id, signum, grace} | kill {id}
             | drop {what: keep}
             | template + [plan] (make the template mount namespace again: template.py)
The kernel's first frame, before any request: {init, base} (rootfs-init's path and where
helpers keep their directories).
Events:    ready {dir, pid, cgroup, cgroup_why} | started {id, pid} | unprepared {key, message}
           | exited {id, status, signal, limit, forks, ooms} | error {id, message, errno}
           | template {message} (it could not be made)

`idmap` and `template` in run and prepare: start the container's init with the user
namespace of the id map made with the template as its fd 7, and the template mount
namespace as its fd 8 (init.c clones the container from it), when the helper holds them.

`cgroup` is None or {dirs, pids, forks, ooms} (CellCgroup.watch): the container's cgroup
directories, which the helper removes once its last process has left, its pids limit,
and the files that count refused forks and OOM kills (read again when it ends).

`cgroup` in ready: an ordinary user's cgroup v2 subtree for the cells (delegated_home),
or None with `cgroup_why` saying why there is none (None for root and on cgroup v1: the
kernel finds its own, cgroups.Home).

When the kernel goes away (EOF on the socket: the kernel's end is open nowhere else),
every container is killed and the helper's directory removed: nothing is left on the
host. A helper that is killed itself takes its containers along (their inits die with
their parent), and the next helper's start removes what it left (client.py).
"""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
import signal
import socket
import sys
import time

from . import protocol

# Ending a cell: first its script's processes (SIGUSR1 asks the cell's init to SIGKILL
# them, so the init can still take the %show snapshots), then, if the init is not gone
# after this long, the init itself and with it the whole namespace.
SNAPSHOT_GRACE = 2.0
# A cell whose fork attempts keep failing on pids.max for this long is a fork bomb held
# by its limit: end it rather than let it spin until a timeout that may never come.
POLL_SECONDS = 0.25
# A killed container's init leaves its cgroup a moment after the helper reaps it.
RETIRE_SECONDS = 0.05
# rootfs-init makes the template in a few milliseconds, even on a host of many mounts.
TEMPLATE_SECONDS = 10.0
FORK_BOMB_POLLS = 4
# The helper ignores SIGINT (the kernel's interrupt is for the cell); its cells must not.
_SPAWN_SIGDEF = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                 signal.SIGUSR1, signal.SIGPIPE, signal.SIGCHLD)


def sweep_stale(base: str) -> None:
    """Remove directories of helpers that died without cleaning up (SIGKILL)."""
    if not os.path.isdir(base):
        return
    for name in os.listdir(base):
        pid = name.split("-", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            try:
                remove_tree(os.path.join(base, name))
            except OSError:   # left for the next sweep: never a reason not to start
                pass


def remove_tree(path: str) -> None:
    """rmtree.remove_tree, imported when first needed: shutil is no idle helper's import."""
    from ..rmtree import remove_tree as remove

    remove(path)


CGROUP_V2 = "/sys/fs/cgroup"
V2_CONTROLLERS = ("cpu", "memory", "pids")


def delegated_home() -> tuple[str | None, str | None]:
    """An ordinary user's helper on cgroup v2: its own cgroup, when the user may manage it
    and no other process is in it (the scope cgroups.delegating starts it in, or a unit
    with Delegate=yes of its own): the helper moves into a leaf of it (`helper`) and
    enables the controllers it has for its children, the cells' cgroups, which go next to
    that leaf. (the cgroup, None) or (None, why not); (None, None) for root and cgroup v1.
    """
    if os.geteuid() == 0 or not os.path.exists(f"{CGROUP_V2}/cgroup.controllers"):
        return None, None
    try:
        with open("/proc/self/cgroup") as f:
            own = next(ln[3:].strip() for ln in f if ln.startswith("0::"))
        home = CGROUP_V2 + own.rstrip("/")
        if not os.access(f"{home}/cgroup.procs", os.W_OK):
            return None, (f"the kernel's cgroup {own} is not delegated to this user and "
                          "systemd's user manager could not give it one")
        with open(f"{home}/cgroup.procs") as f:
            others = [p for p in f.read().split() if int(p) != os.getpid()]
        if others:
            return None, (f"the kernel's cgroup {own} holds other processes "
                          f"({len(others)}), so v2 enables no controller below it")
        os.makedirs(f"{home}/helper", exist_ok=True)
        with open(f"{home}/helper/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
        with open(f"{home}/cgroup.controllers") as f:
            have = f.read().split()
        wanted = [c for c in V2_CONTROLLERS if c in have]
        if wanted:
            with open(f"{home}/cgroup.subtree_control", "w") as f:
                f.write(" ".join(f"+{c}" for c in wanted))
        return home, None
    except (OSError, StopIteration, ValueError) as err:
        return None, f"the kernel's cgroup could not be delegated to its cells ({err})"


class Cgroup:
    """A container's cgroup as the kernel made it (CellCgroup.watch): what to read and
    what to remove."""

    __slots__ = ("dirs", "pids", "forks", "ooms")

    def __init__(self, dirs: list[str], pids: int | None, forks: str | None,
                 ooms: str | None) -> None:
        self.dirs, self.pids, self.forks, self.ooms = dirs, pids, forks, ooms

    @classmethod
    def of(cls, data: dict | None) -> Cgroup | None:
        return None if data is None else cls(data["dirs"], data.get("pids"),
                                             data.get("forks"), data.get("ooms"))

    def count(self, path: str | None, key: str) -> int:
        """The counter `key` of an events file (pids.events max, memory oom_kill)."""
        if path is None:
            return 0
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def remove(self) -> bool:
        """False while a process still leaves it: try again then."""
        gone = True
        for d in self.dirs:
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError as err:
                gone = gone and err.errno != errno.EBUSY
        return gone


class Cell:
    """A running cell's container, as the helper supervises it."""

    __slots__ = ("pid", "pidfd", "host", "cgroup", "kill_at", "ending", "fork_fails",
                 "strikes", "ended_by")

    def __init__(self, pid: int, pidfd: int, host: bool, cgroup: Cgroup | None) -> None:
        self.pid = pid                    # its rootfs-init (process A)
        self.pidfd = pidfd
        self.host = host                  # %%host: the script itself, in its own session
        self.cgroup = cgroup
        self.kill_at: float | None = None  # when to escalate (interrupt, snapshot grace)
        self.ending = False               # asked to end: the next escalation is SIGKILL
        self.fork_fails = 0               # pids.max events seen so far
        self.strikes = 0                  # polls in a row with new refused forks
        self.ended_by: str | None = None  # the limit that ended it, in words


class Helper:
    def __init__(self, sock: socket.socket, init: str, base: str):
        self.sock = sock
        self.init = init  # the rootfs-init binary (initbin.py)
        self.sel = selectors.DefaultSelector()
        self.cells: dict[int, Cell] = {}
        # Its own directory: the places of plan.Places (the kernel named the base and
        # swept what dead helpers left there; rundir.py: only this user can write there).
        self.dir = os.path.join(base, f"{os.getpid()}-{os.urandom(4).hex()}")
        os.mkdir(self.dir, 0o700)
        if os.geteuid() == 0:
            # A cell's root is an unprivileged id (ids.py) that must walk to its root by
            # path (%root chroot; and the chroot escape reaches the host's / as it does
            # anywhere): search, not list. The kept layers' own directories stay 0700.
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            os.fchmod(fd, 0o711)
            os.close(fd)
        os.mkdir(os.path.join(self.dir, "cell"))
        # plan.Places.script_dir: the default shell of a cell on the host's tree starts
        # here, and runs `cell`, the script pipe it holds as fd 3 (plan.SCRIPT_NAME).
        os.mkdir(os.path.join(self.dir, "script"), 0o711)
        os.symlink("/proc/self/fd/3", os.path.join(self.dir, "script", "cell"))
        os.mkdir(os.path.join(self.dir, "template"), 0o700)   # plan.Places.template
        # The user namespace of the id map and the template mount namespace (fds).
        self.template: list[int] = []
        self.prepared: dict[int, Cell] = {}       # key -> started, not yet adopted
        self.retiring: list[Cgroup] = []          # cgroups whose last process is leaving
        # key -> what adopt answers for a container that is gone already: its exit
        # status (reaped before the adopt came), or why it could not be made (the error's
        # words and errno: EAGAIN tells the kernel to say "out of processes").
        self.ended_prepared: dict[int, int | tuple[str, int | None]] = {}

    def serve(self) -> None:
        try:
            # Inside the try: a kernel gone before our ready still gets its directory
            # removed, and the kernel's log no traceback.
            home, why = delegated_home()
            protocol.send(self.sock, {"event": "ready", "dir": self.dir, "pid": os.getpid(),
                                      "cgroup": home, "cgroup_why": why})
            self.sel.register(self.sock, selectors.EVENT_READ, None)
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
                self._run(cid, msg, fds)
            elif op == "signal" and cid in self.cells:
                self._signal(cid, msg["signum"])
                if msg.get("grace") is not None:
                    self.cells[cid].kill_at = time.monotonic() + msg["grace"]
            elif op == "prepare":
                self._prepare(msg["key"], msg, fds)
            elif op == "adopt":
                self._adopt(cid, msg["key"])
            elif op == "kill" and cid in self.cells:
                self._end(cid)
            elif op == "template":
                self._template(fds[0])
            elif op == "drop":
                # The kept layer (the kernel writes it, images/upper.py): removed here, in
                # order with the requests, so no later cell's container still reads it.
                what = os.path.join(self.dir, {"keep": "keep"}[msg["what"]])
                if os.path.exists(what):
                    remove_tree(what)
        except Exception as err:  # noqa: BLE001 - report, keep serving
            protocol.send(self.sock, {"event": "error", "id": cid, "message": str(err),
                                      "errno": getattr(err, "errno", None)})
        finally:
            for fd in fds:
                os.close(fd)

    def _run(self, cid: int, msg: dict, fds: list[int]) -> None:
        group = Cgroup.of(msg.get("cgroup"))
        try:
            pid = self._spawn_init(self._with_template(msg, fds))
        except BaseException:
            if group is not None:
                self._retire(group)
            raise
        self._started(cid, Cell(pid, os.pidfd_open(pid), msg["host"], group))

    def _started(self, cid: int, cell: Cell) -> None:
        self.cells[cid] = cell
        self.sel.register(cell.pidfd, selectors.EVENT_READ, cid)
        protocol.send(self.sock, {"event": "started", "id": cid, "pid": cell.pid})

    # -- prepared containers (prepared.py) ----------------------------------------------
    def _prepare(self, key: int, msg: dict, fds: list[int]) -> None:
        """Start the next cell's container now, with the kernel's channels for that cell:
        it sets up, starts its shell, and the shell waits on the script pipe, where the
        kernel writes the cell when it comes (client.py), then says "adopt"."""
        group = Cgroup.of(msg.get("cgroup"))
        try:
            pid = self._spawn_init(self._with_template(msg, fds))
        except Exception as err:  # noqa: BLE001 - the kernel makes the cell's own instead
            if group is not None:
                self._retire(group)
            self._remember(key, (str(err), getattr(err, "errno", None)))
            protocol.send(self.sock, {"event": "unprepared", "key": key, "message": str(err)})
            return
        pidfd = os.pidfd_open(pid)
        self.sel.register(pidfd, selectors.EVENT_READ, ("prepared", key))
        self.prepared[key] = Cell(pid, pidfd, False, group)

    def _adopt(self, cid: int, key: int) -> None:
        """The kernel gave cell `cid` to the prepared container `key`: supervise it."""
        ready = self.prepared.pop(key, None)
        if ready is None:  # it has ended already (a script that short, or a failure)
            from .ops import EXIT_SETUP_FAILED  # (not at the top: the helper stays small)

            ended = self.ended_prepared.pop(key, EXIT_SETUP_FAILED)
            if isinstance(ended, tuple):
                protocol.send(self.sock, {"event": "error", "id": cid, "message": ended[0],
                                          "errno": ended[1]})
            else:
                protocol.send(self.sock, {"event": "exited", "id": cid, "status": ended,
                                          "signal": None})
            return
        self.sel.unregister(ready.pidfd)
        self._started(cid, ready)

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

    def _remember(self, key: int, ended: int | tuple[str, int | None]) -> None:
        self.ended_prepared[key] = ended
        while len(self.ended_prepared) > 16:  # only the last few can still be adopted
            self.ended_prepared.pop(next(iter(self.ended_prepared)))

    # -- the template mount namespace (template.py) --------------------------------------
    def _template(self, plan: int) -> None:
        """Make the template again: rootfs-init builds it in a namespace of its own (init.c,
        make_template) and hands its fd over on the result socket before it exits."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        try:
            pid = self._spawn_init([null, null, theirs.fileno(), null, null, plan])
        finally:
            theirs.close()
            os.close(null)
        got: list[int] = []
        data = b""
        try:
            ours.settimeout(TEMPLATE_SECONDS)
            data, got, _flags, _addr = socket.recv_fds(ours, 4096, 2)
        except OSError as err:
            data = str(err).encode()
            os.kill(pid, signal.SIGKILL)
        finally:
            ours.close()
            os.waitpid(pid, 0)
        for fd in got:   # no container's init may hold them but as its fds 7 and 8
            os.set_inheritable(fd, False)
        for fd in self.template:
            os.close(fd)
        self.template = got[::-1]   # [the id map's user namespace, the mount namespace]
        if not got:
            protocol.send(self.sock, {"event": "template",
                                      "message": data.decode(errors="replace").strip()})

    def _with_template(self, msg: dict, fds: list[int]) -> list[int]:
        """The init's fds, with the user namespace of the id map as its fd 7 and the
        template mount namespace as its fd 8, as the kernel asked."""
        if len(self.template) < 2 or not msg.get("idmap"):
            return fds
        return [*fds, *self.template[:2 if msg.get("template") else 1]]

    def _spawn_init(self, fds: list[int]) -> int:
        """posix_spawn rootfs-init with these fds as 1, 2, ... (init.c: the cell's output
        pipes, result socket, release and script pipes, its plan), its name its argv."""
        # Move the fds above the numbers they are to become, so no dup2 overwrites another.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]
        try:
            actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                       *((os.POSIX_SPAWN_DUP2, fd, n) for n, fd in enumerate(high, 1))]
            return os.posix_spawn(self.init, ["rootfs-init"], {}, file_actions=actions,
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
        event = {"event": "exited", "id": cid, "status": code, "signal": sig,
                 "limit": cell.ended_by}
        if cell.cgroup is not None:   # the kernel words them (cgroups.verdict)
            event.update(forks=cell.cgroup.count(cell.cgroup.forks, "max"),
                         ooms=cell.cgroup.count(cell.cgroup.ooms, "oom_kill"))
            self._retire(cell.cgroup)
        protocol.send(self.sock, event)

    def _retire(self, group: Cgroup) -> None:
        """Remove a container's cgroup now, or as soon as its last process has left."""
        if not group.remove():
            self.retiring.append(group)

    def _timeout(self) -> float | None:
        deadlines = [c.kill_at for c in self.cells.values() if c.kill_at]
        wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        if self.retiring:
            self.retiring = [g for g in self.retiring if not g.remove()]
            wait = RETIRE_SECONDS if wait is None else min(wait, RETIRE_SECONDS)
        if any(c.cgroup is not None and c.cgroup.pids for c in self.cells.values()):
            wait = POLL_SECONDS if wait is None else min(wait, POLL_SECONDS)
        return wait

    def _escalate(self) -> None:
        now = time.monotonic()
        for cid, cell in self.cells.items():
            group = cell.cgroup
            if group is not None and group.pids and not cell.ended_by:
                fails = group.count(group.forks, "max")
                cell.strikes = cell.strikes + 1 if fails > cell.fork_fails else 0
                cell.fork_fails = fails
                if cell.strikes >= FORK_BOMB_POLLS:
                    cell.ended_by = (f"the pids limit ({group.pids}) ended the "
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
            # Its B waits for a script the kernel no longer writes; A's death takes it.
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
        while self.template:
            os.close(self.template.pop())
        deadline = time.monotonic() + SNAPSHOT_GRACE
        while self.retiring and time.monotonic() < deadline:
            time.sleep(RETIRE_SECONDS)
            self.retiring = [g for g in self.retiring if not g.remove()]
        remove_tree(self.dir)


def _terminate(*_args: object) -> None:
    # Leave through the serve loop's cleanup; a second SIGTERM (a front-end's own) must
    # not cut that cleanup short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(0)


def main() -> None:
    fd = int(sys.argv[1])
    # The kernel's interrupt (SIGINT to its process group) is for the cell, not for us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    os.set_inheritable(fd, False)  # no cell process may hold the kernel's channel
    with open("/proc/self/comm", "w") as f:   # what ps shows
        f.write("rootfs-helper")
    sock = socket.socket(fileno=fd)
    try:
        first, _ = protocol.recv(sock)   # {init, base}: not on our command line
    except (protocol.Closed, ConnectionResetError):
        return   # the kernel went away before it said
    Helper(sock, first["init"], first["base"]).serve()


if __name__ == "__main__":
    main()
