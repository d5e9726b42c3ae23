"""The kernel's side of the helper: start it, run a cell, stream its output (asyncio).

Runs in: the kernel (its event loop).

The helper's life cycle, the requests that start containers (their bounds and plan made
here), and a cell's run: its channels (channels.py), the prepared container it may take
(prepared.py), its report and snapshots, interrupts and the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

from ..ids import IdRange
from . import cgroups, helper, initbin, protocol, report, rundir, wire
from .cellrun import CellRun, collect, forward, supervise
from .channels import Channels, Once, PipeReader, ResultReader, ScriptWriter, memfd
from .plan import Context, Places, Plan
from .prepared import Pool, Ready
from .template import RECURSIVE, Template

# After the container has ended, output still buffered in a pipe is drained for this
# long; only processes that escaped a cell without a PID namespace can keep a pipe open.
DRAIN_SECONDS = 0.2


class SandboxError(RuntimeError):
    """The helper could not be started, went away, or could not start a container
    (`errno` then says why, e.g. EAGAIN: no free processes on the host)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class SandboxClient:
    def __init__(self, prepare: bool = True, ids: IdRange | None = None,
                 template: bool = True,
                 explain: report.Explain | None = None) -> None:
        # The next cells' containers, made while the kernel waits (prepared.py).
        self.pool = Pool(prepare)
        # What explains a setup step the host refused, in the cell's message (report.py).
        self.explain = explain
        # Root mode: the host ids a cell's root is (ids.py); an ordinary user's cells are
        # that user already.
        self.ids = ids or IdRange()
        self._keys = itertools.count(1)   # names prepared containers for the helper
        # The helper's mount namespace is ours: what it adds to a prepared container's setup.
        self._facts = wire.Launch(mnt_ns=os.stat("/proc/self/ns/mnt").st_ino)
        self.sock: socket.socket | None = None
        self.proc: subprocess.Popen | None = None
        self._places: Places | None = None   # from the helper's "ready" (see places)
        self.rootless = os.geteuid() != 0   # the helper runs as this process's user
        # The helper's template mount namespace (template.py): root mode only.
        self.template = Template(template and not self.rootless)
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
        self.pool.drop_all()
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
        # A prepared container could not be made: the next cell gets one of its own.
        if msg["event"] == "unprepared":
            self.pool.forget(msg["key"])
            return
        if msg["event"] == "template":   # containers are cloned from the host's namespace
            self.template.failed()
            print(f"rootfs-kernel: no template mount namespace: {msg['message']}",
                  file=sys.stderr)
            return
        fut = self._waiters.get(msg.get("id"))
        if fut is None or fut.done():
            return
        if msg["event"] == "exited":
            fut.set_result(msg)
        elif msg["event"] == "error":
            fut.set_exception(SandboxError(msg["message"], msg.get("errno")))

    def _bounds(self, name: str, plan: Plan, notice: Callable[[bytes], None] | None
                ) -> tuple[wire.Launch, cgroups.CellCgroup | None, dict]:
        """The container's cgroup or rlimits (cgroups.for_container) as rootfs-init takes
        them, and what bounds the cell in words (%show limits). The setrlimit fallback is
        said once per kernel (the host will not change), and only to a cell that asked for
        limits itself: the default bounds are the README's, not news."""
        self.places   # noqa: B018 - the helper's ready says where cgroups go (_home)
        group, rlimits, bounds, err = cgroups.for_container(
            name, plan.limits, asked=plan.limits_asked, unprivileged=bool(plan.idmap or
            plan.rootless), count=any(s.kind == "limits" for s in plan.show), home=self._home)
        held = [k for k in cgroups.CGROUP_LIMITS if k in plan.limits]
        if err is not None and held and plan.limits_asked and not self._said_rlimits \
                and notice is not None:
            self._said_rlimits = True
            notice(f"rootfs-kernel: {err}; using setrlimit instead "
                   f"({cgroups.describe_rlimits(rlimits)}"
                   f"{'; cpu is not limited' if 'cpu' in held else ''}), in this and "
                   "later cells\n".encode())
        procs = () if group is None else tuple(group.procs_files())
        return wire.Launch(self._facts.mnt_ns, cgroup_procs=procs, rlimits=rlimits), \
            group, bounds

    def _start(self, request: dict, plan: Plan, name: str, chan: Channels, *,
               profile: bool, warm: bool = False,
               notice: Callable[[bytes], None] | None = None) -> dict:
        """Ask the helper to start a container for `plan` with these channels: its bounds
        made here, rootfs-init's plan encoded here into a memfd the helper hands it as
        its fd 6 (wire.py: never on a command line); the helper only starts it. Returns
        what bounds the container (%show limits)."""
        facts, group, bounds = self._bounds(f"{self.proc.pid}-{name}", plan, notice)
        use, remake = self.template.use(plan, self.pool.mounts.generation())
        if remake is not None:   # made first: the helper takes its requests in order
            tokens = wire.template_tokens(self.places.template, remake, RECURSIVE,
                                          parent=self.proc.pid, idmap=plan.idmap)
            made = memfd(wire.pack(tokens))
            try:
                self.send({"op": "template"}, [made])
            finally:
                os.close(made)
        idmap = self.template.idmap_for(plan)
        facts = dataclasses.replace(facts, idmap=idmap, template=use and idmap)
        request.update(cgroup=None if group is None else group.watch(), idmap=idmap,
                       template=use and idmap)
        plan_fd = memfd(wire.pack(wire.encode(plan, facts, parent=self.proc.pid,
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

    def _prepare(self, plan: Plan, profile: bool) -> None:
        """Have the helper make a container for a cell to come, as `plan`'s was made, with
        that cell's channels (prepared.py); what it takes from the host is captured first."""
        if self.sock is None:
            return
        capture = self.pool.capture(plan, profile)
        chan, key = Channels(), next(self._keys)
        try:
            bounds = self._start({"op": "prepare", "key": key}, plan, f"w{key}", chan,
                                 profile=profile, warm=True)
        except SandboxError:   # a dead helper: the next cell says so
            chan.close()
            return
        finally:
            chan.close_theirs()
        self.pool.add(Ready(key, capture, chan, bounds))

    def _prepare_next(self) -> None:
        """Once a cell is over and the loop is free (in the kernel: after its reply and
        idle status have gone out), the container the pool wants for the next cell."""
        want = self.pool.wanted()
        if want is not None:
            self._prepare(*want)

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
        readers: list[PipeReader] = []
        try:
            ready = self.pool.take(plan, profile)
            if ready is not None:
                chan, key, bounds = ready.chan, ready.key, ready.bounds
            else:
                chan, key = Channels(), None
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
            script = ScriptWriter(loop, chan.script,
                                  (plan.script or "").encode("utf-8", "surrogateescape"))
            # Closing it lets the cell's init exit (init.c): after the snapshots, or when
            # the run ends any other way.
            release = Once(chan.release)
            result_chunks: list[bytes] = []
            readers = [
                PipeReader(loop, chan.stdout, on_stdout),
                PipeReader(loop, chan.stderr, on_stderr),
                ResultReader(loop, chan.result, result_chunks.append),
            ]
            if key is not None:   # the helper supervises it from now on (told while it runs)
                loop.call_soon(self._adopt, cid, key)
            if self.pool.ahead(plan, profile):   # cells queue: the one after this one's
                loop.call_soon(self._prepare, plan, profile)
            finished = loop.create_future()
            done.add_done_callback(lambda f: forward(f, finished))
            reported = asyncio.ensure_future(collect(
                readers, result_chunks, release, plan, run, None if wait_exit else finished,
                bounds, upper, self.explain))
            exited = await supervise(self.send, cid, finished, timeout, interrupt, grace,
                                     run)
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
        self.pool.ended_cell(plan, profile, run.error is None)
        loop.call_soon(self._prepare_next)
        return run

    def _adopt(self, cid: int, key: int) -> None:
        with contextlib.suppress(SandboxError):   # a dead helper: the cell says so (done)
            self.send({"op": "adopt", "id": cid, "key": key})


def _how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _package_path() -> str:
    """Make the helper import this very copy of the package (installed or a checkout)."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    extra = os.environ.get("PYTHONPATH")
    return here + (os.pathsep + extra if extra else "")
