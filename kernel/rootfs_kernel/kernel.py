"""Jupyter glue: messages in, a Session (session.py) below, messages out. Keep it small."""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextvars
import os
import signal
import uuid

import comm
import ipykernel.ipkernel  # noqa: F401 - installs ipykernel's comm implementation
from ipykernel._version import kernel_protocol_version  # private: test_ipykernel_parts.py
from ipykernel.kernelbase import Kernel
from traitlets import Bool, Float, Integer, TraitType, Unicode, Union

from . import __version__, cell, completion, settings
from .frames import Frame, FrameReader
from .frames import bundle as display_frame
from .images import ImageError, ImageStore
from .output import Budget
from .session import Session


def _trait(name: str) -> TraitType:
    """A kernel-wide setting (settings.py) as a traitlet: --RootfsKernel.NAME=VALUE. Text
    is taken too where a flag or a number goes, so that settings.py, not traitlets,
    says what is wrong with a value, in a cell instead of a kernel that does not start."""
    s = settings.BY_NAME[name]
    words = f"{s.doc}. Also ${s.env}."
    if s.kind == "text":
        return Unicode(s.default, config=True, help=words)
    typed = Bool() if s.kind == "flag" else Integer()
    return Union([typed, Unicode()], default_value=s.parse(s.default), config=True,
                 help=words)


