"""The Redis Streams transport: the same client flow as in-process, plus crash recovery,
timeouts, lost agents and the daemon entry point. Uses the real Redis with a unique prefix."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

from sandboxes.engine.agent import start_embedded_agent
from sandboxes.engine.client import EngineClient
from sandboxes.engine.protocol import (
    AgentInfo,
    EngineError,
    ExitEvent,
    Limits,
    OpReply,
    OpRequest,
    OutputEvent,
)
from sandboxes.engine.transport import make_bus

from .conftest import Engine

REDIS_URL = os.environ.get("MEM0_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _redis_or_skip():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError:
        pytest.skip("Redis is not reachable")


@pytest.fixture
def redis_bus():
    _redis_or_skip()
    prefix = f"mem0test-{uuid.uuid4().hex[:10]}"
    bus = make_bus(REDIS_URL, prefix)
    yield bus
    for key in bus.r.scan_iter(f"{prefix}:*"):
        bus.r.delete(key)
    bus.close()


@pytest.fixture(scope="module")
def redis_engine():
    if os.geteuid() != 0:
        pytest.skip("the sandbox engine needs root")
    _redis_or_skip()
    prefix = f"mem0test-{uuid.uuid4().hex[:10]}"
    state = tempfile.mkdtemp(prefix="mem0-redis-agent-")
    agent_bus = make_bus(REDIS_URL, prefix)
    agent = start_embedded_agent(
        agent_bus, agent_id="redis-agent", state_dir=state, pool_min=2, pool_max=4, templates=["python"]
    )
    agent.wait_ready()
    client_bus = make_bus(REDIS_URL, prefix)  # a separate connection, as the web process would have
    yield Engine(EngineClient(client_bus), agent, "redis-agent"), client_bus
    agent.stop()
    for key in client_bus.r.scan_iter(f"{prefix}:*"):
        client_bus.r.delete(key)
    shutil.rmtree(state, ignore_errors=True)


def test_create_run_stream_fork_files_kill_over_redis(redis_engine):
    engine, bus = redis_engine
    sid = engine.create()
    engine.ok(sid, "x = 1")
    res = engine.run(sid, "import time\nfor i in range(3):\n    print(i + x)\n    time.sleep(0.05)")
    assert res.exit.status == "succeeded" and res.stdout == "1\n2\n3\n"
    assert [e.seq for e in res.events] == list(range(1, len(res.events) + 1))
    child = engine.fork(sid)["sandbox_id"]
    assert engine.ok(child, "print(x)") == "1\n"
    engine.client.file_write(engine.agent_id, sandbox_id=child, path="f.txt", data=b"hi")
    assert engine.ok(child, "print(open('f.txt').read())") == "hi\n"
    assert child in engine.client.sandbox_ids(engine.agent_id)
    engine.kill(sid)
    assert engine.ok(child, "print('fork alive')") == "fork alive\n"
    (info,) = [a for a in engine.client.agents() if a.id == engine.agent_id]
    assert info.alive and info.runtimes == ["python"]


def test_output_stream_is_replayable_capped_and_expiring(redis_engine):
    engine, bus = redis_engine
    sid = engine.create()
    eid = f"ex-{uuid.uuid4().hex}"
    engine.client.run(
        engine.agent_id, sandbox_id=sid, execution_id=eid, code="for i in range(5): print(i)", timeout_s=5
    )
    exit_event = engine.client.wait(eid, timeout=10)
    events = engine.client.output(eid)
    assert events[-1] == exit_event and isinstance(exit_event, ExitEvent)
    assert engine.client.output(eid, after_seq=2) == events[2:]
    ttl = bus.r.ttl(f"{bus.prefix}:exec:{eid}")
    assert 0 < ttl <= 3600


def test_blocking_read_wakes_on_new_output(redis_engine):
    engine, bus = redis_engine
    sid = engine.create()
    eid = f"ex-{uuid.uuid4().hex}"
    engine.client.run(
        engine.agent_id,
        sandbox_id=sid,
        execution_id=eid,
        code="import time\ntime.sleep(0.3)\nprint('late')",
        timeout_s=5,
    )
    t = time.monotonic()
    first = engine.client.output(eid, block_ms=5000)
    assert first and first[0].data == "late\n"
    assert 0.2 < time.monotonic() - t < 3


def test_run_with_read_ms_brings_back_a_short_runs_output_with_the_accept(redis_engine):
    engine, bus = redis_engine
    sid = engine.create()
    eid = f"ex-{uuid.uuid4().hex}"
    first = engine.client.run(engine.agent_id, sandbox_id=sid, execution_id=eid, code="print('a'); print('b')",
                              timeout_s=5, read_ms=2000)
    exit_event = engine.client.wait(eid, timeout=10)
    events = engine.client.output(eid)
    assert exit_event.status == "succeeded" and events[-1] == exit_event
    assert first and first == events[:len(first)]  # what had arrived: a prefix of the stream, from seq 1
    print("first events:", first)
    # a slow run: what the read window saw (nothing yet), the rest is read as usual
    eid2 = f"ex-{uuid.uuid4().hex}"
    t = time.monotonic()
    early = engine.client.run(engine.agent_id, sandbox_id=sid, execution_id=eid2,
                              code="import time\ntime.sleep(0.5)\nprint('late')", timeout_s=5, read_ms=50)
    assert early == [] and time.monotonic() - t < 0.45
    assert engine.client.wait(eid2, timeout=10).status == "succeeded"
    # a refusal is raised as before, with no events
    with pytest.raises(EngineError) as err:
        engine.client.run(engine.agent_id, sandbox_id="no-such-sandbox", execution_id=f"ex-{uuid.uuid4().hex}",
                          code="print(1)", timeout_s=5, read_ms=50)
    assert err.value.code == "sandbox_not_running"


def test_unknown_agent_and_error_codes_over_redis(redis_engine):
    engine, _ = redis_engine
    with pytest.raises(EngineError) as err:
        engine.client.stats("nobody-home")
    assert err.value.code == "agents_unavailable"
    with pytest.raises(EngineError) as err:
        engine.client.create(engine.agent_id, sandbox_id="s", runtime="python-ml", env={}, limits=Limits())
    assert err.value.code == "unknown_runtime"


def test_silent_agent_times_out_and_dead_agent_is_lost(redis_bus):
    now = time.time()
    redis_bus.register_agent(AgentInfo("silent", "h", 1, ["python"], 0, now))
    with pytest.raises(EngineError) as err:
        redis_bus.call("silent", OpRequest("stats", {}), timeout=0.3)
    assert err.value.code == "agent_timeout"
    redis_bus.register_agent(AgentInfo("gone", "h", 1, ["python"], 0, now - 3600))
    with pytest.raises(EngineError) as err:
        redis_bus.call("gone", OpRequest("stats", {}), timeout=0.3)
    assert err.value.code == "agent_lost"
    assert {a.id: a.alive for a in redis_bus.list_agents()} == {"silent": True, "gone": False}


def test_pending_ops_are_reclaimed_after_a_crash(redis_bus):
    """An op read by an agent that crashed before answering is served by its successor."""
    redis_bus.register_agent(AgentInfo("crashy", "h", 1, ["python"], 0, time.time()))
    key = f"{redis_bus.prefix}:ops:crashy"
    redis_bus.r.xgroup_create(key, "agents", id="0", mkstream=True)
    req = OpRequest("stats", {}, deadline=time.time() + 30)
    redis_bus.r.xadd(key, {"r": json.dumps(req.to_dict())})
    redis_bus.r.xreadgroup("agents", "crashy@dead-host", {key: ">"}, count=10)  # read, never acked

    stop = threading.Event()
    served = []

    def handle(r: OpRequest) -> None:
        served.append(r.request_id)
        redis_bus.reply(r, OpReply(r.request_id, True, {"ok": 1}))
        stop.set()

    t = threading.Thread(target=redis_bus.serve_ops, args=("crashy", handle, stop), daemon=True)
    t.start()
    t.join(5)
    assert served == [req.request_id]
    assert redis_bus.r.xpending(key, "agents")["pending"] == 0
    got = redis_bus.r.blpop([f"{redis_bus.prefix}:reply:{req.request_id}"], timeout=1)
    assert json.loads(got[1])["result"] == {"ok": 1}


def test_output_events_roundtrip_and_seq_ids(redis_bus):
    events = [
        OutputEvent(1, "stdout", "a"),
        OutputEvent(2, "stderr", "é"),
        ExitEvent(3, "succeeded", 0, None, 1.5, 0.5, 1024, True),
    ]
    redis_bus.publish("e1", events)
    assert redis_bus.read_output("e1", 0, 0, 100) == events
    assert redis_bus.read_output("e1", 2, 0, 100) == events[2:]
    assert redis_bus.read_output("e1", 3, 50, 100) == []


def test_agent_daemon_serves_over_redis(redis_bus):
    if os.geteuid() != 0:
        pytest.skip("the sandbox engine needs root")
    state = tempfile.mkdtemp(prefix="mem0-daemon-")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandboxes.engine.agent",
            "--redis-url",
            REDIS_URL,
            "--prefix",
            redis_bus.prefix,
            "--agent-id",
            "daemon-1",
            "--state-dir",
            state,
            "--capacity",
            "5",
            "--pool-min",
            "1",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        client = EngineClient(redis_bus)
        deadline = time.monotonic() + 30
        while not any(a.id == "daemon-1" for a in client.agents()):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        client.create("daemon-1", sandbox_id="d1", runtime="python-ml", env={}, limits=Limits(), timeout=30)
        client.run(
            "daemon-1",
            sandbox_id="d1",
            execution_id="d1-e1",
            code="import numpy\nprint(numpy.ones(3).sum())",
            timeout_s=10,
        )
        assert client.wait("d1-e1", timeout=20).status == "succeeded"
        assert client.output("d1-e1")[0].data == "3.0\n"
        assert client.stats("daemon-1")["capacity"] == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(state, ignore_errors=True)
    assert proc.returncode == 0
    assert not any(a.id == "daemon-1" for a in EngineClient(redis_bus).agents())


def _start_daemon(prefix: str, agent_id: str, state: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandboxes.engine.agent",
            "--redis-url",
            REDIS_URL,
            "--prefix",
            prefix,
            "--agent-id",
            agent_id,
            "--state-dir",
            state,
            "--pool-min",
            "1",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _sandbox_pids(agent_id: str, daemon_pid: int) -> set[int]:
    base = f"/sys/fs/cgroup/pids/mem0-{agent_id}-{daemon_pid}"
    if not os.path.isdir(base):
        return set()
    out = set()
    for child in os.listdir(base):
        if os.path.isdir(f"{base}/{child}"):
            with open(f"{base}/{child}/cgroup.procs") as f:
                out |= {int(p) for p in f.read().split()}
    return out


def test_crashed_agent_leaves_no_running_sandboxes(redis_bus):
    """SIGKILL the daemon: interpreters exit at once (control socket EOF); what they left
    running is killed by the next agent with the same id."""
    if os.geteuid() != 0 or not os.path.isdir("/sys/fs/cgroup/pids"):
        pytest.skip("needs root and a cgroup v1 pids hierarchy")
    state = tempfile.mkdtemp(prefix="mem0-crash-")
    client = EngineClient(redis_bus)
    first = _start_daemon(redis_bus.prefix, "crashy-agent", state)
    second = None
    try:
        deadline = time.monotonic() + 30
        while not any(a.id == "crashy-agent" for a in client.agents()):
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        info = client.create(
            "crashy-agent", sandbox_id="c1", runtime="python", env={}, limits=Limits(), timeout=30
        )
        client.run(
            "crashy-agent",
            sandbox_id="c1",
            execution_id="c1-e",
            code="import subprocess\nbg = subprocess.Popen(['sleep', '1000'])",
            timeout_s=10,
        )
        assert client.wait("c1-e", timeout=20).status == "succeeded"
        left = _sandbox_pids("crashy-agent", first.pid)
        assert info["pid"] in left and len(left) >= 2  # + the sleep, + warm pool sandboxes
        first.kill()
        first.wait()
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{info['pid']}"):
            assert time.monotonic() < deadline, "interpreter outlived its agent"
            time.sleep(0.02)
        second = _start_daemon(redis_bus.prefix, "crashy-agent", state)
        deadline = time.monotonic() + 30
        while any(os.path.exists(f"/proc/{p}") for p in left):
            assert time.monotonic() < deadline, (
                "background process of a dead agent survived its successor's start"
            )
            time.sleep(0.05)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(20)
        shutil.rmtree(state, ignore_errors=True)
