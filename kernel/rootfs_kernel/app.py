"""The kernel process: ipykernel's application without two threads this kernel does not need.

Runs in: the kernel (`python -m rootfs_kernel`, __main__.py).

ipykernel hands every message across threads twice: a shell-channel thread receives
each request and passes it to the main thread over an inproc socket (for "subshells",
concurrent execution of Python code), and an IOPub thread sends every message the main
thread publishes (so that Python code that blocks the main thread cannot hold output
back). Cells here are shell scripts in containers, awaited on the main thread's event
loop, which never blocks: requests are taken and messages sent on that thread. Each
crossing costs a thread wake-up and the GIL's hand-over, about 0.1 ms on the machines
we measured, several per cell (benchmarks/RESULTS.md). The control thread stays (an
interrupt or shutdown request is answered while a cell runs); what it publishes is
handed to the main loop.
"""

from __future__ import annotations

import atexit
import os
import threading

import zmq
from ipykernel.kernelapp import IPKernelApp
from tornado import ioloop
from zmq.eventloop.zmqstream import ZMQStream

from . import ports
from .backlog import Backlog
from .cell import format_size
from .output import MAX_MESSAGE


class MainThreadIOPub:
    """Stands in for ipykernel's IOPubThread and its BackgroundSocket: sends from the
    main thread at once, from any other thread (the control thread) through the main
    loop; answers IOPub subscriptions with the protocol's iopub_welcome. A message larger
    than output.MAX_MESSAGE is not sent (a short error goes to its cell instead), and a
    subscriber too far behind is disconnected (backlog.py): one that stops reading holds a
    bounded number of bytes."""

    def __init__(self, socket: zmq.Socket, session, backlog: Backlog) -> None:  # noqa: ANN001
        self.socket, self.session, self.backlog = socket, session, backlog
        self.background_socket = self   # the name ipykernel's users take the socket by
        self.closed = False
        self._main = threading.main_thread()
        self._loop: ioloop.IOLoop | None = None
        self._stream: ZMQStream | None = None

    def start(self) -> None:
        """On the main thread, before its loop runs."""
        self._loop = ioloop.IOLoop.current()
        self._stream = ZMQStream(self.socket, self._loop)
        self._stream.on_recv(self._subscribed)

    def _subscribed(self, frames: list[bytes]) -> None:
        for frame in frames:
            if frame[:1] != b"\x01":   # \x01 TOPIC subscribes, \x00 unsubscribes
                continue
            try:
                topic = frame[1:].decode()
            except UnicodeDecodeError:
                continue
            msg = self.session.serialize({
                "header": self.session.msg_header("iopub_welcome"), "parent_header": {},
                "metadata": {}, "content": {"subscription": topic}, "buffers": []})
            self.socket.send_multipart([topic.encode(), *msg] if topic else msg)

    def send_multipart(self, msg, *args, **kwargs) -> None:  # noqa: ANN001 - zmq's signature
        if self.closed:
            return
        if self._loop is None or threading.current_thread() is self._main:
            size = sum(map(_wire_size, msg))
            if size > MAX_MESSAGE:
                self._too_large(msg, size)
                return
            self.socket.send_multipart(msg, *args, **kwargs)
            self.backlog.add(size)
        else:
            self._loop.add_callback(self.send_multipart, msg, *args, **kwargs)

    def _too_large(self, msg: list, size: int) -> None:
        """An stderr stream message to the parent of the one not sent (jupyter_client's
        wire format: idents, <IDS|MSG>, signature, header, parent header, ...)."""
        frames = [bytes(f) for f in msg]
        at = frames.index(b"<IDS|MSG>")
        kind = self.session.unpack(frames[at + 2]).get("msg_type", "message")
        self.session.send(self, "stream", {"name": "stderr", "text": (
            f"rootfs-kernel: an output ({kind}, {format_size(size)} as a message) was not "
            f"sent: the kernel sends no message over {format_size(MAX_MESSAGE)}, so that a "
            "front-end that stops reading costs it a bounded amount of memory; show less "
            "at once\n")}, parent=self.session.unpack(frames[at + 3]), ident=frames[:at])

    def send(self, msg, *args, **kwargs) -> None:  # noqa: ANN001
        self.send_multipart([msg], *args, **kwargs)

    def stop(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._stream is not None:
                self._stream.close()
            self.backlog.close()
            self.socket.close()


def _wire_size(frame: bytes | memoryview | zmq.Frame) -> int:
    """A frame's bytes on the connection (ZMTP 3: a flags byte, then a 1-byte size, or 8
    past 255 bytes, then the body), so that backlog.py's count of what was sent matches
    what a subscriber's TCP connection acknowledges, also after millions of messages."""
    n = len(frame)
    return n + (2 if n < 256 else 9)


class RootfsKernelApp(IPKernelApp):
    _early_iopub: zmq.Socket | None = None
    _early_monitor: zmq.Socket | None = None

    def init_sockets(self) -> None:
        bound = ports.take(self.ip, self.transport,
                           (self.shell_port, self.stdin_port, self.iopub_port),
                           curve=getattr(self, "curve_secretkey", None) is not None)
        if bound is None:
            super().init_sockets()
        else:
            self._adopt(bound)
        # No subshells: the shell socket is read by the main thread's loop.
        thread, self.shell_channel_thread = self.shell_channel_thread, None
        thread.io_loop.close()

    def _adopt(self, bound: ports.Bound) -> None:
        """ipykernel's init_sockets with the sockets __main__ bound before the imports."""
        self.log.info("Starting the kernel at pid: %i", os.getpid())
        self.log.warning("Kernel is running over TCP without encryption: cells and their "
                         "output travel in plain text to the ports of its connection file.")
        self.context = bound.context
        atexit.register(self.close)
        self.shell_socket, self.stdin_socket = bound.shell, bound.stdin
        if hasattr(zmq, "ROUTER_HANDOVER"):   # as ipykernel: zeromq/libzmq#2892
            self.shell_socket.router_handover = self.stdin_socket.router_handover = 1
        self._early_iopub, self._early_monitor = bound.iopub, bound.monitor
        self.init_control(self.context)
        self.init_iopub(self.context)

    def init_iopub(self, context: zmq.Context) -> None:
        socket, self._early_iopub = self._early_iopub, None
        monitor, self._early_monitor = self._early_monitor, None
        if socket is None:
            socket = context.socket(zmq.XPUB)
            socket.linger = 1000
            monitor = socket.get_monitor_socket(ports.IOPUB_EVENTS)   # before the bind
            # CurveZMQ keys (ipykernel 7.1+) apply to this socket as to ipykernel's own.
            curve = getattr(self, "_apply_curve_server_options", None)
            if curve is not None:
                curve(socket)
            self.iopub_port = self._bind_socket(socket, self.iopub_port)
        self.configure_tornado_logger()
        self.iopub_thread = MainThreadIOPub(socket, self.session, Backlog(monitor))
        self.iopub_socket = self.iopub_thread

    def start(self) -> None:
        self.iopub_thread.start()
        super().start()
