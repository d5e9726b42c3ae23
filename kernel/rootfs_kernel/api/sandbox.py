"""Sandbox: a Session on a private event loop in a background thread.

The Session lives on a private event loop in a thread that lasts as long as the Sandbox
(its helper ends when the Session's socket closes), so the caller may be plain Python or
sit inside a running event loop (IPython, ipykernel). Output is relayed to
the caller's thread, which also turns KeyboardInterrupt into a stop of the container.
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import os
import queue
import sys
import threading
import time

from .. import cell, settings
from ..cell import HeaderError
from ..images import ImageError, ImageStore
from ..sandbox.client import SandboxError
from ..session import GRACE_SECONDS, Outcome, Session
from .headers import Code, header_lines
from .result import CellTimeout, ContainerError, Result, build_result

# After an interrupt, how long run() waits for the container to be gone.
STOP_SECONDS = GRACE_SECONDS + 10.0


class _Output:
    """Sinks for the Session (called on the loop thread); the caller's thread reads them."""

    def __init__(self) -> None:
        self.chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        self.queue: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()

    def sink(self, name: str):
        def write(data: bytes) -> None:
            self.chunks[name].append(data)
            self.queue.put((name, data))
        return write

    def data(self, name: str) -> bytes:
        return b"".join(self.chunks[name])


