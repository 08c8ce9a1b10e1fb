"""The SDK's pause, resume and set_timeout against a live server."""

from datetime import UTC, datetime, timedelta

import pytest

from mem0sdk import SandboxPausedError


def test_pause_resume_and_set_timeout(client):
    sandbox = client.sandboxes.create(runtime="python")
    try:
        sandbox.run("kept = 'across a pause'")
        assert sandbox.pause().state == "paused" and sandbox.paused_at is not None
        with pytest.raises(SandboxPausedError) as exc:
            sandbox.run("print(kept)")
        assert exc.value.code == "sandbox_paused" and exc.value.status == 409
        assert sandbox.resume().state == "running" and sandbox.paused_at is None
        assert sandbox.run("print(kept)").stdout == "across a pause\n"
        sandbox.set_timeout(300)
        assert abs(sandbox.expires_at - (datetime.now(UTC) + timedelta(seconds=300))) < timedelta(seconds=30)
    finally:
        sandbox.kill()


async def test_async_pause_and_resume(aclient):
    sandbox = await aclient.sandboxes.create(runtime="python")
    try:
        assert (await sandbox.pause()).state == "paused"
        assert (await sandbox.resume()).state == "running"
        assert (await sandbox.run("print(6 * 7)")).stdout == "42\n"
    finally:
        await sandbox.kill()
