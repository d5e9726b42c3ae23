"""The kernel's side of the helper: start it, run a cell, stream its output (asyncio).

Runs in: the kernel (its event loop).

Output never passes through the helper: the kernel makes the pipes, hands their write
ends over with the `run` (or `prepare`) frame and reads the other ends itself. The cell's
text goes the same way, down the script pipe to the container's shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..ids import IdRange
from . import cgroups, helper, initbin, protocol, report, rundir, snapshots, wire
from .plan import Context, Places, Plan
from .prepared import preparable

CHUNK = 1 << 16
# After the container has ended, output still buffered in a pipe is drained for this
# long; only processes that escaped a cell without a PID namespace can keep a pipe open.
DRAIN_SECONDS = 0.2


class SandboxError(RuntimeError):
    """The helper could not be started, went away, or could not start a container
    (`errno` then says why, e.g. EAGAIN: no free processes on the host)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass
class CellRun:
    status: int | None = None
    signal: int | None = None
    error: str | None = None          # setup failure reported by the container
    setup_seconds: float | None = None
    snapshots: list[dict] = field(default_factory=list)
    interrupted: bool = False
    timed_out: bool = False
    limit: str | None = None          # which cgroup limit ended (part of) the cell
    profile: list | None = None       # per setup operation (op, where, seconds), on request
    # On request too: when (time.monotonic) the cell reached its container, its script
    # started and ended, the init reported, and the kernel had the report.
    stages: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)   # what the setup did otherwise (words)
    disk_full: bool = False           # the cell filled its writable layer (%limit disk)
    # A prepared container's: when (time.monotonic) the kernel wrote the cell down the
    # pipe its shell waited on (the `wait` of %show steps).
    handed_over: float | None = None
    # run(upper=True): the overlay's upper directory on the cell's tmpfs, an fd the caller
    # closes; it keeps that tmpfs after the cell's namespace has gone (%keep, %export).
    upper: int | None = None


class _Channels:
    """A container's five channels to the kernel. The container gets `theirs` as its fds
    1-5 (init.c): the write ends of the cell's stdout and stderr, its end of the result
    socket, the read ends of the release and script pipes. The kernel keeps the others."""

    def __init__(self) -> None:
        out, err, release, script = (os.pipe() for _ in range(4))
        result_ours, result_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # The shell opens its script as /proc/self/fd/3 (a new open of the pipe), as the
        # cell's root, which is nobody to the kernel's pipe: let anyone read it, which only
        # processes that may look into the shell's /proc can, and no one write it.
        os.fchmod(script[0], 0o444)
        self.stdout, self.stderr, self.result = out[0], err[0], result_ours.detach()
        self.release, self.script = release[1], script[1]
        self.theirs = [out[1], err[1], result_theirs.detach(), release[0], script[0]]

    def close_theirs(self) -> None:
        while self.theirs:
            os.close(self.theirs.pop())

    def close(self) -> None:
        """Not needed after all: the shell reads an empty script, and the init exits."""
        self.close_theirs()
        for fd in (self.stdout, self.stderr, self.result, self.release, self.script):
            os.close(fd)


@dataclass
class _Prepared:
    key: int                  # the helper's name for it
    plan: Plan                # the plan it was made from (a cell run again has this one)
    profile: bool
    match: list[str]          # wire.match_key of that plan
    chan: _Channels           # the next cell's channels, which it holds already
    bounds: dict              # what bounds it (cgroups.bounds)


