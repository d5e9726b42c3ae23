"""Frames between the kernel and its sandbox helper: a 4-byte length, then JSON.

Runs in: the kernel and the helper (both ends of their socket).

File descriptors (the cell's stdout, stderr and result pipes) ride on the length bytes
as SCM_RIGHTS, so the cell writes straight to the kernel and no output passes through
the helper.
"""

from __future__ import annotations

import json
import os
import socket
import struct

# Every number on our sockets is 32 bits in network byte order: these frames' lengths,
# and a prepared container's pid and cell length (client.py, init.c).
U32 = struct.Struct("!I")
_HEADER = U32
MAX_FRAME = 64 << 20


class Closed(EOFError):
    """The other side went away."""


def send(sock: socket.socket, message: dict, fds: list[int] | tuple[int, ...] = ()) -> None:
    body = json.dumps(message).encode()
    header = _HEADER.pack(len(body))
    if fds:
        socket.send_fds(sock, [header], list(fds))
    else:
        sock.sendall(header)
    sock.sendall(body)


def recv(sock: socket.socket) -> tuple[dict, list[int]]:
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, 8)
    except ConnectionResetError:
        raise Closed from None
    if not data:
        raise Closed
    for fd in fds:
        os.set_inheritable(fd, False)
    data += _read_exactly(sock, _HEADER.size - len(data))
    (length,) = _HEADER.unpack(data)
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes is larger than {MAX_FRAME}")
    return json.loads(_read_exactly(sock, length)), fds


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise Closed
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)
