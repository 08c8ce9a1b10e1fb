"""Local chunk cache: one file per chunk under ``chunks/<first byte hex>/<sha256 hex>``.

Writes are atomic: the blob goes to an unnamed temp inode (O_TMPFILE) in the chunk's fan-out directory and
is linked into place (or, without O_TMPFILE, a temp file renamed), so a reader sees no chunk or a whole one. Durability is group-committed:
``fsync`` per chunk costs ~430 us against ~140 us for the write itself on the dev VM (3x), so a snapshot
makes its chunks durable in one step before it publishes its root (``make_durable``): every chunk it
wrote is on disk before any manifest names it. A chunk torn by a crash anyway fails its hash on read (``CorruptChunk``), never serves.

A zero-length file is an *eviction stub*: the chunk was dropped locally because S3 holds it. ``has()`` is
still true (dedup keeps working without asking S3); ``read_blob()`` reports it as not local.
"""

import ctypes
import errno
import hashlib
import os
import uuid

from . import compression
from .errors import CorruptChunk

_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD, _AT_SYMLINK_FOLLOW = -100, 0x400
FSYNC_EACH_MAX = 64


class ChunkCache:
    def __init__(self, root: str) -> None:
        self.dir = os.path.join(root, "chunks")
        for i in range(256):
            os.makedirs(os.path.join(self.dir, f"{i:02x}"), exist_ok=True)

    def path(self, cid: bytes) -> str:
        h = cid.hex()
        return f"{self.dir}/{h[:2]}/{h}"

    def has(self, cid: bytes) -> bool:
        """True when the store holds the chunk, locally or (stub) in S3."""
        return os.path.exists(self.path(cid))

    def is_local(self, cid: bytes) -> bool:
        try:
            return os.stat(self.path(cid)).st_size > 0
        except FileNotFoundError:
            return False

    def write_blob(self, cid: bytes, header: bytes, payload, replace: bool = False) -> int:
        """Atomically publish ``header + payload`` as chunk ``cid``; returns the stored size in bytes.

        The blob is written to an unnamed O_TMPFILE inode and linked into place: readers see all of it
        or nothing, a crash leaves no debris, and it costs 36 us against 55 us for temp file + rename
        (5000 3 KB chunks on the dev VM's ext4). Linking fails with EEXIST if another writer published
        the same chunk first, which is then fine: same id, same bytes. ``replace`` renames over whatever is
        there instead (an eviction stub being filled again from S3).
        """
        final = self.path(cid)
        if replace:
            return self._write_blob_renamed(cid, header, payload)
        want = len(header) + len(payload)
        try:
            fd = os.open(os.path.dirname(final), os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            return self._write_blob_renamed(cid, header, payload)
        try:
            n = os.writev(fd, [header, payload])
            if n != want:
                raise OSError(f"short write of chunk {cid.hex()}: {n} of {want}")
            if (
                _libc.linkat(
                    _AT_FDCWD,
                    f"/proc/self/fd/{fd}".encode(),
                    _AT_FDCWD,
                    os.fsencode(final),
                    _AT_SYMLINK_FOLLOW,
                )
                != 0
            ):
                err = ctypes.get_errno()
                if err == errno.EEXIST:
                    return 0
                raise OSError(err, os.strerror(err), final)
        finally:
            os.close(fd)
        return n

    def _write_blob_renamed(self, cid: bytes, header: bytes, payload) -> int:
        """Dot-prefixed temp file, then rename: for replacing, and where O_TMPFILE is unsupported."""
        final = self.path(cid)
        tmp = f"{final[:-64]}.{cid.hex()[:16]}.{uuid.uuid4().hex[:12]}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            n = os.writev(fd, [header, payload])
            if n != len(header) + len(payload):
                raise OSError(f"short write of chunk {cid.hex()}")
        finally:
            os.close(fd)
        os.rename(tmp, final)
        return n

    def put(self, cid: bytes, data, codec: int) -> int:
        header, payload = compression.encode(data, codec)
        return self.write_blob(cid, header, payload)

    def read_blob(self, cid: bytes) -> bytes | None:
        """The stored blob, or None when the chunk is absent or evicted to S3."""
        try:
            with open(self.path(cid), "rb", buffering=0) as f:
                blob = f.read()
        except FileNotFoundError:
            return None
        return blob or None

    def read(self, cid: bytes) -> bytes | None:
        """The chunk's verified data, None when not local; raises ``CorruptChunk`` on a hash mismatch."""
        blob = self.read_blob(cid)
        if blob is None:
            return None
        return verify(cid, blob)

    def evict(self, cid: bytes) -> int:
        """Replace the chunk with a stub (S3 must hold it); returns the bytes freed."""
        final = self.path(cid)
        try:
            size = os.stat(final).st_size
        except FileNotFoundError:
            return 0
        tmp = f"{final[:-64]}.{cid.hex()[:16]}.{uuid.uuid4().hex[:12]}.tmp"
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.rename(tmp, final)
        return size

    def delete(self, cid: bytes) -> int:
        try:
            size = os.stat(self.path(cid)).st_size
            os.unlink(self.path(cid))
            return size
        except FileNotFoundError:
            return 0

    def quarantine(self, cid: bytes) -> None:
        """Move a corrupt chunk aside so it is neither served nor counted as present."""
        qdir = os.path.join(os.path.dirname(self.dir), "corrupt")
        os.makedirs(qdir, exist_ok=True)
        try:
            os.rename(self.path(cid), os.path.join(qdir, f"{cid.hex()}.{uuid.uuid4().hex[:8]}"))
        except FileNotFoundError:
            pass

    def scan(self):
        """Yield (cid, size, mtime, is_temp, path) for every file in the cache (stubs have size 0)."""
        for i in range(256):
            with os.scandir(os.path.join(self.dir, f"{i:02x}")) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if e.name.startswith("."):
                        yield None, st.st_size, st.st_mtime, True, e.path
                    else:
                        yield bytes.fromhex(e.name), st.st_size, st.st_mtime, False, e.path

    def make_durable(self, cids: list, pool) -> None:
        """Make the chunks ``cids`` (and their directory entries) durable before a manifest names them.

        A few chunks are fsynced one by one with their fan-out directories, in the pool; many at once
        take one ``syncfs``, which is cheaper than thousands of fsyncs but also flushes whatever else
        is dirty on the filesystem, so small (incremental) snapshots avoid it.
        """
        if len(cids) > FSYNC_EACH_MAX:
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if _libc.syncfs(fd) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(fd)
            return
        paths = [self.path(c) for c in cids]
        list(pool.map(_fsync_path, paths + sorted({os.path.dirname(p) for p in paths})))


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify(cid: bytes, blob: bytes) -> bytes:
    data = compression.decode(blob, cid.hex())
    if hashlib.sha256(data).digest() != cid:
        raise CorruptChunk(cid.hex(), "content does not match its sha256")
    return data
