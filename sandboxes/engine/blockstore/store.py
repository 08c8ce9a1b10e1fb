"""``BlockStore``: the block store's one entry point (snapshot, restore, upload, tiering, GC, eviction).

Layout under ``root_dir``: ``chunks/<xx>/<sha256>`` (the cache), ``catalog.db`` (S3 knowledge, root
journal, GC epoch), ``gc.lock`` (the snapshot/sweep lock, see ``gc.py``), ``store-id``.
Hashing, compression and file I/O run in a thread pool: hashlib, zstd, lz4 and os.read/os.write all
release the GIL, and on the 2-core bench host threads reach the targets (see bench/snapshots.py).
"""

import logging
import os
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import compression, gc, manifest, restore
from .cache import ChunkCache, verify
from .catalog import Catalog
from .chunking import ChunkWriter
from .errors import ChunkMissing, CorruptChunk
from .manifest import HOLE
from .s3 import COLD_CLASSES, S3Backend
from .snapshot import SnapshotIndex, SnapshotResult, take_snapshot

log = logging.getLogger(__name__)


@dataclass
class Manifest:
    """A snapshot's tree for listing: ``root`` is a ``manifest.Dir`` whose ``entries`` are filled in."""

    digest: str
    logical_bytes: int
    files: int
    root: manifest.Dir


