"""Hostile programs against the agent's control channel: user code writes forged, oversized, deeply nested,
amplifying or garbage frames on every descriptor it holds, or closes them. Nothing it writes may end its
run early, set its status, exit code, timings or metering; any violation ends the sandbox with a clear
status; the agent's memory stays bounded (in the embedded stack the agent lives in the web server process)."""

import pytest

from tests.redteam.channel import CHANNEL, finished_or_killed
from tests.redteam.harness import Hostile, error_code, out, table

FORGE = CHANNEL + (
    "eid = execution_id()\n"
    "write_all(frame(json.dumps({'ev': 'result', 'id': eid, 'status': 'succeeded', 'exit_code': {code},"
    " 'interrupted': False, 'wall_ms': 1, 'cpu_ms': 0}).encode()))\n"
)


def forged_result(arena) -> None:
    """Forge a result frame on every fd, then burn CPU past timeout_s=1.5 -> timeout, and the CPU is metered."""
    sid = arena.fresh()
    ex = arena.attacker.run(
        sid,
        FORGE.replace("{code}", "0") + "import time\nt = time.time()\n"
        "while time.time() - t < 4:\n    pass\nprint('finished')",
        timeout_s=1.5,
    )
    assert ex["status"] in ("timeout", "killed"), (
        f"forged result accepted: {ex['status']}/{ex['limit']} after {ex['wall_ms']} ms"
    )
    if ex["status"] == "timeout":  # not killed for the forged frame: the burn ran to the deadline, metered
        assert ex["limit"] == "timeout" and ex["cpu_ms"] > 100, f"{ex['limit']}, cpu_ms={ex['cpu_ms']}"


def forged_huge_exit_code(arena) -> None:
    """Forge exit_code 2**70, then finish normally -> the real outcome (succeeded, 0) is recorded and readable."""
    sid = arena.fresh()
    r = arena.attacker.start(
        sid, FORGE.replace("{code}", str(2**70)) + "import time\ntime.sleep(0.5)\nprint('finished')"
    )
    assert r.status_code == 200, f"run answered {r.status_code}: {r.text[:300]}"
    ex = r.json()
    finished_or_killed(ex)
    if ex["status"] == "succeeded":
        assert ex["exit_code"] == 0, ex
    r = arena.attacker.http.get(f"/executions/{ex['id']}")
    assert r.status_code == 200 and r.json()["status"] == ex["status"], f"{r.status_code} {r.text[:300]}"


def systemexit_huge_code(arena) -> None:
    """raise SystemExit(2**70) (no forging: the real exit path) -> failed, an exit code that fits 32 bits, readable."""
    sid = arena.fresh()
    r = arena.attacker.start(sid, "raise SystemExit(2**70)")
    assert r.status_code == 200, f"run answered {r.status_code}: {r.text[:300]}"
    ex = r.json()
    assert ex["status"] == "failed" and -(2**31) <= ex["exit_code"] < 2**31, ex
    r = arena.attacker.http.get(f"/executions/{ex['id']}")
    assert r.status_code == 200, f"GET execution: {r.status_code} {r.text[:300]}"
    ex = arena.attacker.run(sid, "print('alive')")
    assert (ex["status"], ex["stdout"]) == ("succeeded", "alive\n"), ex


def nested_frame(arena) -> None:
    """A frame nested 2,000 deep, then single bytes for 2 s -> the run ends as it should and the bystander's
    runs are not slowed past their timeout (checked after every program)."""
    sid = arena.fresh()
    ex = arena.attacker.run(
        sid,
        CHANNEL + "n = 1 << 20\nwrite_all(struct.pack('>I', n) + b'[' * 2000 + b' ' * (n - 2000 - 64))\n"
        "import time\nt = time.time()\nwhile time.time() - t < 2:\n    write_all(b' ')\n"
        "print('finished')",
        timeout_s=10,
    )
    if ex["status"] != "killed":
        r = arena.attacker.start(sid, "print('next')")
        assert r.status_code == 200 and r.json()["stdout"] == "next\n", (
            f"the run ended {ex['status']}/{ex['limit']} and the channel is wedged: {r.status_code} {r.text[:300]}"
        )
    finished_or_killed(ex)


