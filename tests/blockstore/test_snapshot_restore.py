"""Snapshot then restore gives back the same tree, byte for byte and bit for bit of metadata."""

import os

import pytest

from sandboxes.engine.blockstore import BlockStore, NotASnapshot, RestoreTargetNotEmpty
from sandboxes.engine.blockstore.manifest import File

from .conftest import fingerprint


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_restore_is_byte_identical_with_modes_symlinks_empty_dirs_sparse_and_non_utf8_names(
    store, tree, tmp_path, codec
):
    res = store.snapshot_tree(str(tree), codec=codec)
    out = tmp_path / "out"
    store.restore_tree(res.digest, str(out))
    assert fingerprint(out) == fingerprint(tree)
    assert (out / "empty" / "nested-empty").is_dir()
    assert os.readlink(os.fsencode(out) + b"/link-\xe9") == b"caf\xe9.txt"
    assert os.path.exists(os.fsencode(out) + b"/dir-\xff/\xfe\xfd")


def test_sparse_file_stays_sparse_and_its_holes_are_not_stored(store, tree, tmp_path):
    res = store.snapshot_tree(str(tree))
    assert res.logical_bytes > 1 << 30
    assert res.stored_bytes < 20 << 20  # 1 GiB of holes cost nothing
    out = tmp_path / "out"
    store.restore_tree(res.digest, str(out))
    st = os.stat(out / "sparse.img")
    assert st.st_size == 1 << 30
    assert st.st_blocks * 512 < 1 << 20


def test_snapshot_result_accounts_bytes_and_files(store, tree):
    res = store.snapshot_tree(str(tree))
    fp = fingerprint(tree)
    assert res.files == sum(1 for r in fp.values() if "sha256" in r)
    assert res.logical_bytes == sum(r["size"] for r in fp.values() if "sha256" in r)
    # the big file repeats one 2 MiB block three times: dedup stores it once (less a chunk at each seam)
    assert res.new_bytes < res.logical_bytes - (1 << 30) - (2 << 20)
    assert 0 < res.stored_bytes <= res.new_bytes


def test_same_tree_gives_same_digest_and_stores_nothing_new(store, tree):
    first = store.snapshot_tree(str(tree))
    again = store.snapshot_tree(str(tree))
    assert again.digest == first.digest
    assert again.new_bytes == 0 and again.stored_bytes == 0


def test_one_changed_file_stores_only_its_chunks_and_the_path_to_root(store, tree):
    first = store.snapshot_tree(str(tree))
    with open(tree / "src" / "main.py", "ab") as f:
        f.write(b"print('changed')\n")
    second = store.snapshot_tree(str(tree), previous_index=first.index)
    assert second.digest != first.digest
    assert second.new_bytes < 64 * 1024
    assert len(store.chunk_refs(first.digest) ^ store.chunk_refs(second.digest)) <= 8


def test_manifest_lists_the_tree(store, tree):
    res = store.snapshot_tree(str(tree))
    m = store.manifest(res.digest)
    assert m.files == res.files and m.logical_bytes == res.logical_bytes
    names = {e.name for e in m.root.entries}
    assert {b"src", b"caf\xe9.txt", b"sparse.img", b"link-to-main", b"empty"} <= names
    src = next(e for e in m.root.entries if e.name == b"src")
    main = next(e for e in src.entries if e.name == b"main.py")
    assert isinstance(main, File) and main.size == 1500 and main.mode == 0o644


def test_chunk_refs_cover_root_nodes_and_data(store, tree):
    res = store.snapshot_tree(str(tree))
    refs = store.chunk_refs(res.digest)
    assert res.digest in refs
    for ref in refs:
        assert store.cache.is_local(bytes.fromhex(ref))


def test_restore_refuses_a_non_empty_target(store, tree, tmp_path):
    res = store.snapshot_tree(str(tree))
    out = tmp_path / "out"
    out.mkdir()
    (out / "x").write_text("occupied")
    with pytest.raises(RestoreTargetNotEmpty):
        store.restore_tree(res.digest, str(out))


def test_restore_into_an_existing_empty_dir(store, tree, tmp_path):
    res = store.snapshot_tree(str(tree))
    out = tmp_path / "out"
    out.mkdir()
    store.restore_tree(res.digest, str(out))
    assert fingerprint(out) == fingerprint(tree)


