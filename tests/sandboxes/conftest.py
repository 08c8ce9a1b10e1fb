"""A real fleet for the sandbox API tests: fork-agent processes on the real Redis bus, with real isolation.

Every test session uses its own bus prefix, so runs never see each other's agents or streams.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from sandboxes import dispatch

BUS_URL = os.environ.get("MEM0_TEST_BUS_URL", "redis://127.0.0.1:6379/9")
PREFIX = f"mem0test-{uuid.uuid4().hex[:8]}"


BLOCKS = tempfile.mkdtemp(prefix="mem0test-blocks-")


def start_agent(agent_id: str, state_dir, capacity: int = 40) -> subprocess.Popen:
    """An agent process on the test bus; all agents share the host's chunk cache, as on one host."""
    cmd = [sys.executable, "-m", "sandboxes.engine.agent", "--redis-url", BUS_URL, "--prefix", PREFIX,
           "--agent-id", agent_id, "--state-dir", str(state_dir), "--capacity", str(capacity),
           "--blockstore-dir", BLOCKS]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(f"{state_dir}.log", "ab"),
                            start_new_session=True)


def wait_alive(agent_ids: set[str], timeout: float = 60) -> None:
    from sandboxes.engine.client import EngineClient
    from sandboxes.engine.transport import make_bus

    client = EngineClient(make_bus(BUS_URL, prefix=PREFIX))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agent_ids <= {a.id for a in client.agents() if a.alive}:
            return
        time.sleep(0.1)
    raise RuntimeError(f"agents {agent_ids} did not register within {timeout}s")


def forget_agent(agent_id: str) -> None:
    """Take a test agent out of the registry at once (a killed agent cannot unregister itself)."""
    from sandboxes.engine.transport import make_bus

    make_bus(BUS_URL, prefix=PREFIX).unregister_agent(agent_id)


def stop_agent(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def fleet(tmp_path_factory):
    """Two agents, a0 and a1, for the whole session."""
    procs = {aid: start_agent(aid, tmp_path_factory.mktemp(aid)) for aid in ("a0", "a1")}
    try:
        wait_alive(set(procs))
        yield procs
    finally:
        for proc in procs.values():
            stop_agent(proc)


@pytest.fixture
def engine(settings, fleet):
    """Point the Django side at the test fleet's bus."""
    settings.MEM0_BUS_URL = BUS_URL
    settings.MEM0_BUS_PREFIX = PREFIX
    settings.MEM0_EMBEDDED_AGENT = False
    settings.MEM0_BLOCKSTORE_DIR = BLOCKS
    dispatch.reset()
    yield dispatch.engine()
    dispatch.reset()


@pytest.fixture
def pro_a(tenant):
    return tenant("pro-a", plan="pro")


@pytest.fixture
def pro_b(tenant):
    return tenant("pro-b", plan="pro")


@pytest.fixture
def api_pa(pro_a):
    from tests.conftest import client_for

    return client_for(pro_a[2])


@pytest.fixture
def api_pb(pro_b):
    from tests.conftest import client_for

    return client_for(pro_b[2])


@pytest.fixture
def sandbox(api_pa, engine):
    r = api_pa.post("/api/v1/sandboxes", {"runtime": "python"}, format="json")
    assert r.status_code == 201, r.content
    yield r.json()
    api_pa.delete(f"/api/v1/sandboxes/{r.json()['id']}")


def run(api, sandbox_id: str, code: str, **extra):
    r = api.post(f"/api/v1/sandboxes/{sandbox_id}/executions", {"code": code, **extra}, format="json")
    assert r.status_code in (200, 202), r.content
    return r.json()
