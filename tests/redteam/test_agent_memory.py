"""Hostile programs against the memory of the process that hosts the agent (in the embedded stack, the web
server too): frames that the agent would queue or amplify, and run output it would keep. The server's RSS
must grow by less than a small budget.

RSS deltas only show retained memory while the server has no free heap to reuse: each program warms up first
(what the agent frees again becomes free heap the measured part reuses), and this module is named to be
collected first in the suite, before other programs leave large freed heaps behind.
"""

import time

import psutil
import pytest

from tests.redteam.channel import CHANNEL, finished_or_killed
from tests.redteam.harness import Hostile, MiB, table


def server_rss(arena) -> int:
    return psutil.Process(arena.server_pid).memory_info().rss


def bounded_memory(code: str, budget: int):
    """Run ``code`` (which writes big frames) twice -> the second time, the server grows by less than ``budget``.

    The first run is a warm-up: buffers the agent frees again come back as free heap the second run reuses,
    so only what the agent keeps shows as growth. The second run goes to the same sandbox unless the first
    one ended it (a fresh one then)."""

    def attack(arena) -> None:
        program = CHANNEL + code + "\nprint('finished')"
        sid = arena.fresh()
        if arena.attacker.run(sid, program, timeout_s=20)["status"] != "succeeded":
            sid = arena.fresh()
        before = server_rss(arena)
        ex = arena.attacker.run(sid, program, timeout_s=20)
        grown = server_rss(arena) - before
        assert grown < budget, f"the server grew by {grown / MiB:.0f} MiB (budget {budget / MiB:.0f} MiB)"
        finished_or_killed(ex)

    return attack


def bus_output_bounded(arena) -> None:
    """10 runs of 4 MB output (warm-up), then 25 more, all recorded -> the 25 add < 48 MiB to the server (their
    streamed output must not be kept for an hour once recorded)."""

    def runs(sid: str, n: int) -> None:
        for _ in range(n):
            r = arena.attacker.start(
                sid, "import sys\nfor i in range(100):\n    sys.stdout.write('x' * 40000 + '\\n')", wait=False
            )
            assert r.status_code == 202, r.text
            execution = r.json()["id"]
            deadline = time.monotonic() + 30
            while arena.attacker.http.get(f"/executions/{execution}").json()["status"] in (
                "queued",
                "running",
            ):
                assert time.monotonic() < deadline, "a 4 MB print run did not finish"
                time.sleep(0.05)

    sid = arena.fresh()
    runs(sid, 10)
    before = server_rss(arena)
    runs(sid, 25)
    grown = server_rss(arena) - before
    assert grown < 48 * MiB, f"the server holds {grown / MiB:.0f} MiB more after 25 recorded 4 MB runs"


PROGRAMS = [
    Hostile(
        "item5_bus_output_bounded",
        "25 recorded runs of 4 MB output -> the server does not keep them (< 48 MiB more)",
        attack=bus_output_bounded,
    ),
    Hostile(
        "item1_frames_16_mib",
        "six 16 MiB JSON frames on every fd (twice) -> finished or killed; the server grows by < 48 MiB",
        attack=bounded_memory(
            'body = b\'{"ev":"x","s":"\' + b\'a\' * ((16 << 20) - 64) + b\'"}\'\n'
            "for _ in range(6):\n    write_all(frame(body))",
            48 * MiB,
        ),
    ),
    Hostile(
        "item1_amplified_list_frames",
        "three 6 MB frames of [],[],... (23x amplification), twice -> finished or killed; the server grows by < 64 MiB",
        attack=bounded_memory(
            "body = b'{\"ev\":\"x\",\"a\":[' + b'[],' * 1999999 + b'[]]}'\n"
            "for _ in range(3):\n    write_all(frame(body))",
            64 * MiB,
        ),
    ),
]


@pytest.mark.parametrize("program", table(PROGRAMS))
def test_agent_memory(program, arena):
    arena.play(program, "memory")