SCOPE_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class BlockStore:
    """One chunk namespace: a cache directory, its catalog and GC lock, and optionally an S3 prefix.

    ``scoped(name)`` gives a separate namespace under ``scopes/<name>/`` (and ``<prefix>scopes/<name>/``
    in S3) that shares this store's worker pool. The Django side gives each organisation its own scope, so
    chunks dedupe only within an organisation and nothing a snapshot reports (``new_bytes``,
    ``stored_bytes``, its timing) depends on what another organisation stores; see the package docstring.
    """

    def __init__(
        self,
        root_dir: str,
        *,
        s3: S3Backend | None = None,
        cache_max_bytes: int | None = None,
        workers: int | None = None,
        _parent: "BlockStore | None" = None,
    ) -> None:
        self.root = os.path.abspath(root_dir)
        os.makedirs(self.root, exist_ok=True)
        self.s3, self.cache_max_bytes = s3, cache_max_bytes
        self.cache = ChunkCache(self.root)
        self.catalog = Catalog(os.path.join(self.root, "catalog.db"))
        self.lock = gc.SweepLock(os.path.join(self.root, "gc.lock"))
        self.store_id = self._store_id()
        self._workers = workers or os.cpu_count() or 2
        self._pool_obj: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        self._parent = _parent
        self._scopes: dict[str, BlockStore] = {}

    def scoped(self, scope: str) -> "BlockStore":
        """The store of namespace ``scope`` (``[a-z0-9-]``, at most 63 characters), made on first use."""
        if self._parent is not None:
            raise ValueError("scopes do not nest")
        if not isinstance(scope, str) or not SCOPE_RE.fullmatch(scope):
            raise ValueError(f"invalid block store scope {scope!r}")
        with self._pool_lock:
            store = self._scopes.get(scope)
            if store is None:
                s3 = self.s3.with_prefix(f"{self.s3.prefix}scopes/{scope}/") if self.s3 is not None else None
                store = BlockStore(
                    os.path.join(self.root, "scopes", scope),
                    s3=s3,
                    cache_max_bytes=self.cache_max_bytes,
                    workers=self._workers,
                    _parent=self,
                )
                self._scopes[scope] = store
            return store

    def scope_names(self) -> list[str]:
        """Every scope that has a directory here (for GC: a scope whose snapshots are all gone still has chunks)."""
        try:
            names = os.listdir(os.path.join(self.root, "scopes"))
        except FileNotFoundError:
            return []
        return sorted(n for n in names if SCOPE_RE.fullmatch(n))

    @property
    def _pool(self) -> ThreadPoolExecutor:
        """The worker pool, created on first use and again in a forked child (threads do not survive fork)."""
        if self._parent is not None:
            return self._parent._pool
        with self._pool_lock:
            if self._pool_obj is None or self._pool_pid != os.getpid():
                self._pool_obj = ThreadPoolExecutor(self._workers, thread_name_prefix="blockstore")
                self._pool_pid = os.getpid()
            return self._pool_obj

    def _store_id(self) -> str:
        path = os.path.join(self.root, "store-id")
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            sid = uuid.uuid4().hex
            tmp = f"{path}.{sid}"
            with open(tmp, "w") as f:
                f.write(sid)
            try:
                os.link(tmp, path)  # first writer wins; a racing store reads the winner's id
            except FileExistsError:
                pass
            os.unlink(tmp)
            return self._store_id()

    def close(self) -> None:
        for store in list(self._scopes.values()):
            store.close()
        self._scopes.clear()
        if self._pool_obj is not None and self._pool_pid == os.getpid():
            self._pool_obj.shutdown(wait=True)
        self._pool_obj = None
        self.catalog.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- snapshot -------------------------------------------------------------------------------------

    def snapshot_tree(
        self, path: str, *, previous_index: SnapshotIndex | None = None, codec: str = "zstd"
    ) -> SnapshotResult:
        """Store the tree at ``path``; files unchanged since ``previous_index`` are not read again."""
        source = os.fsencode(os.path.abspath(path))
        writer = ChunkWriter(self.cache, compression.codec_id(codec))
        with self.lock.shared():
            epoch = self.catalog.epoch()
            prev = previous_index
            if prev is not None and (prev.store_id, prev.source, prev.epoch) != (
                self.store_id,
                source,
                epoch,
            ):
                prev = None  # another store, another tree, or GC ran since: its chunks may be gone
            index = SnapshotIndex(self.store_id, source, epoch)
            root_id, logical, files, files_read = take_snapshot(path, writer, self._pool, prev, index)
            self.cache.make_durable(writer.written, self._pool)
            digest = root_id.hex()
            self.catalog.record_root(digest)
        log.info(
            "snapshot digest=%s files=%d read=%d logical=%d new=%d stored=%d",
            digest,
            files,
            files_read,
            logical,
            writer.new_bytes,
            writer.stored_bytes,
        )
        return SnapshotResult(
            digest, logical, writer.new_bytes, writer.stored_bytes, files, index, files_read
        )

    # -- reading --------------------------------------------------------------------------------------

    def read_chunk(self, cid: bytes) -> bytes:
        """A chunk's verified data, from the cache or else S3 (then cached). Never returns bad data.

        A corrupt local copy is quarantined and replaced from S3 when the bucket has a good one;
        otherwise ``CorruptChunk`` propagates.
        """
        try:
            data = self.cache.read(cid)
        except CorruptChunk:
            self.cache.quarantine(cid)
            log.error("corrupt chunk quarantined chunk=%s", cid.hex())
            if self.s3 is None:
                raise
            data = None
        if data is not None:
            return data
        if self.s3 is None:
            raise ChunkMissing(cid.hex())
        blob = self.s3.get(cid)
        if blob is None:
            raise ChunkMissing(cid.hex())
        data = verify(cid, blob)
        self.cache.write_blob(cid, blob[:1], memoryview(blob)[1:], replace=True)  # over an eviction stub
        return data

    def _root(self, digest: str) -> manifest.Root:
        return manifest.decode_root(self.read_chunk(bytes.fromhex(digest)), digest)

    def _trees(self, digest: str) -> tuple[manifest.Root, list]:
        root = self._root(digest)
        dirs: list = []
        restore.load_tree(self.read_chunk, root.tree, b"", dirs)
        return root, dirs

    def _refs(self, digest: str) -> tuple[list[bytes], set[bytes]]:
        """(manifest object ids, children before parents and the root last; data chunk ids)."""
        root = self._root(digest)
        nodes, data, stack = [], set(), [root.tree]
        while stack:
            tid = stack.pop()
            nodes.append(tid)
            for e in manifest.decode_tree(self.read_chunk(tid), self.read_chunk):
                if isinstance(e, manifest.File):
                    data.update(c for c, _ in e.chunks if c != HOLE)
                    if e.list_id:
                        nodes.append(e.list_id)  # after the reverse below: before the node naming it
                elif isinstance(e, manifest.Dir):
                    stack.append(e.tree)
        nodes.reverse()
        nodes.append(bytes.fromhex(digest))
        return nodes, data

    def referenced_bytes(self, digests: Iterable[str], *, missing: list | None = None) -> int:
        """Bytes the snapshots ``digests`` keep referenced together: every chunk they need (data, directory
        nodes, roots) counted once however many of them share it, at its uncompressed size.

        This is what an organisation is charged for (not what each snapshot added: deleting the first of
        two identical snapshots must not make the second free). Uncompressed, so the figure does not move
        when a chunk is evicted to S3 or re-encoded. Shared directory nodes are read once, so the cost is
        the number of distinct nodes, not snapshots times tree size. With a ``missing`` list, a root that
        is not in the store is appended there instead of raising ``ChunkMissing``."""
        sizes: dict[bytes, int] = {}
        seen_trees: set[bytes] = set()
        for digest in set(digests):
            rid = bytes.fromhex(digest)
            if rid in sizes:
                continue
            try:
                blob = self.read_chunk(rid)
            except ChunkMissing:
                if missing is None:
                    raise
                missing.append(digest)
                continue
            sizes[rid] = len(blob)
            stack = [manifest.decode_root(blob, digest).tree]
            while stack:
                tid = stack.pop()
                if tid in seen_trees:
                    continue
                seen_trees.add(tid)
                node = self.read_chunk(tid)
                sizes[tid] = len(node)
                for e in manifest.decode_tree(node, self.read_chunk):
                    if isinstance(e, manifest.File):
                        sizes.update((c, n) for c, n in e.chunks if c != HOLE)
                        if e.list_id and e.list_id not in sizes:
                            sizes[e.list_id] = len(self.read_chunk(e.list_id))
                    elif isinstance(e, manifest.Dir):
                        stack.append(e.tree)
        return sum(sizes.values())

    def chunk_refs(self, digest: str) -> set[str]:
        """Hex ids of every chunk the snapshot needs: its root, directory nodes and file data."""
        nodes, data = self._refs(digest)
        return {c.hex() for c in nodes} | {c.hex() for c in data}

    def manifest(self, digest: str) -> Manifest:
        root, dirs = self._trees(digest)
        by_path = {}
        top = manifest.Dir(b"", root.mode, root.mtime_ns, root.tree)
        by_path[b""] = top
        for path, entries in dirs:
            parent = by_path[path]
            parent.entries = sorted(entries, key=lambda e: e.name)
            for e in parent.entries:
                if isinstance(e, manifest.Dir):
                    by_path[path + b"/" + e.name] = e
        return Manifest(digest, root.logical_bytes, root.files, top)

    def restore_tree(self, digest: str, dest: str) -> None:
        """Recreate the snapshot in ``dest`` (missing or empty), fetching chunks missing locally from S3."""
        target = restore.prepare_dest(dest)
        root = self._root(digest)
        dirs: list = []
        restore.load_tree(self.read_chunk, root.tree, target, dirs)
        uses = Counter(
            c
            for _, entries in dirs
            for e in entries
            if isinstance(e, manifest.File)
            for c, _ in e.chunks
            if c != HOLE
        )
        if self.s3 is not None:
            missing = [c for c in uses if not self.cache.is_local(c)]
            list(self._pool.map(self.read_chunk, missing))
        shared = restore.SharedChunks(self.read_chunk, {c for c, n in uses.items() if n > 1})
        restore.restore_into(shared, root, dirs, target, self._pool)

    # -- S3 tier --------------------------------------------------------------------------------------

    def _require_s3(self) -> S3Backend:
        if self.s3 is None:
            raise ValueError("this BlockStore has no S3 backend")
        return self.s3

    def upload(self, digest: str) -> int:
        """Push the snapshot's chunks S3 lacks (data first, its root last); returns blob bytes uploaded."""
        s3 = self._require_s3()
        nodes, data = self._refs(digest)
        node_set = set(nodes)
        order = [c for c in data if c not in node_set] + nodes
        known = self.catalog.remote_subset(order)
        unknown = [c for c in order if c not in known]
        if len(unknown) > 1000:
            listed = {cid for cid, _ in s3.list_chunks()}
            present = {c for c in unknown if c in listed}
        else:
            present = {
                c for c, h in zip(unknown, self._pool.map(s3.head, unknown), strict=True) if h is not None
            }
        todo = [c for c in unknown if c not in present]

        def push(cid: bytes) -> int:
            blob = self.cache.read_blob(cid)
            if blob is None:
                raise ChunkMissing(cid.hex())
            verify(cid, blob)  # never upload a chunk that does not match its id
            s3.put(cid, blob)
            return len(blob)

        data_todo = [c for c in todo if c not in node_set]
        uploaded = sum(self._pool.map(push, data_todo))
        uploaded += sum(push(c) for c in todo if c in node_set)  # nodes in order, the root last
        self.catalog.mark_remote(order)
        if self.cache_max_bytes is not None:
            self.evict()
        return uploaded

    def archive(self, digest: str, storage_class: str = "GLACIER") -> int:
        """Move the snapshot's file data to a cold class (nodes stay hot so listing still works).

        Chunks are shared: a chunk another snapshot also uses goes cold for it too. Returns objects moved.
        """
        s3 = self._require_s3()
        self.upload(digest)
        _, data = self._refs(digest)
        list(self._pool.map(lambda c: s3.set_storage_class(c, storage_class), data))
        return len(data)

    def request_restore(self, digest: str, tier: str = "Standard", days: int = 7) -> int:
        """Ask S3 to thaw the snapshot's cold chunks (tier: Expedited, Standard, Bulk); returns requests."""
        s3 = self._require_s3()
        _, data = self._refs(digest)

        def thaw(cid: bytes) -> bool:
            head = s3.head(cid)
            if head is None or head.get("StorageClass") not in COLD_CLASSES:
                return False
            return s3.request_restore(cid, tier, days)

        return sum(self._pool.map(thaw, data))

    # -- space ----------------------------------------------------------------------------------------

    def gc(
        self, live_digests: Iterable[str], *, grace_seconds: float = 3600.0, lock_timeout: float = 600.0
    ) -> dict:
        """Delete chunks (cache and S3) that no live snapshot needs; see ``gc.py`` for the protocol."""
        stats = gc.collect(self, live_digests, grace_seconds, lock_timeout)
        log.info("gc %s", " ".join(f"{k}={v}" for k, v in stats.items()))
        return stats

    def scrub(self) -> dict:
        """Verify every chunk in the cache, quarantining the bad ones (run after an unclean shutdown).

        A power loss can leave chunks written in the last seconds torn, and a later snapshot would
        dedupe against them; a quarantined chunk is rewritten by the next snapshot that has its data
        and re-fetched from S3 by the next read.
        """
        checked = bad = 0
        for cid, size, _mtime, is_tmp, _path in self.cache.scan():
            if is_tmp or not size:
                continue
            checked += 1
            try:
                self.cache.read(cid)
            except CorruptChunk:
                self.cache.quarantine(cid)
                bad += 1
        log.info("scrub checked=%d quarantined=%d", checked, bad)
        return {"checked": checked, "quarantined": bad}

    def evict(self) -> int:
        """Bring the cache under ``cache_max_bytes`` by stubbing out chunks S3 holds, oldest first.

        Chunks only this host has are never evicted, so the cache may stay above the bound until they
        are uploaded. Returns bytes freed.
        """
        if self.cache_max_bytes is None:
            return 0
        files = [(mtime, cid, size) for cid, size, mtime, is_tmp, _ in self.cache.scan() if not is_tmp]
        total = sum(f[2] for f in files)
        if total <= self.cache_max_bytes:
            return 0
        remote = self.catalog.remote_subset(cid for _, cid, size in files if size > 0)
        freed = 0
        for _mtime, cid, _size in sorted(f for f in files if f[1] in remote and f[2] > 0):
            if total - freed <= self.cache_max_bytes:
                break
            freed += self.cache.evict(cid)
        return freed
