"""Snapshots through the SDK against a live server: create, get, list, tag, lineage, restore, delete."""

import uuid

import pytest

from mem0sdk import NotFoundError


@pytest.fixture
def sandbox(client):
    with client.sandboxes.create() as sandbox:
        yield sandbox


def test_snapshot_get_list_tag_lineage_delete(client, sandbox):
    sandbox.files.write("src/app.py", "print('v1')\n" * 100)
    first = sandbox.snapshot(name="v1")
    assert first.sandbox_id == sandbox.id and first.name == "v1" and first.runtime == "python"
    assert first.digest and first.stored_bytes > 0 and first.created_at is not None
    sandbox.files.write("src/app.py", "print('v2')\n" * 100)
    second = sandbox.snapshot()
    assert second.id != first.id and second.digest != first.digest

    assert client.snapshots.get(first.id).digest == first.digest
    assert [s.id for s in client.snapshots.list(sandbox_id=sandbox.id, page_size=1)] == [second.id, first.id]

    tag = f"release-{uuid.uuid4().hex[:8]}"
    tagged = client.snapshots.tag(first.id, tag)
    assert tag in tagged.tags
    assert [s.id for s in client.snapshots.list(tag=tag)] == [first.id]

    lineage = client.snapshots.lineage(second.id)
    node_ids = {n["id"] for n in lineage.nodes}
    assert {sandbox.id, first.id, second.id} <= node_ids
    assert all({"from", "to", "kind"} <= set(e) for e in lineage.edges)

    client.snapshots.delete(second.id)
    with pytest.raises(NotFoundError):
        client.snapshots.get(second.id)


def test_restore_makes_a_new_sandbox_with_the_snapshots_workspace(client, sandbox):
    sandbox.files.write("data/state.txt", "saved")
    snapshot = sandbox.snapshot(name="restore-me")
    sandbox.files.write("data/state.txt", "changed later")
    restored = client.snapshots.restore(snapshot.id, idempotency_key=f"sdk-{uuid.uuid4().hex}")
    try:
        assert restored.id != sandbox.id and restored.state == "running"
        assert restored.source_snapshot_id == snapshot.id and restored.runtime == "python"
        assert restored.files.read("data/state.txt") == b"saved"
        assert restored.run("print(open('/workspace/data/state.txt').read())").stdout == "saved\n"
    finally:
        restored.kill()
