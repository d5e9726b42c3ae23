"""The plain Python API: `rootfs_kernel.run(script, ...) -> Result`, and `Sandbox`.

The keyword arguments become header lines of the cell language (cell.py) put above the
script, so the kernel's own parser validates them; a Session (session.py) then runs the
cell exactly as the rootfs kernel would. Header lines at the top of `script` are read
too (after the generated ones, so they win where a later line overrides).

Each Sandbox owns one Session living on a private event loop in a background thread:
the sandbox helper dies with the thread that started it (PR_SET_PDEATHSIG), and the
caller may be plain Python or sit inside a running event loop (IPython, ipykernel).
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import concurrent.futures
import queue
import re
import shlex
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from . import cell
from .cell import HeaderError
from .images import ImageError
from .inspect import listing as listing_info
from .inspect import mounts as mount_info
from .inspect import ns as ns_info
from .sandbox.client import SandboxError
from .session import GRACE_SECONDS, Outcome, Session

# After an interrupt, how long run() waits for the container to be gone.
STOP_SECONDS = GRACE_SECONDS + 10.0


class ContainerError(RuntimeError):
    """The cell's container failed: its setup, a limit, its exit status (check=True)."""

    def __init__(self, kind: str, message: str, result: Result | None = None):
        super().__init__(message)
        self.kind = kind                 # the kernel's name: ExitStatus, LimitExceeded, ...
        self.result = result
        self.status = None if result is None else result.status


class CellTimeout(ContainerError, TimeoutError):
    """The cell ran past its timeout and its container was killed (raised like
    subprocess.TimeoutExpired, whatever `check` says). `.result` has the output so far."""


# -- arguments -> header lines ------------------------------------------------------------------


def _words(item: object, what: str, maxsplit: int = -1) -> list[str]:
    """'tmpfs:/tmp:size=1m', 'tmpfs /tmp size=1m', ('tmpfs', '/tmp') -> words."""
    if isinstance(item, str):
        if any(c.isspace() for c in item):
            return shlex.split(item)
        return item.split(":", maxsplit)
    if isinstance(item, tuple | list):
        return [str(w) for w in item]
    raise TypeError(f"{what}: expected a string or a tuple, got {item!r}")


def _mount_words(item: object) -> list[str]:
    if isinstance(item, cell.Mount):
        return [item.fstype, item.target] + ([item.options] if item.options else [])
    return _words(item, "mounts", 2)


def _bind_words(item: object) -> list[str]:
    if isinstance(item, cell.Bind):
        return [item.source, item.target] + (["ro"] if item.readonly else [])
    return _words(item, "binds")


def _show_words(item: object) -> list[str]:
    if isinstance(item, cell.Show):
        return [item.kind] + [p for p in (item.path, item.host_path) if p]
    return _words(item, "show")


def header_lines(*, image: str | None = "minimal", root: str | None = "pivot",
                 mounts: Iterable = (), binds: Iterable = (), show: Iterable = (),
                 keep: bool = False, timeout: float | None = None,
                 env: Mapping[str, str] | None = None,
                 limits: Mapping[str, object] | str | None = None,
                 propagation: str | None = None,
                 unshare: str | Iterable[str] | None = None) -> list[tuple[str, str]]:
    """(header line, the argument it came from) for each option that was given."""
    out: list[tuple[str, str]] = []

    def add(magic: str, words: list[str], origin: str) -> None:
        out.append((f"%{magic} " + shlex.join(words) if words else f"%{magic}", origin))

    if image not in (None, "minimal"):
        add("image", [image], f"image={image!r}")
    if root not in (None, "pivot"):
        add("root", [root], f"root={root!r}")
    if propagation is not None:
        add("propagation", [propagation], f"propagation={propagation!r}")
    if unshare is not None:
        names = unshare if isinstance(unshare, str) else ",".join(unshare)
        add("unshare", [names], f"unshare={unshare!r}")
    for i, item in enumerate(mounts):
        add("mount", _mount_words(item), f"mounts[{i}]={item!r}")
    for i, item in enumerate(binds):
        add("bind", _bind_words(item), f"binds[{i}]={item!r}")
    for i, item in enumerate(show):
        add("show", _show_words(item), f"show[{i}]={item!r}")
    if keep:
        add("keep", [], "keep=True")
    if timeout is not None:
        add("timeout", [f"{timeout:g}" if isinstance(timeout, float) else str(timeout)],
            f"timeout={timeout!r}")
    for name, value in (env or {}).items():
        add("env", [f"{name}={value}"], f"env[{name!r}]")
    if limits:
        words = limits.split() if isinstance(limits, str) else \
            [f"{k}={v}" for k, v in limits.items()]
        add("limit", words, f"limits={limits!r}")
    for line, origin in out:
        if "\n" in line or "\r" in line:
            err = HeaderError(0, line, "a value cannot contain a line break")
            err.args = (f"{origin}: a header value cannot contain a line break",)
            raise err
    return out


