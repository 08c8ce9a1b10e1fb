"""Hostile programs against the memory of the process that hosts the agent (in the embedded stack, the web
server too): frames that the agent would queue or amplify, and run output it would keep. The server's RSS
must grow by less than a small budget.

RSS deltas only show retained memory while the server has no free heap to reuse, so this module is named to
be collected first in the suite (before other programs leave freed memory behind), and its programs run in
increasing order of what the old code retained.
"""

import time

import psutil
import pytest

from tests.redteam.channel import CHANNEL, finished_or_killed
from tests.redteam.harness import Hostile, MiB, table


def server_rss(arena) -> int:
    return psutil.Process(arena.server_pid).memory_info().rss


def bounded_memory(code: str, budget: int):
    """Run ``code`` (which writes big frames) -> the server process grows by less than ``budget`` bytes."""

    def attack(arena) -> None:
        sid = arena.fresh()
        before = server_rss(arena)
        ex = arena.attacker.run(sid, CHANNEL + code + "\nprint('finished')", timeout_s=20)
        grown = server_rss(arena) - before
        finished_or_killed(ex)
        assert grown < budget, f"the server grew by {grown / MiB:.0f} MiB (budget {budget / MiB:.0f} MiB)"

    return attack


def bus_output_bounded(arena) -> None:
    """25 runs of 4 MiB output each, then the sandbox deleted -> the server holds < 48 MiB more (the runs are
    recorded; their streamed output must not be kept for an hour)."""
    sid = arena.fresh()
    before = server_rss(arena)
    for _ in range(25):
        r = arena.attacker.start(
            sid, "import sys\nfor i in range(100):\n    sys.stdout.write('x' * 40000 + '\\n')", wait=False
        )
        assert r.status_code == 202, r.text
        execution = r.json()["id"]
        deadline = time.monotonic() + 30
        while arena.attacker.http.get(f"/executions/{execution}").json()["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, "a 4 MB print run did not finish"
            time.sleep(0.05)
    arena.attacker.delete(sid)
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
        "four 16 MiB JSON frames on every fd -> finished or killed; the server grows by < 48 MiB",
        attack=bounded_memory(
            'body = b\'{"ev":"x","s":"\' + b\'a\' * ((16 << 20) - 64) + b\'"}\'\n'
            "for _ in range(4):\n    write_all(frame(body))",
            48 * MiB,
        ),
    ),
    Hostile(
        "item1_amplified_list_frames",
        "three 6 MB frames of [],[],... (23x amplification) -> finished or killed; the server grows by < 64 MiB",
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