class _Echo:
    """Writes the output to sys.stdout / sys.stderr from the caller's thread."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.decoders = {n: codecs.getincrementaldecoder("utf-8")(errors="replace")
                         for n in ("stdout", "stderr")}

    def write(self, name: str, data: bytes, final: bool = False) -> None:
        if self.enabled:
            getattr(sys, name).write(self.decoders[name].decode(data, final=final))

    def flush(self) -> None:
        """After a burst: one flush, not one per pipe chunk (each is an IOPub message)."""
        if self.enabled:
            sys.stdout.flush()
            sys.stderr.flush()


class Sandbox:
    """A Session of its own: `%keep` and `%env` carry from one run to the next.

    with rootfs_kernel.Sandbox() as sb:
        sb.run("echo hi > /f", keep=True)
        print(sb.run("cat /f").stdout)

    Its keywords are the kernel's settings of the same names (README: Kernel-wide
    settings); one not given is read from its environment variable, else its default:
      default_limits  every run's bounds, e.g. "pids=512 memory=2g" ($ROOTFS_KERNEL_LIMITS,
                      default "pids=1024 disk=1g output=64m")
      prepare_next    make the next run's container while idle ($ROOTFS_KERNEL_PREPARE,
                      default "1")
      id_range        root mode: the host ids a run's root is, "FIRST:COUNT"
                      ($ROOTFS_KERNEL_ID_RANGE, default "1845493760:65536")
      store_size      the most the image store may hold, "20g" or "none"
                      ($ROOTFS_KERNEL_STORE_SIZE, default "10g")
    A wrong value raises SettingError (a ValueError) naming it.
    """

    def __init__(self, *, default_limits: str | None = None, prepare_next: bool | str | None = None,
                 id_range: str | None = None, store_size: str | None = None) -> None:
        given = {name: value for name, value in (
            ("default_limits", default_limits), ("prepare_next", prepare_next),
            ("id_range", id_range), ("store_size", store_size)) if value is not None}
        values, wrong = settings.resolve(given, os.environ, lambda s: f"Sandbox({s.name}=...)",
                                         api=True)
        if wrong:
            raise settings.SettingError("; ".join(wrong))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="rootfs-kernel-sandbox")
        self._thread.start()
        self._lock = asyncio.Lock()
        self.closed = False
        try:
            self.session: Session = self._call(self._new_session(values)).result()
        except BaseException:
            self._stop_loop()
            raise

    @staticmethod
    async def _new_session(values: dict) -> Session:
        # Started on the loop thread, as its helper's pipes are read there.
        return Session(default_limits=values["default_limits"], prepare=values["prepare_next"],
                       ids=values["id_range"], store=ImageStore(size=values["store_size"]))

    def _call(self, coro) -> concurrent.futures.Future:
        if self.closed:
            coro.close()
            raise SandboxError("this Sandbox is closed; make a new one")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            asyncio.run_coroutine_threadsafe(self._close_session(), self._loop).result(30)
        finally:
            self._stop_loop()

    async def _close_session(self) -> None:
        self.session.close()

    def _stop_loop(self) -> None:
        self.closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- running ---------------------------------------------------------------------------------
    def run(self, script: str, *, check: bool = False, echo: bool = False,
            **options) -> Result:
        """Run `script` in a fresh container; see rootfs_kernel.run for the options.

        echo=True writes the output to sys.stdout/sys.stderr while the cell runs.
        KeyboardInterrupt stops the container, waits for it to be gone, and re-raises.
        """
        code, env_names = _prepare(script, options)
        out, echo_ = _Output(), _Echo(echo)
        interrupt = asyncio.Event()
        future = self._call(self._execute(code.text, out, interrupt, env_names))
        try:
            self._pump(future, out, echo_, None)
        except KeyboardInterrupt:
            self._loop.call_soon_threadsafe(interrupt.set)
            self._pump(future, out, echo_, time.monotonic() + STOP_SECONDS, patient=True)
            raise
        self._drain(out, echo_, final=True)
        return _finish(code, future.result(), out, check)

    async def arun(self, script: str, *, check: bool = False, **options) -> Result:
        """run() for coroutines; cancelling it stops the container."""
        code, env_names = _prepare(script, options)
        out = _Output()
        interrupt = asyncio.Event()
        future = self._call(self._execute(code.text, out, interrupt, env_names))
        try:
            outcome = await asyncio.shield(asyncio.wrap_future(future))
        except asyncio.CancelledError:
            self._loop.call_soon_threadsafe(interrupt.set)
            await asyncio.wait([asyncio.wrap_future(future)], timeout=STOP_SECONDS)
            raise
        return _finish(code, outcome, out, check)

    async def _execute(self, code: str, out: _Output, interrupt: asyncio.Event,
                       env_names: list[str]) -> Outcome:
        async with self._lock:   # one cell at a time, as in the kernel
            saved = {n: self.session.user_env.get(n) for n in env_names}
            try:
                return await self.session.execute(code, out.sink("stdout"), out.sink("stderr"),
                                                   interrupt=interrupt)
            finally:
                # env= applies to this run only (a %env line in the script persists).
                for name, value in saved.items():
                    if value is None:
                        self.session.user_env.pop(name, None)
                    else:
                        self.session.user_env[name] = value

    def _pump(self, future: concurrent.futures.Future, out: _Output, echo: _Echo,
              deadline: float | None, patient: bool = False) -> None:
        """Relay output until the cell is done (or the deadline passes)."""
        while not future.done():
            if deadline is not None and time.monotonic() > deadline:
                return
            try:
                name, data = out.queue.get(timeout=0.05)
                echo.write(name, data)
                if out.queue.empty():
                    echo.flush()
            except queue.Empty:
                pass
            except KeyboardInterrupt:
                if not patient:
                    raise
        self._drain(out, echo)

    @staticmethod
    def _drain(out: _Output, echo: _Echo, final: bool = False) -> None:
        while True:
            try:
                name, data = out.queue.get_nowait()
            except queue.Empty:
                break
            echo.write(name, data)
        if final:
            for name in ("stdout", "stderr"):
                echo.write(name, b"", final=True)
        echo.flush()


def _prepare(script: str, options: dict) -> tuple[Code, list[str]]:
    code = Code.build(script, header_lines(**options))
    try:
        cell.parse(code.text)   # the kernel's parser validates the arguments
    except HeaderError as err:
        raise code.relabel(err) from None
    return code, list((options.get("env") or {}).keys())


def _finish(code: Code, outcome: Outcome, out: _Output, check: bool) -> Result:
    if outcome.run is None:   # nothing ran: an error, or a cell of only %env / %help
        _raise_setup(code, outcome)
        text = out.data("stdout").decode(errors="replace")
        return Result(text + (outcome.help + "\n" if outcome.help else ""),
                      out.data("stderr").decode(errors="replace"), status=0)
    result = build_result(outcome, out.data("stdout"), out.data("stderr"))
    failure = outcome.error
    if failure is None:
        return result
    if failure.name == "Timeout":
        raise CellTimeout(failure.name, failure.message, result)
    if failure.name == "ContainerError" or check:
        raise ContainerError(failure.name, failure.message, result)
    return result


def _raise_setup(code: Code, outcome: Outcome) -> None:
    """Errors before the container ran: bad options, images, the helper, gcc."""
    failure = outcome.error
    if failure is None:
        return
    err = failure.exception
    if isinstance(err, HeaderError):
        origin = code.origin_of(err.lineno)
        if isinstance(origin, str) and origin.startswith("image="):
            raise ImageError(f"{origin}: {err.problem}")
        raise code.relabel(err)
    if err is not None:   # ImageError, SandboxError: as the session caught them
        raise err
    raise ContainerError(failure.name, failure.message)
