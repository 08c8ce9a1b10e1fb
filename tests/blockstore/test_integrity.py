"""Every read is verified: a damaged chunk is reported as ``CorruptChunk`` and its bytes never served."""

import os

import pytest

from sandboxes.engine.blockstore import ChunkMissing, CorruptChunk

from .conftest import fingerprint


def _data_chunk_of(store, digest, path_bytes):
    entries = store.manifest(digest).root.entries
    f = next(e for e in entries if e.name == path_bytes)
    return f.chunks[0][0]


def _flip_last_byte(path):
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        b = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([b[0] ^ 0x01]))


def test_flipped_bit_in_a_chunk_is_detected_and_the_file_never_written_with_bad_data(store, tree, tmp_path):
    res = store.snapshot_tree(str(tree))
    cid = _data_chunk_of(store, res.digest, b"notes.txt")
    _flip_last_byte(store.cache.path(cid))
    with pytest.raises(CorruptChunk) as err:
        store.restore_tree(res.digest, str(tmp_path / "out"))
    assert err.value.chunk_id == cid.hex()
    assert err.value.code == "corrupt_chunk"
    restored = tmp_path / "out" / "notes.txt"
    assert not restored.exists() or restored.read_bytes() == b""


def test_corrupt_chunk_is_quarantined_not_served_twice(store, tree):
    res = store.snapshot_tree(str(tree))
    cid = _data_chunk_of(store, res.digest, b"notes.txt")
    _flip_last_byte(store.cache.path(cid))
    with pytest.raises(CorruptChunk):
        store.read_chunk(cid)
    with pytest.raises(ChunkMissing):
        store.read_chunk(cid)
    assert os.listdir(os.path.join(store.root, "corrupt"))


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: b"\x07" + blob[1:],  # unknown codec byte
        lambda blob: blob[:-3],  # truncated payload
        lambda blob: b"",  # emptied
        lambda blob: blob[:1] + bytes(len(blob) - 1),  # zeroed payload
    ],
)
def test_any_damage_to_a_compressed_chunk_raises_corrupt_chunk(store, tree, damage):
    res = store.snapshot_tree(str(tree))
    cid = _data_chunk_of(store, res.digest, b"notes.txt")
    path = store.cache.path(cid)
    with open(path, "rb") as f:
        blob = f.read()
    assert blob[0] == 1  # zstd: the repeated line compresses
    with open(path, "wb") as f:
        f.write(damage(blob))
    with pytest.raises((CorruptChunk, ChunkMissing)):
        store.read_chunk(cid)


def test_corrupt_manifest_node_is_detected(store, tree, tmp_path):
    res = store.snapshot_tree(str(tree))
    _flip_last_byte(store.cache.path(bytes.fromhex(res.digest)))
    with pytest.raises(CorruptChunk):
        store.manifest(res.digest)


def test_corrupt_local_chunk_is_healed_from_s3(tmp_path, tree, s3_backend):
    from sandboxes.engine.blockstore import BlockStore

    with BlockStore(str(tmp_path / "s"), s3=s3_backend()) as s:
        res = s.snapshot_tree(str(tree))
        s.upload(res.digest)
        cid = _data_chunk_of(s, res.digest, b"notes.txt")
        _flip_last_byte(s.cache.path(cid))
        s.restore_tree(res.digest, str(tmp_path / "out"))
    assert fingerprint(tmp_path / "out") == fingerprint(tree)


def test_scrub_quarantines_torn_chunks_so_the_next_snapshot_rewrites_them(store, tree, tmp_path):
    res = store.snapshot_tree(str(tree))
    cid = _data_chunk_of(store, res.digest, b"notes.txt")
    with open(store.cache.path(cid), "r+b") as f:
        f.truncate(3)  # what a power loss can leave behind
    assert store.scrub()["quarantined"] == 1
    again = store.snapshot_tree(str(tree))
    assert again.new_bytes == (tree / "notes.txt").stat().st_size
    store.restore_tree(again.digest, str(tmp_path / "out"))
    assert fingerprint(tmp_path / "out") == fingerprint(tree)


def test_errors_carry_a_stable_code_and_survive_pickling():
    import pickle

    from sandboxes.engine.blockstore import ChunkArchived

    for err in (CorruptChunk("ab" * 32, "bad"), ChunkMissing("cd" * 32), ChunkArchived("ef" * 32)):
        back = pickle.loads(pickle.dumps(err))
        assert (type(back), back.code, back.chunk_id, str(back)) == (
            type(err),
            err.code,
            err.chunk_id,
            str(err),
        )
