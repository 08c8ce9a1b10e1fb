"""Pause and resume: the cgroup freezer stops every process of a sandbox with its memory kept."""

from __future__ import annotations

import time

import pytest

from sandboxes.engine.protocol import EngineError

TICKER = """
import threading, time
ticks = 0
def tick():
    global ticks
    while True:
        ticks += 1
        with open('/workspace/ticks', 'w') as f:
            f.write(str(ticks))
        time.sleep(0.01)
threading.Thread(target=tick, daemon=True).start()
time.sleep(0.1)
"""


def _ticks(engine, sid) -> int:
    return int(engine.client.file_read(engine.agent_id, sandbox_id=sid, path="ticks"))


def test_pause_stops_every_process_and_resume_keeps_memory(engine):
    sid = engine.create()
    engine.ok(sid, "big = bytearray(64 << 20); big[-1] = 7; marker = 'kept'" + TICKER)
    # a process outside the interpreter too: a child that appends while it runs
    engine.ok(sid, "import subprocess, sys\n"
                   "child = subprocess.Popen([sys.executable, '-c', "
                   "'import time\\nwhile True:\\n open(\"/workspace/child\", \"a\").write(\"x\"); time.sleep(0.01)'])\n"
                   "import os, time\nwhile not os.path.exists('/workspace/child'): time.sleep(0.01)")
    assert engine.client.pause(engine.agent_id, sandbox_id=sid)["paused"] is True
    frozen_ticks = _ticks(engine, sid)
    frozen_child = len(engine.client.file_read(engine.agent_id, sandbox_id=sid, path="child"))
    time.sleep(0.3)
    assert _ticks(engine, sid) == frozen_ticks  # files are readable while paused, and nothing moved
    assert len(engine.client.file_read(engine.agent_id, sandbox_id=sid, path="child")) == frozen_child
    cpu_paused = engine.agent.op_sandboxes_cpu()
    time.sleep(0.2)
    assert engine.agent.op_sandboxes_cpu()[sid] == cpu_paused[sid]  # no CPU while paused

    assert engine.client.resume(engine.agent_id, sandbox_id=sid)["paused"] is False
    out = engine.ok(sid, "import time\nbefore = ticks\ntime.sleep(0.2)\nprint(marker, big[-1], ticks > before)")
    assert out == "kept 7 True\n"
    assert len(engine.client.file_read(engine.agent_id, sandbox_id=sid, path="child")) > frozen_child


def test_a_paused_sandbox_refuses_runs_and_pause_is_idempotent(engine):
    sid = engine.create()
    engine.ok(sid, "x = 1")
    engine.client.pause(engine.agent_id, sandbox_id=sid)
    engine.client.pause(engine.agent_id, sandbox_id=sid)  # a second pause changes nothing
    with pytest.raises(EngineError) as exc:
        engine.client.run(engine.agent_id, sandbox_id=sid, execution_id="ex-paused", code="print(x)", timeout_s=5)
    assert exc.value.code == "sandbox_paused"
    engine.client.resume(engine.agent_id, sandbox_id=sid)
    engine.client.resume(engine.agent_id, sandbox_id=sid)
    assert engine.ok(sid, "print(x)") == "1\n"


def test_a_running_sandbox_cannot_be_paused_mid_run(engine):
    sid = engine.create()
    eid = "ex-long-pause"
    engine.client.run(engine.agent_id, sandbox_id=sid, execution_id=eid, code="import time; time.sleep(1)", timeout_s=10)
    time.sleep(0.1)
    with pytest.raises(EngineError) as exc:
        engine.client.pause(engine.agent_id, sandbox_id=sid)
    assert exc.value.code == "sandbox_busy" and exc.value.details["execution_id"] == eid
    assert engine.client.wait(eid, timeout=20).status == "succeeded"


def test_a_snapshot_of_a_paused_sandbox_leaves_it_paused(engine):
    sid = engine.create()
    engine.ok(sid, "open('/workspace/a.txt', 'w').write('snap me')" + TICKER)
    engine.client.pause(engine.agent_id, sandbox_id=sid)
    before = _ticks(engine, sid)
    snap = engine.client.snapshot(engine.agent_id, sandbox_id=sid)
    assert snap["files"] >= 2
    time.sleep(0.2)
    assert _ticks(engine, sid) == before  # the snapshot's own freeze ended; the pause did not
    engine.client.resume(engine.agent_id, sandbox_id=sid)
    time.sleep(0.1)
    assert _ticks(engine, sid) > before


def test_a_paused_sandbox_can_be_forked_and_stays_paused(engine):
    sid = engine.create()
    engine.ok(sid, "state = 'from parent'" + TICKER)
    engine.client.pause(engine.agent_id, sandbox_id=sid)
    child = engine.fork(sid)
    assert child["memory"] == "copied"
    assert engine.ok(child["sandbox_id"], "print(state)") == "from parent\n"  # the fork runs
    before = _ticks(engine, sid)
    time.sleep(0.2)
    assert _ticks(engine, sid) == before  # the parent is paused again
    with pytest.raises(EngineError) as exc:
        engine.client.run(engine.agent_id, sandbox_id=sid, execution_id="ex-parent-paused", code="1", timeout_s=5)
    assert exc.value.code == "sandbox_paused"
    engine.client.resume(engine.agent_id, sandbox_id=sid)
    assert engine.ok(sid, "print(state)") == "from parent\n"


def test_a_paused_sandbox_can_be_killed(engine):
    sid = engine.create()
    engine.ok(sid, "import subprocess, sys\np = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])")
    engine.client.pause(engine.agent_id, sandbox_id=sid)
    assert engine.client.kill(engine.agent_id, sandbox_id=sid)["killed"] is True
    deadline = time.monotonic() + 10
    while engine.alive(sid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not engine.alive(sid)
