"""The sync client's sandbox lifecycle against a live server: create, run, stream, fork, files, kill, list."""

import time
import uuid

import pytest

from mem0sdk import (
    ConflictError,
    Execution,
    NotFoundError,
    OutputEvent,
    PayloadTooLargeError,
    QuotaExceededError,
    SandboxNotRunningError,
)

TICKS = 3
TICK_S = 0.6
TICKING_CODE = f"""
import sys, time
for i in range({TICKS}):
    print("tick", i, flush=True)
    time.sleep({TICK_S})
print("done", file=sys.stderr)
"""


@pytest.fixture
def sandbox(client):
    sandbox = client.sandboxes.create(runtime="python", env={"GREETING": "hello"}, metadata={"suite": "sdk"})
    yield sandbox
    client.sandboxes.kill(sandbox.id)


def test_create_returns_a_running_sandbox_with_its_env_and_metadata(client, sandbox):
    assert sandbox.id and sandbox.runtime == "python" and sandbox.state == "running"
    assert sandbox.parent_id is None and sandbox.metadata == {"suite": "sdk"}
    fetched = client.sandboxes.get(sandbox.id)
    assert fetched.id == sandbox.id and fetched.created_at == sandbox.created_at
    assert sandbox.run("import os; print(os.environ['GREETING'])").stdout == "hello\n"


def test_state_persists_between_runs(sandbox):
    first = sandbox.run("counter = 41\nimport json")
    assert first.ok and first.exit_code == 0
    second = sandbox.run("counter += 1\nprint(json.dumps({'counter': counter}))")
    assert second.stdout == '{"counter": 42}\n'
    assert second.sandbox_id == sandbox.id and second.finished_at is not None


def test_failed_run_reports_exit_code_and_stderr(sandbox):
    execution = sandbox.run("import sys\nprint('bad', file=sys.stderr)\nraise SystemExit(3)")
    assert (execution.status, execution.exit_code) == ("failed", 3)
    assert execution.stderr == "bad\n" and not execution.ok


def test_oversized_code_raises_payload_too_large_and_long_timeouts_quota_exceeded(sandbox):
    with pytest.raises(PayloadTooLargeError) as big:
        sandbox.run("#" * (2 * 1024 * 1024))
    assert big.value.status == 413 and big.value.details["limit"] > 0
    with pytest.raises(QuotaExceededError) as quota:
        sandbox.run("print(1)", timeout_s=1_000_000)
    assert quota.value.status == 429 and quota.value.details["limit_name"] == "max_run_seconds"


def test_run_that_hits_its_timeout_says_so(sandbox):
    execution = sandbox.run("import time\ntime.sleep(30)", timeout_s=1)
    assert execution.status == "timeout" and execution.limit == "timeout"
    assert sandbox.run("print('still alive')").stdout == "still alive\n"


def test_stream_delivers_output_while_the_run_is_going(sandbox):
    started = time.monotonic()
    arrivals, items = [], []
    for item in sandbox.stream(TICKING_CODE):
        arrivals.append(time.monotonic() - started)
        items.append(item)
    *events, result = items
    assert isinstance(result, Execution) and result.ok and result.exit_code == 0
    assert all(isinstance(e, OutputEvent) for e in events)
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert "".join(e.data for e in events if e.stream == "stdout") == "".join(
        f"tick {i}\n" for i in range(TICKS)
    )
    assert [e.data for e in events if e.stream == "stderr"] == ["done\n"]
    # The first tick is printed before the first sleep: it must arrive well before the run's end.
    assert arrivals[0] < arrivals[-1] - TICK_S * (TICKS - 1) * 0.8
    assert result.stdout.count("tick") == TICKS


def test_events_resume_after_a_sequence_number(client, sandbox):
    execution = sandbox.run("print('a', flush=True)\nprint('b', flush=True)\nprint('c', flush=True)")
    all_events = list(client.executions.events(execution.id))
    later = list(client.executions.events(execution.id, after=all_events[0].seq))
    assert [e.seq for e in later] == [e.seq for e in all_events[1:]]
    assert later[-1].status == "succeeded"