@dataclass
class _Code:
    """The cell text, and where each of its lines came from (argument or script line)."""

    text: str
    origins: list[str | int]     # per line: an argument's description, or a script lineno

    @classmethod
    def build(cls, script: str, lines: list[tuple[str, str]]) -> _Code:
        body = script.split("\n")
        first: list[str] = []
        if lines and body and body[0].strip().startswith("%%"):
            first, body = body[:1], body[1:]   # %%host / %%c must stay the first line
        origins: list[str | int] = [1] * len(first) + [o for _, o in lines]
        origins += list(range(len(first) + 1, len(first) + len(body) + 1))
        return cls("\n".join(first + [ln for ln, _ in lines] + body), origins)

    def relabel(self, err: HeaderError) -> HeaderError:
        """The parser's error, naming the argument or the script's own line number."""
        origin = self.origins[err.lineno - 1] if 0 < err.lineno <= len(self.origins) else 0
        if isinstance(origin, int):
            return HeaderError(origin or err.lineno, err.line, err.problem, err.usage)
        new = HeaderError(0, err.line, err.problem, err.usage)
        hint = f"\n  expected: {err.usage}" if err.usage else ""
        new.args = (f"{origin}: `{err.line.strip()}`: {err.problem}{hint}",)
        return new

    def origin_of(self, lineno: int) -> str | int:
        return self.origins[lineno - 1] if 0 < lineno <= len(self.origins) else lineno


_HEADER_MESSAGE = re.compile(r"line (\d+): `(.*?)`: (.*)", re.DOTALL)


