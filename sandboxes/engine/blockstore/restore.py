"""Restoring a snapshot into an empty directory: byte-identical content, modes, symlinks, empty dirs, mtimes.

Every chunk is verified against its id as it is read (``CorruptChunk`` otherwise), and the tree is built
with O_EXCL|O_NOFOLLOW creates only, so a manifest can never make restore write outside ``dest``.
Holes of sparse files are recreated by seeking, so restore is byte-identical and keeps the file sparse.
Directory modes and mtimes are applied last, deepest first, after their content is written.
"""

import os
import stat
import threading
from concurrent.futures import Executor

from . import manifest
from .errors import BlockStoreError, RestoreTargetNotEmpty
from .manifest import HOLE

SPLIT_CHUNKS = 128  # files with more chunks are written by several workers at once (pwrite by offset)
BATCH_BYTES = 4 << 20
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class SharedChunks:
    """Chunk reader for one restore that keeps chunks several files use (duplicates, zero runs) decoded,
    within ``budget`` bytes, so each is read, decompressed and verified once rather than once per use."""

    def __init__(self, read_chunk, shared: set, budget: int = 256 << 20) -> None:
        self._read, self._shared, self._left = read_chunk, shared, budget
        self._kept: dict[bytes, bytes] = {}
        self._lock = threading.Lock()

    def __call__(self, cid: bytes) -> bytes:
        data = self._kept.get(cid)
        if data is not None:
            return data
        data = self._read(cid)
        if cid in self._shared:
            with self._lock:
                if len(data) <= self._left and cid not in self._kept:
                    self._kept[cid] = data
                    self._left -= len(data)
        return data


def _check_name(name: bytes) -> None:
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise BlockStoreError(f"manifest holds an invalid entry name {name!r}")


def prepare_dest(dest: str) -> bytes:
    path = os.fsencode(os.path.abspath(dest))
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not os.path.isdir(path) or os.path.islink(path) or os.listdir(path):
            raise RestoreTargetNotEmpty(f"restore target {dest!r} is not an empty directory") from None
    return path


def load_tree(read_node, tree: bytes, base: bytes, dirs: list) -> None:
    """Depth-first: append (path, entries) for every directory under ``base`` (parents first)."""
    stack = [(tree, base)]
    while stack:
        tid, path = stack.pop()
        entries = manifest.decode_tree(read_node(tid), read_node)
        dirs.append((path, entries))
        for e in entries:
            _check_name(e.name)
            if isinstance(e, manifest.Dir):
                stack.append((e.tree, path + b"/" + e.name))


def _write_ranges(read_chunk, path: bytes, pieces: list) -> int:
    """Worker job: pwrite [(offset, chunk id, length)] into an existing file; returns bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for off, cid, n in pieces:
            data = read_chunk(cid)
            if len(data) != n:
                raise BlockStoreError(f"chunk {cid.hex()} is {len(data)} bytes, manifest says {n}")
            os.pwrite(fd, data, off)
    finally:
        os.close(fd)
    return sum(p[2] for p in pieces)


def _write_files(read_chunk, items: list) -> None:
    """Worker job: create and fill a batch of (path, File) small files, then set their mode and mtime."""
    last_id, last = None, b""
    for path, f in items:
        fd = os.open(path, _CREATE, 0o600)
        try:
            pos = 0
            if f.inline is not None:
                pos = os.pwrite(fd, f.inline, 0)
            for cid, n in f.chunks:
                if cid == HOLE:
                    pos += n
                    continue
                if cid != last_id:
                    last_id, last = cid, read_chunk(cid)
                if len(last) != n:
                    raise BlockStoreError(f"chunk {cid.hex()} is {len(last)} bytes, manifest says {n}")
                os.pwrite(fd, last, pos)
                pos += n
            if pos != f.size or (f.chunks and f.chunks[-1][0] == HOLE):
                os.ftruncate(fd, f.size)
            os.fchmod(fd, f.mode)
            os.utime(fd, ns=(f.mtime_ns, f.mtime_ns))
        finally:
            os.close(fd)


def restore_into(read_chunk, root: manifest.Root, dirs: list, dest: bytes, pool: Executor) -> None:
    futures, batch, batch_bytes, big = [], [], 0, []
    for path, entries in dirs:
        if path != dest:
            os.mkdir(path, 0o700)
        for e in entries:
            p = path + b"/" + e.name
            if isinstance(e, manifest.Symlink):
                os.symlink(e.target, p)
                os.utime(p, ns=(e.mtime_ns, e.mtime_ns), follow_symlinks=False)
            elif isinstance(e, manifest.File):
                if len(e.chunks) > SPLIT_CHUNKS:
                    big.append((p, e))
                    continue
                batch.append((p, e))
                batch_bytes += e.size
                if batch_bytes >= BATCH_BYTES or len(batch) >= 128:
                    futures.append(pool.submit(_write_files, read_chunk, batch))
                    batch, batch_bytes = [], 0
    if batch:
        futures.append(pool.submit(_write_files, read_chunk, batch))
    for p, f in big:
        fd = os.open(p, _CREATE, 0o600)
        os.ftruncate(fd, f.size)  # holes stay holes; data ranges are filled below
        os.close(fd)
        pieces, off = [], 0
        for cid, n in f.chunks:
            if cid != HOLE:
                pieces.append((off, cid, n))
            off += n
        for i in range(0, len(pieces), SPLIT_CHUNKS):
            futures.append(pool.submit(_write_ranges, read_chunk, p, pieces[i : i + SPLIT_CHUNKS]))
    for fut in futures:
        fut.result()
    for p, f in big:
        os.chmod(p, f.mode, follow_symlinks=False)
        os.utime(p, ns=(f.mtime_ns, f.mtime_ns), follow_symlinks=False)
    for path, entries in reversed(dirs):
        for e in entries:
            if isinstance(e, manifest.Dir):
                p = path + b"/" + e.name
                os.chmod(p, e.mode)
                os.utime(p, ns=(e.mtime_ns, e.mtime_ns))
    os.chmod(dest, stat.S_IMODE(root.mode))
    os.utime(dest, ns=(root.mtime_ns, root.mtime_ns))
