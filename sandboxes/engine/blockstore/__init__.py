"""Content-addressed block store for sandbox snapshots (DESIGN.md §7); plain Python, no Django.

FastCDC chunks -> SHA-256 ids -> zstd (or lz4) -> local cache -> S3 cold tier. See ``store.BlockStore``.

    store = BlockStore("/var/lib/mem0/blocks", s3=S3Backend("mem0-chunks", sse="AES256"))
    res = store.snapshot_tree("/srv/sandboxes/abc/workspace", previous_index=last_index)
    # res.digest, res.logical_bytes, res.new_bytes, res.stored_bytes, res.files, res.index (keep for next time)
    store.upload(res.digest)                      # worker: push to S3
    store.restore_tree(res.digest, "/srv/sandboxes/def/workspace")
    store.gc(live_digests)                        # worker: digests the database still references

Scopes: ``store.scoped("org-42")`` is a separate chunk namespace (``scopes/org-42/`` on disk,
``<prefix>scopes/org-42/`` in S3, its own catalog and GC lock, the parent's worker pool). The Django side
gives every organisation its own scope, so chunks dedupe only within an organisation: whether a snapshot
stores a chunk anew (its ``new_bytes``/``stored_bytes``, and how long it takes) never depends on what
another organisation holds, which would otherwise be a confirm-a-file oracle across tenants. The price is
one copy per organisation of content several hold (bench/tenant_scopes.py: three organisations with the
same 51 MB workspace store 61.2 MB instead of 20.4 MB); dedup across one organisation's snapshots is
unchanged (44x over 20 snapshots with ~1 % of files changed each).

Charging: ``store.referenced_bytes(live_digests)`` is what a set of snapshots keeps referenced, each chunk
once at its uncompressed size, reading each distinct directory node once.

Modules: chunking (CDC + writer), compression (codec byte), cache (local files), manifest (Merkle tree
encoding), snapshot / restore (tree walks), s3 (bucket), catalog (SQLite metadata), gc (protocol).
"""

from .errors import (
    BlockStoreError,
    ChunkArchived,
    ChunkMissing,
    CorruptChunk,
    GCBusy,
    NotASnapshot,
    RestoreTargetNotEmpty,
)
from .s3 import S3Backend
from .snapshot import SnapshotIndex, SnapshotResult
from .store import BlockStore, Manifest

__all__ = [
    "BlockStore",
    "BlockStoreError",
    "ChunkArchived",
    "ChunkMissing",
    "CorruptChunk",
    "GCBusy",
    "Manifest",
    "NotASnapshot",
    "RestoreTargetNotEmpty",
    "S3Backend",
    "SnapshotIndex",
    "SnapshotResult",
]
