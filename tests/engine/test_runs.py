"""Stateful runs: persistence, streaming, and how each way of ending a run is reported."""

from __future__ import annotations

import time
import uuid

import pytest

from sandboxes.engine.protocol import EngineError, ExitEvent, Limits


def test_globals_persist_across_runs(engine):
    sid = engine.create()
    engine.ok(sid, "import math\nx = 20\ndef f(y):\n    return x + y")
    assert engine.ok(sid, "x += 1\nprint(f(21), math.pi > 3)") == "42 True\n"


def test_env_is_set_at_create(engine):
    sid = engine.create(env={"GREETING": "hello"})
    assert engine.ok(sid, "import os\nprint(os.environ['GREETING'], os.getcwd())") == "hello /home/sandbox\n"


def test_output_streams_line_by_line_as_produced(engine):
    sid = engine.create()
    eid = f"ex-{uuid.uuid4().hex}"
    engine.client.run(
        engine.agent_id,
        sandbox_id=sid,
        execution_id=eid,
        timeout_s=10,
        code="import time\nfor i in range(4):\n    print(i)\n    time.sleep(0.2)",
    )
    arrivals = []
    seq = 0
    while True:
        events = engine.client.output(eid, after_seq=seq, block_ms=2000)
        now = time.monotonic()
        for e in events:
            arrivals.append((now, e))
            seq = e.seq
        if events and isinstance(events[-1], ExitEvent):
            break
    lines = [(t, e) for t, e in arrivals if not isinstance(e, ExitEvent)]
    assert [e.data for _, e in lines] == ["0\n", "1\n", "2\n", "3\n"]
    assert [e.seq for _, e in arrivals] == list(range(1, len(arrivals) + 1))
    assert lines[-1][0] - lines[0][0] > 0.4  # they did not all arrive at the end


def test_output_replays_from_any_seq(engine):
    sid = engine.create()
    eid = f"ex-{uuid.uuid4().hex}"
    engine.client.run(
        engine.agent_id,
        sandbox_id=sid,
        execution_id=eid,
        timeout_s=10,
        code="import sys\nfor i in range(3):\n    print('out', i)\n    print('err', i, file=sys.stderr)",
    )
    engine.client.wait(eid, timeout=10)
    everything = engine.client.output(eid)
    assert isinstance(everything[-1], ExitEvent)
    for after in range(len(everything)):
        assert engine.client.output(eid, after_seq=after) == everything[after:]
    assert engine.client.output(eid, after_seq=len(everything)) == []
    # print() to stdout and stderr keeps its interleaving
    assert [(e.stream, e.data) for e in everything[:-1]] == [
        (stream, f"{stream[3:]} {i}\n") for i in range(3) for stream in ("stdout", "stderr")
    ]


def test_subprocess_and_raw_fd_output_is_captured(engine):
    sid = engine.create()
    res = engine.run(
        sid,
        "import os, subprocess\nsubprocess.run(['echo', 'from child'])\n"
        "os.write(2, b'raw err\\n')\nos.system('echo from shell >&2')",
    )
    assert res.stdout == "from child\n"
    assert res.stderr == "raw err\nfrom shell\n"


def test_exception_fails_the_run_with_a_clean_traceback(engine):
    sid = engine.create()
    res = engine.run(sid, "x = 1\nraise ValueError('boom')")
    assert (res.exit.status, res.exit.exit_code, res.exit.sandbox_alive) == ("failed", 1, True)
    assert 'File "<run>", line 2' in res.stderr and "ValueError: boom" in res.stderr
    assert "kernel.py" not in res.stderr
    assert engine.ok(sid, "print(x)") == "1\n"


@pytest.mark.parametrize(
    "code,status,exit_code",
    [
        ("raise SystemExit", "succeeded", 0),
        ("raise SystemExit(3)", "failed", 3),
        ("import sys\nsys.exit('bye')", "failed", 1),
        ("raise KeyboardInterrupt", "failed", 130),
    ],
)
def test_system_exit_and_keyboard_interrupt_end_the_run_not_the_sandbox(engine, code, status, exit_code):
    sid = engine.create()
    res = engine.run(sid, code)
    assert (res.exit.status, res.exit.exit_code, res.exit.sandbox_alive) == (status, exit_code, True)
    assert engine.ok(sid, "print('alive')") == "alive\n"


def test_os_exit_restarts_the_interpreter(engine, witness):
    sid = engine.create()
    engine.ok(sid, "x = 1")
    res = engine.run(sid, "print('bye', flush=True)\nimport os\nos._exit(7)")
    assert (res.exit.status, res.exit.exit_code, res.exit.sandbox_alive, res.exit.memory_lost) == (
        "failed",
        7,
        True,
        True,
    )
    assert res.stdout == "bye\n"
    assert engine.ok(sid, "print('x' in globals())") == "False\n"


