"""Content-addressed block store for sandbox snapshots (DESIGN.md §7); plain Python, no Django.

FastCDC chunks -> SHA-256 ids -> zstd (or lz4) -> local cache -> S3 cold tier. See ``store.BlockStore``.

    store = BlockStore("/var/lib/mem0/blocks", s3=S3Backend("mem0-chunks", sse="AES256"))
    res = store.snapshot_tree("/srv/sandboxes/abc/workspace", previous_index=last_index)
    # res.digest, res.logical_bytes, res.new_bytes, res.stored_bytes, res.files, res.index (keep for next time)
    store.upload(res.digest)                      # worker: push to S3
    store.restore_tree(res.digest, "/srv/sandboxes/def/workspace")
    store.gc(live_digests)                        # worker: digests the database still references

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
