"""Snapshot a sandbox's workspace into the block store and restore it into a new sandbox."""

from __future__ import annotations

import pytest

from sandboxes.engine.protocol import EngineError, Limits

pytest.importorskip("sandboxes.engine.blockstore")


def test_snapshot_and_restore_roundtrip(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    engine.ok(
        sid,
        "import os\nos.makedirs('/workspace/pkg/sub')\nopen('/workspace/pkg/sub/data.bin', 'wb').write(os.urandom(300_000))\n"
        "open('/workspace/run.sh', 'w').write('echo hi')\nos.chmod('/workspace/run.sh', 0o755)\n"
        "os.symlink('pkg/sub/data.bin', '/workspace/link')",
    )
    original = c.file_read(a, sandbox_id=sid, path="pkg/sub/data.bin")
    snap = c.snapshot(a, sandbox_id=sid)
    assert set(snap) >= {"digest", "logical_bytes", "new_bytes", "stored_bytes", "files"}
    assert snap["logical_bytes"] >= 300_000 and snap["files"] >= 2

    restored = f"{sid}-restored"
    info = c.restore(
        a, digest=snap["digest"], new_sandbox_id=restored, runtime="python", env={"R": "1"}, limits=Limits()
    )
    engine.created.append(restored)
    assert info["sandbox_id"] == restored
    assert c.file_read(a, sandbox_id=restored, path="pkg/sub/data.bin") == original
    out = engine.ok(
        restored,
        "import os\nprint(os.readlink('link'), oct(os.stat('run.sh').st_mode & 0o777), "
        "os.environ['R'])\nopen('pkg/sub/new.txt', 'w').write('writable')",
    )
    assert out == "pkg/sub/data.bin 0o755 1\n"


def test_second_snapshot_adds_only_new_data(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    engine.ok(sid, "import os\nopen('/workspace/big', 'wb').write(os.urandom(1 << 20))")
    first = c.snapshot(a, sandbox_id=sid)
    engine.ok(sid, "open('/workspace/small', 'w').write('x')")
    second = c.snapshot(a, sandbox_id=sid)
    assert second["digest"] != first["digest"]
    assert second["new_bytes"] < 64 << 10 <= first["new_bytes"]


def test_restore_unknown_digest_is_not_found(engine):
    with pytest.raises(EngineError) as err:
        engine.client.restore(
            engine.agent_id,
            digest="ab" * 32,
            new_sandbox_id="never",
            runtime="python",
            env={},
            limits=Limits(),
        )
    assert err.value.code == "not_found"
    assert "never" not in engine.client.sandbox_ids(engine.agent_id)
