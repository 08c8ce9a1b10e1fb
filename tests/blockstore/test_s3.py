"""The S3 tier against a real S3-compatible server (moto's, standing in for AWS S3; see conftest)."""

import os

import pytest

from sandboxes.engine.blockstore import BlockStore, ChunkArchived

from .conftest import fingerprint


def _keys(s3_client, bucket) -> dict:
    resp = s3_client.list_objects_v2(Bucket=bucket)
    return {o["Key"]: o for o in resp.get("Contents", [])}


def test_restore_into_a_second_store_with_an_empty_cache_pulls_from_s3(tmp_path, tree, s3_backend):
    with BlockStore(str(tmp_path / "host-a"), s3=s3_backend()) as a:
        res = a.snapshot_tree(str(tree))
        uploaded = a.upload(res.digest)
    assert 0 < uploaded <= res.stored_bytes + 4096
    with BlockStore(str(tmp_path / "host-b"), s3=s3_backend()) as b:
        assert not any(size for _, size, _, _, _ in b.cache.scan())
        b.restore_tree(res.digest, str(tmp_path / "out"))
        assert b.manifest(res.digest).files == res.files
    assert fingerprint(tmp_path / "out") == fingerprint(tree)


def test_upload_sends_only_missing_chunks(tmp_path, tree, s3_backend, s3_client, bucket):
    with BlockStore(str(tmp_path / "s"), s3=s3_backend()) as s:
        first = s.snapshot_tree(str(tree))
        assert s.upload(first.digest) > 0
        assert s.upload(first.digest) == 0
        with open(tree / "src" / "main.py", "ab") as f:
            f.write(b"# edit\n")
        second = s.snapshot_tree(str(tree), previous_index=first.index)
        before = set(_keys(s3_client, bucket))
        sent = s.upload(second.digest)
        added = set(_keys(s3_client, bucket)) - before
    assert 0 < sent < 16 * 1024
    assert len(added) == len(s.chunk_refs(second.digest) - s.chunk_refs(first.digest))


def test_upload_skips_chunks_the_bucket_already_has_from_another_host(tmp_path, tree, s3_backend):
    with BlockStore(str(tmp_path / "a"), s3=s3_backend()) as a:
        res = a.snapshot_tree(str(tree))
        a.upload(res.digest)
    with BlockStore(str(tmp_path / "b"), s3=s3_backend()) as b:
        again = b.snapshot_tree(str(tree))
        assert again.digest == res.digest
        assert b.upload(again.digest) == 0  # found by HEAD, nothing re-sent


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"sse": "AES256"}, {"ServerSideEncryption": "AES256"}),
        (
            {"sse": "aws:kms", "kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/mem0-test"},
            {"ServerSideEncryption": "aws:kms"},
        ),
        ({"storage_class": "STANDARD_IA"}, {"StorageClass": "STANDARD_IA"}),
    ],
)
def test_encryption_and_storage_class_reach_s3(
    tmp_path, tree, s3_backend, s3_client, bucket, kwargs, expected
):
    with BlockStore(str(tmp_path / "s"), s3=s3_backend(**kwargs)) as s:
        res = s.snapshot_tree(str(tree))
        s.upload(res.digest)
    keys = list(_keys(s3_client, bucket))
    assert len(keys) == len(s.chunk_refs(res.digest))
    for key in keys[:5]:
        head = s3_client.head_object(Bucket=bucket, Key=key)
        for field, value in expected.items():
            assert head[field] == value
        if "kms_key_id" in kwargs:
            assert head["SSEKMSKeyId"].endswith("mem0-test")


def test_archive_to_glacier_then_request_restore(tmp_path, tree, s3_backend, s3_client, bucket):
    with BlockStore(str(tmp_path / "a"), s3=s3_backend()) as a:
        res = a.snapshot_tree(str(tree))
        moved = a.archive(res.digest, storage_class="GLACIER")
    assert moved > 0
    classes = {o.get("StorageClass") for o in _keys(s3_client, bucket).values()}
    assert classes == {"GLACIER", "STANDARD"}  # data is cold, manifest nodes stay hot for listing

    with BlockStore(str(tmp_path / "b"), s3=s3_backend()) as b:
        assert b.manifest(res.digest).files == res.files  # listing works without a thaw
        with pytest.raises(ChunkArchived):
            b.restore_tree(res.digest, str(tmp_path / "too-early"))
        assert b.request_restore(res.digest, tier="Bulk") == moved
        b.restore_tree(res.digest, str(tmp_path / "out"))
    assert fingerprint(tmp_path / "out") == fingerprint(tree)


