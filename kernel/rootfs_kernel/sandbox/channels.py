"""A container's channels to the kernel, and their readers and writers (asyncio).

Runs in: the kernel (its event loop; client.py makes and reads them).

Output never passes through the helper: the kernel makes the pipes, hands their write
ends over with the `run` (or `prepare`) frame and reads the other ends itself. The cell's
text goes the same way, down the script pipe to the container's shell.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

CHUNK = 1 << 16


class Channels:
    """A container's five channels to the kernel. The container gets `theirs` as its fds
    1-5 (init.c): the write ends of the cell's stdout and stderr, its end of the result
    socket, the read ends of the release and script pipes. The kernel keeps the others."""

    def __init__(self) -> None:
        out, err, release, script = (os.pipe() for _ in range(4))
        result_ours, result_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # The shell opens its script as /proc/self/fd/3 (a new open of the pipe), as the
        # cell's root, which is nobody to the kernel's pipe: let anyone read it, which only
        # processes that may look into the shell's /proc can, and no one write it.
        os.fchmod(script[0], 0o444)
        self.stdout, self.stderr, self.result = out[0], err[0], result_ours.detach()
        self.release, self.script = release[1], script[1]
        self.theirs = [out[1], err[1], result_theirs.detach(), release[0], script[0]]

    def close_theirs(self) -> None:
        while self.theirs:
            os.close(self.theirs.pop())

    def close(self) -> None:
        """Not needed after all: the shell reads an empty script, and the init exits."""
        self.close_theirs()
        for fd in (self.stdout, self.stderr, self.result, self.release, self.script):
            os.close(fd)


def memfd(data: bytes) -> int:
    """A memory file holding `data`, read from its start."""
    fd = os.memfd_create("rootfs-plan", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


class ScriptWriter:
    """Writes the cell into the script pipe as the shell reads it, without blocking the
    loop, then closes the pipe: the shell sees the end of its script. A shell that has
    gone (it exited early, or its container failed) ends the writing (EPIPE)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, data: bytes):
        self.loop, self.fd, self.data = loop, fd, memoryview(data)
        self.waiting = False
        os.set_blocking(fd, False)
        self._write()

    def _write(self) -> None:
        try:
            while self.data:
                self.data = self.data[os.write(self.fd, self.data):]
        except BlockingIOError:   # the pipe is full: the shell has not read that far
            if not self.waiting:
                self.waiting = True
                self.loop.add_writer(self.fd, self._write)
            return
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            if self.waiting:
                self.loop.remove_writer(self.fd)
            os.close(self.fd)
            self.fd = -1


class Once:
    """An fd closed at most once (its number may be reused right after)."""

    def __init__(self, fd: int):
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class PipeReader:
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


class ResultReader(PipeReader):
    """The init's result socket: JSON lines (report.py), and the fds of the overlay's
    layers, which the init hands over before the script starts (init.c) and the kernel
    holds until the cell's snapshots are taken."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, sink: Callable[[bytes], None]):
        self.sock = socket.socket(fileno=fd)
        self.fds: list[int] = []
        super().__init__(loop, fd, sink)

    def _readable(self) -> None:
        while True:   # the report and its end come together: both in one wake-up
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, CHUNK, 64,
                                                           socket.MSG_CMSG_CLOEXEC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data, fds = b"", []
            self.fds += fds
            if not data:
                break
            self.sink(data)
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
