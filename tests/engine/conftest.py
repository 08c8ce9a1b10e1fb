"""A live embedded agent (in-process bus, real isolation) shared by the engine tests."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass

import pytest

from sandboxes.engine.agent import start_embedded_agent
from sandboxes.engine.client import EngineClient
from sandboxes.engine.protocol import ExitEvent, Limits, OutputEvent
from sandboxes.engine.transport import make_bus

AGENT = "test-agent"
_ids = itertools.count(1)

requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox engine needs root")


@dataclass
class Result:
    exit: ExitEvent
    stdout: str
    stderr: str
    events: list


class Engine:
    """Test-side helper around an ``EngineClient`` talking to one agent."""

    def __init__(self, client: EngineClient, agent, agent_id: str = AGENT):
        self.client = client
        self.agent = agent
        self.agent_id = agent_id
        self.created: list[str] = []

    def create(self, runtime: str = "python", limits: Limits | None = None, env: dict | None = None) -> str:
        sid = f"sb-{next(_ids)}-{uuid.uuid4().hex[:6]}"
        self.client.create(
            self.agent_id, sandbox_id=sid, runtime=runtime, env=env or {}, limits=limits or Limits()
        )
        self.created.append(sid)
        return sid

    def fork(self, sid: str, limits: Limits | None = None) -> dict:
        new = f"fork-{next(_ids)}-{uuid.uuid4().hex[:6]}"
        out = self.client.fork(self.agent_id, sandbox_id=sid, new_sandbox_id=new, limits=limits or Limits())
        self.created.append(new)
        return out

    def run(self, sid: str, code: str, timeout_s: float = 10.0) -> Result:
        eid = f"ex-{uuid.uuid4().hex}"
        self.client.run(self.agent_id, sandbox_id=sid, execution_id=eid, code=code, timeout_s=timeout_s)
        exit_event = self.client.wait(eid, timeout=timeout_s + 20)
        events = self.client.output(eid, count=100_000)
        out = "".join(e.data for e in events if isinstance(e, OutputEvent) and e.stream == "stdout")
        err = "".join(e.data for e in events if isinstance(e, OutputEvent) and e.stream == "stderr")
        return Result(exit_event, out, err, events)

    def ok(self, sid: str, code: str, timeout_s: float = 10.0) -> str:
        res = self.run(sid, code, timeout_s)
        assert res.exit.status == "succeeded", (res.exit, res.stderr)
        return res.stdout

    def kill(self, sid: str) -> None:
        self.client.kill(self.agent_id, sandbox_id=sid)

    def alive(self, sid: str) -> bool:
        return sid in self.client.sandbox_ids(self.agent_id)


@pytest.fixture(scope="session")
def engine_agent():
    if os.geteuid() != 0:
        pytest.skip("the sandbox engine needs root")
    state = tempfile.mkdtemp(prefix="mem0-engine-test-")
    bus = make_bus(None, prefix=f"test-{uuid.uuid4().hex[:8]}")
    agent = start_embedded_agent(bus, agent_id=AGENT, state_dir=state, capacity=200, pool_min=2, pool_max=8)
    agent.wait_ready()
    yield bus, agent
    agent.stop()
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def engine(engine_agent):
    bus, agent = engine_agent
    eng = Engine(EngineClient(bus), agent)
    yield eng
    for sid in eng.created:
        try:
            eng.kill(sid)
        except Exception:
            pass


@pytest.fixture
def witness(engine):
    """A bystander sandbox holding state: after each hostile test it must still work."""
    sid = engine.create()
    engine.ok(sid, "witness_state = 41")
    yield sid
    assert engine.ok(sid, "witness_state += 1; print(witness_state)") == "42\n"
    assert engine.client.stats(engine.agent_id)["agent_id"] == AGENT
