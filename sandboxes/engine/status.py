"""The status page: the only value an interpreter hands back to the agent about an op.

User code runs in the interpreter's own process, so anything the interpreter could send, user
code could forge. The agent therefore observes when an op has ended (``idle.py``) and reads
just this fixed 16-byte record from a shared memfd page: which request the interpreter last
finished and, for a run, its exit code. Every bit pattern is bounded by its type (a u64 and an
i32); a sequence number outside what the agent has sent ends the sandbox. Timings, CPU,
memory, limits and output sizes never come from here.

Layout, little-endian: u64 seq | i32 exit_code | u32 flags. The interpreter writes the exit code
and flags before the sequence number; the agent reads seq, code, flags, seq and retries a torn
read. ``FLAG_MEMORY_ERROR``: the run ended with a MemoryError (the interpreter's RLIMIT_DATA,
which the host cannot see being hit); it only labels that run's ``limit: "memory"`` and changes
nothing the host meters or enforces. ``FLAG_COMPILE_ERROR``: the run's code did not compile (Go); it
only labels a failed run ``compile_error``. ``FLAG_MEMORY_LOST``: the runtime's process was replaced during
the run (Node.js: ``node_runtime.py``), so the state of earlier runs is gone; it only labels the
run's ``memory_lost``.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct

SIZE = 4096
_CODE = struct.Struct("<iI")
_SEQ = struct.Struct("<Q")
FLAG_MEMORY_ERROR = 1
FLAG_COMPILE_ERROR = 2
FLAG_MEMORY_LOST = 4
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def create() -> tuple[int, mmap.mmap]:
    """A new page for one interpreter: (memfd to pass to it, the agent's mapping)."""
    fd = os.memfd_create("mem0-status", os.MFD_CLOEXEC)
    os.ftruncate(fd, SIZE)
    return fd, mmap.mmap(fd, SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)


def attach(fd: int):
    """Interpreter side: map the page handed over as ``fd`` and close the descriptor.

    Not ``mmap.mmap``: it keeps a dup of the descriptor open (until Python 3.13's trackfd),
    and a descriptor left in the sandbox would let ``os.write`` reach the page."""
    try:
        addr = _libc.mmap(None, SIZE, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap of the status page failed")
        return (ctypes.c_char * SIZE).from_address(addr)
    finally:
        os.close(fd)


def detach(page) -> None:
    """Interpreter side: unmap a page (a fork drops its parent's before anything else runs)."""
    _libc.munmap(ctypes.addressof(page), SIZE)


def clamp_exit_code(code: int) -> int:
    return max(INT32_MIN, min(INT32_MAX, code))


def write(page, seq: int, exit_code: int = 0, flags: int = 0) -> None:
    _CODE.pack_into(page, 8, clamp_exit_code(exit_code), flags)
    _SEQ.pack_into(page, 0, seq)


def read(page: mmap.mmap) -> tuple[int, int, int]:
    """(seq, exit_code, flags) as last written; a read torn by a concurrent write is retried."""
    while True:
        (seq,) = _SEQ.unpack_from(page, 0)
        code, flags = _CODE.unpack_from(page, 8)
        if _SEQ.unpack_from(page, 0)[0] == seq:
            return seq, code, flags
