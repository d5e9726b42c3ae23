"""How far behind each IOPub subscriber is, in bytes; one too far behind is disconnected.

Runs in: the kernel (ports.py or app.py attach it where the IOPub socket is bound; app.py's
MainThreadIOPub counts every message it sends).

ZeroMQ keeps, for each subscriber, the messages it has not taken yet, up to a high-water
mark that counts messages (1000), not bytes: one stalled front-end let a cell's 16 MB
displays take the kernel from 42 MB to 837 MB. A mark low enough to bound the bytes would
drop the messages of an ordinary burst (a view's comm_opens) for subscribers that do
read, because the socket hears what its I/O thread passed on only every half mark, and
at most once a millisecond. So the kernel counts the bytes itself: everything sent on
IOPub is queued for every subscriber, and the subscriber's TCP connection says how much of
it has left the kernel (the bytes the peer acknowledged, tcpi_bytes_acked, plus those in
the socket's send queue). The difference waits in the kernel's memory. A subscriber more
than output.BACKLOG behind has its connection shut down: ZeroMQ frees its queue at the
socket's next send, and the subscriber connects again by itself when it reads again,
having missed what it did not read (as it would past the mark). The connections come from
the socket's monitor (their fds, owned by ZeroMQ's I/O thread: read through a dup that is
checked to be the same socket). Another transport than tcp is not counted.
"""

from __future__ import annotations

import array
import fcntl
import logging
import os
import socket
import struct
import termios
from dataclasses import dataclass

import zmq

from .output import BACKLOG

CHECK_EVERY = 1 << 20      # bytes sent between two looks at the connections
_TCP_INFO_BYTES_ACKED = 120   # offset of tcpi_bytes_acked in struct tcp_info (Linux 4.1+)
log = logging.getLogger(__name__)


@dataclass
class _Subscriber:
    inode: int      # the connection's socket, to tell it from another file the fd may become
    start: int      # bytes sent on IOPub before it connected
    peer: str


class Backlog:
    def __init__(self, monitor: zmq.Socket) -> None:
        self.monitor = monitor
        self.sent = 0
        self.checked = 0
        self.subscribers: dict[int, _Subscriber] = {}

    def add(self, size: int) -> None:
        """After each message sent: every so many bytes, disconnect who is too far behind."""
        self.sent += size
        if self.sent - self.checked < CHECK_EVERY:
            return
        self.checked = self.sent
        self._events()
        for fd, sub in list(self.subscribers.items()):
            taken = _taken(fd, sub.inode)
            if taken is None:
                continue
            behind = self.sent - sub.start - taken
            if behind > BACKLOG:
                del self.subscribers[fd]
                _shut(fd, sub.inode)
                log.warning("an IOPub subscriber (%s) is %d MiB behind, more than the kernel "
                            "keeps for one (%d MiB): disconnected; it connects again when it "
                            "reads again", sub.peer, behind >> 20, BACKLOG >> 20)

    def _events(self) -> None:
        from zmq.utils.monitor import recv_monitor_message

        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)
            fd = event["value"]
            if event["event"] == zmq.EVENT_ACCEPTED:
                ident = _identify(fd)
                if ident is not None:
                    self.subscribers[fd] = _Subscriber(ident[0], self.sent, ident[1])
            else:
                self.subscribers.pop(fd, None)

    def close(self) -> None:
        self.monitor.close(linger=0)


def _identify(fd: int) -> tuple[int, str] | None:
    """The socket's inode and peer, if fd is a TCP connection."""
    try:
        with socket.socket(fileno=os.dup(fd)) as s:
            if s.family not in (socket.AF_INET, socket.AF_INET6):
                return None
            host, port = s.getpeername()[:2]
            return os.fstat(s.fileno()).st_ino, f"{host}:{port}"
    except OSError:
        return None


def _taken(fd: int, inode: int) -> int | None:
    """How many bytes the connection has taken from the kernel's queue: acknowledged by the
    peer, or in the socket's send queue. None: it is not that connection any more."""
    try:
        with socket.socket(fileno=os.dup(fd)) as s:
            if os.fstat(s.fileno()).st_ino != inode:
                return None
            info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
            queued = array.array("i", [0])
            fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, queued)
    except OSError:
        return None
    if len(info) < _TCP_INFO_BYTES_ACKED + 8:
        return None
    return struct.unpack_from("Q", info, _TCP_INFO_BYTES_ACKED)[0] + queued[0]


def _shut(fd: int, inode: int) -> None:
    try:
        with socket.socket(fileno=os.dup(fd)) as s:
            if os.fstat(s.fileno()).st_ino == inode:
                s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