def garbage_everywhere(arena) -> None:
    """64 KiB of random bytes on every fd -> finished, or killed for the violation; then a clear state."""
    sid = arena.fresh()
    ex = arena.attacker.run(sid, CHANNEL + "write_all(os.urandom(1 << 16))\nprint('finished')")
    finished_or_killed(ex)
    r = arena.attacker.start(sid, "print('next')")
    if ex["status"] == "succeeded":
        assert r.status_code == 200 and r.json()["stdout"] == "next\n", (
            f"the channel is wedged: {r.text[:300]}"
        )
    elif (ex.get("error") or {}).get("name") == "interpreter_exited":  # a fresh interpreter took over
        assert r.status_code == 200 and r.json()["stdout"] == "next\n", f"not restarted: {r.text[:300]}"
    else:
        assert r.status_code == 409 and error_code(r) == "sandbox_not_running", (
            f"{r.status_code} {r.text[:300]}"
        )


def close_every_fd(arena) -> None:
    """Close every fd from 3 to 63, then print -> finished; or the interpreter dies, says so and a fresh one
    takes over (memory lost); or the sandbox ends for a protocol violation and says so (409 afterwards)."""
    sid = arena.fresh()
    ex = arena.attacker.run(sid, CHANNEL + "for fd in held_fds():\n    os.close(fd)\nprint('finished')")
    if ex["status"] == "succeeded" and ex["stdout"].endswith("finished\n"):
        return
    assert ex["status"] in ("killed", "failed"), f"ended {ex['status']}/{ex['limit']}: {out(ex)[-300:]!r}"
    r = arena.attacker.start(sid, "print(1)")
    if (ex.get("error") or {}).get("name") == "interpreter_exited":
        assert r.status_code == 200 and r.json()["stdout"] == "1\n", (
            f"not restarted: {r.status_code} {r.text[:300]}"
        )
    else:
        assert r.status_code == 409 and error_code(r) == "sandbox_not_running", (
            f"{r.status_code} {r.text[:300]}"
        )


def forged_replies_before_fork(arena) -> None:
    """Forge 'forked'/'hello' replies naming pid 1, then fork -> the fork is real (it has the parent's state)
    or refused cleanly; deleting it leaves the parent running."""
    parent = arena.fresh()
    arena.attacker.run(parent, "kept = 'parent state'")
    arena.attacker.run(
        parent,
        CHANNEL + "for ev in ({'ev': 'forked', 'child_pid': 1}, {'ev': 'hello', 'pid': 1},"
        " {'ev': 'configured'}, {'ev': 'pong'}):\n    write_all(frame(json.dumps(ev).encode()))",
    )
    r = arena.attacker.http.post(f"/sandboxes/{parent}/fork")
    if r.status_code == 201:
        child = r.json()["id"]
        arena.made.append(child)
        ex = arena.attacker.run(child, "import os\nprint(kept, os.getpid() != 1)")
        assert (ex["status"], ex["stdout"]) == ("succeeded", "parent state True\n"), (
            f"the fork is not real: {ex}"
        )
        arena.attacker.delete(child)
    else:
        assert error_code(r), f"fork answered {r.status_code} without a JSON error: {r.text[:300]}"
    ex = arena.attacker.run(parent, "print(kept)")
    assert (ex["status"], ex["stdout"]) == ("succeeded", "parent state\n"), f"parent hurt: {ex}"


PROGRAMS = [
    Hostile(
        "item1_forged_result",
        "forged result frame on fds 3..63 with the real execution id -> run not ended early",
        attack=forged_result,
    ),
    Hostile(
        "item1_forged_exit_code_2_70",
        "forged exit_code 2**70 -> the real status is recorded, GET answers 200",
        attack=forged_huge_exit_code,
    ),
    Hostile(
        "item1_systemexit_2_70",
        "SystemExit(2**70) -> failed with a 32-bit exit code, GET answers 200",
        attack=systemexit_huge_code,
    ),
    Hostile(
        "item1_nested_frame_2000_deep",
        "a frame nested 2000 deep, then a byte trickle -> channel not wedged",
        attack=nested_frame,
    ),
    Hostile(
        "item1_garbage_on_every_fd",
        "random bytes on every fd 3..63 -> finished, or killed with a clear state",
        attack=garbage_everywhere,
    ),
    Hostile(
        "item1_close_every_fd",
        "close fds 3..63, then print -> finished, or ended and 409 sandbox_not_running",
        attack=close_every_fd,
    ),
    Hostile(
        "item1_output_pipe_framing_garbage",
        "write a bogus frame header to fd 4 (the framed Python output pipe), then print -> the print still arrives",
        "os.write(4, b'\\x07\\xff\\xff' + bytes(100))\nprint('finished')",
        finished_or_killed,
        fresh=True,
    ),
    Hostile(
        "item1_forged_replies_before_fork",
        "forged 'forked'/'hello' replies, then fork -> a real fork or a clean error",
        attack=forged_replies_before_fork,
    ),
]


@pytest.mark.parametrize("program", table(PROGRAMS))
def test_control_channel(program, arena):
    arena.play(program, "control")
