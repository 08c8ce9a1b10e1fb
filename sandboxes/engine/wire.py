"""Framing of the agent's requests to an interpreter: 4-byte big-endian length + JSON object.

One direction only: the agent writes, the interpreter reads (its write side is shut down before
user code runs; see ``status.py`` and ``idle.py`` for how an op's end is learnt). JSON, never
pickle; every frame is capped at ``MAX_FRAME`` bytes.
"""

from __future__ import annotations

import json
import socket
import struct

MAX_FRAME = 16 << 20
_LEN = struct.Struct(">I")


def encode(msg: dict) -> bytes:
    body = json.dumps(msg, separators=(",", ":")).encode()
    return _LEN.pack(len(body)) + body


def send(sock: socket.socket, msg: dict, fds: list[int] | None = None) -> None:
    data = encode(msg)
    if fds:
        n = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])
        data = data[n:]
    if data:
        sock.sendall(data)


def recv(sock: socket.socket, max_fds: int = 0) -> tuple[dict | None, list[int]]:
    """Blocking read of one frame (and any descriptors sent with it). None on EOF."""
    fds: list[int] = []
    head = b""
    while len(head) < 4:
        if max_fds and not fds:
            chunk, anc, _, _ = sock.recvmsg(4 - len(head), socket.CMSG_SPACE(max_fds * 4))
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += list(struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) // 4 * 4]))
        else:
            chunk = sock.recv(4 - len(head))
        if not chunk:
            return None, fds
        head += chunk
    (size,) = _LEN.unpack(head)
    if size > MAX_FRAME:
        raise ValueError("frame too large")
    body = bytearray()
    while len(body) < size:
        chunk = sock.recv(min(size - len(body), 1 << 20))
        if not chunk:
            return None, fds
        body += chunk
    return json.loads(body), fds
