"""Runs that behave like a notebook kernel: cancel keeps the sandbox, and an interpreter that dies is replaced
by a fresh one with the workspace intact (memory lost), as Jupyter restarts a kernel."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from sandboxes.engine.protocol import EngineError, Limits


def start(engine, sid: str, code: str, timeout_s: float = 30.0) -> str:
    eid = f"ex-{uuid.uuid4().hex}"
    engine.client.run(engine.agent_id, sandbox_id=sid, execution_id=eid, code=code, timeout_s=timeout_s)
    return eid


def wait_running(engine, sid: str) -> None:
    """Until the run's code is under way (the interpreter has left its request socket)."""
    for _ in range(500):
        if engine.agent.sandboxes[sid].run is not None:
            break
        time.sleep(0.01)
    time.sleep(0.2)


def assert_restarted(engine, sid: str, ex) -> None:
    """The run ended with the interpreter; the sandbox lives on with a fresh one and its workspace."""
    assert ex.sandbox_alive and ex.memory_lost, ex
    assert ex.error["name"] == "interpreter_exited" and "workspace is kept" in ex.error["value"], ex
    assert engine.alive(sid)
    assert (
        engine.ok(sid, "print(open('/workspace/keep.txt').read(), 'kept' in globals())")
        == "still here False\n"
    )
    assert engine.agent.sandboxes[sid].memory == "lost"


def prepare(engine, **limits) -> str:
    sid = engine.create(limits=Limits(**limits) if limits else None)
    engine.ok(sid, "kept = 7\nopen('/workspace/keep.txt', 'w').write('still here')")
    return sid


def test_cancel_interrupts_a_run_and_keeps_the_state(engine, witness):
    sid = prepare(engine)
    eid = start(
        engine, sid, "import subprocess, time\nchild = subprocess.Popen(['sleep', '100'])\ntime.sleep(30)"
    )
    wait_running(engine, sid)
    assert engine.client.cancel(engine.agent_id, sandbox_id=sid, execution_id=eid) == {"cancelled": True}
    ex = engine.client.wait(eid, timeout=5)
    assert (ex.status, ex.exit_code, ex.limit, ex.sandbox_alive, ex.memory_lost) == (
        "cancelled",
        130,
        None,
        True,
        False,
    )
    assert ex.error["name"] == "KeyboardInterrupt"
    # the state survives; the processes the run started do not
    assert engine.ok(sid, "print(kept, child.wait())") == "7 -9\n"


def test_cancel_of_another_or_a_finished_run_changes_nothing(engine):
    sid = prepare(engine)
    assert engine.client.cancel(engine.agent_id, sandbox_id=sid, execution_id="ex-none") == {
        "cancelled": False
    }
    eid = start(engine, sid, "import time\ntime.sleep(1)\nprint('done')")
    assert engine.client.cancel(engine.agent_id, sandbox_id=sid, execution_id="ex-other") == {
        "cancelled": False
    }
    assert engine.client.wait(eid, timeout=10).status == "succeeded"
    assert engine.client.cancel(engine.agent_id, sandbox_id=sid, execution_id=eid) == {"cancelled": False}
    with pytest.raises(EngineError) as err:
        engine.client.cancel(engine.agent_id, sandbox_id="no-such-sandbox", execution_id=eid)
    assert err.value.code == "sandbox_not_running"


def test_cancel_of_code_that_ignores_the_interrupt_restarts_the_interpreter(engine, witness):
    sid = prepare(engine)
    eid = start(
        engine, sid, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    )
    wait_running(engine, sid)
    assert engine.client.cancel(engine.agent_id, sandbox_id=sid, execution_id=eid) == {"cancelled": True}
    ex = engine.client.wait(eid, timeout=10)
    assert ex.status == "cancelled"
    assert_restarted(engine, sid, ex)


@pytest.mark.parametrize(
    "code, how",
    [
        ("import os\nos._exit(1)", "exited with code 1"),
        ("import ctypes\nctypes.string_at(0)", "signal SIGSEGV"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "signal SIGKILL"),
    ],
)
def test_a_dead_interpreter_is_replaced_with_the_workspace_kept(engine, witness, code, how):
    sid = prepare(engine)
    ex = engine.run(sid, code).exit
    assert ex.status == "failed" and how in ex.error["value"], ex
    assert_restarted(engine, sid, ex)
    # and again: the fresh interpreter may die too
    ex = engine.run(sid, code).exit
    assert_restarted(engine, sid, ex)


def test_a_workspace_with_a_fifo_and_links_is_carried_over_safely(engine, witness):
    """A FIFO would block a naive copy forever; symlinks are copied as links, never followed."""
    sid = prepare(engine)
    engine.ok(
        sid,
        "import os\nos.mkfifo('/workspace/pipe')\nos.symlink('/etc/passwd', '/workspace/link')\n"
        "os.makedirs('/workspace/d/e')\nopen('/workspace/d/e/f', 'w').write('deep')",
    )
    ex = engine.run(sid, "import os\nos._exit(1)").exit
    assert_restarted(engine, sid, ex)
    out = engine.ok(
        sid, "import os\nprint(os.path.exists('pipe'), os.readlink('link'), open('d/e/f').read())"
    )
    assert out == "False /etc/passwd deep\n"


def test_an_interpreter_killed_at_the_memory_cap_is_replaced(engine, witness):
    """Past the memory cgroup (shared anonymous memory, which RLIMIT_DATA does not count): the OOM killer ends
    the interpreter; the run says limit memory, the sandbox goes on."""
    sid = prepare(engine, memory_bytes=64 << 20, workspace_bytes=1 << 20)
    code = "import mmap\nm = mmap.mmap(-1, 512 << 20)\nfor i in range(0, len(m), 4096):\n    m[i] = 1\n"
    ex = engine.run(sid, code, timeout_s=20).exit
    assert (ex.status, ex.limit) == ("killed", "memory"), ex
    assert_restarted(engine, sid, ex)


def test_the_timeout_of_code_that_ignores_the_interrupt_restarts_the_interpreter(engine, witness):
    sid = prepare(engine)
    ex = engine.run(
        sid, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass", 1
    ).exit
    assert (ex.status, ex.limit) == ("timeout", "timeout")
    assert_restarted(engine, sid, ex)


def test_a_run_sent_while_the_interpreter_is_replaced_waits_for_it(engine, witness):
    sid = prepare(engine)
    died = start(engine, sid, "import os\nos._exit(3)")
    outs = []
    engine.client.wait(died, timeout=10)
    worker = threading.Thread(target=lambda: outs.append(engine.ok(sid, "print('next')")))
    worker.start()
    worker.join(30)
    assert outs == ["next\n"]


def test_kill_ends_the_sandbox_for_good(engine):
    """A sandbox killed on request is not restarted, and a protocol violation is not either."""
    sid = prepare(engine)
    engine.kill(sid)
    assert not engine.alive(sid)
    with pytest.raises(EngineError) as err:
        engine.run(sid, "print(1)")
    assert err.value.code == "sandbox_not_running"


def test_lifetime_cpu_spans_the_interpreters_of_a_sandbox(engine):
    sid = prepare(engine)
    burn = "import time\nt = time.thread_time()\nwhile time.thread_time() - t < 0.3:\n    pass\n"
    engine.ok(sid, burn)
    engine.run(sid, "import os\nos._exit(1)")
    engine.ok(sid, burn)
    assert engine.client.kill(engine.agent_id, sandbox_id=sid)["cpu_ms"] >= 600
