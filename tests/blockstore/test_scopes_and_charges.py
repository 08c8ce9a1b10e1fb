"""Scopes (one chunk namespace per organisation) and the referenced-bytes charge."""

import os

import pytest

from sandboxes.engine.blockstore import ChunkMissing

from .conftest import fingerprint


def _write(path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_a_file_another_scope_holds_costs_the_same_as_a_wrong_guess(store, tmp_path):
    secret = os.urandom(40_000)
    _write(tmp_path / "victim" / "secret.bin", secret)
    store.scoped("org-b").snapshot_tree(str(tmp_path / "victim"))
    _write(tmp_path / "right" / "secret.bin", secret)
    # a wrong guess differing in its last byte has the same chunk boundaries, so the same figures expected
    _write(tmp_path / "wrong" / "secret.bin", secret[:-1] + bytes([secret[-1] ^ 1]))
    right = store.scoped("org-a").snapshot_tree(str(tmp_path / "right"))
    wrong = store.scoped("org-c").snapshot_tree(str(tmp_path / "wrong"))
    assert right.new_bytes == wrong.new_bytes >= 40_000
    assert abs(right.stored_bytes - wrong.stored_bytes) < 16 and right.stored_bytes >= 40_000


def test_chunks_still_dedupe_within_a_scope(store, tmp_path):
    _write(tmp_path / "ws" / "big.bin", os.urandom(2_000_000))
    org = store.scoped("org-a")
    first = org.snapshot_tree(str(tmp_path / "ws"))
    _write(tmp_path / "other" / "copy.bin", (tmp_path / "ws" / "big.bin").read_bytes())
    second = org.snapshot_tree(str(tmp_path / "other"))
    assert first.new_bytes >= 2_000_000 and second.new_bytes < 10_000


def test_a_scope_restores_only_its_own_snapshots(store, tmp_path):
    _write(tmp_path / "ws" / "f.txt", b"mine")
    res = store.scoped("org-a").snapshot_tree(str(tmp_path / "ws"))
    store.scoped("org-a").restore_tree(res.digest, str(tmp_path / "out"))
    assert fingerprint(tmp_path / "out") == fingerprint(tmp_path / "ws")
    with pytest.raises(ChunkMissing):
        store.scoped("org-b").restore_tree(res.digest, str(tmp_path / "out-b"))
    with pytest.raises(ChunkMissing):
        store.restore_tree(res.digest, str(tmp_path / "out-base"))


@pytest.mark.parametrize("bad", ["", "../x", "Org", "a/b", "-a", "a" * 64, ".", "org_1"])
def test_scope_names_cannot_leave_the_store(store, bad):
    with pytest.raises(ValueError):
        store.scoped(bad)


def test_referenced_bytes_counts_shared_chunks_once(store, tmp_path):
    ws = tmp_path / "ws"
    _write(ws / "big.bin", os.urandom(3_000_000))
    s1 = store.snapshot_tree(str(ws))
    s2 = store.snapshot_tree(str(ws))
    assert s2.stored_bytes == 0  # what the second *added*: nothing
    one = store.referenced_bytes([s1.digest])
    assert 3_000_000 <= one < 3_010_000
    assert store.referenced_bytes([s1.digest, s2.digest]) == one  # the same chunks, counted once
    assert store.referenced_bytes([s2.digest]) == one  # s2 alone keeps all of it
    _write(ws / "more.bin", os.urandom(1_000_000))
    s3 = store.snapshot_tree(str(ws))
    both = store.referenced_bytes([s1.digest, s3.digest])
    assert 4_000_000 <= both < 4_020_000 and store.referenced_bytes([]) == 0


def test_referenced_bytes_reports_a_missing_root_instead_of_failing(store, tmp_path):
    _write(tmp_path / "ws" / "f.bin", os.urandom(50_000))
    res = store.snapshot_tree(str(tmp_path / "ws"))
    missing = []
    assert store.referenced_bytes([res.digest, "ab" * 32], missing=missing) >= 50_000
    assert missing == ["ab" * 32]
    with pytest.raises(ChunkMissing):
        store.referenced_bytes(["ab" * 32])


def test_gc_of_one_scope_leaves_the_others_alone(store, tmp_path):
    _write(tmp_path / "ws" / "f.bin", os.urandom(200_000))
    a = store.scoped("org-a").snapshot_tree(str(tmp_path / "ws"))
    b = store.scoped("org-b").snapshot_tree(str(tmp_path / "ws"))
    assert store.scope_names() == ["org-a", "org-b"]
    stats = store.scoped("org-a").gc([], grace_seconds=0)
    assert stats["deleted_local"] >= 1
    store.scoped("org-b").restore_tree(b.digest, str(tmp_path / "out"))
    with pytest.raises(ChunkMissing):
        store.scoped("org-a").restore_tree(a.digest, str(tmp_path / "out-a"))
