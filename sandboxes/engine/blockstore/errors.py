"""Domain errors of the block store, each with a stable ``code`` the API layer can put in its envelope."""


class BlockStoreError(Exception):
    code = "blockstore_error"


class CorruptChunk(BlockStoreError):
    """A stored chunk does not hash to its id (or does not decode): the data is never returned."""

    code = "corrupt_chunk"

    def __init__(self, chunk_id: str, reason: str) -> None:
        super().__init__(f"chunk {chunk_id} is corrupt: {reason}")
        self.chunk_id = chunk_id
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.chunk_id, self.reason)


class ChunkMissing(BlockStoreError):
    """A chunk is in neither the local cache nor S3 (or no S3 backend is configured)."""

    code = "chunk_missing"

    def __init__(self, chunk_id: str) -> None:
        super().__init__(f"chunk {chunk_id} is missing from the cache and the bucket")
        self.chunk_id = chunk_id

    def __reduce__(self):
        return type(self), (self.chunk_id,)


class ChunkArchived(BlockStoreError):
    """A chunk sits in a cold storage class (GLACIER, DEEP_ARCHIVE): call ``request_restore`` and wait."""

    code = "chunk_archived"

    def __init__(self, chunk_id: str) -> None:
        super().__init__(f"chunk {chunk_id} is archived; request a restore first")
        self.chunk_id = chunk_id

    def __reduce__(self):
        return type(self), (self.chunk_id,)


class NotASnapshot(BlockStoreError):
    """The digest names a chunk that is not a snapshot root."""

    code = "not_a_snapshot"


class RestoreTargetNotEmpty(BlockStoreError):
    code = "restore_target_not_empty"


class GCBusy(BlockStoreError):
    """GC could not get the sweep lock because snapshots kept it held for the whole wait."""

    code = "gc_busy"
