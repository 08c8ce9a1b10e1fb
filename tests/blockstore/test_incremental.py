"""The index from one snapshot lets the next skip files unchanged by (size, mtime_ns, inode) unread."""

import os
import time

from sandboxes.engine.blockstore import snapshot as snapshot_module

from .conftest import OLD_NS, fingerprint, set_old_mtimes


def _workspace(tmp_path, n=50):
    root = tmp_path / "ws"
    root.mkdir()
    for i in range(n):
        (root / f"f{i:03d}.txt").write_bytes(os.urandom(2000 + i))
    set_old_mtimes(root)
    return root


def test_unchanged_files_are_not_read_again(store, tmp_path, monkeypatch):
    ws = _workspace(tmp_path)
    first = store.snapshot_tree(str(ws))
    assert first.files_read == 50

    opened = []
    real_read_all = snapshot_module._read_all
    monkeypatch.setattr(snapshot_module, "_read_all", lambda p, *a: opened.append(p) or real_read_all(p, *a))
    (ws / "f007.txt").write_bytes(b"new content")
    os.utime(ws / "f007.txt", ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    second = store.snapshot_tree(str(ws), previous_index=first.index)
    assert second.files_read == 1
    assert [os.path.basename(p) for p in opened] == [b"f007.txt"]

    out = tmp_path / "out"
    store.restore_tree(second.digest, str(out))
    assert fingerprint(out) == fingerprint(ws)


def test_same_size_same_mtime_same_inode_counts_as_unchanged(store, tmp_path):
    """Proof by content that the file was not read: the quick check is (size, mtime_ns, inode), like rsync."""
    ws = _workspace(tmp_path)
    first = store.snapshot_tree(str(ws))
    path = ws / "f001.txt"
    old = path.read_bytes()
    with open(path, "r+b") as f:  # same inode, same size
        f.write(b"X" * len(old))
    os.utime(path, ns=(OLD_NS, OLD_NS))
    second = store.snapshot_tree(str(ws), previous_index=first.index)
    assert second.digest == first.digest
    store.restore_tree(second.digest, str(tmp_path / "out"))
    assert (tmp_path / "out" / "f001.txt").read_bytes() == old


def test_a_replaced_file_with_same_size_and_mtime_is_read_because_its_inode_changed(store, tmp_path):
    ws = _workspace(tmp_path)
    first = store.snapshot_tree(str(ws))
    path = ws / "f002.txt"
    size = path.stat().st_size
    (ws / "tmp").write_bytes(b"Y" * size)
    os.replace(ws / "tmp", path)
    os.utime(path, ns=(OLD_NS, OLD_NS))
    second = store.snapshot_tree(str(ws), previous_index=first.index)
    assert second.files_read == 1
    store.restore_tree(second.digest, str(tmp_path / "out"))
    assert (tmp_path / "out" / "f002.txt").read_bytes() == b"Y" * size


def test_recently_modified_files_are_read_again_next_time(store, tmp_path):
    ws = _workspace(tmp_path, n=3)
    (ws / "fresh.txt").write_bytes(b"just written")
    future = time.time_ns() + 10**10  # stamped after the snapshot starts: the index may not trust it
    os.utime(ws / "fresh.txt", ns=(future, future))
    first = store.snapshot_tree(str(ws))
    second = store.snapshot_tree(str(ws), previous_index=first.index)
    assert second.files_read == 1


def test_index_from_another_tree_or_store_is_ignored(store, tmp_path):
    ws = _workspace(tmp_path, n=5)
    first = store.snapshot_tree(str(ws))
    other = tmp_path / "other"
    other.mkdir()
    (other / "f000.txt").write_bytes(b"other")
    res = store.snapshot_tree(str(other), previous_index=first.index)
    assert res.files_read == 1


def test_gc_that_deleted_chunks_invalidates_older_indexes(store, tmp_path):
    ws = _workspace(tmp_path, n=5)
    first = store.snapshot_tree(str(ws))
    (ws / "gone.txt").write_bytes(b"soon garbage")
    doomed = store.snapshot_tree(str(ws))
    (ws / "gone.txt").unlink()
    stats = store.gc([first.digest], grace_seconds=0)
    assert stats["deleted_local"] > 0
    again = store.snapshot_tree(str(ws), previous_index=doomed.index)
    assert again.files_read == 5
    store.restore_tree(again.digest, str(tmp_path / "out"))
    assert fingerprint(tmp_path / "out") == fingerprint(ws)
