"""Rich results as a notebook kernel gives them, and the agent's checks on result frames a sandbox forges."""

from __future__ import annotations

import base64
import json
import uuid

from sandboxes.engine.protocol import ExitEvent, Limits, ResultEvent
from sandboxes.engine.results import MAX_RESULT_BYTES, MAX_RESULTS

PNG = b"\x89PNG\r\n\x1a\n"


def run(engine, sid: str, code: str, timeout_s: float = 20.0, stdin: str | None = None):
    """(exit event, stdout, stderr, results) of one run."""
    eid = f"ex-{uuid.uuid4().hex}"
    engine.client.run(
        engine.agent_id, sandbox_id=sid, execution_id=eid, code=code, timeout_s=timeout_s, stdin=stdin
    )
    exit_event = engine.client.wait(eid, timeout=timeout_s + 20)
    events = engine.client.output(eid, count=100_000)
    out = "".join(
        e.data for e in events if not isinstance(e, ExitEvent | ResultEvent) and e.stream == "stdout"
    )
    err = "".join(
        e.data for e in events if not isinstance(e, ExitEvent | ResultEvent) and e.stream == "stderr"
    )
    return exit_event, out, err, [e.data for e in events if isinstance(e, ResultEvent)]


def forge(kind: int, payload: bytes) -> str:
    """Code that writes one raw frame of ``kind`` on the framed pipe (fd 4), as hostile code can."""
    return f"import os\nsent = os.write(4, bytes((0xFE, {kind})) + len({payload!r}).to_bytes(2, 'big') + {payload!r})\n"


def forge_message(msg) -> str:
    body = json.dumps(msg).encode() if not isinstance(msg, bytes) else msg
    return forge(5, body)


def test_last_expression_is_a_result_and_kept_in_underscore(engine):
    sid = engine.create()
    ex, out, _, results = run(engine, sid, "x = 41\nx + 1")
    assert ex.status == "succeeded" and results == [{"text/plain": "42"}]
    _, out, _, results = run(engine, sid, "print(_)\nx = 3")  # an assignment last: no result
    assert out == "42\n" and results == []
    _, _, _, results = run(engine, sid, "None")
    assert results == []


def test_display_publishes_in_order_with_output(engine):
    sid = engine.create()
    code = (
        "class Rich:\n"
        "    def _repr_html_(self): return '<b>rich</b>'\n"
        "    def _repr_json_(self): return {'a': [1, 2]}\n"
        "    def _repr_svg_(self): raise ValueError('broken repr is skipped')\n"
        "    def __repr__(self): return 'Rich()'\n"
        "print('before')\ndisplay(Rich(), 'text')\n'last'"
    )
    ex, out, _, results = run(engine, sid, code)
    assert ex.status == "succeeded" and out == "before\n"
    assert results == [
        {"text/html": "<b>rich</b>", "application/json": {"a": [1, 2]}, "text/plain": "Rich()"},
        {"text/plain": "'text'"},
        {"text/plain": "'last'"},
    ]


def test_an_exception_is_a_structured_error(engine):
    sid = engine.create()
    ex, _, err, _ = run(engine, sid, "def f():\n    return 1 / 0\nf()")
    assert ex.status == "failed" and "ZeroDivisionError" in err
    assert ex.error["name"] == "ZeroDivisionError" and ex.error["value"] == "division by zero"
    assert any('File "<run>", line 2, in f' in line for line in ex.error["traceback"])
    assert not any("kernel.py" in line or "display.py" in line for line in ex.error["traceback"])
    ex, _, _, _ = run(engine, sid, "def (")
    assert ex.status == "failed" and ex.error["name"] == "SyntaxError"
    ex, _, _, _ = run(engine, sid, "print('ok')")
    assert ex.status == "succeeded" and ex.error is None


def test_stdin_feeds_input_then_end_of_file(engine):
    sid = engine.create()
    ex, out, _, _ = run(
        engine, sid, "x = input()\nprint(x[::-1])\nprint(repr(input()))", stdin="olleh\nsecond"
    )
    assert ex.status == "succeeded" and out == "hello\n'second'\n"
    ex, _, _, _ = run(engine, sid, "input()", stdin="")
    assert ex.status == "failed" and ex.error["name"] == "EOFError"
    ex, out, _, _ = run(
        engine, sid, "import sys\nprint(repr(sys.stdin.read()))"
    )  # no stdin: end of file at once
    assert out == "''\n"


