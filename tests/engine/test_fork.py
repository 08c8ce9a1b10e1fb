"""Copy-on-write fork of a live sandbox: what is copied, what is private, who outlives whom."""

from __future__ import annotations

import time
import uuid

import pytest

from sandboxes.engine.protocol import EngineError, Limits


def test_fork_copies_memory_and_workspace(engine):
    sid = engine.create(env={"ORIGIN": "parent"})
    engine.ok(sid, "import json\ncounter = 10\nopen('/workspace/shared.txt', 'w').write('before fork')")
    info = engine.fork(sid)
    assert info["memory"] == "copied"
    child = info["sandbox_id"]
    out = engine.ok(
        child,
        "import os\nprint(counter, json.dumps([1]), open('/workspace/shared.txt').read(), "
        "os.environ['ORIGIN'], os.getcwd())",
    )
    assert out == "10 [1] before fork parent /home/sandbox\n"


def test_fork_memory_and_workspace_diverge_afterwards(engine):
    sid = engine.create()
    engine.ok(sid, "counter = 1\nopen('/workspace/f.txt', 'w').write('v1')")
    child = engine.fork(sid)["sandbox_id"]
    engine.ok(sid, "counter = 100\nopen('/workspace/f.txt', 'w').write('parent')\nopen('/workspace/p', 'w')")
    engine.ok(child, "counter += 1\nopen('/workspace/f.txt', 'w').write('child')\nopen('/workspace/c', 'w')")
    assert (
        engine.ok(
            sid,
            "import os\nprint(counter, open('/workspace/f.txt').read(), sorted(os.listdir('/workspace')))",
        )
        == "100 parent ['f.txt', 'p']\n"
    )
    assert (
        engine.ok(
            child,
            "import os\nprint(counter, open('/workspace/f.txt').read(), sorted(os.listdir('/workspace')))",
        )
        == "2 child ['c', 'f.txt']\n"
    )


def test_killing_the_parent_does_not_kill_the_fork_and_vice_versa(engine):
    sid = engine.create()
    engine.ok(sid, "x = 'kept'\nimport subprocess\nbg = subprocess.Popen(['sleep', '1000'])")
    child = engine.fork(sid)["sandbox_id"]
    grandchild = engine.fork(child)["sandbox_id"]
    engine.kill(sid)
    time.sleep(0.2)
    assert engine.ok(child, "print(x)") == "kept\n"
    engine.kill(child)
    time.sleep(0.2)
    assert engine.ok(grandchild, "print(x)") == "kept\n"
    assert engine.alive(grandchild) and not engine.alive(child) and not engine.alive(sid)


def test_fork_has_its_own_limits(engine):
    sid = engine.create(limits=Limits(memory_bytes=512 << 20))
    engine.ok(sid, "ballast = bytearray(32 << 20)")
    child = engine.fork(sid, limits=Limits(memory_bytes=96 << 20))["sandbox_id"]
    res = engine.run(child, "blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))", timeout_s=20)
    assert "MemoryError" in res.stderr or res.exit.limit == "memory", res
    assert res.exit.peak_memory_bytes < 128 << 20
    assert engine.ok(sid, "print(len(ballast))") == f"{32 << 20}\n"


def test_fork_while_running_is_refused(engine):
    sid = engine.create()
    eid = f"ex-{uuid.uuid4().hex}"
    engine.client.run(
        engine.agent_id, sandbox_id=sid, execution_id=eid, code="import time\ntime.sleep(0.5)", timeout_s=5
    )
    with pytest.raises(EngineError) as err:
        engine.fork(sid)
    assert err.value.code == "invalid_request"
    engine.client.wait(eid, timeout=5)


def test_fork_cost_does_not_grow_with_workspace_size(engine):
    def fork_ms(sid):
        t = time.perf_counter()
        engine.fork(sid)
        return (time.perf_counter() - t) * 1000

    small = engine.create()
    engine.ok(small, "open('/workspace/small', 'wb').write(b'x')")
    big = engine.create(limits=Limits(workspace_bytes=512 << 20, memory_bytes=1 << 30))
    engine.ok(big, "open('/workspace/big', 'wb').write(b'x' * (200 << 20))")
    small_ms = min(fork_ms(small) for _ in range(3))
    big_ms = min(fork_ms(big) for _ in range(3))
    assert big_ms < small_ms * 3 + 20, (small_ms, big_ms)


def test_fork_sees_its_own_processes_and_network(engine):
    sid = engine.create()
    child = engine.fork(sid)["sandbox_id"]
    engine.ok(
        sid, "import socket\nsrv = socket.socket(socket.AF_UNIX)\nsrv.bind('\\0parent-only')\nsrv.listen()"
    )
    out = engine.ok(
        child,
        "import socket\nc = socket.socket(socket.AF_UNIX)\ntry:\n    c.connect('\\0parent-only')\n"
        "    print('REACHED')\nexcept OSError:\n    print('isolated')",
    )
    assert out == "isolated\n"


def test_runtime_without_memory_fork_gets_a_fresh_process_and_a_workspace_copy(tmp_path):
    """What Node.js/Go runtimes will do: fork = fresh sandbox + copy of the workspace."""
    from dataclasses import replace

    from sandboxes.engine.agent import start_embedded_agent
    from sandboxes.engine.client import EngineClient
    from sandboxes.engine.runtimes import builtin_runtimes
    from sandboxes.engine.transport import make_bus

    from .conftest import Engine

    runtime = replace(builtin_runtimes()["python"], name="python-nofork", can_fork=False)
    bus = make_bus(None, prefix=f"nofork-{uuid.uuid4().hex[:6]}")
    agent = start_embedded_agent(
        bus,
        agent_id="nofork",
        state_dir=str(tmp_path),
        pool_min=1,
        pool_max=2,
        runtimes={runtime.name: runtime},
    )
    try:
        engine = Engine(EngineClient(bus), agent, "nofork")
        sid = engine.create(runtime="python-nofork")
        engine.ok(sid, "x = 1\nimport os\nos.makedirs('d')\nopen('d/f.txt', 'w').write('copied')")
        info = engine.fork(sid)
        assert info["memory"] == "fresh"
        out = engine.ok(
            info["sandbox_id"], "print('x' in globals(), open('d/f.txt').read())\nopen('d/g', 'w')"
        )
        assert out == "False copied\n"
        assert engine.ok(sid, "import os\nprint(os.listdir('d'))") == "['f.txt']\n"
    finally:
        agent.stop()
