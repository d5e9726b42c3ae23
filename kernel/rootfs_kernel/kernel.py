"""Jupyter glue: messages in, the layers below, messages out. Keep it small.

parse (cell.py) -> plan (sandbox/plan.py) -> run (sandbox/client.py) -> compare/views
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal

import comm
import ipykernel.ipkernel  # noqa: F401 - installs ipykernel's comm implementation
from ipykernel.kernelbase import Kernel

from . import __version__, cell, compare, completion
from .images import ImageError, ImageStore
from .sandbox.client import CellRun, SandboxClient, SandboxError
from .sandbox.plan import Places, container_plan, host_plan
from .views import display_bundle

GRACE_SECONDS = 1.0


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

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sandbox = SandboxClient()
        self.sandbox.start()
        self.store = ImageStore()
        self.user_env: dict[str, str] = {}
        self.keep_image: str | None = None      # image of the running %keep chain
        self._interrupt: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._setup_comms()

    def _setup_comms(self) -> None:
        # The plain Kernel has no comm handlers; widgets need them (and the target).
        self.comm_manager = comm.get_comm_manager()
        for msg_type in ("comm_open", "comm_msg", "comm_close"):
            self.shell_handlers[msg_type] = getattr(self.comm_manager, msg_type)
        from ipywidgets import register_comm_target

        register_comm_target()

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
        try:
            spec = cell.parse(code)
        except cell.HeaderError as err:
            return self._fail("HeaderError", str(err), silent)
        if spec.help:
            self._stream("stdout", cell.help_text() + "\n", silent)
            if not spec.script.strip():
                return self._ok()
        if not spec.script.strip() and not spec.show:
            self.user_env.update(spec.env)
            return self._ok()
        try:
            plan = await self._plan(spec, silent)
        except (cell.HeaderError, ImageError) as err:
            return self._fail(type(err).__name__, str(err), silent)
        self.user_env.update(spec.env)
        try:
            run = await self._run(plan.to_json(), spec, silent)
        except SandboxError as err:
            return self._fail("SandboxError", f"{err}; restart the kernel", silent)
        if not spec.host:
            self._after_keep(spec)
        if run.error:
            return self._fail("ContainerError", run.error, silent)
        self._show(run, silent)
        if run.timed_out:
            return self._fail("Timeout", f"the cell ran longer than %timeout {spec.timeout:g} s "
                              "and its container was killed", silent)
        if run.interrupted:
            return self._fail("Interrupted", "the cell was interrupted", silent)
        if run.status:
            how = f" (killed by signal {signal.Signals(run.signal).name})" if run.signal else ""
            return self._fail("ExitStatus", f"the script exited with status {run.status}{how}",
                              silent)
        return self._ok()

    async def _plan(self, spec: cell.CellSpec, silent: bool):
        env = {**self.user_env, **dict(spec.env)}
        if spec.host:
            return host_plan(spec, {**os.environ, **env}, os.getcwd())
        for m in spec.mounts:
            if isinstance(m, cell.Bind) and not os.path.exists(m.source):
                raise cell.HeaderError(m.lineno, f"%bind {m.source} {m.target}",
                                       f"the bind source {m.source} does not exist on the host")
        image = await self._image(spec, silent)
        keep_active = self.keep_image is not None
        if keep_active and self.keep_image != spec.image:
            self._stream("stderr", f"rootfs-kernel: the kept changes belong to image "
                         f"{self.keep_image}; this cell starts from {spec.image} and drops "
                         "them\n", silent)
            self._drop_keep()
            keep_active = False
        places = Places(scratch=self.sandbox.places["scratch"],
                        keep_upper=self.sandbox.places["keep_upper"],
                        keep_work=self.sandbox.places["keep_work"], keep_active=keep_active)
        return container_plan(spec, layers=[str(p) for p in image.layers],
                              image_env=image.env, image_workdir=image.workdir, user_env=env,
                              places=places, rootless=self.sandbox.rootless, uid=os.getuid(),
                              gid=os.getgid(), host_cwd=os.getcwd())

    async def _image(self, spec: cell.CellSpec, silent: bool):
        if spec.image not in self.store.names():
            self._stream("stderr", f"rootfs-kernel: preparing image {spec.image} ...\n", silent)
        try:
            # Building the default image takes seconds: keep answering messages meanwhile.
            return await asyncio.to_thread(self.store.get, spec.image)
        except ImageError as err:
            if spec.image_lineno:
                raise cell.HeaderError(spec.image_lineno, f"%image {spec.image}",
                                       str(err)) from None
            raise

    async def _run(self, plan: dict, spec: cell.CellSpec, silent: bool) -> CellRun:
        self._loop = asyncio.get_running_loop()
        self._interrupt = asyncio.Event()
        out = _Stream(self, "stdout", silent)
        err = _Stream(self, "stderr", silent)
        out.other, err.other = err, out
        try:
            return await self.sandbox.run(plan, out.write, err.write, timeout=spec.timeout,
                                          interrupt=self._interrupt, grace=GRACE_SECONDS)
        finally:
            self._interrupt = None
            out.flush()
            err.flush()

    def _after_keep(self, spec: cell.CellSpec) -> None:
        if spec.keep:
            self.keep_image = spec.image
        elif self.keep_image is not None:
            self._drop_keep()

    def _drop_keep(self) -> None:
        self.keep_image = None
        self.sandbox.drop_keep()

    def _show(self, run: CellRun, silent: bool) -> None:
        if silent:
            return
        for payload in compare.payloads(run.snapshots):
            if "error" in payload:
                self._stream("stderr", f"rootfs-kernel: {payload['error']}\n", False)
                continue
            data, metadata = display_bundle(payload)
            self.send_response(self.iopub_socket, "display_data",
                               {"data": data, "metadata": metadata, "transient": {}})

    # -- replies --------------------------------------------------------------------------
    def _ok(self) -> dict:
        return {"status": "ok", "execution_count": self.execution_count, "payload": [],
                "user_expressions": {}}

    def _fail(self, ename: str, evalue: str, silent: bool) -> dict:
        content = {"ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}
        if not silent:
            self.send_response(self.iopub_socket, "error", content)
        return {"status": "error", "execution_count": self.execution_count, **content}

    def _stream(self, name: str, text: str, silent: bool) -> None:
        if not silent and text:
            self.send_response(self.iopub_socket, "stream", {"name": name, "text": text})

    # -- completion, inspection ----------------------------------------------------------------
    async def do_complete(self, code, cursor_pos):
        return completion.complete(code, cursor_pos, self._layers_for(code))

    async def do_is_complete(self, code):
        return completion.is_complete(code)

    def _layers_for(self, code: str) -> list[str]:
        """Directories to complete against: the cell's image layers, or the host for none."""
        try:
            spec = cell.parse(code)
        except cell.HeaderError:
            spec = cell.CellSpec(script="")
        if spec.host or spec.root == "none":
            return ["/"]
        try:
            return [str(p) for p in reversed(self.store.get(spec.image).layers)]
        except ImageError:
            return []

    async def do_shutdown(self, restart):
        self.sandbox.close()
        return {"status": "ok", "restart": restart}


