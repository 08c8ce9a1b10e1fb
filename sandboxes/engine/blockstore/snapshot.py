"""Taking a snapshot: walk the tree, chunk what changed, write directory nodes bottom-up, commit the root.

The walk opens every directory relative to its parent with O_NOFOLLOW and files are re-checked by
(st_dev, st_ino) after opening, so a sandbox that swaps a directory for a symlink mid-snapshot cannot make
the agent (root) read outside the workspace. Small files are read in batches by the worker pool as the
walk goes; big files are cut on the calling thread and their chunks hashed/compressed in the pool.

A file is *not re-read* when the previous index has the same (size, mtime_ns, inode) for its path: its
chunk list is reused. Like git's "racily clean" rule, a file whose mtime is within RACY_WINDOW_NS of the
snapshot's start is left out of the new index: it could still change within the same timestamp tick and
keep its mtime. Linux stamps files from the coarse clock (one jiffy, <= 10 ms at HZ=100); the window is
ten times that. (Filesystems with coarser timestamps, e.g. FAT's 2 s, are not workspace filesystems.)
"""

import errno
import os
import stat
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field

from . import manifest
from .chunking import ChunkWriter, SegmentReader, data_segments, hole_entries

RACY_WINDOW_NS = 100_000_000
READ_WHOLE_MAX = 8 << 20  # files up to this size are read in one go by a worker
BATCH_BYTES = 4 << 20
BATCH_FILES = 128
# errnos that mean "the entry vanished or changed type (e.g. swapped for a symlink) since the listing":
# the entry is left out. Anything else (EACCES, EIO) fails the snapshot instead of silently losing content.
_GONE_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EINVAL}
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class SnapshotIndex:
    """Opaque to callers: what the next snapshot of the same tree needs to skip unchanged files."""

    store_id: str
    source: bytes
    epoch: int
    files: dict = field(default_factory=dict)  # relpath -> (size, mtime_ns, ino, chunks or inline bytes)


@dataclass
class SnapshotResult:
    digest: str
    logical_bytes: int
    new_bytes: int
    stored_bytes: int
    files: int
    index: SnapshotIndex
    files_read: int = 0  # files whose content was read (the rest came from the index)


class _Dir:
    __slots__ = ("name", "mode", "mtime_ns", "files", "links", "subdirs", "tree")

    def __init__(self, name: bytes, st) -> None:
        self.name, self.mode, self.mtime_ns = name, stat.S_IMODE(st.st_mode), st.st_mtime_ns
        self.files: list = []  # [name, st, relpath, chunks | inline bytes | None | False, size]
        self.links: list = []
        self.subdirs: list = []
        self.tree = b""


def _read_all(path: bytes, want_dev: int, want_ino: int, hint: int) -> bytes | None:
    """The file's bytes, or None when it vanished or is no longer the inode the walk saw."""
    try:
        fd = os.open(path, _FILE_FLAGS)
    except OSError as exc:
        if exc.errno in _GONE_ERRNOS:
            return None
        raise
    try:
        st = os.fstat(fd)
        if st.st_ino != want_ino or st.st_dev != want_dev or not stat.S_ISREG(st.st_mode):
            return None
        data = os.read(fd, hint + 1)
        if len(data) <= hint:
            return data
        parts = [data]
        while part := os.read(fd, 1 << 20):
            parts.append(part)
        return b"".join(parts)
    finally:
        os.close(fd)


def _store_small_files(writer: ChunkWriter, items: list) -> list:
    """Worker job: read and store a batch of [entry, abspath] files; fills entry chunks and size."""
    for entry, path in items:
        st = entry[1]
        data = _read_all(path, st.st_dev, st.st_ino, st.st_size)
        if data is None:
            entry[3] = False  # vanished between walk and read: left out of the snapshot
            continue
        # Small files go inline into their directory node (see manifest.INLINE_MAX).
        entry[3] = data if 0 < len(data) <= manifest.INLINE_MAX else writer.store_buffer(data)
        entry[4] = len(data)
    return items


def _store_big_file(writer: ChunkWriter, pool: Executor, entry: list, path: bytes) -> None:
    st = entry[1]
    try:
        fd = os.open(path, _FILE_FLAGS)
    except OSError as exc:
        if exc.errno not in _GONE_ERRNOS:
            raise
        entry[3] = False
        return
    try:
        fst = os.fstat(fd)
        if fst.st_ino != st.st_ino or fst.st_dev != st.st_dev or not stat.S_ISREG(fst.st_mode):
            entry[3] = False
            return

        def submit(group):
            return pool.submit(writer.store_group, group)

        # Fewer allocated blocks than the size says: holes. Skip them instead of reading zeros.
        if fst.st_blocks * 512 < fst.st_size:
            chunks = []
            for off, length, is_hole in data_segments(fd, fst.st_size):
                if is_hole:
                    chunks.extend(hole_entries(length))
                else:
                    chunks.extend(writer.store_stream(SegmentReader(fd, off, length), submit))
        else:
            chunks = writer.store_stream(SegmentReader(fd, 0, None), submit)
        entry[3] = chunks
        entry[4] = sum(n for _, n in chunks)
    finally:
        os.close(fd)