def test_matplotlib_figures_are_png_results_and_closed(engine):
    sid = engine.create(runtime="python-ml")
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()\nprint('after show')"
    ex, out, _, results = run(engine, sid, code)
    assert ex.status == "succeeded" and out == "after show\n"
    assert len(results) == 1 and base64.b64decode(results[0]["image/png"]).startswith(PNG)
    # a figure left open is published at the end of the run, and then closed
    ex, _, _, results = run(engine, sid, "plt.figure()\nplt.bar([1], [2])\nprint(len(plt.get_fignums()))")
    assert len(results) == 1 and "image/png" in results[0]
    _, out, _, results = run(
        engine, sid, "print(plt.get_fignums())\nimport matplotlib\nmatplotlib.get_backend()"
    )
    assert out == "[]\n" and [r["text/plain"].lower() for r in results] == ["'agg'"]


def test_dataframe_is_html(engine):
    sid = engine.create(runtime="python-ml")
    ex, _, _, results = run(engine, sid, "import pandas as pd\npd.DataFrame({'a': [1, 2]})")
    assert ex.status == "succeeded"
    assert "<table" in results[0]["text/html"] and "a" in results[0]["text/plain"]


def test_a_result_over_the_size_limit_becomes_a_note(engine):
    sid = engine.create(limits=Limits(output_bytes=8 << 20))
    code = f"class Big:\n    def _repr_html_(self): return 'x' * {MAX_RESULT_BYTES}\nBig()"
    ex, _, _, results = run(engine, sid, code)
    assert ex.status == "succeeded" and len(results) == 1
    assert "over the" in results[0]["text/plain"] and len(results[0]["text/plain"]) < 200


def test_results_count_against_the_output_cap(engine, witness):
    sid = engine.create(limits=Limits(output_bytes=50_000))
    ex, _, _, results = run(engine, sid, "'y' * 60_000")
    assert (ex.status, ex.limit) == ("killed", "output") and results == []
    assert ex.sandbox_alive
    ex, _, _, results = run(engine, sid, "for i in range(10):\n    display('z' * 10_000)")
    assert (ex.status, ex.limit) == ("killed", "output") and 1 <= len(results) < 5


def test_many_results_end_the_run_at_the_count_limit(engine, witness):
    sid = engine.create(limits=Limits(output_bytes=10 << 20))
    ex, _, _, results = run(engine, sid, f"for i in range({MAX_RESULTS + 50}):\n    display(i)")
    assert (ex.status, ex.limit) == ("killed", "output")
    assert len(results) == MAX_RESULTS
    assert engine.ok(sid, "print('alive')") == "alive\n"


def _assert_violation(engine, sid: str, code: str, what: str) -> None:
    ex, _, err, results = run(engine, sid, code)
    assert (ex.status, ex.sandbox_alive) == ("killed", False), (ex, err)
    assert "protocol violation" in err and what in err, err
    assert results == []
    assert not engine.alive(sid)


def test_forged_result_with_a_bad_mime_type_ends_the_sandbox(engine, witness):
    sid = engine.create()
    msg = {"type": "result", "data": {"application/javascript": "alert(1)"}}
    _assert_violation(engine, sid, forge_message(msg), "MIME type not allowed")


def test_forged_result_that_is_not_json_ends_the_sandbox(engine, witness):
    _assert_violation(engine, engine.create(), forge_message(b"{not json"), "not JSON")


def test_forged_result_nested_deep_ends_the_sandbox(engine, witness):
    deep = b'{"type": "result", "data": {"application/json": ' + b"[" * 2000 + b"]" * 2000 + b"}}"
    _assert_violation(engine, engine.create(), forge_message(deep), "not JSON")
    nested = {"type": "result", "data": {"application/json": json.loads("[" * 40 + "]" * 40)}}
    _assert_violation(engine, engine.create(), forge_message(nested), "nests deeper")


