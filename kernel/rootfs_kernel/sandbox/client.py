"""The kernel's side of the helper: start it, run a cell, stream its output (asyncio).

Runs in: the kernel (its event loop).

Output never passes through the helper: the kernel makes the pipes, hands their write
ends over with the `run` frame and reads the other ends itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..ids import IdRange
from . import cgroups, initbin, protocol, report, snapshots, wire
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


@dataclass
class _Prepared:
    pid: int                  # its rootfs-init (process A), the helper's child
    sock: socket.socket       # init.c's fd 5: B waits there for its cell
    setup: list[str]          # wire.setup_tokens of the plan it was made from


class SandboxClient:
    def __init__(self, prepare: bool = True, ids: IdRange | None = None) -> None:
        # Let the helper make the next container while this one runs (prepared.py).
        self.prepare = prepare
        # Root mode: the host ids a cell's root is (ids.py); an ordinary user's cells are
        # that user already.
        self.ids = ids or IdRange()
        self._prepared: _Prepared | None = None
        self._epoch = 0   # counts %%host cells (see "prepared" in _on_event)
        # The helper's mount namespace is ours: what it adds to a prepared container's setup.
        self._facts = wire.HostFacts(mnt_ns=os.stat("/proc/self/ns/mnt").st_ino)
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen | None = None
        self.places: Places | None = None
        self.rootless = os.geteuid() != 0
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future] = {}
        self._notices: dict[int, Callable[[bytes], None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gone: str | None = None   # how the helper went away, once it has
        self._display: str | None = None   # the `display` program (initbin.py)

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the helper (call from the main thread: it dies with the thread that made it)."""
        try:
            init = initbin.path()
            self._display = str(initbin.display_path())   # every cell's `display`
        except initbin.InitMissing as err:
            raise SandboxError(str(err)) from None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rootfs_kernel.sandbox.helper", str(theirs.fileno()),
             str(init)],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
            # Its own process group: a front-end that kills the kernel's group outright
            # (SIGKILL) must not take the helper down before it has cleaned up; the helper
            # follows the kernel through PR_SET_PDEATHSIG and EOF instead.
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": _package_path()},
        )
        theirs.close()
        self.sock = ours
        try:
            ready, _ = protocol.recv(ours)
        except protocol.Closed:
            raise SandboxError("the sandbox helper exited at start; see the kernel log") from None
        self.places = Places.from_json(ready["places"])
        self.rootless = ready["rootless"]
        self._gone = None

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
                          "display": self._display, **changes})

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
        if msg["event"] == "prepared":
            # The next cell's container (prepared.py): ours to use or to close. One asked
            # for before a %%host cell ran is closed: that cell may have changed what it
            # bound.
            ready = _Prepared(msg["pid"], socket.socket(fileno=fds[0]), msg["setup"])
            self._drop_prepared()
            if msg.get("epoch") == self._epoch:
                self._prepared = ready
            else:
                ready.sock.close()
            return
        for fd in fds:
            os.close(fd)
        if msg["event"] == "stale":  # the host's mounts changed since it was made
            if self._prepared is not None and self._prepared.pid == msg["pid"]:
                self._drop_prepared()
            return
        if msg["event"] == "notice" and msg.get("id") in self._notices:
            self._notices[msg["id"]](f"rootfs-kernel: {msg['message']}\n".encode())
            return
        fut = self._waiters.get(msg.get("id"))
        if fut is None or fut.done():
            return
        if msg["event"] == "exited":
            fut.set_result(msg)
        elif msg["event"] == "error":
            fut.set_exception(SandboxError(msg["message"], msg.get("errno")))

    def _drop_prepared(self) -> None:
        """Close our end: the prepared container's init sees EOF and exits."""
        if self._prepared is not None:
            self._prepared.sock.close()
            self._prepared = None

    def _hand_over(self, cid: int, plan: Plan, fds: list[int], profile: bool) -> int | None:
        """Give the cell to the prepared container when it was made for this setup:
        straight to its init (no helper in between), then tell the helper. Returns the
        init's pid, or None when the cell needs a container of its own."""
        if plan.host:
            self._epoch += 1
        ready, self._prepared = self._prepared, None
        if ready is None:
            return None
        # Limits, kept layers and shared propagation need a container made for the cell
        # (the helper adds their cgroups and paths); the rest must match token for token.
        if not preparable(plan) or ready.setup != wire.match_key(plan, self._facts.mnt_ns):
            ready.sock.close()
            return None
        try:
            with ready.sock:
                ready.sock.settimeout(5)  # A writes B's pid right after its clone
                (init,) = protocol.U32.unpack(ready.sock.recv(4, socket.MSG_WAITALL))
                cell = wire.encode_cell(plan, profile=profile)
                socket.send_fds(ready.sock, [protocol.U32.pack(len(cell))], fds)
                ready.sock.sendall(cell)
        except (OSError, struct.error):  # it died (a setup that failed): make our own
            return None
        self.send({"op": "adopt", "id": cid, "pid": ready.pid})
        return init

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
        """Remove the kept ("keep") or exported ("export") upper layer."""
        self.send({"op": "drop", "what": what})

    async def run(self, plan: Plan, on_stdout: Callable[[bytes], None],
                  on_stderr: Callable[[bytes], None], *, timeout: float | None = None,
                  interrupt: asyncio.Event | None = None, grace: float = 1.0,
                  wait_exit: bool = True, profile: bool = False) -> CellRun:
        """Run one plan. With wait_exit=False the cell counts as finished once its report
        and output are complete, while the namespace teardown goes on in the background
        (the next cell does not need it gone unless it reuses a %keep layer). profile:
        the init times each setup operation and the cell's stages (CellRun.profile)."""
        self._attach()
        loop = asyncio.get_running_loop()
        cid = next(self._ids)
        done = loop.create_future()
        self._waiters[cid] = done
        # Helper events arrive in the socket reader's context, not this cell's: deliver
        # the notice in this cell's (a front-end may keep per-cell state in contextvars).
        self._notices[cid] = functools.partial(contextvars.copy_context().run, on_stderr)
        pipes = [os.pipe() for _ in range(2)]
        # The init's report, and the overlay's layer fds it hands over (SCM_RIGHTS).
        result_ours, result_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pipes.append((result_ours.detach(), result_theirs.detach()))
        release_r, release_w = os.pipe()
        # Closing it lets the cell's init exit (init.c): after the snapshots, or when the
        # run ends any other way.
        release = _Once(release_w)
        result_chunks: list[bytes] = []
        readers = [
            _PipeReader(loop, pipes[0][0], on_stdout),
            _PipeReader(loop, pipes[1][0], on_stderr),
            _ResultReader(loop, pipes[2][0], result_chunks.append),
        ]
        run = CellRun()
        reported = None
        plan_json = plan.to_json()   # for the helper: this cell's run, the next one's prepare
        try:
            try:
                given = [*(w for _, w in pipes), release_r]
                init = self._hand_over(cid, plan, given, profile)
                if init is None:
                    self.send({"op": "run", "id": cid, "plan": plan_json, "profile": profile},
                              given)
                else:  # what the helper's rootfs-init would have said first (report.py)
                    result_chunks.append(b'{"init": %d}\n' % init)
            finally:
                for _, w in pipes:
                    os.close(w)
                os.close(release_r)
            finished = loop.create_future()
            done.add_done_callback(lambda f: _forward(f, finished))
            reported = asyncio.ensure_future(self._collect(
                readers, result_chunks, release, plan, plan_json, run,
                None if wait_exit else finished))
            exited = await self._supervise(cid, finished, timeout, interrupt, grace, run)
            try:
                await asyncio.wait_for(asyncio.gather(*(r.eof for r in readers)),
                                       DRAIN_SECONDS)
            except TimeoutError:
                pass
        finally:
            if reported is not None and not reported.done():
                reported.cancel()
            release.close()
            for r in readers:
                r.close()
            self._waiters.pop(cid, None)
            self._notices.pop(cid, None)
        if run.status is None or run.signal is None and exited.get("signal"):
            run.status, run.signal = exited["status"], exited["signal"]
        run.limit = exited.get("limit") or run.limit
        return run

    async def _collect(self, readers: list[_PipeReader], chunks: list[bytes], release: _Once,
                       plan: Plan, plan_json: dict, run: CellRun,
                       finished: asyncio.Future | None) -> None:
        """Read the init's report (report.py), take the snapshots while the init still
        holds the cell's namespace (snapshots.py), then release it. With `finished`, the
        cell ends here, once its output is complete too, without waiting for the
        namespace teardown."""
        try:
            await readers[2].eof
            data = report.parse(b"".join(chunks))
            if "error" in data:
                run.error = report.describe_error(plan, data["error"])
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
                if plan.show and "init" in data:
                    run.snapshots = snapshots.take(plan.show, data["init"], data, layer_fds,
                                                   plan.idmap, steps_fd=steps_fd)
                run.notes = report.notes(plan, data.get("notes") or [])
                # The cell's cgroup counters, read by its init when the script ended.
                run.limit = cgroups.verdict(plan.limits, *data.get("cgroup", (0, 0)))
                scratch_upper = f"{os.path.dirname(plan.root)}/upper"  # plan.py's layout
                if layer_fds and plan.layers and plan.layers.upper == scratch_upper:
                    run.disk_full = _full(layer_fds[0])
        finally:
            release.close()
        if self.prepare and not plan.host and run.error is None and self.sock is not None:
            # The next cell's container is made now: its script is over, so it never
            # competes with this cell's run, and the kernel is still answering.
            with contextlib.suppress(SandboxError):  # a dead helper: the cell says so
                self.send({"op": "prepare", "plan": plan_json, "epoch": self._epoch})
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


class _Once:
    """An fd closed at most once (its number may be reused right after)."""

    def __init__(self, fd: int):
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _full(fd: int) -> bool:
    """Did the cell fill the tmpfs that holds its writable layer (%limit disk)?"""
    st = os.fstatvfs(fd)
    return st.f_blocks > 0 and st.f_bavail * 100 < st.f_blocks   # less than 1% left


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
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, CHUNK, 64,
                                                       socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        self.fds += fds
        if data:
            self.sink(data)
        else:
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
