"""Garbage collection: mark-and-sweep of chunks no live snapshot references, safe against snapshots
running at the same time in other threads or processes.

Protocol (files under the store root):
  * ``gc.lock`` is an flock. Every ``snapshot_tree`` holds it *shared* from before its first existence
    check until its root is durable and journalled; the GC sweep holds it *exclusive*. So no chunk is
    deleted between a snapshot deciding "already stored, reuse it" and that snapshot's root being known.
  * ``catalog.db`` journals each committed root with its commit time. Roots committed within
    ``grace_seconds`` before the GC started count as live (the caller's live set may not list them yet:
    the API records a snapshot only after ``snapshot_tree`` returns).
  1. Mark, unlocked: everything reachable from live digests and from journalled recent roots.
  2. List candidates, unlocked: local cache files and S3 objects not marked (S3 objects only when older
     than the grace period, for writers on other hosts). Temp files older than the grace are debris.
  3. Sweep, exclusive lock (waits for running snapshots; new ones wait for the sweep, which only
     deletes): first mark roots committed since step 1 began, drop them from the candidates, then delete,
     bump the GC epoch if anything went (an index from before it is ignored, since its reused chunks may be gone) and prune
     the journal.
  If a live digest cannot be read, GC raises before deleting anything.
"""

import fcntl
import os
import time
from contextlib import contextmanager

from . import manifest
from .errors import GCBusy
from .manifest import HOLE


class SweepLock:
    def __init__(self, path: str) -> None:
        self.path = path

    @contextmanager
    def shared(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    @contextmanager
    def exclusive(self, timeout: float):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise GCBusy("snapshots held the sweep lock for the whole wait") from None
                    time.sleep(0.01)
            yield
        finally:
            os.close(fd)


def mark(read_chunk, roots, marked: set, seen_trees: set) -> None:
    """Add every chunk id reachable from the snapshot ``roots`` (hex digests) to ``marked``."""
    for digest in roots:
        rid = bytes.fromhex(digest)
        if rid in marked:
            continue
        root = manifest.decode_root(read_chunk(rid), digest)
        marked.add(rid)
        stack = [root.tree]
        while stack:
            tid = stack.pop()
            if tid in seen_trees:
                continue
            seen_trees.add(tid)
            marked.add(tid)
            for e in manifest.decode_tree(read_chunk(tid), read_chunk):
                if isinstance(e, manifest.File):
                    marked.update(cid for cid, _ in e.chunks if cid != HOLE)
                    if e.list_id:
                        marked.add(e.list_id)
                elif isinstance(e, manifest.Dir):
                    stack.append(e.tree)


def collect(store, live_digests, grace_seconds: float, lock_timeout: float) -> dict:
    started = time.time()
    horizon = started - grace_seconds
    roots = set(live_digests) | set(store.catalog.roots_since(horizon))
    marked, seen_trees = set(), set()
    mark(store.read_chunk, roots, marked, seen_trees)

    local, stale_tmp = [], []
    for cid, _size, mtime, is_tmp, path in store.cache.scan():
        if is_tmp:
            if mtime < horizon:
                stale_tmp.append(path)
        elif cid not in marked:
            local.append(cid)
    remote = []
    if store.s3 is not None:
        remote = [cid for cid, modified in store.s3.list_chunks() if cid not in marked and modified < horizon]

    with store.lock.exclusive(lock_timeout):
        late = set(store.catalog.roots_since(started)) - roots
        mark(store.read_chunk, late, marked, seen_trees)
        local = [c for c in local if c not in marked]
        remote = [c for c in remote if c not in marked]
        freed = sum(store.cache.delete(c) for c in local)
        for path in stale_tmp:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        deleted_remote = store.s3.delete(remote) if remote else 0
        store.catalog.forget_remote(remote)
        if local or remote:
            store.catalog.bump_epoch()
        store.catalog.prune_roots(horizon)
    return {
        "live_roots": len(roots) + len(late),
        "marked_chunks": len(marked),
        "deleted_local": len(local),
        "freed_local_bytes": freed,
        "deleted_remote": deleted_remote,
        "deleted_temp_files": len(stale_tmp),
    }