def test_segfault_restarts_the_interpreter(engine, witness):
    sid = engine.create()
    res = engine.run(sid, "import ctypes\nctypes.string_at(0)")
    assert (res.exit.status, res.exit.exit_code, res.exit.sandbox_alive) == ("failed", -11, True)
    assert engine.ok(sid, "print('again')") == "again\n"


def test_kill_during_a_run(engine):
    sid = engine.create()
    eid = f"ex-{uuid.uuid4().hex}"
    engine.client.run(
        engine.agent_id, sandbox_id=sid, execution_id=eid, code="import time\ntime.sleep(30)", timeout_s=60
    )
    time.sleep(0.1)
    engine.kill(sid)
    engine.kill(sid)  # idempotent
    exit_event = engine.client.wait(eid, timeout=5)
    assert (exit_event.status, exit_event.sandbox_alive) == ("killed", False)


def test_run_accounting(engine):
    sid = engine.create()
    res = engine.run(sid, "data = bytearray(40 << 20)\nsum(range(3_000_000))")
    assert res.exit.peak_memory_bytes >= 40 << 20
    assert res.exit.cpu_ms > 10
    assert res.exit.wall_ms >= res.exit.cpu_ms * 0.5


def test_second_run_while_busy_is_refused(engine):
    sid = engine.create()
    eid = f"ex-{uuid.uuid4().hex}"
    engine.client.run(
        engine.agent_id, sandbox_id=sid, execution_id=eid, code="import time\ntime.sleep(0.5)", timeout_s=5
    )
    with pytest.raises(EngineError) as err:
        engine.run(sid, "print(1)")
    assert (err.value.code, err.value.details) == ("sandbox_busy", {"execution_id": eid})
    assert engine.client.wait(eid, timeout=5).status == "succeeded"


def test_python_ml_has_numpy_and_pandas_ready(engine):
    sid = engine.create(runtime="python-ml")
    out = engine.ok(
        sid,
        "import sys\nprint('numpy' in sys.modules)\nimport numpy as np, pandas as pd\n"
        "print(int(np.arange(10).sum()), pd.DataFrame({'a': [1, 2]}).a.sum())",
    )
    assert out == "True\n45 3\n"


def test_errors_have_stable_codes(engine):
    c, agent = engine.client, engine.agent_id
    with pytest.raises(EngineError) as err:
        c.create(agent, sandbox_id="x-unknown-rt", runtime="cobol", env={}, limits=Limits())
    assert err.value.code == "unknown_runtime"
    with pytest.raises(EngineError) as err:
        c.run(agent, sandbox_id="does-not-exist", execution_id="e", code="1", timeout_s=1)
    assert err.value.code == "sandbox_not_running"
    with pytest.raises(EngineError) as err:
        c.create(agent, sandbox_id="x-net", runtime="python", env={}, limits=Limits(network=True))
    assert err.value.code == "invalid_request"
    with pytest.raises(EngineError) as err:
        c.stats("no-such-agent")
    assert err.value.code == "agents_unavailable"


def test_agent_registry_and_stats(engine):
    (info,) = [a for a in engine.client.agents() if a.id == engine.agent_id]
    assert info.alive and set(info.runtimes) >= {"python", "python-ml"}
    stats = engine.client.stats(engine.agent_id)
    assert stats["cgroup"]["mode"] in ("v1", "v2", "none")
    assert set(stats["pools"]) >= {"python", "python-ml"}
    sid = engine.create()
    assert sid in engine.client.sandbox_ids(engine.agent_id)


def test_multiprocessing_works_inside_a_sandbox(engine):
    sid = engine.create()
    out = engine.ok(
        sid,
        "import multiprocessing as mp\nwith mp.get_context('fork').Pool(2) as p:\n"
        "    print(sum(p.map(abs, range(-5, 5))))",
    )
    assert out == "25\n"


def test_kill_reports_lifetime_cpu_including_between_runs_and_after_a_death(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    code = "import threading, time\nthreading.Thread(target=lambda: [0 for _ in iter(lambda: time.thread_time() < 0.4, False)]).start()"
    run_cpu = engine.run(sid, code).exit.cpu_ms
    engine.ok(
        sid, "import threading\nfor t in threading.enumerate():\n    t is threading.main_thread() or t.join()"
    )
    engine.run(sid, "import os\nos._exit(3)")  # the interpreter ends by itself
    reply = c.kill(a, sandbox_id=sid)
    assert reply["cpu_ms"] >= 400 > run_cpu, reply
    assert c.kill(a, sandbox_id=sid) == {"killed": False, "cpu_ms": reply["cpu_ms"]}
