"""The SDK's notebook-like runs: results, errors, stdin, streaming callbacks, cancel."""

import asyncio
import time

import pytest

from mem0sdk import ConflictError, ExecutionError, Result, ResultEvent


@pytest.fixture
def sandbox(client):
    with client.sandboxes.create("python") as sb:
        yield sb


def test_results_and_error_on_the_execution(sandbox):
    ex = sandbox.run("1 + 41")
    assert [r.text for r in ex.results] == ["42"] and ex.error is None
    ex = sandbox.run("1/0")
    assert isinstance(ex.error, ExecutionError) and ex.error.name == "ZeroDivisionError"
    assert str(ex.error) == "ZeroDivisionError: division by zero" and ex.error.traceback


def test_stdin_and_streaming_callbacks(sandbox):
    out, err, results = [], [], []
    ex = sandbox.run(
        "import sys\nname = input()\nprint('hi', name)\nprint('warn', file=sys.stderr)\ndisplay({'k': name})\nname",
        stdin="ada\n",
        on_stdout=out.append,
        on_stderr=err.append,
        on_result=results.append,
    )
    assert ex.status == "succeeded" and "".join(out) == "hi ada\n" and "".join(err) == "warn\n"
    assert all(isinstance(r, Result) for r in results)
    assert [r.text for r in results] == ["{'k': 'ada'}", "'ada'"] == [r.text for r in ex.results]


def test_stream_yields_result_events(sandbox):
    items = list(sandbox.stream("print('a')\n'b'"))
    assert [type(i).__name__ for i in items] == ["OutputEvent", "ResultEvent", "Execution"]
    assert isinstance(items[1], ResultEvent) and items[1].result.text == "'b'"


def test_cancel_keeps_the_sandbox(client, sandbox):
    sandbox.run("kept = 7")
    ex = client.sandboxes.start(sandbox.id, "import time\ntime.sleep(30)")
    time.sleep(0.5)
    cancelled = client.executions.cancel(ex.id)
    assert cancelled.status == "cancelled" and cancelled.finished
    assert sandbox.run("print(kept)").stdout == "7\n"
    with pytest.raises(ConflictError):
        client.executions.cancel(ex.id)


async def test_async_run_with_callbacks_stdin_and_cancel(aclient):
    async with await aclient.sandboxes.create("python") as sb:
        out, results = [], []
        ex = await sb.run(
            "print(input())\n6 * 7", stdin="hey\n", on_stdout=out.append, on_result=results.append
        )
        assert "".join(out) == "hey\n" and [r.text for r in results] == ["42"] == [r.text for r in ex.results]
        started = await aclient.sandboxes.start(sb.id, "import time\ntime.sleep(30)")
        await asyncio.sleep(0.5)
        assert (await aclient.executions.cancel(started.id)).status == "cancelled"
