"""Content-defined chunking (FastCDC 2020 via pyfastcdc's compiled chunker) and chunk storage.

Chunk size was chosen by measurement with bench/snapshots.py's data (zstd-3; stored = compressed chunk
bytes; (b) is what 19 more snapshots of the 100 MB workspace add after the first, ~1% of files changed each):

    mean chunk (min/max)     (a) runtime tree stored   (b) 19 incrementals add   (a) CPU s (shared VM, ±30%)
    32 KiB  (8K/128K)        73.4 MB                   2.61 MB                   6.6
    64 KiB  (16K/256K)       70.8 MB                   2.77 MB                   4.1
    128 KiB (32K/512K)       69.0 MB                   3.07 MB                   3.6
    256 KiB (64K/1M)         68.0 MB                   3.39 MB                   3.7
    512 KiB (128K/2M)        67.4 MB                   3.70 MB                   3.2
    1 MiB   (256K/4M)        67.0 MB                   3.85 MB                   3.2
    restic (1 MiB, its own)  70.2 MB (whole repository)

(Measured with a chunk file for every file; small files now go inline into directory nodes, which took
(a) at 128 KiB from 69.1 to 68.0 MB.) Smaller chunks dedupe edits better (b) but compress worse, since every chunk is its own zstd frame, and
cost a file each in the cache (CPU doubles below 64 KiB). 128 KiB is the smallest mean that stores less
than restic on (a) with a margin, and its incrementals stay within 18% of the 32 KiB optimum. Files of
at most CDC_MIN bytes are one chunk without running the chunker. The cut is ~4 GB/s (it releases the
GIL); sha256 with SHA-NI is ~1.8 GB/s per core; zstd-3 ~250-340 MB/s per core is the real cost.
"""

import hashlib
import os
import threading

from pyfastcdc.cy import FastCDC

from .cache import ChunkCache
from .manifest import HOLE

CDC_MIN = 32 * 1024
CDC_AVG = 96 * 1024  # pyfastcdc's real mean is avg + min = 128 KiB
CDC_MAX = 512 * 1024
MAX_HOLE_ENTRY = 1 << 31  # a chunk entry's length is 32 bits; longer holes take several entries

_cdc = FastCDC(CDC_AVG, min_size=CDC_MIN, max_size=CDC_MAX)


class ChunkWriter:
    """Hashes, deduplicates, compresses and stores chunks for one snapshot; safe to share between threads.

    ``new_bytes``/``stored_bytes`` count each chunk this snapshot wrote once (before/after compression).
    """

    def __init__(self, cache: ChunkCache, codec: int) -> None:
        self.cache, self.codec = cache, codec
        self.new_bytes = self.stored_bytes = 0
        self.written: list[bytes] = []  # ids of the chunks this snapshot wrote, for the durability step
        self._seen: set[bytes] = set()
        self._lock = threading.Lock()

    def store(self, data) -> bytes:
        cid = hashlib.sha256(data).digest()
        if cid in self._seen:
            return cid
        with self._lock:
            if cid in self._seen:
                return cid
            self._seen.add(cid)
        if self.cache.has(cid):
            return cid
        stored = self.cache.put(cid, data, self.codec)
        if not stored:  # a concurrent snapshot published it first
            return cid
        with self._lock:
            self.new_bytes += len(data)
            self.stored_bytes += stored
            self.written.append(cid)
        return cid

    def store_buffer(self, data) -> list:
        """Chunk an in-memory buffer; returns [(chunk id, length), ...]."""
        n = len(data)
        if n == 0:
            return []
        if n <= CDC_MIN:
            return [(self.store(data), n)]
        return [(self.store(c.data), c.length) for c in _cdc.cut_buf(data)]

    def store_stream(self, reader, submit) -> list:
        """Chunk a stream too big to hold at once; ``submit(list of bytes)`` returns a future of ids.

        The cut runs here (it is ~4 GB/s); hashing and compressing ~8 MiB groups run in the pool.
        """
        futures, group, group_bytes = [], [], 0
        for c in _cdc.cut_stream(reader):
            group.append(bytes(c.data))
            group_bytes += c.length
            if group_bytes >= 8 << 20:
                futures.append(submit(group))
                group, group_bytes = [], 0
        if group:
            futures.append(submit(group))
        out = []
        for f in futures:
            out.extend(f.result())
        return out

    def store_group(self, group: list) -> list:
        return [(self.store(d), len(d)) for d in group]


class SegmentReader:
    """``readinto`` over [start, start+length) of a file descriptor (length None: to end of file)."""

    def __init__(self, fd: int, start: int, length: int | None) -> None:
        self.fd, self.pos, self.left = fd, start, length

    def readinto(self, buf) -> int:
        want = len(buf) if self.left is None else min(len(buf), self.left)
        if want <= 0:
            return 0
        n = os.preadv(self.fd, [memoryview(buf)[:want]], self.pos)
        self.pos += n
        if self.left is not None:
            self.left -= n
        return n


def data_segments(fd: int, size: int) -> list:
    """[(offset, length, is_hole)] covering a sparse file, found with SEEK_DATA/SEEK_HOLE."""
    segs, pos = [], 0
    while pos < size:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole remains
            data = size
        data = min(data, size)
        if data > pos:
            segs.append((pos, data - pos, True))
        if data >= size:
            break
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), size)
        segs.append((data, hole - data, False))
        pos = hole
    return segs


def hole_entries(length: int) -> list:
    out = []
    while length > 0:
        n = min(length, MAX_HOLE_ENTRY)
        out.append((HOLE, n))
        length -= n
    return out
