"""Hostile programs with signals: nothing user code signals reaches outside its sandbox; an interpreter that
stops, ignores or swallows the interrupt is ended after the grace period with a clear status, and replaced by a
fresh one (the workspace kept, the memory lost)."""

import pytest

from tests.redteam.harness import Hostile, each, ended, prints, table


def sibling_survives(arena, code: str) -> dict:
    """Run ``code`` in a fresh sandbox while a sibling sandbox of the same tenant holds state; the sibling
    must keep its state (it is another sandbox, maybe of the same host uid range)."""
    sibling = arena.fresh()
    arena.attacker.run(sibling, "kept = 'sibling'")
    ex = arena.attacker.run(arena.fresh(), code, timeout_s=3)
    after = arena.attacker.run(sibling, "print(kept)")
    assert (after["status"], after["stdout"]) == ("succeeded", "sibling\n"), f"sibling hurt: {after}"
    return ex


def kill_minus_one(arena) -> None:
    """kill(-1, SIGKILL) -> only the caller's own sandbox is hit; the interpreter itself survives the call."""
    ex = sibling_survives(
        arena,
        "import os, signal, subprocess\n"
        "child = subprocess.Popen([os.readlink('/proc/self/exe'), '-c', 'import time; time.sleep(30)'])\n"
        "os.kill(-1, signal.SIGKILL)\nprint('survived', child.wait())",
    )
    prints("survived -9\n")(ex)


def kill_own_process_group(arena) -> None:
    """kill(0, SIGKILL) and killpg(getpgrp()) -> at most this sandbox dies, with a clear status."""
    ex = sibling_survives(
        arena,
        "import os, signal\nos.kill(0, signal.SIGKILL)\nos.killpg(os.getpgrp(), signal.SIGKILL)\n"
        "print('survived')",
    )
    assert ex["status"] in ("succeeded", "failed", "killed"), ex


def ended_and_interpreter_restarted(code: str):
    """The run ends timeout/timeout; its interpreter was ended and a fresh one serves the sandbox (memory lost)."""

    def attack(arena) -> None:
        sid = arena.fresh()
        arena.attacker.run(sid, "kept = 1")
        ended("timeout", "timeout")(arena.attacker.run(sid, code, timeout_s=1))
        ex = arena.attacker.run(sid, "print('kept' in globals())")
        assert (ex["status"], ex["stdout"]) == ("succeeded", "False\n"), ex

    return attack


def kill_pid1(arena) -> None:
    """SIGKILL/SIGTERM/SIGSTOP to pid 1 (the sandbox init) -> refused or without effect; the sandbox still runs."""
    sid = arena.fresh()
    ex = arena.attacker.run(
        sid,
        "import os, signal\nfor s in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):\n"
        "    try:\n        os.kill(1, s)\n        print(s.name, 'sent')\n"
        "    except OSError as e:\n        print(s.name, 'refused', e.errno)",
    )
    assert ex["status"] == "succeeded", ex
    ex = arena.attacker.run(
        sid,
        "import os, subprocess\nprint(subprocess.run([os.readlink('/proc/self/exe'), '-c', "
        "'print(\"child\")'], capture_output=True, text=True).stdout, end='')",
    )
    assert (ex["status"], ex["stdout"]) == ("succeeded", "child\n"), ex


PROGRAMS = [
    Hostile(
        "base_kill_minus_one",
        "os.kill(-1, SIGKILL) -> only its own sandbox's processes; sibling intact",
        attack=kill_minus_one,
    ),
    Hostile(
        "base_kill_own_process_group",
        "kill(0, SIGKILL), killpg -> at most its own sandbox dies",
        attack=kill_own_process_group,
    ),
    Hostile(
        "base_kill_pid1",
        "signal the sandbox init -> no effect; the sandbox still spawns and reaps children",
        attack=kill_pid1,
    ),
    Hostile(
        "base_sigstop_own_interpreter",
        "SIGSTOP its own interpreter -> the run still ends timeout/timeout (the agent does not wait forever)",
        "os.kill(os.getpid(), _signal.SIGSTOP)\nprint('resumed')",
        ended("timeout", "timeout"),
        timeout_s=1,
        fresh=True,
    ),
    Hostile(
        "base_ignore_sigint_loop",
        "SIG_IGN for SIGINT, then loop -> timeout, interpreter restarted (memory lost)",
        attack=ended_and_interpreter_restarted(
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
        ),
    ),
    Hostile(
        "base_swallow_keyboard_interrupt",
        "catch KeyboardInterrupt and keep looping -> timeout, interpreter restarted",
        attack=ended_and_interpreter_restarted(
            "while True:\n    try:\n        while True:\n            pass\n"
            "    except KeyboardInterrupt:\n        pass"
        ),
    ),
    Hostile(
        "base_block_sigint",
        "block SIGINT with pthread_sigmask, then loop -> timeout, interpreter restarted",
        attack=ended_and_interpreter_restarted(
            "import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})\nwhile True:\n    pass"
        ),
    ),
    Hostile(
        "base_sigxfsz",
        "lower RLIMIT_FSIZE to 1 MiB and write 2 MiB -> EFBIG, not a SIGXFSZ death",
        "import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "print('write', err(lambda: open('/tmp/big', 'wb').write(bytes(2 << 20))))",
        each({"EFBIG"}, "write"),
        fresh=True,
    ),
    Hostile(
        "base_signal_every_pid",
        "kill(pid, 0) on every pid up to 65535 -> it can signal no process but itself",
        "others = 0\nfor pid in range(1, 1 << 16):\n    if pid == os.getpid():\n        continue\n"
        "    try:\n        os.kill(pid, 0)\n        others += 1\n    except (PermissionError, ProcessLookupError):\n"
        "        pass\nprint('others', others)",
        each({"0"}, "others"),
        fresh=True,
    ),
]


@pytest.mark.parametrize("program", table(PROGRAMS))
def test_signals(program, arena):
    arena.play(program, "signals")
