"""The kernel's shell, stdin and IOPub ports, bound before the imports that start it.

Runs in: the kernel (`python -m rootfs_kernel`, __main__.py), before app.py is imported.

A client connects as soon as it has launched the kernel; while nothing listens on the port
its connection is refused and zmq tries again only after its reconnect interval (100 ms by
default). ipykernel binds after importing itself and jupyter_client, about a tenth of a
second after the process starts, so its first request waited for the next retry. Bound
here, after importing zmq alone, the client is connected before the kernel is ready; the
request waits in the socket's queue and is answered when the main loop starts.

Only the plain case is bound early (tcp, the ports given, no option on the command line
but the kernel class's: CurveZMQ keys or another address may come from there); app.py
adopts the sockets only if its own configuration agrees, and otherwise binds as ipykernel
does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import zmq

# The IOPub socket's monitor (backlog.py): its subscribers' connections come and go.
IOPUB_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED


@dataclass
class Bound:
    context: zmq.Context
    ip: str
    shell: zmq.Socket
    stdin: zmq.Socket
    iopub: zmq.Socket
    ports: tuple[int, int, int]   # shell, stdin, iopub
    monitor: zmq.Socket | None = None   # the IOPub socket's, made before it was bound

    def close(self) -> None:
        for socket in (self.shell, self.stdin, self.iopub, self.monitor):
            if socket is not None:
                socket.close(linger=0)


_bound: Bound | None = None


def connection_file(argv: list[str]) -> str | None:
    """The FILE of `-f FILE` if every other argument configures only the kernel class
    (what kernel.json passes; an option of the application may change the sockets)."""
    rest, path = list(argv), None
    if "-f" in rest[:-1]:
        i = rest.index("-f")
        path = rest.pop(i + 1)
        rest.pop(i)
    else:
        given = [a for a in rest if a.startswith("--f=")]
        if len(given) == 1:
            path = given[0][len("--f="):]
            rest.remove(given[0])
    if not path or any(not a.startswith("--RootfsKernel.") for a in rest):
        return None
    return path


def bind_early(argv: list[str]) -> None:
    """Bind the ports the connection file names, if it is the plain case; never raises
    (the application then binds them itself and reports what went wrong)."""
    global _bound
    path = connection_file(argv)
    if path is None:
        return
    try:
        with open(path) as f:
            info = json.load(f)
        ip, ports = info["ip"], (info["shell_port"], info["stdin_port"], info["iopub_port"])
        if info.get("transport", "tcp") != "tcp" or not ip or not all(
                isinstance(p, int) and p > 0 for p in ports) or "curve_secretkey" in info:
            return
    except (OSError, ValueError, KeyError, TypeError):
        return
    context = zmq.Context()
    sockets: list[zmq.Socket] = []
    try:
        for kind, port in zip((zmq.ROUTER, zmq.ROUTER, zmq.XPUB), ports, strict=True):
            socket = context.socket(kind)
            socket.linger = 1000
            sockets.append(socket)
            if kind == zmq.XPUB:   # before the bind: no subscriber goes unseen
                sockets.append(socket.get_monitor_socket(IOPUB_EVENTS))
            socket.bind(f"tcp://{ip}:{port}")
    except zmq.ZMQError:
        for socket in sockets:
            socket.close(linger=0)
        context.term()
        return
    shell, stdin, iopub, monitor = sockets
    _bound = Bound(context, ip, shell, stdin, iopub, ports=ports, monitor=monitor)


def take(ip: str, transport: str, ports: tuple[int, int, int], curve: bool) -> Bound | None:
    """The early sockets, if they are what the application would bind; else closes them."""
    global _bound
    bound, _bound = _bound, None
    if bound is None:
        return None
    if transport == "tcp" and ip == bound.ip and ports == bound.ports and not curve:
        return bound
    bound.close()
    bound.context.term()
    return None