def test_forged_result_of_wrong_shape_or_types_ends_the_sandbox(engine, witness):
    for msg, what in (
        ({"type": "result", "data": {"text/plain": 5}}, "not a string"),
        ({"type": "result", "data": {"image/png": base64.b64encode(b"GIF89a....").decode()}}, "not a PNG"),
        ({"type": "result", "data": {"image/png": "%%%not base64"}}, "not base64"),
        ({"type": "error", "name": "E", "value": "v", "traceback": ["x"] * 300}, "traceback"),
        ({"type": "exit", "status": "succeeded"}, "unknown result message"),
        ([1, 2], "not an object"),
    ):
        _assert_violation(engine, engine.create(), forge_message(msg), what)


def test_forged_result_larger_than_the_cap_ends_the_sandbox(engine, witness):
    """Parts without an end, past MAX_RESULT_BYTES: refused before they are gathered any further."""
    frames = MAX_RESULT_BYTES // 4092 + 2
    code = (
        "import os\nframe = bytes((0xFE, 4)) + (4092).to_bytes(2, 'big') + b'a' * 4092\n"
        f"for _ in range({frames}):\n    os.write(4, frame)\nimport time\ntime.sleep(5)\n"
    )
    _assert_violation(engine, engine.create(limits=Limits(output_bytes=64 << 20)), code, "larger than")


def test_a_forged_but_valid_result_is_only_a_result(engine, witness):
    """User code may publish what display() would: it is bounded and typed like any result."""
    sid = engine.create()
    png = base64.b64encode(PNG + b"rest").decode()
    ex, _, _, results = run(engine, sid, forge_message({"type": "result", "data": {"image/png": png}}))
    assert ex.status == "succeeded" and results == [{"image/png": png}]
    assert engine.ok(sid, "print('alive')") == "alive\n"


def test_display_from_a_thread_between_runs_is_dropped_in_the_sandbox(engine, witness):
    sid = engine.create(limits=Limits(output_bytes=256 << 20))
    start = (
        "import threading, time\nstop = threading.Event()\n"
        "def spam():\n    while not stop.is_set():\n        display('x' * 20_000)\n"
        "threading.Thread(target=spam, daemon=True).start()\ntime.sleep(0.05)\nNone"
    )
    # runs start and end while the thread keeps publishing: no message straddles two runs
    for code in [start] + ["1"] * 20:
        ex, _, err, _ = run(engine, sid, code)
        assert (ex.status, ex.limit) in (("succeeded", None), ("killed", "output")), (ex, err)
        assert ex.sandbox_alive and "protocol violation" not in err, (ex, err)
    run(engine, sid, "stop.set()")
    assert engine.ok(sid, "import time\ntime.sleep(0.1)\nprint('quiet')") == "quiet\n"


def test_result_frames_between_runs_are_dropped(engine, witness):
    sid = engine.create()
    msg = json.dumps({"type": "result", "data": {"text/plain": "stray"}}).encode()
    frame = bytes((0xFE, 5)) + len(msg).to_bytes(2, "big") + msg
    engine.ok(
        sid,
        "import os, threading, time\n"
        f"def stray():\n    time.sleep(0.3)\n    os.write(4, {frame!r})\n"
        "threading.Thread(target=stray, daemon=True).start()",
    )
    import time

    time.sleep(0.6)
    ex, _, _, results = run(engine, sid, "1")
    assert ex.status == "succeeded" and results == [{"text/plain": "1"}]


def test_an_interrupt_while_results_go_out_never_cuts_one_short(engine, witness):
    """A timeout lands while results are being written: the run ends, the sandbox is not a protocol violator."""
    sid = engine.create(limits=Limits(output_bytes=256 << 20))
    code = "class Big:\n    def _repr_html_(self): return 'x' * 500_000\nwhile True:\n    display(Big())"
    ex, _, err, results = run(engine, sid, code, timeout_s=1)
    assert ex.limit in ("timeout", "output") and ex.sandbox_alive, (ex, err[-300:])
    assert "protocol violation" not in err and results
    assert engine.ok(sid, "print('alive')") == "alive\n"
