"""The asyncio client against a live server: the same lifecycle, awaited."""

import asyncio
import time

import pytest

from mem0sdk import AsyncSandbox, Execution, OutputEvent, SandboxNotRunningError


async def test_async_lifecycle_run_stream_fork_files_kill(aclient):
    sandbox = await aclient.sandboxes.create(runtime="python", metadata={"suite": "sdk-async"})
    assert isinstance(sandbox, AsyncSandbox) and sandbox.state == "running"
    try:
        await sandbox.run("total = 10")
        assert (await sandbox.run("total += 5\nprint(total)")).stdout == "15\n"

        started, arrivals, items = time.monotonic(), [], []
        async for item in sandbox.stream(
            "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.5)"
        ):
            arrivals.append(time.monotonic() - started)
            items.append(item)
        *events, result = items
        assert isinstance(result, Execution) and result.ok
        assert all(isinstance(e, OutputEvent) for e in events)
        assert "".join(e.data for e in events) == "0\n1\n2\n"
        assert arrivals[0] < arrivals[-1] - 0.8

        await sandbox.files.write("a/b.txt", b"bytes")
        assert await sandbox.files.read("a/b.txt") == b"bytes"
        assert [e.name for e in await sandbox.files.list("a")] == ["b.txt"]

        child = await sandbox.fork()
        assert child.parent_id == sandbox.id and isinstance(child, AsyncSandbox)
        assert (await child.run("print(total)")).stdout == "15\n"
        await child.kill()
        assert child.state == "stopped"

        listed = [
            s.id async for s in aclient.sandboxes.list(metadata={"suite": "sdk-async"}, state="running")
        ]
        assert listed == [sandbox.id]
    finally:
        await sandbox.kill()
    with pytest.raises(SandboxNotRunningError):
        await sandbox.run("print(1)")


async def test_async_runs_in_different_sandboxes_proceed_concurrently(aclient):
    sandboxes = await asyncio.gather(*(aclient.sandboxes.create() for _ in range(3)))
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(s.run("import time\ntime.sleep(1)\nprint('ok')") for s in sandboxes))
        elapsed = time.monotonic() - started
        assert [r.stdout for r in results] == ["ok\n"] * 3
        assert elapsed < 2.5, f"three 1 s runs took {elapsed:.1f}s: not concurrent"
    finally:
        await asyncio.gather(*(s.kill() for s in sandboxes))