class RootfsKernel(Kernel):
    implementation = "rootfs_kernel"
    implementation_version = __version__
    language = "shell"
    language_version = "posix"
    language_info = {
        "name": "shell",
        "version": "posix",
        "mimetype": "text/x-sh",
        "file_extension": ".sh",
        "pygments_lexer": "rootfs",   # lexer.py: header lines, then sh or C
        "codemirror_mode": "shell",
    }
    banner = ("rootfs-kernel: every cell is a shell script in a fresh container "
              "(mount + PID namespaces, overlay rootfs, pivot_root). %help lists the header lines.")
    help_links = [{"text": "rootfs-kernel", "url": "https://pypi.org/project/rootfs-kernel/"}]
    # ipykernel sleeps 0.5 ms before every execute_reply so that output its IOPub thread
    # still holds goes out first. Here every stream message of a cell is sent, on the
    # main thread (app.py), before do_execute returns: nothing is left to wait for.
    # (A private part of ipykernel: tests/unit/test_ipykernel_parts.py.)
    _execute_sleep = Float(0.0)

    default_limits = _trait("default_limits")
    prepare_next = _trait("prepare_next")
    id_range = _trait("id_range")
    host_access = _trait("host_access")
    store_size = _trait("store_size")
    max_live_views = _trait("max_live_views")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._live_views: collections.deque = collections.deque()
        # Each setting as given in the argv or a config file, else its environment
        # variable, else its default (settings.py). A wrong one does not stop the kernel
        # (a front-end restarts a kernel that dies at start, again and again): every
        # cell says what is wrong instead.
        section = self.config["RootfsKernel"] if "RootfsKernel" in self.config else {}
        self.settings, self.wrong_settings = settings.resolve(
            {name: getattr(self, name) for name in settings.BY_NAME if name in section},
            os.environ, lambda s: f"--RootfsKernel.{s.name}")
        for line in self.wrong_settings:
            self.log.error("wrong setting: %s", line)
        # `cells`, not `session`: Kernel.session is the wire protocol's.
        self.cells = Session(default_limits=self.settings["default_limits"],
                             prepare=self.settings["prepare_next"],
                             ids=self.settings["id_range"],
                             host_access=self.settings["host_access"],
                             store=ImageStore(size=self.settings["store_size"]))
        self._interrupt: asyncio.Event | None = None
        self._told_no_dot = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._setup_comms()

    @property
    def kernel_info(self) -> dict:
        # ipykernel's own imports its debugger (debugpy, a third of a second: most of the
        # kernel's start-up) to see whether to offer debugging, which a shell kernel does not.
        return {"protocol_version": kernel_protocol_version,
                "implementation": self.implementation,
                "implementation_version": self.implementation_version,
                "language_info": self.language_info, "banner": self.banner,
                "help_links": self.help_links, "supported_features": []}

    def _setup_comms(self) -> None:
        # The plain Kernel has no comm handlers; widgets need them (and the target).
        self.comm_manager = comm.get_comm_manager()
        for msg_type in ("comm_msg", "comm_close"):
            self.shell_handlers[msg_type] = getattr(self.comm_manager, msg_type)
        self.shell_handlers["comm_open"] = self._comm_open

    def _comm_open(self, stream, ident, msg) -> None:
        # ipywidgets' targets are registered when a front-end first opens one (JupyterLab
        # does to restore a notebook's widgets): importing ipywidgets at start-up would add
        # a tenth of a second to it. The kernel's own widgets open their comms themselves.
        if msg["content"].get("target_name", "").startswith("jupyter.widget"):
            from ipywidgets import register_comm_target

            register_comm_target()
        self.comm_manager.comm_open(stream, ident, msg)

    # -- interrupts: SIGINT reaches us (signal mode); the cell is in its own session ----------
    def pre_handler_hook(self):
        self.saved_sigint_handler = signal.signal(signal.SIGINT, self._on_sigint)

    def post_handler_hook(self):
        signal.signal(signal.SIGINT, self.saved_sigint_handler)

    def _on_sigint(self, _signum, _frame):
        if self._interrupt is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._interrupt.set)

    # -- execution ------------------------------------------------------------------------
    async def do_execute(self, code, silent, store_history=True, user_expressions=None,
                         allow_stdin=False, *, cell_meta=None, cell_id=None):
        # Every request gets a reply, whatever went wrong below: a front-end waits for it.
        try:
            return await self._execute(code, silent)
        except Exception as err:  # noqa: BLE001 - reported to the user, the kernel goes on
            self.log.exception("a cell failed inside the kernel")
            return self._fail("InternalError", (
                f"the kernel failed while running this cell ({type(err).__name__}: {err}). "
                "The kernel is still running and the next cell starts afresh; this is a "
                "bug: please report it with the cell"), silent)

    async def _execute(self, code: str, silent: bool) -> dict:
        if self.wrong_settings:
            return self._fail("SettingError", settings.refusal(self.wrong_settings), silent)
        self._loop = asyncio.get_running_loop()
        self._interrupt = asyncio.Event()
        # What the notebook is sent of the cell's output: both streams share one budget.
        budget = Budget(self.cells.output_budget(code))
        out = _Stream(self, "stdout", silent, budget, frames=True)   # `display` writes there
        err = _Stream(self, "stderr", silent, budget)
        out.other, err.other = err, out

        def notices(text: bytes) -> None:   # the kernel's own words, never cut
            out.flush(final=False)
            err.flush(final=False)
            self._stream("stderr", text.decode(errors="replace"), silent)

        bar = _ProgressBar(self, self._loop, silent)
        try:
            outcome = await self.cells.execute(code, out.write, err.write,
                                               interrupt=self._interrupt, progress=bar.update,
                                               notices=notices)
        finally:
            self._interrupt = None
            out.flush()
            err.flush()
        if budget.cut:
            self._stream("stderr", f"rootfs-kernel: {budget.summary()}\n", silent)
        bar.finish()
        if outcome.help and not silent:
            # Markdown wraps between words in any front-end; the plain text stays as is.
            self.send_response(self.iopub_socket, "display_data", {
                "data": {"text/markdown": _help_markdown(outcome.help),
                         "text/plain": outcome.help}, "metadata": {}, "transient": {}})
        if not silent and outcome.payloads:
            from .views import view_bundle
            from .views.tree import NO_DOT

            for payload in outcome.payloads:
                if "error" in payload:
                    self._stream("stderr", f"rootfs-kernel: {payload['error']}\n", silent)
                    continue
                if payload.get("kind") == "tree" and payload.get("svg") is None \
                        and not self._told_no_dot:
                    self._told_no_dot = True  # said once; each tree's note says it too
                    self._stream("stderr", f"rootfs-kernel: {NO_DOT}\n", silent)
                data, metadata = view_bundle(payload, keep=self._keep_view)
                self.send_response(self.iopub_socket, "display_data",
                                   {"data": data, "metadata": metadata, "transient": {}})
        if outcome.error:
            return self._fail(outcome.error.name, outcome.error.message, silent)
        return {"status": "ok", "execution_count": self.execution_count, "payload": [],
                "user_expressions": {}}

    def _keep_view(self, widget) -> None:
        self._live_views.append(widget)
        while len(self._live_views) > self.settings["max_live_views"]:
            self._live_views.popleft().close_all()

    def _fail(self, ename: str, evalue: str, silent: bool) -> dict:
        content = {"ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}
        if not silent:
            self.send_response(self.iopub_socket, "error", content)
        return {"status": "error", "execution_count": self.execution_count, **content}

    def _stream(self, name: str, text: str, silent: bool) -> None:
        if not silent and text:
            self.send_response(self.iopub_socket, "stream", {"name": name, "text": text})

    def _display(self, frame: Frame, silent: bool) -> None:
        """What a cell's `display` command sent (frames.py)."""
        if not silent:
            self.send_response(self.iopub_socket, "display_data",
                               {"data": display_frame(frame), "metadata": {}, "transient": {}})

    # -- completion ---------------------------------------------------------------------------
    async def do_complete(self, code, cursor_pos):
        return completion.complete(code, cursor_pos, *self._layers_for(code))

    async def do_is_complete(self, code):
        return completion.is_complete(code, host_access=self.settings["host_access"])

    def _layers_for(self, code: str) -> tuple[list[str], str]:
        """What to complete against: the cell's image layers (top first) and its working
        directory, or the host's / and the kernel's own for the host-access lines. An
        image not built yet offers no names: a completion request never builds one (a
        build takes seconds on the loop that answers every other request)."""
        try:
            spec = cell.parse(code, host_access=self.settings["host_access"])
        except cell.HeaderError:
            spec = cell.CellSpec(script="")
        if spec.host or spec.root == "none":   # host-access lines: the host's names
            return ["/"], os.getcwd()
        try:
            image = self.cells.store.load(spec.image)
        except ImageError:
            return [], "/"
        return [str(p) for p in reversed(image.layers)], image.workdir or "/"

    async def do_shutdown(self, restart):
        self.cells.close()
        return {"status": "ok", "restart": restart}


class _ProgressBar:
    """An image build's progress: a widget while it runs, then one static line.

    Sent with a display_id, and replaced through update_display_data by its last message
    ("image busybox ready: 2.0 MiB, 1 layer, 1.1 s") when the cell's work ends, so a saved
    notebook holds that line, never a widget whose model is gone. Builders report from a
    worker thread; messages are sent from the kernel's event loop only.
    """

    def __init__(self, kernel: RootfsKernel, loop: asyncio.AbstractEventLoop, silent: bool):
        self.kernel, self.loop, self.silent = kernel, loop, silent
        # ipykernel keeps the parent message in a context variable: messages sent from a
        # loop callback must run in the cell's context to reach the right cell.
        self.context = contextvars.copy_context()
        self.display_id = uuid.uuid4().hex
        self.box = None
        self.bar = None
        self.label = None
        self.message = ""

    def update(self, fraction: float | None, message: str) -> None:
        if not self.silent:
            self.loop.call_soon_threadsafe(self._show, fraction, message, context=self.context)

    def _send(self, msg_type: str, data: dict) -> None:
        self.kernel.send_response(self.kernel.iopub_socket, msg_type, {
            "data": data, "metadata": {}, "transient": {"display_id": self.display_id}})

    def _show(self, fraction: float | None, message: str) -> None:
        import ipywidgets as w

        from .views import widget_view

        self.message = message
        if self.bar is None:
            self.bar = w.FloatProgress(min=0.0, max=1.0, description="image")
            self.label = w.Label()
            self.box = w.HBox([self.bar, self.label])
            self._send("display_data", {"text/plain": message, **widget_view(self.box)})
        if fraction is not None:
            self.bar.value = max(0.0, min(1.0, fraction))
        self.label.value = message

    def finish(self) -> None:
        """Replace the widget by its last message, as text, and close its models.

        Called when the cell's work is over: a worker thread's progress was queued on the
        loop before the thread's result, so every message has been shown by then."""
        if self.box is None:
            return
        self._send("update_display_data", {"text/plain": self.message})
        for widget in (self.bar, self.label, self.box):
            widget.close()
        self.box = self.bar = self.label = None


def _help_markdown(text: str) -> str:
    """cell.help_text() (a title, then `usage  summary` lines) as a Markdown list."""
    title, *lines = text.splitlines()
    items = []
    for line in lines:
        usage, _, summary = line.strip().partition("  ")
        items.append(f"- `{usage.strip()}` — {summary.strip()}")
    return f"**{title}**\n\n" + "\n".join(items)


class _Stream:
    """Decodes one output pipe and publishes it as stream messages, coalesced.

    Pipes deliver output in small pieces; one message per piece would flood IOPub (and
    a front-end that lags behind loses messages past ZeroMQ's high-water mark). Output
    is held for at most FLUSH_SECONDS or FLUSH_BYTES, so memory stays bounded too, and
    one message is never larger than output.MAX_MESSAGE. What passes the cell's output
    budget is counted, not sent.
    """

    FLUSH_SECONDS = 0.05
    FLUSH_BYTES = 1 << 20

    def __init__(self, kernel: RootfsKernel, name: str, silent: bool,
                 budget: Budget | None = None, frames: bool = False):
        self.kernel, self.name, self.silent = kernel, name, silent
        self.budget = budget or Budget()
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending: list[bytes] = []
        self.size = 0
        self.timer: asyncio.TimerHandle | None = None
        self.other: _Stream | None = None   # the sibling stream, flushed first to keep order
        # stdout: the `display` command's frames become display_data, in their place.
        self.frames = FrameReader() if frames else None

    def write(self, data: bytes) -> None:
        if self.frames is None:
            self._add(data)
            return
        for piece in self.frames.feed(data):
            self._take(piece)

    def _take(self, piece: bytes | Frame) -> None:
        if isinstance(piece, bytes):
            self._add(piece)
        elif piece.error is not None:   # why a frame was not shown: on stderr, in its place
            (self.other or self)._add(f"rootfs-kernel: {piece.error}\n".encode())
        elif not self.budget.display(len(piece.data)):
            self._cut()
        else:
            if self.other is not None and self.other.pending:
                self.other.flush(final=False)
            self.flush(final=False)
            self.kernel._display(piece, self.silent)

    def _cut(self) -> None:
        """The budget is spent: say so where the output stops, once."""
        if self.budget.cut and not self.budget.told:
            self.budget.told = True
            if self.other is not None:
                self.other.flush(final=False)
            self.flush(final=False)
            self.kernel._stream("stderr", f"rootfs-kernel: {self.budget.reached()}\n",
                                self.silent)

    def _add(self, data: bytes) -> None:
        room = self.budget.text(len(data))
        if room:
            if self.other is not None and self.other.pending:
                self.other.flush(final=False)
            self.pending.append(data[:room] if room < len(data) else data)
            self.size += room
            if self.size >= self.FLUSH_BYTES:
                self.flush(final=False)
            elif self.timer is None:
                self.timer = asyncio.get_running_loop().call_later(
                    self.FLUSH_SECONDS, self.flush, False)
        if room < len(data):
            self._cut()

    def flush(self, final: bool = True) -> None:
        if final and self.frames is not None:
            for piece in self.frames.close():   # held bytes are text after all
                self._take(piece)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        data, self.pending, self.size = b"".join(self.pending), [], 0
        self.kernel._stream(self.name, self.decoder.decode(data, final=final), self.silent)
