"""`sandbox.commands` and `mem0 exec --cmd` against a live server."""

import pytest

from mem0sdk import CommandHandle, CommandResult, ConflictError
from mem0sdk.cli import main


@pytest.fixture
def sandbox(client):
    sb = client.sandboxes.create()
    yield sb
    sb.kill()


def test_run_waits_and_returns_the_result(sandbox):
    result = sandbox.commands.run("read x; echo got-$x; exit 3", stdin="hello\n")
    assert isinstance(result, CommandResult)
    assert (result.stdout, result.exit_code, result.status) == ("got-hello\n", 3, "failed")
    assert result.cmd == ["sh", "-c", "read x; echo got-$x; exit 3"] and result.pid > 1
    assert sandbox.commands.run(["pwd"], cwd="/tmp").stdout == "/tmp\n"


def test_callbacks_get_each_stream_as_it_comes(sandbox):
    out, err = [], []
    result = sandbox.commands.run("echo one; echo two >&2; echo three", on_stdout=out.append, on_stderr=err.append)
    assert "".join(out) == "one\nthree\n" and "".join(err) == "two\n"
    assert result.ok and result.stdout == "one\nthree\n"


def test_background_handle_stdin_wait_kill_and_reattach(client, sandbox):
    handle = sandbox.commands.run("while read l; do echo got-$l; done", background=True)
    assert isinstance(handle, CommandHandle) and handle.pid > 1
    assert [c.id for c in sandbox.commands.list()] == [handle.id]
    handle.send_stdin("a\n")
    handle.send_stdin("b\n", close=True)
    seen = []
    assert handle.wait(on_stdout=seen.append).exit_code == 0
    assert "".join(seen) == "got-a\ngot-b\n"
    again = sandbox.commands.connect(handle.id)
    assert [e.data for e in again.events(after=1) if hasattr(e, "data")] == ["got-b\n"]
    with pytest.raises(ConflictError):
        handle.send_stdin("late\n")

    sleeper = sandbox.commands.run(["sleep", "60"], background=True)
    sleeper.kill()
    assert (sleeper.wait().status, sleeper.result.exit_code) == ("killed", -9)
    assert sandbox.commands.list() == [] and len(sandbox.commands.list(include_ended=True)) == 2


def test_cli_exec_cmd_streams_and_exits_with_the_commands_status(cli_env, sandbox, capsys):
    assert main(["exec", sandbox.id, "--cmd", "echo out; echo err >&2; exit 5"]) == 5
    out, err = capsys.readouterr()
    assert out == "out\n" and "err\n" in err
    assert main(["exec", sandbox.id, "--cmd", "sleep 5", "--timeout", "0.3"]) == 124
    assert main(["exec", sandbox.id, "print(1)", "--cmd", "true"]) == 2


@pytest.fixture
def cli_env(mem0_server, monkeypatch):
    monkeypatch.setenv("MEM0_API_KEY", mem0_server.api_key)
    monkeypatch.setenv("MEM0_BASE_URL", mem0_server.base_url)
    return mem0_server


async def test_async_client_runs_commands_and_handles(aclient):
    sb = await aclient.sandboxes.create()
    try:
        result = await sb.commands.run("echo hi; exit 4")
        assert (result.stdout, result.exit_code) == ("hi\n", 4)
        chunks = []

        async def collect(data):
            chunks.append(data)

        handle = await sb.commands.run("cat", background=True, on_stdout=collect)
        await handle.send_stdin("echoed\n", close=True)
        assert (await handle.wait()).exit_code == 0 and "".join(chunks) == "echoed\n"
    finally:
        await sb.kill()