def test_a_data_chunk_digest_is_not_a_snapshot(store, tree):
    res = store.snapshot_tree(str(tree))
    data_chunk = next(r for r in store.chunk_refs(res.digest) if r != res.digest)
    with pytest.raises(NotASnapshot):
        store.manifest(data_chunk)


def test_special_files_are_skipped(store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "pipe")
    (src / "a").write_bytes(b"a")
    res = store.snapshot_tree(str(src))
    assert res.files == 1
    out = tmp_path / "out"
    store.restore_tree(res.digest, str(out))
    assert sorted(os.listdir(out)) == ["a"]


def test_snapshots_restore_from_a_reopened_store(tmp_path, tree):
    with BlockStore(str(tmp_path / "s")) as s:
        digest = s.snapshot_tree(str(tree)).digest
    with BlockStore(str(tmp_path / "s")) as s:
        s.restore_tree(digest, str(tmp_path / "out"))
    assert fingerprint(tmp_path / "out") == fingerprint(tree)


def test_identical_big_files_share_one_chunk_list(store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(3 << 20)
    for name in ("a.bin", "b.bin"):
        (src / name).write_bytes(data)
    res = store.snapshot_tree(str(src))
    a, b = sorted(store.manifest(res.digest).root.entries, key=lambda e: e.name)
    assert a.list_id and a.list_id == b.list_id and a.chunks == b.chunks
    assert len(store.chunk_refs(res.digest)) == len(a.chunks) + 3  # data, one list, one node, the root


def test_store_keeps_working_in_a_forked_child(store, tree, tmp_path):
    """The agent forks; a child must not inherit a worker pool whose threads did not survive the fork."""
    import time

    first = store.snapshot_tree(str(tree))  # the parent's pool threads exist now
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            res = store.snapshot_tree(str(tree))
            store.restore_tree(res.digest, str(tmp_path / "child-out"))
            code = 0 if res.digest == first.digest else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            pytest.fail("forked child hung")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status) == 0
    assert fingerprint(tmp_path / "child-out") == fingerprint(tree)


def _swap_before_reading(monkeypatch, swap):
    from sandboxes.engine.blockstore import snapshot as snapshot_module

    real = snapshot_module._store_small_files

    def swapped(writer, items):
        swap()
        return real(writer, items)

    monkeypatch.setattr(snapshot_module, "_store_small_files", swapped)


def _all_restored_bytes(root) -> bytes:
    out = b""
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                with open(p, "rb") as f:
                    out += f.read()
    return out


def test_a_file_swapped_for_a_symlink_mid_snapshot_is_not_followed(store, tmp_path, monkeypatch):
    (tmp_path / "host-secret").write_bytes(b"host secret")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "victim").write_bytes(b"innocent")

    def swap():
        os.unlink(ws / "victim")
        os.symlink(tmp_path / "host-secret", ws / "victim")

    _swap_before_reading(monkeypatch, swap)
    res = store.snapshot_tree(str(ws))
    store.restore_tree(res.digest, str(tmp_path / "out"))
    assert b"host secret" not in _all_restored_bytes(tmp_path / "out")


def test_a_directory_swapped_for_a_symlink_mid_snapshot_is_not_followed(store, tmp_path, monkeypatch):
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "file").write_bytes(b"host secret")
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "file").write_bytes(b"innocent!!!")

    def swap():
        os.rename(ws / "sub", tmp_path / "moved-away")
        os.symlink(outside, ws / "sub")

    _swap_before_reading(monkeypatch, swap)
    res = store.snapshot_tree(str(ws))
    store.restore_tree(res.digest, str(tmp_path / "out"))
    assert b"host secret" not in _all_restored_bytes(tmp_path / "out")


def test_small_files_live_inside_their_directory_node(store, tree):
    res = store.snapshot_tree(str(tree))
    entries = {e.name: e for e in store.manifest(res.digest).root.entries}
    assert entries[b"secret.txt"].inline == b"s3cret" and entries[b"secret.txt"].chunks == ()
    assert entries[b"notes.txt"].inline is None and len(entries[b"notes.txt"].chunks) == 1
