"""Content-addressed block store for sandbox snapshots (DESIGN.md §7); plain Python, no Django.

FastCDC chunks -> SHA-256 ids -> zstd (or lz4) -> local cache -> S3 cold tier. See ``store.BlockStore``.
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