def test_lifecycle_rule_transitions_chunks_after_n_days(s3_backend, s3_client, bucket):
    s3_backend(prefix="tenants/acme/").put_lifecycle_transition(30, storage_class="GLACIER")
    rules = s3_client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rules[0]["Transitions"][0] == {"Days": 30, "StorageClass": "GLACIER"}
    assert rules[0]["Filter"]["Prefix"] == "tenants/acme/chunks/"


def test_prefix_scopes_the_objects(tmp_path, tree, s3_backend, s3_client, bucket):
    with BlockStore(str(tmp_path / "s"), s3=s3_backend(prefix="tenants/acme/")) as s:
        s.upload(s.snapshot_tree(str(tree)).digest)
    assert all(k.startswith("tenants/acme/chunks/") for k in _keys(s3_client, bucket))


def test_cache_eviction_only_drops_chunks_s3_holds(tmp_path, s3_backend):
    ws = tmp_path / "ws"
    ws.mkdir()
    for i in range(20):
        (ws / f"f{i}").write_bytes(os.urandom(100_000))
    with BlockStore(str(tmp_path / "s"), s3=s3_backend(), cache_max_bytes=500_000) as s:
        uploaded = s.snapshot_tree(str(ws))
        s.upload(uploaded.digest)  # evicts down to the bound
        local = sum(size for _, size, _, _, _ in s.cache.scan())
        assert local <= 500_000

        for i in range(20):
            (ws / f"g{i}").write_bytes(os.urandom(100_000))
        only_here = s.snapshot_tree(str(ws))
        assert s.evict() > 0
        new_refs = s.chunk_refs(only_here.digest) - s.chunk_refs(uploaded.digest)
        assert all(s.cache.is_local(bytes.fromhex(c)) for c in new_refs)  # never evicted: S3 lacks them
        evicted = [c for c in s.chunk_refs(uploaded.digest) if not s.cache.is_local(bytes.fromhex(c))]
        assert evicted
        s.restore_tree(only_here.digest, str(tmp_path / "out"))  # evicted ones come back from S3
        assert all(s.cache.is_local(bytes.fromhex(c)) for c in evicted)  # and are cached again
    assert fingerprint(tmp_path / "out") == fingerprint(ws)


def test_gc_deletes_unreferenced_chunks_from_s3_too(tmp_path, s3_backend, s3_client, bucket):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "keep").write_bytes(os.urandom(50_000))
    with BlockStore(str(tmp_path / "s"), s3=s3_backend()) as s:
        keep = s.snapshot_tree(str(ws))
        s.upload(keep.digest)
        (ws / "drop").write_bytes(os.urandom(50_000))
        drop = s.snapshot_tree(str(ws))
        s.upload(drop.digest)
        keep_refs = s.chunk_refs(keep.digest)
        drop_only = s.chunk_refs(drop.digest) - keep_refs
        stats = s.gc([keep.digest], grace_seconds=0)
    assert stats["deleted_remote"] == len(drop_only)
    assert {k.rsplit("/", 1)[1] for k in _keys(s3_client, bucket)} == keep_refs


def test_a_scope_has_its_own_s3_prefix_and_restores_from_it_on_another_host(
    tmp_path, tree, s3_backend, s3_client, bucket
):
    with BlockStore(str(tmp_path / "host-a"), s3=s3_backend()) as a:
        res = a.scoped("org-7").snapshot_tree(str(tree))
        a.scoped("org-7").upload(res.digest)
    keys = _keys(s3_client, bucket)
    assert keys and all("scopes/org-7/chunks/" in k for k in keys)
    with BlockStore(str(tmp_path / "host-b"), s3=s3_backend()) as b:
        b.scoped("org-7").restore_tree(res.digest, str(tmp_path / "out"))
        assert b.scoped("org-7").gc([res.digest], grace_seconds=0)["deleted_remote"] == 0
        b.scoped("org-8").gc([], grace_seconds=0)
    assert fingerprint(tmp_path / "out") == fingerprint(tree)
    assert _keys(s3_client, bucket).keys() == keys.keys()