def take_snapshot(
    source: str, writer: ChunkWriter, pool: Executor, previous: SnapshotIndex | None, index: SnapshotIndex
) -> tuple[bytes, int, int, int]:
    """Store the tree at ``source``; returns (root blob id, logical bytes, files, files read)."""
    start_ns = time.time_ns()
    root_path = os.fsencode(os.path.abspath(source))
    prev = previous.files if previous is not None else {}
    dirs, futures, big, batch, batch_bytes = [], [], [], [], 0
    files_read = 0

    def flush():
        nonlocal batch, batch_bytes
        if batch:
            futures.append(pool.submit(_store_small_files, writer, batch))
            batch, batch_bytes = [], 0

    def list_dir(fd: int, node: _Dir, rel: bytes) -> list:
        """Record one directory's files and symlinks; returns its subdirectory names."""
        nonlocal files_read, batch_bytes
        dirs.append(node)
        names = []
        with os.scandir(fd) as it:
            for e in it:
                try:
                    names.append((os.fsencode(e.name), e.stat(follow_symlinks=False)))
                except FileNotFoundError:
                    continue  # deleted between readdir and stat
        prefix, subdirs = (rel + b"/" if rel else b""), []
        for name, st in names:
            relpath, mode = prefix + name, st.st_mode
            if stat.S_ISREG(mode):
                entry = [name, st, relpath, None, st.st_size]
                node.files.append(entry)
                hit = prev.get(relpath)
                if hit is not None and (hit[0], hit[1], hit[2]) == (st.st_size, st.st_mtime_ns, st.st_ino):
                    entry[3] = hit[3]
                    continue
                files_read += 1
                abspath = root_path + b"/" + relpath
                if st.st_size > READ_WHOLE_MAX:
                    big.append((entry, abspath))
                    continue
                batch.append((entry, abspath))
                batch_bytes += st.st_size
                if batch_bytes >= BATCH_BYTES or len(batch) >= BATCH_FILES:
                    flush()
            elif stat.S_ISDIR(mode):
                subdirs.append((name, relpath))
            elif stat.S_ISLNK(mode):
                try:
                    target = os.readlink(name, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in _GONE_ERRNOS:
                        continue
                    raise
                node.links.append(
                    manifest.Symlink(name, stat.S_IMODE(mode), st.st_mtime_ns, os.fsencode(target))
                )
            # Sockets, FIFOs and device nodes are not workspace content; they are skipped.
        return subdirs

    # Depth-first with one open directory fd per level (not per pending directory), so a wide tree
    # cannot exhaust file descriptors; every fd is closed on the way out, errors included.
    root_fd = os.open(root_path, _DIR_FLAGS)
    top = _Dir(b"", os.fstat(root_fd))
    stack = [(root_fd, top, list_dir(root_fd, top, b""))]
    try:
        while stack:
            fd, node, pending = stack[-1]
            if not pending:
                os.close(fd)
                stack.pop()
                continue
            name, relpath = pending.pop()
            try:
                child_fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in _GONE_ERRNOS:
                    continue
                raise
            child = _Dir(name, os.fstat(child_fd))
            node.subdirs.append(child)
            stack.append((child_fd, child, []))  # on the stack first, so a failing listing still closes it
            stack[-1] = (child_fd, child, list_dir(child_fd, child, relpath))
    finally:
        for fd, _node, _pending in stack:
            os.close(fd)
    flush()
    for entry, abspath in big:
        _store_big_file(writer, pool, entry, abspath)
    for f in futures:
        f.result()
    return _write_trees(dirs, writer, index, start_ns) + (files_read,)


def _write_trees(dirs: list, writer: ChunkWriter, index: SnapshotIndex, start_ns: int) -> tuple:
    """Encode and store directory nodes children-first; fill the new index. Returns (root, bytes, files)."""
    logical = nfiles = 0
    racy_after = start_ns - RACY_WINDOW_NS
    for node in reversed(dirs):  # ``dirs`` is in pre-order, so children come after their parent
        entries = list(node.links)
        for name, st, relpath, chunks, size in node.files:
            if chunks is False:
                continue
            mode = stat.S_IMODE(st.st_mode)
            if isinstance(chunks, bytes):
                entries.append(manifest.File(name, mode, st.st_mtime_ns, size, (), b"", chunks))
            else:
                chunks = tuple(chunks)
                big = len(chunks) >= manifest.INDIRECT_MIN
                list_id = writer.store(manifest.encode_list(chunks)) if big else b""
                entries.append(manifest.File(name, mode, st.st_mtime_ns, size, chunks, list_id))
            logical += size
            nfiles += 1
            if size == st.st_size and st.st_mtime_ns < racy_after:
                index.files[relpath] = (st.st_size, st.st_mtime_ns, st.st_ino, chunks)
        entries.extend(manifest.Dir(d.name, d.mode, d.mtime_ns, d.tree) for d in node.subdirs)
        node.tree = writer.store(manifest.encode_tree(entries))
    top = dirs[0]
    root = manifest.Root(top.tree, top.mode, top.mtime_ns, logical, nfiles)
    return writer.store(manifest.encode_root(root)), logical, nfiles
