"""S3 (or any S3-compatible store) as the shared cold tier for chunks, through boto3.

Objects are the cache's blobs unchanged (codec byte + payload) under ``<prefix>chunks/<sha256 hex>``, so
what comes back is verified against its id exactly like a local read. Storage class and server-side
encryption are set on every write (SSE-S3 ``AES256`` or SSE-KMS ``aws:kms`` with a key id).
"""

from collections.abc import Iterable, Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .errors import ChunkArchived

COLD_CLASSES = {"GLACIER", "DEEP_ARCHIVE"}
_DELETE_BATCH = 1000  # the DeleteObjects limit


class S3Backend:
    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        storage_class: str = "STANDARD",
        sse: str | None = None,
        kms_key_id: str | None = None,
        client=None,
    ) -> None:
        if sse not in (None, "AES256", "aws:kms"):
            raise ValueError("sse must be None, 'AES256' or 'aws:kms'")
        if kms_key_id and sse != "aws:kms":
            raise ValueError("kms_key_id needs sse='aws:kms'")
        self.bucket, self.prefix = bucket, prefix
        self.storage_class, self.sse, self.kms_key_id = storage_class, sse, kms_key_id
        self.client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            config=Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 5}),
        )

    def with_prefix(self, prefix: str) -> "S3Backend":
        """The same bucket, client and write settings under another key prefix (a block store scope)."""
        other = object.__new__(S3Backend)
        other.__dict__.update(self.__dict__)
        other.prefix = prefix
        return other

    def key(self, cid: bytes) -> str:
        return f"{self.prefix}chunks/{cid.hex()}"

    def _write_args(self, storage_class: str | None) -> dict:
        args = {"StorageClass": storage_class or self.storage_class}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        return args

    def put(self, cid: bytes, blob: bytes, storage_class: str | None = None) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=self.key(cid), Body=blob, **self._write_args(storage_class)
        )

    def get(self, cid: bytes) -> bytes | None:
        """The stored blob, None if absent; ``ChunkArchived`` if it is in a cold class and not restored."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(cid))["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                return None
            if code == "InvalidObjectState":
                raise ChunkArchived(cid.hex()) from None
            raise

    def head(self, cid: bytes) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(cid))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def list_chunks(self) -> Iterator[tuple[bytes, float]]:
        """Every chunk in the bucket under the prefix as (id, last-modified epoch seconds)."""
        base = f"{self.prefix}chunks/"
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(base) :]
                if len(name) == 64:
                    yield bytes.fromhex(name), obj["LastModified"].timestamp()

    def delete(self, ids: Iterable[bytes]) -> int:
        ids, deleted = list(ids), 0
        for i in range(0, len(ids), _DELETE_BATCH):
            objs = [{"Key": self.key(c)} for c in ids[i : i + _DELETE_BATCH]]
            resp = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objs, "Quiet": True})
            deleted += len(objs) - len(resp.get("Errors", []))
        return deleted

    def set_storage_class(self, cid: bytes, storage_class: str) -> None:
        """Move one object to another class by copying it onto itself (what S3 itself recommends)."""
        key = self.key(cid)
        self.client.copy_object(
            Bucket=self.bucket,
            Key=key,
            CopySource={"Bucket": self.bucket, "Key": key},
            MetadataDirective="COPY",
            **self._write_args(storage_class),
        )

    def request_restore(self, cid: bytes, tier: str = "Standard", days: int = 7) -> bool:
        """Ask S3 to thaw a cold object for ``days``; False when it is not cold or already being thawed."""
        try:
            self.client.restore_object(
                Bucket=self.bucket,
                Key=self.key(cid),
                RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in (
                "RestoreAlreadyInProgress",
                "InvalidObjectState",
            ):
                return False
            raise
        return True

    def put_lifecycle_transition(
        self, days: int, storage_class: str = "GLACIER", rule_id: str = "mem0-chunks-cold"
    ) -> None:
        """Bucket rule: chunks under this prefix move to ``storage_class`` ``days`` after they were written.

        Chunks are shared between snapshots, so this ages *data* rather than snapshots: use it on a prefix
        that holds archived snapshots (or accept that restores may need ``request_restore``).
        """
        self.client.put_bucket_lifecycle_configuration(
            Bucket=self.bucket,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": rule_id,
                        "Filter": {"Prefix": f"{self.prefix}chunks/"},
                        "Status": "Enabled",
                        "Transitions": [{"Days": days, "StorageClass": storage_class}],
                    }
                ]
            },
        )
