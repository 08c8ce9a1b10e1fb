"""GC deletes what no live snapshot needs and nothing a live or in-progress snapshot needs."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from sandboxes.engine.blockstore import ChunkMissing, GCBusy
from sandboxes.engine.blockstore import snapshot as snapshot_module

from .conftest import fingerprint

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _write(path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_deleting_one_snapshot_keeps_the_others_restorable(store, tmp_path):
    ws = tmp_path / "ws"
    shared = os.urandom(300_000)
    _write(ws / "shared.bin", shared)
    _write(ws / "a.bin", os.urandom(200_000))
    a = store.snapshot_tree(str(ws))
    fp_a = fingerprint(ws)
    _write(ws / "b-only.bin", os.urandom(500_000))
    b = store.snapshot_tree(str(ws))
    (ws / "b-only.bin").unlink()
    _write(ws / "c.bin", os.urandom(100_000))
    c = store.snapshot_tree(str(ws))
    fp_c = fingerprint(ws)
    b_only = store.chunk_refs(b.digest) - store.chunk_refs(a.digest) - store.chunk_refs(c.digest)

    stats = store.gc([a.digest, c.digest], grace_seconds=0)

    assert stats["deleted_local"] == len(b_only)
    assert stats["freed_local_bytes"] > 400_000
    with pytest.raises(ChunkMissing):
        store.manifest(b.digest)
    store.restore_tree(a.digest, str(tmp_path / "ra"))
    store.restore_tree(c.digest, str(tmp_path / "rc"))
    assert fingerprint(tmp_path / "ra") == fp_a
    assert fingerprint(tmp_path / "rc") == fp_c


def test_recent_snapshots_are_kept_for_the_grace_period(store, tmp_path):
    ws = tmp_path / "ws"
    _write(ws / "x", os.urandom(10_000))
    res = store.snapshot_tree(str(ws))
    stats = store.gc([], grace_seconds=3600)
    assert stats["deleted_local"] == 0
    store.restore_tree(res.digest, str(tmp_path / "out"))


def test_gc_refuses_to_sweep_when_a_live_snapshot_cannot_be_read(store, tmp_path):
    ws = tmp_path / "ws"
    _write(ws / "x", os.urandom(10_000))
    keep = store.snapshot_tree(str(ws))
    os.unlink(store.cache.path(bytes.fromhex(keep.digest)))
    with pytest.raises(ChunkMissing):
        store.gc([keep.digest], grace_seconds=0)
    assert sum(1 for _, _, _, tmp, _ in store.cache.scan() if not tmp) == 2  # data and tree node kept


def test_chunks_of_an_in_progress_snapshot_are_never_swept(store, tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    _write(ws / "big.bin", os.urandom(3_000_000))
    _write(ws / "small.txt", b"hello")
    paused, resume = threading.Event(), threading.Event()
    real = snapshot_module._write_trees

    def slow_write_trees(*args):
        paused.set()  # every data chunk is in the cache, no manifest names them yet
        resume.wait(10)
        return real(*args)

    monkeypatch.setattr(snapshot_module, "_write_trees", slow_write_trees)
    result = {}
    t = threading.Thread(target=lambda: result.update(res=store.snapshot_tree(str(ws))))
    t.start()
    assert paused.wait(10)

    with pytest.raises(GCBusy):  # the sweep waits for the snapshot; with a short wait, it gives up
        store.gc([], grace_seconds=0, lock_timeout=0.2)

    stats = {}
    g = threading.Thread(target=lambda: stats.update(store.gc([], grace_seconds=0, lock_timeout=10)))
    g.start()
    time.sleep(0.3)
    assert g.is_alive()  # marked, listed, now waiting for the exclusive lock
    resume.set()
    t.join(10)
    g.join(10)
    assert stats["deleted_local"] == 0  # the snapshot committed while GC waited: its chunks are live
    store.restore_tree(result["res"].digest, str(tmp_path / "out"))
    assert fingerprint(tmp_path / "out") == fingerprint(ws)


def _evolve(ws, i: int, base: bytes) -> None:
    """One step of a changing workspace: new files, an edit to a shared file, a deletion."""
    _write(ws / f"gen{i}" / "new.bin", os.urandom(40_000))
    _write(ws / "shared.bin", base + os.urandom(1000) + base)
    if i >= 2:
        old = ws / f"gen{i - 2}" / "new.bin"
        if old.exists():
            old.unlink()


def test_gc_running_concurrently_with_snapshots_in_threads(store, tmp_path):
    ws, base = tmp_path / "ws", os.urandom(200_000)
    live, expected, done, sweeps = [], {}, threading.Event(), []

    def snapshotter():
        try:
            for i in range(25):
                _evolve(ws, i, base)
                res = store.snapshot_tree(str(ws))
                if i % 3:  # every third snapshot is dropped: garbage for the collector
                    live.append(res.digest)  # registered within the grace period, as the API does
                    expected[res.digest] = fingerprint(ws)
        finally:
            done.set()

    def collector():
        while not done.is_set():
            sweeps.append(store.gc(live, grace_seconds=0.5, lock_timeout=30))

    threads = [threading.Thread(target=snapshotter), threading.Thread(target=collector)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    time.sleep(0.6)
    sweeps.append(store.gc(live, grace_seconds=0.5))

    assert len(sweeps) >= 3
    assert sum(s["deleted_local"] for s in sweeps) > 0
    for n, (digest, fp) in enumerate(expected.items()):
        out = tmp_path / f"out{n}"
        store.restore_tree(digest, str(out))
        assert fingerprint(out) == fp


GC_LOOP = """
import json, os, sys, time
from sandboxes.engine.blockstore import BlockStore
root, live_file, stop_file = sys.argv[1:4]
sweeps = []
with BlockStore(root) as store:
    while not os.path.exists(stop_file):
        with open(live_file) as f:
            live = [line.strip() for line in f if line.strip()]
        sweeps.append(store.gc(live, grace_seconds=0.5, lock_timeout=30))
print(json.dumps(sweeps))
"""


def test_gc_in_another_process_while_snapshots_run(store, tmp_path):
    ws, base = tmp_path / "ws", os.urandom(200_000)
    live_file, stop_file = tmp_path / "live", tmp_path / "stop"
    live_file.write_text("")
    gc_proc = subprocess.Popen(
        [sys.executable, "-c", GC_LOOP, store.root, str(live_file), str(stop_file)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    expected = {}
    try:
        for i in range(25):
            _evolve(ws, i, base)
            res = store.snapshot_tree(str(ws))
            if i % 3:
                with open(live_file, "a") as f:
                    f.write(res.digest + "\n")
                expected[res.digest] = fingerprint(ws)
            time.sleep(0.05)
        time.sleep(0.6)
    finally:
        stop_file.write_text("stop")
        out, _ = gc_proc.communicate(timeout=120)
    sweeps = json.loads(out)
    assert gc_proc.returncode == 0
    assert sum(s["deleted_local"] for s in sweeps) > 0
    for n, (digest, fp) in enumerate(expected.items()):
        dest = tmp_path / f"out{n}"
        store.restore_tree(digest, str(dest))
        assert fingerprint(dest) == fp
