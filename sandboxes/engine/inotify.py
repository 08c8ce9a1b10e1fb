"""inotify(7) through ctypes (Python has no binding): one non-blocking descriptor per watch, watches added
by descriptor, and the records a read returns.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterator

IN_MODIFY = 0x2
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
WATCH_MASK = (
    IN_MODIFY
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_ONLYDIR
    | IN_EXCL_UNLINK
)
HEADER = struct.Struct("iIII")  # wd, mask, cookie, len

_libc = ctypes.CDLL(None, use_errno=True)


def inotify_init() -> int:
    fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"inotify_init1: {os.strerror(err)}")
    return fd


def add_watch(ifd: int, dirfd: int) -> int:
    """Watch the directory open at ``dirfd``: named as ``/proc/self/fd/N``, the agent's own descriptor,
    resolved safely beforehand (following this magic link is the point), so the watch is on that inode."""
    wd = _libc.inotify_add_watch(ifd, f"/proc/self/fd/{dirfd}".encode(), ctypes.c_uint32(WATCH_MASK))
    if wd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"inotify_add_watch: {os.strerror(err)}")
    return wd


def records(buf: bytes) -> Iterator[tuple[int, int, int, str]]:
    """``(wd, mask, cookie, name)`` of each record in what one read returned (the kernel never splits one)."""
    offset = 0
    while offset + HEADER.size <= len(buf):
        wd, mask, cookie, length = HEADER.unpack_from(buf, offset)
        raw = buf[offset + HEADER.size : offset + HEADER.size + length]
        offset += HEADER.size + length
        yield wd, mask, cookie, raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