class SandboxClient:
    def __init__(self, prepare: bool = True, ids: IdRange | None = None,
                 explain: report.Explain | None = None) -> None:
        # Let the helper make the next container while this one runs (prepared.py).
        self.prepare = prepare
        # What explains a setup step the host refused, in the cell's message (report.py).
        self.explain = explain
        # Root mode: the host ids a cell's root is (ids.py); an ordinary user's cells are
        # that user already.
        self.ids = ids or IdRange()
        self._prepared: _Prepared | None = None
        self._keys = itertools.count(1)   # names prepared containers for the helper
        self._next: tuple[Plan, bool] | None = None   # what to prepare once a cell is over
        self._mounts = _MountWatch()
        self._addresses = _AddressWatch()
        # The helper's mount namespace is ours: what it adds to a prepared container's setup.
        self._facts = wire.Launch(mnt_ns=os.stat("/proc/self/ns/mnt").st_ino)
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen | None = None
        self._places: Places | None = None   # from the helper's "ready" (see places)
        self.rootless = os.geteuid() != 0   # the helper runs as this process's user
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future] = {}
        self._notices: dict[int, Callable[[bytes], None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gone: str | None = None   # how the helper went away, once it has
        self._said_rlimits = False      # the setrlimit fallback is said once
        self._home: cgroups.Home | None = None   # where cells' cgroups go (places)
        self._display: str | None = None   # the `display` program (initbin.py)
        # pasta, for %net user (plan.py): found once, where the kernel's PATH or Debian
        # puts it.
        self._pasta = shutil.which("pasta") or shutil.which("pasta", path="/usr/bin:/bin")
        # Why the last start() started no helper (no init, a runtime directory that is not
        # ours): a session says it for each cell and tries again.
        self.refused: SandboxError | None = None

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the helper. Its "ready" is read when it is first needed (places): the
        kernel answers kernel_info meanwhile, and the helper's start-up overlaps the
        kernel's. What helpers killed before left (their directories, their containers'
        cgroups) is removed first."""
        try:
            init = initbin.path()
            self._display = str(initbin.display_path())   # every cell's `display`
            base = rundir.make()
        except (initbin.InitMissing, rundir.RuntimeDirError) as err:
            self.refused = SandboxError(str(err))
            raise self.refused from None
        self.refused = None
        helper.sweep_stale(base)
        cgroups.sweep_stale_cgroups()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # Where rootfs-init is and where the helper keeps its directories name this user:
        # they go over the socket, not on the helper's command line (any user reads it).
        protocol.send(ours, {"init": str(init), "base": base})
        self.proc = subprocess.Popen(
            # -S: no site-packages (the helper needs only the standard library and this
            # package, found through PYTHONPATH): it starts sooner and stays smaller. An
            # ordinary user's on cgroup v2 starts in a scope systemd delegates to it.
            cgroups.delegating([sys.executable, "-S", "-m", "rootfs_kernel.sandbox.helper",
                                str(theirs.fileno())]),
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
            # Its own process group: a front-end that kills the kernel's group outright
            # (SIGKILL) must not take the helper down before it has cleaned up; the helper
            # follows the kernel through EOF on this socket instead.
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": _package_path()},
        )
        theirs.close()
        self.sock = ours
        self._places = None
        self._gone = None

    @property
    def places(self) -> Places:
        """The helper's directories: waits for its "ready", the first time."""
        if self._places is None:
            if self.sock is None:
                raise SandboxError("the sandbox helper is not running")
            try:
                ready, _ = protocol.recv(self.sock)
            except protocol.Closed:
                raise SandboxError("the sandbox helper exited at start; see the kernel "
                                   "log") from None
            self._places = Places.under(ready["dir"])
            self._home = cgroups.Home.find(ready.get("cgroup"), ready.get("cgroup_why"))
        return self._places

    def gone(self) -> str | None:
        """None while the helper runs; else how it ended (e.g. "killed by SIGKILL")."""
        if self._gone is None and self.proc is not None and self.proc.poll() is not None:
            self._gone = _how_it_ended(self.proc.returncode)
        return self._gone

    def restart(self) -> str:
        """Replace a helper that went away (killed by anything) with a new one; returns
        how the old one ended. Its containers, its prepared container and its layers
        (%keep, %export) went with it. Call from the thread that started the first one."""
        how = self.gone() or "it stopped answering"
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self.close()
        self._loop = None   # the new socket needs its own reader (_attach)
        self.start()
        return how

    def context(self, **changes: object) -> Context:
        """What plan.plan_for needs from this sandbox and this process (changes: the
        session's %env, %keep state, ...)."""
        return Context(**{"places": self.places, "rootless": self.rootless,
                          "uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(),
                          "ids": None if self.rootless else self.ids,
                          "display": self._display, "pasta": self._pasta, **changes})

    def close(self) -> None:
        self._drop_prepared()
        if self._loop is not None and self.sock is not None:
            try:
                self._loop.remove_reader(self.sock.fileno())
            except (ValueError, RuntimeError):
                pass
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    # -- events from the helper -------------------------------------------------------------
    def _attach(self) -> None:
        self.places   # noqa: B018 - the helper's first frame is "ready": read it first
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                try:
                    self._loop.remove_reader(self.sock.fileno())
                except (ValueError, RuntimeError):
                    pass
            loop.add_reader(self.sock.fileno(), self._on_event)
            self._loop = loop

    def _on_event(self) -> None:
        try:
            msg, fds = protocol.recv(self.sock)
        except protocol.Closed:
            self._loop.remove_reader(self.sock.fileno())
            if self.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(0.5)   # it is exiting: say how, if it has
            self._gone = self.gone() or "it closed its socket"
            for fut in self._waiters.values():
                if not fut.done():
                    fut.set_exception(SandboxError(
                        f"the sandbox helper went away ({self._gone})"))
            return
        for fd in fds:
            os.close(fd)
        # The prepared container could not be made: the next cell gets one of its own.
        if msg["event"] == "unprepared":
            if self._prepared is not None and self._prepared.key == msg["key"]:
                self._drop_prepared()
            return
        fut = self._waiters.get(msg.get("id"))
        if fut is None or fut.done():
            return
        if msg["event"] == "exited":
            fut.set_result(msg)
        elif msg["event"] == "error":
            fut.set_exception(SandboxError(msg["message"], msg.get("errno")))

    def _drop_prepared(self) -> None:
        """Close our ends: the prepared container's shell reads an empty script."""
        if self._prepared is not None:
            self._prepared.chan.close()
            self._prepared = None

    def _bounds(self, name: str, plan: Plan, notice: Callable[[bytes], None] | None
                ) -> tuple[wire.Launch, cgroups.CellCgroup | None, dict]:
        """The container's cgroup (made now, joined by its first process) or, where no
        cgroup can be made, the setrlimit fallback, said once per kernel; and what bounds
        the cell, in words (cgroups.bounds: %show limits).

        The default pids bound of a cell whose root is unprivileged (root mode's id range,
        or an ordinary user) is RLIMIT_NPROC, counted per user namespace: joining a v1
        cgroup costs its first process a grace period of the kernel's RCU, which a cell
        that asked for nothing should not wait for. A cell's own %limit pids gets the
        cgroup, whose counters say when the limit was hit; a `%show limits` cell gets one
        too, to count what it used."""
        limits = {k: v for k, v in plan.limits.items() if k in cgroups.CGROUP_LIMITS}
        count = any(s.kind == "limits" for s in plan.show)
        nproc = {}
        if "pids" in limits and not plan.limits_asked and (plan.idmap or plan.rootless):
            nproc = {"nproc": int(limits.pop("pids"))}
        mnt_ns = self._facts.mnt_ns
        if not limits and not count:
            return (wire.Launch(mnt_ns, rlimits=nproc), None,
                    cgroups.bounds(plan.limits, None, nproc))
        self.places   # noqa: B018 - the helper's ready says where cgroups go (_home)
        try:
            group = cgroups.CellCgroup.create(name, limits, self._home, count=count)
            return (wire.Launch(mnt_ns, cgroup_procs=tuple(group.procs_files()),
                                   rlimits=nproc), group,
                    cgroups.bounds(plan.limits, group, nproc))
        except cgroups.LimitsUnavailable as err:
            # Without cgroups, setrlimit still holds a fork bomb or a hog back (per
            # process for memory); cpu shares need a cgroup.
            rlimits = {**nproc, **cgroups.rlimits_for(limits)}
            facts = wire.Launch(mnt_ns, rlimits=rlimits)
            # Said once per kernel (the host will not change), and only to a cell that
            # asked for limits itself: the default bounds are the README's, not news.
            if limits and plan.limits_asked and not self._said_rlimits and notice is not None:
                self._said_rlimits = True
                notice(f"rootfs-kernel: {err}; using setrlimit instead "
                       f"({cgroups.describe_rlimits(rlimits)}"
                       f"{'; cpu is not limited' if 'cpu' in limits else ''}), in this and "
                       "later cells\n".encode())
            return facts, None, cgroups.bounds(plan.limits, None, rlimits, str(err))

    def _start(self, request: dict, plan: Plan, name: str, chan: _Channels, *,
               profile: bool, warm: bool = False,
               notice: Callable[[bytes], None] | None = None) -> None:
        """Ask the helper to start a container for `plan` with these channels: its bounds
        made here, rootfs-init's plan encoded here into a memfd the helper hands it as
        its fd 6 (wire.py: never on a command line); the helper only starts it. Returns
        what bounds the container (%show limits)."""
        facts, group, bounds = self._bounds(f"{self.proc.pid}-{name}", plan, notice)
        request.update(cgroup=None if group is None else group.watch())
        plan_fd = _memfd(wire.pack(wire.encode(plan, facts, parent=self.proc.pid,
                                               profile=profile, warm=warm)))
        try:
            self.send(request, [*chan.theirs, plan_fd])
        except BaseException:
            if group is not None:
                group.remove()
            raise
        finally:
            os.close(plan_fd)
        return bounds

    def _prepare_next(self) -> None:
        """Have the helper make the next cell's container now, as the last one was made,
        with the next cell's channels (prepared.py). Called from the loop once the cell is
        over: in the kernel, after its reply and idle status have gone out."""
        if self._next is None or self.sock is None:
            return
        (plan, profile), self._next = self._next, None
        self._drop_prepared()
        self._mounts.changed()   # from now on, a change makes this container stale
        self._addresses.changed()
        chan, key = _Channels(), next(self._keys)
        try:
            bounds = self._start({"op": "prepare", "key": key}, plan, f"w{key}", chan,
                                 profile=profile, warm=True)
        except SandboxError:   # a dead helper: the next cell says so
            chan.close()
            return
        finally:
            chan.close_theirs()
        self._prepared = _Prepared(key, plan, profile, wire.match_key(
            plan, self._facts.mnt_ns, profile=profile), chan, bounds)

    def _hand_over(self, plan: Plan, profile: bool) -> tuple[_Channels, int, dict] | None:
        """The prepared container's channels, key and bounds when it was made for this
        cell's plan; None when the cell needs a container of its own."""
        ready, self._prepared = self._prepared, None
        if ready is None:
            return None
        if self._mounts.changed():   # it may hold a view of the host the cell must not get
            ready.chan.close()
            return None
        # %net user: its init made the host's addresses unreachable as they were then.
        if ready.plan.net == "user" and self._addresses.changed():
            ready.chan.close()
            return None
        # A %%host cell may change what the prepared container bound; limits, kept
        # layers, shared propagation and a script passed as an argument need a container
        # made for the cell; the rest must match token for token.
        same = ready.plan is plan and ready.profile == profile   # Session keeps plans
        if not same and (plan.host or not preparable(plan) or
                         ready.match != wire.match_key(plan, self._facts.mnt_ns,
                                                       profile=profile)):
            ready.chan.close()
            return None
        return ready.chan, ready.key, ready.bounds

    # -- requests -----------------------------------------------------------------------------
    def send(self, message: dict, fds: list[int] = ()) -> None:
        if self.sock is None:
            raise SandboxError("the sandbox helper is not running")
        try:
            protocol.send(self.sock, message, fds)
        except (BrokenPipeError, ConnectionResetError):
            how = self.gone() or "its socket closed"
            raise SandboxError(f"the sandbox helper went away ({how})") from None

    def drop(self, what: str) -> None:
        """Remove the kept layer ("keep"), in order with the cells the helper starts."""
        self.send({"op": "drop", "what": what})

    async def run(self, plan: Plan, on_stdout: Callable[[bytes], None],
                  on_stderr: Callable[[bytes], None], *, timeout: float | None = None,
                  interrupt: asyncio.Event | None = None, grace: float = 1.0,
                  wait_exit: bool = True, profile: bool = False,
                  upper: bool = False) -> CellRun:
        """Run one plan. With wait_exit=False the cell counts as finished once its report
        and output are complete, while the namespace teardown goes on in the background
        (the next cell does not need it gone unless it reuses a %keep layer). profile:
        the init times each setup operation and the cell's stages (CellRun.profile).
        upper: hand the overlay's upper directory over (CellRun.upper)."""
        self._attach()
        loop = asyncio.get_running_loop()
        cid = next(self._ids)
        done = loop.create_future()
        self._waiters[cid] = done
        # Helper events arrive in the socket reader's context, not this cell's: deliver
        # the notice in this cell's (a front-end may keep per-cell state in contextvars).
        self._notices[cid] = functools.partial(contextvars.copy_context().run, on_stderr)
        run = CellRun()
        reported = script = release = None
        readers: list[_PipeReader] = []
        try:
            prepared = self._hand_over(plan, profile)
            if prepared is not None:
                chan, key, bounds = prepared
            else:
                chan, key = _Channels(), None
                try:
                    bounds = self._start({"op": "run", "id": cid, "host": plan.host}, plan,
                                         str(cid), chan, profile=profile,
                                         notice=self._notices[cid])
                except BaseException:
                    chan.close()
                    raise
                finally:
                    chan.close_theirs()
            # The cell's text, to the shell that waits for it (plan.SCRIPT_BOOT): first,
            # so that the shell runs while the kernel gets ready to read what it says.
            run.handed_over = None if key is None else time.monotonic()
            script = _ScriptWriter(loop, chan.script,
                                   (plan.script or "").encode("utf-8", "surrogateescape"))
            # Closing it lets the cell's init exit (init.c): after the snapshots, or when
            # the run ends any other way.
            release = _Once(chan.release)
            result_chunks: list[bytes] = []
            readers = [
                _PipeReader(loop, chan.stdout, on_stdout),
                _PipeReader(loop, chan.stderr, on_stderr),
                _ResultReader(loop, chan.result, result_chunks.append),
            ]
            if key is not None:   # the helper supervises it from now on (told while it runs)
                loop.call_soon(self._adopt, cid, key)
            finished = loop.create_future()
            done.add_done_callback(lambda f: _forward(f, finished))
            reported = asyncio.ensure_future(self._collect(
                readers, result_chunks, release, plan, run, profile,
                None if wait_exit else finished, bounds, upper))
            exited = await self._supervise(cid, finished, timeout, interrupt, grace, run)
            if not all(r.eof.done() for r in readers):
                try:
                    await asyncio.wait_for(asyncio.gather(*(r.eof for r in readers)),
                                           DRAIN_SECONDS)
                except TimeoutError:
                    pass
        except BaseException:
            if run.upper is not None:   # nobody will read it
                os.close(run.upper)
                run.upper = None
            raise
        finally:
            if reported is not None and not reported.done():
                reported.cancel()
            for closing in (script, release, *readers):
                if closing is not None:
                    closing.close()
            self._waiters.pop(cid, None)
            self._notices.pop(cid, None)
        if run.status is None or run.signal is None and exited.get("signal"):
            run.status, run.signal = exited["status"], exited["signal"]
        # The helper's word (a fork bomb it ended), or what its cgroup counted when the
        # container ended, or what the init read when the script did.
        run.limit = exited.get("limit") or cgroups.verdict(
            plan.limits, exited.get("forks", 0), exited.get("ooms", 0)) or run.limit
        # The next container is made once the loop is free: the kernel's reply and idle
        # status first (nothing between here and them waits on the loop), then this.
        loop.call_soon(self._prepare_next)
        return run

    def _adopt(self, cid: int, key: int) -> None:
        with contextlib.suppress(SandboxError):   # a dead helper: the cell says so (done)
            self.send({"op": "adopt", "id": cid, "key": key})

    async def _collect(self, readers: list[_PipeReader], chunks: list[bytes], release: _Once,
                       plan: Plan, run: CellRun, profile: bool,
                       finished: asyncio.Future | None, bounds: dict,
                       upper: bool = False) -> None:
        """Read the init's report (report.py), take the snapshots while the init still
        holds the cell's namespace (snapshots.py), then release it. With `finished`, the
        cell ends here, once its output is complete too, without waiting for the
        namespace teardown. `bounds`: what bounded the cell (%show limits); `upper`: hand
        the overlay's upper directory over (CellRun.upper)."""
        try:
            await readers[2].eof
            data = report.parse(b"".join(chunks))
            if "error" in data:
                run.error = report.describe_error(plan, data["error"], self.explain)
            if "status" in data:
                run.status, run.signal = data["status"], data.get("signal")
                run.setup_seconds = data.get("setup_seconds")
                run.profile = report.profile(plan, data.get("profile"))
                if data.get("stages"):
                    names = ("in container", "script started", "script ended", "reported")
                    run.stages = {**dict(zip(names, data["stages"], strict=True)),
                                  "kernel has report": time.monotonic()}
                # The overlay's layers, then the %show steps record (init.c).
                fds = readers[2].fds
                layer_fds = fds[:data["snaps"]] if data.get("snaps", 0) > 0 else None
                steps_fd = fds[-1] if data.get("steps") and fds else None
                if run.handed_over is not None:
                    data["handed_over"] = run.handed_over
                # The cell's cgroup counters, read by its init when the script ended.
                run.limit = cgroups.verdict(plan.limits, *data.get("cgroup", (0, 0)))
                written = None
                if layer_fds and plan.layers:   # the upper, on the cell's tmpfs
                    run.disk_full, written = _full(layer_fds[0]), _used(layer_fds[0])
                    if upper:
                        run.upper = os.dup(layer_fds[0])
                data["limits"] = {"bounds": bounds, "usage": data.get("usage"),
                                  "events": data.get("cgroup"), "disk": written,
                                  "ended_by": run.limit}
                if plan.show and "init" in data:
                    run.snapshots = snapshots.take(plan.show, data["init"], data, layer_fds,
                                                   plan.idmap, _store_layers(plan),
                                                   steps_fd=steps_fd)
                run.notes = report.notes(plan, data.get("notes") or [])
        finally:
            release.close()
        if self.prepare and run.error is None and preparable(plan):
            # The next cell's container, made as this one (run() starts it): its script is
            # over, so it never competes with this cell's run.
            self._next = (plan, profile)
        if finished is not None:
            await asyncio.gather(readers[0].eof, readers[1].eof)
            if run.status is not None and not finished.done():
                finished.set_result({"status": run.status, "signal": run.signal})


    async def _supervise(self, cid: int, done: asyncio.Future, timeout: float | None,
                         interrupt: asyncio.Event | None, grace: float, run: CellRun) -> dict:
        """Wait for the container to end; deliver interrupts and the timeout meanwhile."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while True:
            waits = [done]
            stop = None
            if interrupt is not None and not interrupt.is_set():
                stop = asyncio.ensure_future(interrupt.wait())
                waits.append(stop)
            left = None if deadline is None else deadline - asyncio.get_running_loop().time()
            finished, _ = await asyncio.wait(waits, timeout=left,
                                             return_when=asyncio.FIRST_COMPLETED)
            if stop is not None and not stop.done():
                stop.cancel()
            if done in finished:
                return done.result()
            if stop is not None and stop in finished:
                run.interrupted = True
                self.send({"op": "signal", "id": cid, "signum": int(signal.SIGINT),
                           "grace": grace})
                interrupt = None   # one interrupt is enough; the helper escalates
                continue
            if deadline is not None and not run.timed_out:
                run.timed_out = True
                self.send({"op": "kill", "id": cid})
                deadline = None


def _memfd(data: bytes) -> int:
    """A memory file holding `data`, read from its start."""
    fd = os.memfd_create("rootfs-plan", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _forward(source: asyncio.Future, target: asyncio.Future) -> None:
    if target.done() or source.cancelled():
        return
    if source.exception() is not None:
        target.set_exception(source.exception())
    else:
        target.set_result(source.result())


class _MountWatch:
    """Has the host's mount table changed since the last call? The kernel shares the
    helper's mount namespace, so its /proc/self/mountinfo is the one a container starts
    from; poll() reports POLLPRI on it once per change, and asking is one system call."""

    def __init__(self) -> None:
        self.file = open("/proc/self/mountinfo", "rb")  # noqa: SIM115 - lives with us
        self.poll = select.poll()
        self.poll.register(self.file.fileno(), select.POLLPRI | select.POLLERR)
        self.changed()

    def changed(self) -> bool:
        return bool(self.poll.poll(0))


class _AddressWatch:
    """Have the host's addresses changed since the last call? A `%net user` container
    makes the host's addresses unreachable as they were when it was made (init.c), so a
    prepared one is stale once one is added. rtnetlink's address groups tell, to anyone."""

    GROUPS = 0x10 | 0x100   # RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        try:
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            self.sock.bind((0, self.GROUPS))
            self.sock.setblocking(False)
        except OSError:   # no rtnetlink here: assume every change (no stale container)
            self.sock = None

    def changed(self) -> bool:
        if self.sock is None:
            return True
        seen = False
        while True:
            try:
                seen = bool(self.sock.recv(65536)) or seen
            except BlockingIOError:
                return seen
            except OSError:   # ENOBUFS: so many changes the queue overflowed
                seen = True


class _ScriptWriter:
    """Writes the cell into the script pipe as the shell reads it, without blocking the
    loop, then closes the pipe: the shell sees the end of its script. A shell that has
    gone (it exited early, or its container failed) ends the writing (EPIPE)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, data: bytes):
        self.loop, self.fd, self.data = loop, fd, memoryview(data)
        self.waiting = False
        os.set_blocking(fd, False)
        self._write()

    def _write(self) -> None:
        try:
            while self.data:
                self.data = self.data[os.write(self.fd, self.data):]
        except BlockingIOError:   # the pipe is full: the shell has not read that far
            if not self.waiting:
                self.waiting = True
                self.loop.add_writer(self.fd, self._write)
            return
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            if self.waiting:
                self.loop.remove_writer(self.fd)
            os.close(self.fd)
            self.fd = -1


class _Once:
    """An fd closed at most once (its number may be reused right after)."""

    def __init__(self, fd: int):
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _store_layers(plan: Plan) -> tuple[str, ...] | None:
    """The image store's layers below the overlay, top first (an idmapped one by its
    source), or None when one of them is a %keep layer, which cells change."""
    if plan.layers is None or plan.own_layers:
        return None
    sources = {op.target: op.source for op in plan.ops if op.KIND == "layer"}
    return tuple(sources.get(lower, lower) for lower in plan.layers.lowers)


def _full(fd: int) -> bool:
    """Did the cell fill the tmpfs that holds its writable layer (%limit disk)?"""
    st = os.fstatvfs(fd)
    return st.f_blocks > 0 and st.f_bavail * 100 < st.f_blocks   # less than 1% left


def _used(fd: int) -> int:
    """Bytes the cell wrote to the tmpfs that holds its writable layer."""
    st = os.fstatvfs(fd)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


class _PipeReader:
    """Reads one pipe on the event loop, handing each chunk to a callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, sink: Callable[[bytes], None]):
        self.loop, self.fd, self.sink = loop, fd, sink
        self.eof = loop.create_future()
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, CHUNK)
        except BlockingIOError:
            return
        if data:
            self.sink(data)
        else:
            self.loop.remove_reader(self.fd)
            if not self.eof.done():
                self.eof.set_result(None)

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


class _ResultReader(_PipeReader):
    """The init's result socket: JSON lines (report.py), and the fds of the overlay's
    layers, which the init hands over before the script starts (init.c) and the kernel
    holds until the cell's snapshots are taken."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, sink: Callable[[bytes], None]):
        self.sock = socket.socket(fileno=fd)
        self.fds: list[int] = []
        super().__init__(loop, fd, sink)

    def _readable(self) -> None:
        while True:   # the report and its end come together: both in one wake-up
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, CHUNK, 64,
                                                           socket.MSG_CMSG_CLOEXEC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            self.fds += fds
            if not data:
                break
            self.sink(data)
        self.loop.remove_reader(self.fd)
        if not self.eof.done():
            self.eof.set_result(None)

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            self.sock.close()
            self.fd = -1
        while self.fds:
            os.close(self.fds.pop())


def _package_path() -> str:
    """Make the helper import this very copy of the package (installed or a checkout)."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    extra = os.environ.get("PYTHONPATH")
    return here + (os.pathsep + extra if extra else "")
