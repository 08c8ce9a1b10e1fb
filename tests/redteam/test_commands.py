"""The one-run hostile programs of the syscall, capability/namespace, /proc, socket and signal suites, run
again as *commands* (``python3 -c PROGRAM`` through POST /sandboxes/{id}/commands) instead of in the
interpreter: a command must hold exactly the sandbox's isolation, so every safe outcome must hold there too.
The stack's health (a new sandbox runs code, the bystander kept its state) is checked after each."""

import pytest

from tests.redteam import (
    test_capabilities_namespaces,
    test_proc_sys,
    test_signals,
    test_sockets,
    test_syscalls,
)
from tests.redteam.harness import PRELUDE, Hostile

SUITES = (test_syscalls, test_capabilities_namespaces, test_proc_sys, test_sockets, test_signals)
# What differs for a command by design: the sandbox's own interpreter (uid 1000, like the command) is a
# process beside it, which it may signal, as any subprocess of user code may; nothing outside the sandbox.
SAME_SANDBOX = {"base_signal_every_pid"}
ONE_RUN = [p for suite in SUITES for p in suite.PROGRAMS if p.attack is None and p.code and p.id not in SAME_SANDBOX]


def run_as_command(arena, program: Hostile, sid: str) -> dict:
    r = arena.attacker.http.post(
        f"/sandboxes/{sid}/commands",
        json={"cmd": ["python3", "-c", PRELUDE + program.code], "timeout_s": program.timeout_s, "wait": True},
        timeout=program.timeout_s + 60,
    )
    assert r.status_code == 200, f"command answered {r.status_code} {r.text[:500]}"
    return r.json()


@pytest.mark.parametrize("program", [p.param() for p in ONE_RUN])
def test_hostile_programs_as_commands(program, arena):
    try:
        if program.limits:
            sid = arena.fresh(limits=program.limits)
        else:
            sid = arena.fresh() if program.fresh else arena.reusable("commands")
        program.expect(run_as_command(arena, program, sid))
    finally:
        arena.clean_up("commands")
        arena.assert_healthy()
