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
from ipykernel._version import kernel_protocol_version
from ipykernel.kernelbase import Kernel
from traitlets import Bool, Float, Integer, Unicode

from . import __version__, cell, completion
from .display import Frame, FrameReader
from .display import bundle as display_frame
from .ids import IdRange
from .images import ImageError, ImageStore
from .output import Budget
from .session import Session


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
        "pygments_lexer": "bash",
        "codemirror_mode": "shell",
    }
    banner = ("rootfs-kernel: every cell is a shell script in a fresh container "
              "(mount + PID namespaces, overlay rootfs, pivot_root). %help lists the header lines.")
    help_links = [{"text": "rootfs-kernel", "url": "https://pypi.org/project/rootfs-kernel/"}]
    # ipykernel sleeps 0.5 ms before every execute_reply so that output its IOPub thread
    # still holds goes out first. Here every stream message of a cell is sent, on the
    # main thread (app.py), before do_execute returns: nothing is left to wait for.
    _execute_sleep = Float(0.0)

    default_limits = Unicode(
        os.environ.get("ROOTFS_KERNEL_LIMITS", ""), config=True,
        help="Limits for every cell, e.g. 'pids=1024 memory=2g cpu=1 output=64m' (a cell's "
             "%limit line overrides them; output: what the notebook is sent of a cell's "
             "output); also from $ROOTFS_KERNEL_LIMITS.")

    max_live_views = Integer(
        50, config=True,
        help="How many comparison widgets stay live. Each holds its whole comparison in "
             "the kernel; older ones are closed, their saved HTML (and the JupyterLab "
             "renderer's data) still show.")

    prepare_next = Bool(
        os.environ.get("ROOTFS_KERNEL_PREPARE", "1") != "0", config=True,
        help="Make the next cell's container while the kernel is idle (the same setup as "
             "the last cell's; thrown away when the host's mounts change). Off: every "
             "container is made when its cell comes. Also $ROOTFS_KERNEL_PREPARE=0.")

    id_range = Unicode(
        os.environ.get("ROOTFS_KERNEL_ID_RANGE", ""), config=True,
        help="Root mode: the host ids a cell's root and users are, FIRST:COUNT (default "
             f"{IdRange().first}:{IdRange().count}); a cell's root is never the host's root "
             "(README: What a cell can reach on the host). Also $ROOTFS_KERNEL_ID_RANGE.")
    host_access = Bool(
        os.environ.get("ROOTFS_KERNEL_HOST_ACCESS", "1").strip().lower()
        not in ("0", "false", "no", "off"), config=True,
        help="Allow the lines that reach the host (%%host, %root none, %bind, "
             "%propagation shared, %show ls). Off: a locked kernel for shared machines, which "
             "refuses them with a message; plain cells run unchanged. Also "
             "$ROOTFS_KERNEL_HOST_ACCESS=0, or the kernelspec of `rootfs-kernel install "
             "--locked`.")

    store_size = Unicode(
        os.environ.get("ROOTFS_KERNEL_STORE_SIZE", ""), config=True,
        help="The most the image store may hold (its layers as tar archives, each shared "
             "layer once), e.g. '20g', or 'none'; default 10g. A build, import or %export "
             "that would pass it fails and stores nothing. Also "
             "$ROOTFS_KERNEL_STORE_SIZE.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._live_views: collections.deque = collections.deque()
        # `cells`, not `session`: Kernel.session is the wire protocol's.
        self.cells = Session(default_limits=self.default_limits, prepare=self.prepare_next,
                             ids=IdRange.parse(self.id_range) if self.id_range else None,
                             host_access=self.host_access,
                             store=ImageStore(size=self.store_size or None))
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
            from .views import display_bundle
            from .views.tree import NO_DOT

            for payload in outcome.payloads:
                if "error" in payload:
                    self._stream("stderr", f"rootfs-kernel: {payload['error']}\n", silent)
                    continue
                if payload.get("kind") == "tree" and payload.get("svg") is None \
                        and not self._told_no_dot:
                    self._told_no_dot = True  # said once; each tree's note says it too
                    self._stream("stderr", f"rootfs-kernel: {NO_DOT}\n", silent)
                data, metadata = display_bundle(payload, keep=self._keep_view)
                self.send_response(self.iopub_socket, "display_data",
                                   {"data": data, "metadata": metadata, "transient": {}})
        if outcome.error:
            return self._fail(outcome.error.name, outcome.error.message, silent)
        return {"status": "ok", "execution_count": self.execution_count, "payload": [],
                "user_expressions": {}}

    def _keep_view(self, widget) -> None:
        self._live_views.append(widget)
        while len(self._live_views) > max(1, self.max_live_views):
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
        """What a cell's `display` command sent (display.py)."""
        if not silent:
            self.send_response(self.iopub_socket, "display_data",
                               {"data": display_frame(frame), "metadata": {}, "transient": {}})

    # -- completion ---------------------------------------------------------------------------
    async def do_complete(self, code, cursor_pos):
        return completion.complete(code, cursor_pos, *self._layers_for(code))

    async def do_is_complete(self, code):
        return completion.is_complete(code, host_access=self.host_access)

    def _layers_for(self, code: str) -> tuple[list[str], str]:
        """What to complete against: the cell's image layers (top first) and its working
        directory, or the host's / and the kernel's own for the host-access lines. An
        image not built yet offers no names: a completion request never builds one (a
        build takes seconds on the loop that answers every other request)."""
        try:
            spec = cell.parse(code, host_access=self.host_access)
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