def test_fork_copies_memory_and_workspace_then_diverges(sandbox):
    sandbox.run("shared = [1, 2, 3]")
    sandbox.files.write("notes.txt", "from the parent")
    child = sandbox.fork()
    try:
        assert child.parent_id == sandbox.id and child.id != sandbox.id and child.state == "running"
        assert child.memory == "copied"
        assert child.run("print(sum(shared))").stdout == "6\n"
        assert child.files.read("notes.txt") == b"from the parent"
        child.run("shared.append(100)")
        child.files.write("notes.txt", "from the child")
        assert sandbox.run("print(sum(shared))").stdout == "6\n"
        assert sandbox.files.read("notes.txt") == b"from the parent"
    finally:
        child.kill()


def test_files_write_read_list_delete(sandbox):
    blob = bytes(range(256)) * 4
    assert sandbox.files.write("data/blob.bin", blob) == len(blob)
    sandbox.files.write("data/hello.txt", "héllo")
    assert sandbox.files.read("data/blob.bin") == blob
    assert sandbox.files.read("data/hello.txt") == "héllo".encode()
    root = {e.name: e for e in sandbox.files.list()}
    assert root["data"].is_dir
    listed = {e.name: e for e in sandbox.files.list("data")}
    assert listed["blob.bin"].size == len(blob) and not listed["blob.bin"].is_dir
    assert sandbox.run("print(open('/workspace/data/hello.txt').read())").stdout == "héllo\n"
    sandbox.files.delete("data/hello.txt")
    assert {e.name for e in sandbox.files.list("data")} == {"blob.bin"}
    with pytest.raises(NotFoundError):
        sandbox.files.read("data/hello.txt")


def test_kill_stops_the_sandbox_and_later_runs_raise_sandbox_not_running(client):
    sandbox = client.sandboxes.create()
    same = client.sandboxes.get(sandbox.id)
    assert sandbox.kill().state == "stopped"
    assert same.state == "running" and same.refresh().state == "stopped" and same.stopped_at is not None
    assert client.sandboxes.get(sandbox.id).state == "stopped"
    with pytest.raises(SandboxNotRunningError) as exc:
        sandbox.run("print(1)")
    assert exc.value.status == 409 and exc.value.details["state"] == "stopped"
    assert client.sandboxes.kill(sandbox.id).state == "stopped"


def test_list_follows_the_cursor_across_pages_and_filters(client):
    label = {"batch": uuid.uuid4().hex}
    created = [client.sandboxes.create(metadata=label) for _ in range(3)]
    try:
        created[0].kill()
        listed = list(client.sandboxes.list(metadata=label, page_size=2))
        assert [s.id for s in listed] == [s.id for s in reversed(created)]
        running = list(client.sandboxes.list(state="running", metadata=label, page_size=1))
        assert {s.id for s in running} == {created[1].id, created[2].id}
    finally:
        for s in created:
            s.kill()


def test_idempotency_key_makes_a_retried_create_return_the_same_sandbox(client):
    key = f"sdk-{uuid.uuid4().hex}"
    first = client.sandboxes.create(metadata={"try": "1"}, idempotency_key=key)
    try:
        assert client.sandboxes.create(metadata={"try": "1"}, idempotency_key=key).id == first.id
        with pytest.raises(ConflictError):
            client.sandboxes.create(metadata={"try": "2"}, idempotency_key=key)
    finally:
        first.kill()


def test_idempotency_key_makes_a_retried_fork_return_the_same_child(sandbox):
    key = f"sdk-{uuid.uuid4().hex}"
    first = sandbox.fork(idempotency_key=key)
    try:
        assert sandbox.fork(idempotency_key=key).id == first.id
    finally:
        first.kill()


def test_sandbox_context_manager_kills_on_exit(client):
    with client.sandboxes.create() as sandbox:
        assert sandbox.run("print(2 + 2)").stdout == "4\n"
    assert client.sandboxes.get(sandbox.id).state == "stopped"


def test_runtimes_list_python_as_available(client):
    runtimes = {r.name: r for r in client.runtimes()}
    assert runtimes["python"].available and runtimes["python"].can_fork_memory