class _Stream:
    """Decodes one output pipe and publishes it as stream messages, coalesced.

    Pipes deliver output in small pieces; one message per piece would flood IOPub (and
    a front-end that lags behind loses messages past ZeroMQ's high-water mark). Output
    is held for at most FLUSH_SECONDS or FLUSH_BYTES, so memory stays bounded too.
    """

    FLUSH_SECONDS = 0.05
    FLUSH_BYTES = 1 << 20

    def __init__(self, kernel: RootfsKernel, name: str, silent: bool):
        self.kernel, self.name, self.silent = kernel, name, silent
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending: list[bytes] = []
        self.size = 0
        self.timer: asyncio.TimerHandle | None = None
        self.other: _Stream | None = None   # the sibling stream, flushed first to keep order

    def write(self, data: bytes) -> None:
        if self.other is not None and self.other.pending:
            self.other.flush(final=False)
        self.pending.append(data)
        self.size += len(data)
        if self.size >= self.FLUSH_BYTES:
            self.flush(final=False)
        elif self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(
                self.FLUSH_SECONDS, self.flush, False)

    def flush(self, final: bool = True) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        data, self.pending, self.size = b"".join(self.pending), [], 0
        self.kernel._stream(self.name, self.decoder.decode(data, final=final), self.silent)