# -- results ------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """One `%show` view as Python objects.

    cell / host: the parsed sides (mounts: list[inspect.Mount]; ls: listing snapshots;
    ns: {kind: id}; changes: the overlay scan, host None). rows: the diff rows
    (inspect.MountRow, listing row dicts, inspect.NsRow, change dicts). payload: what
    the views render.
    """

    kind: str
    cell: object
    host: object
    rows: list
    payload: dict = field(repr=False)

    def differences(self) -> list:
        """Rows that are not the same on both sides (every change for `changes`)."""
        return [r for r in self.rows if _status(r) != "same"]

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        from .views import display_bundle

        return display_bundle(self.payload, widget=False)[0]


def _status(row: object) -> str | None:
    return row.get("status") if isinstance(row, dict) else getattr(row, "status", None)


@dataclass(repr=False)
class Result:
    """What one run did. `ok` means exit status 0 and no failure."""

    stdout: str
    stderr: str
    status: int | None
    signal: int | None = None
    error: tuple[str, str] | None = None      # (the kernel's error name, message)
    timed_out: bool = False
    interrupted: bool = False
    limit: str | None = None
    mounts: Comparison | None = None
    listings: dict[str, Comparison] = field(default_factory=dict)
    changes: Comparison | None = None
    ns: Comparison | None = None
    views: list[dict] = field(default_factory=list)   # payloads, in %show order
    notes: list[str] = field(default_factory=list)    # views that could not be taken

    @property
    def ok(self) -> bool:
        return self.status == 0 and self.error is None

    def __repr__(self) -> str:
        out = self.stdout if len(self.stdout) <= 60 else self.stdout[:57] + "..."
        kinds = [v.get("kind", "error") for v in self.views]
        return f"Result(status={self.status}, ok={self.ok}, stdout={out!r}, views={kinds})"

    def display(self, widget: bool | None = None) -> None:
        """Show each view as the rootfs kernel does (widget + HTML + text + compare JSON)."""
        from IPython.display import display

        from .views import display_bundle

        widget = _in_kernel() if widget is None else widget
        for payload in self.views:
            if "error" in payload:
                print(f"rootfs-kernel: {payload['error']}", file=sys.stderr)
                continue
            data, metadata = display_bundle(payload, widget=widget)
            display(data, metadata=metadata, raw=True)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        from html import escape

        from .views import render_html, render_text

        views = [v for v in self.views if "error" not in v]
        head = f"status {self.status}" + ("" if self.error is None else
                                          f" ({self.error[0]}: {self.error[1]})")
        text = [f"rootfs_kernel.Result: {head}"]
        html = [f"<p><b>rootfs_kernel.Result</b>: {escape(head)}</p>"]
        for name, value in (("stdout", self.stdout), ("stderr", self.stderr)):
            if value:
                text.append(f"{name}:\n{value.rstrip()}")
                html.append(f"<p>{name}:</p><pre>{escape(value)}</pre>")
        text += [render_text(v) for v in views]
        html += [render_html(v) for v in views]
        data = {"text/plain": "\n".join(text), "text/html": "\n".join(html)}
        if views and _in_kernel():
            import ipywidgets as w

            from .views.widget import build_widget

            box = w.VBox([w.HTML("\n".join(html[:3]))] + [build_widget(v) for v in views])
            data["application/vnd.jupyter.widget-view+json"] = {
                "model_id": box.model_id, "version_major": 2, "version_minor": 0}
        return data


def _in_kernel() -> bool:
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _comparison(snap: dict, payload: dict) -> Comparison:
    kind, data = snap["kind"], snap["data"]
    if kind == "mounts":
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            host = mount_info.parse_mountinfo(f.read())
        ours = mount_info.parse_mountinfo(data)
        return Comparison(kind, ours, host, mount_info.diff_mounts(ours, host), payload)
    if kind == "ls":
        host = listing_info.snapshot(snap.get("host_path") or snap["path"])
        return Comparison(kind, data, host, listing_info.diff_listings(data, host)["rows"],
                          payload)
    if kind == "ns":
        host = ns_info.read_namespaces()
        return Comparison(kind, data, host, ns_info.diff_ns(data, host), payload)
    return Comparison(kind, data, None, list(data.get("changes", [])), payload)


def _result(outcome: Outcome, stdout: bytes, stderr: bytes) -> Result:
    run = outcome.run
    res = Result(stdout.decode(errors="replace"), stderr.decode(errors="replace"),
                 status=run.status, signal=run.signal, error=outcome.error,
                 timed_out=run.timed_out, interrupted=run.interrupted, limit=run.limit,
                 views=list(outcome.payloads))
    for snap, payload in zip(run.snapshots, outcome.payloads, strict=False):
        if "error" in snap or "error" in payload:
            res.notes.append(payload.get("error") or f"%show {snap['kind']}: {snap['error']}")
            continue
        comp = _comparison(snap, payload)
        if comp.kind == "ls":
            res.listings[snap["path"]] = comp
        else:
            setattr(res, comp.kind, comp)
    return res


# -- running ------------------------------------------------------------------------------------


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
            stream = getattr(sys, name)
            stream.write(self.decoders[name].decode(data, final=final))
            stream.flush()


class Sandbox:
    """A Session of its own: `%keep` and `%env` carry from one run to the next.

    with rootfs_kernel.Sandbox() as sb:
        sb.run("echo hi > /f", keep=True)
        print(sb.run("cat /f").stdout)
    """

    def __init__(self, *, default_limits: str = "") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="rootfs-kernel-sandbox")
        self._thread.start()
        self._lock = asyncio.Lock()
        self.closed = False
        try:
            self.session: Session = self._call(self._new_session(default_limits)).result()
        except BaseException:
            self._stop_loop()
            raise

    @staticmethod
    async def _new_session(default_limits: str) -> Session:
        return Session(default_limits=default_limits)   # starts the helper on the loop thread

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


def _prepare(script: str, options: dict) -> tuple[_Code, list[str]]:
    code = _Code.build(script, header_lines(**options))
    try:
        cell.parse(code.text)   # the kernel's parser validates the arguments
    except HeaderError as err:
        raise code.relabel(err) from None
    return code, list((options.get("env") or {}).keys())


def _finish(code: _Code, outcome: Outcome, out: _Output, check: bool) -> Result:
    if outcome.run is None:   # nothing ran: an error, or a cell of only %env / %help
        _raise_setup(code, outcome)
        text = out.data("stdout").decode(errors="replace")
        return Result(text + (outcome.help + "\n" if outcome.help else ""),
                      out.data("stderr").decode(errors="replace"), status=0)
    result = _result(outcome, out.data("stdout"), out.data("stderr"))
    if outcome.error is None:
        return result
    name, message = outcome.error
    if name == "Timeout":
        raise CellTimeout(name, message, result)
    if name == "ContainerError" or check:
        raise ContainerError(name, message, result)
    return result


def _raise_setup(code: _Code, outcome: Outcome) -> None:
    """Errors before the container ran: bad options, images, the helper, gcc."""
    if outcome.error is None:
        return
    name, message = outcome.error
    if name == "HeaderError":
        m = _HEADER_MESSAGE.fullmatch(message)
        if m is None:
            raise HeaderError(0, "", message)
        lineno, line, problem = int(m.group(1)), m.group(2), m.group(3)
        origin = code.origin_of(lineno)
        if isinstance(origin, str) and origin.startswith("image="):
            raise ImageError(f"{origin}: {problem}")
        raise code.relabel(HeaderError(lineno, line, problem))
    if name == "ImageError":
        raise ImageError(message)
    if name == "SandboxError":
        raise SandboxError(message)
    raise ContainerError(name, message)


# -- the module-level default sandbox ------------------------------------------------------------

_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> Sandbox:
    """The Sandbox behind rootfs_kernel.run(), started on first use, closed at exit."""
    global _default
    with _default_lock:
        if _default is None or _default.closed:
            if _default is None:
                atexit.register(close)
            _default = Sandbox()
        return _default


def close() -> None:
    """Close the default sandbox (its helper and any %keep layer)."""
    global _default
    with _default_lock:
        sandbox, _default = _default, None
    if sandbox is not None:
        sandbox.close()


def run(script: str, image: str = "minimal", root: str = "pivot", mounts: Iterable = (),
        binds: Iterable = (), show: Iterable = (), keep: bool = False,
        timeout: float | None = None, env: Mapping[str, str] | None = None,
        limits: Mapping[str, object] | str | None = None, propagation: str | None = None,
        unshare: str | Iterable[str] | None = None, *, check: bool = False,
        echo: bool = False) -> Result:
    """Run the shell `script` in a fresh container, as a rootfs kernel cell.

    mounts: "tmpfs:/tmp[:size=10m]" or ("tmpfs", "/tmp", "size=10m") -> %mount
    binds:  "/host/dir:/in/cell[:ro]" or (src, target[, "ro"])        -> %bind
    show:   "mounts", "ns", "changes", "ls:/etc[:/host/etc]"           -> %show
    keep:   carry this run's filesystem changes into the next run      -> %keep
    timeout (s), env {NAME: VALUE} (this run only), limits {"pids": 64, "memory": "64m"},
    propagation "private|slave|shared", unshare "net,uts" or a list.

    Raises HeaderError (a bad option), ImageError, CellTimeout, SandboxError, and
    ContainerError when the container could not be set up, or with check=True when
    the script exits non-zero or hits a limit. KeyboardInterrupt stops the container.
    """
    options = dict(image=image, root=root, mounts=mounts, binds=binds, show=show, keep=keep,
                   timeout=timeout, env=env, limits=limits, propagation=propagation,
                   unshare=unshare)
    return default_sandbox().run(script, check=check, echo=echo, **options)


async def arun(script: str, *, check: bool = False, **options) -> Result:
    """`await rootfs_kernel.arun(...)`: run() for coroutines, on the default sandbox."""
    return await default_sandbox().arun(script, check=check, **options)


__all__ = [
    "CellTimeout",
    "Comparison",
    "ContainerError",
    "HeaderError",
    "ImageError",
    "Result",
    "Sandbox",
    "SandboxError",
    "arun",
    "close",
    "default_sandbox",
    "run",
]
