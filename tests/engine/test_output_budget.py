"""Run output held by the bus is bounded in all and per owner, and dropped once recorded (finding 4)."""

from __future__ import annotations

import uuid

from sandboxes.engine.protocol import ExitEvent, Limits, OutputEvent
from sandboxes.engine.transport.budget import EVENT_OVERHEAD
from sandboxes.engine.transport.inprocess import InProcessBus

KB = 1000


def _bus(total: int, owner: int, recorded_ttl_s: float = 30) -> InProcessBus:
    return InProcessBus(
        f"t-{uuid.uuid4().hex[:6]}",
        budget_bytes=total,
        owner_budget_bytes=owner,
        recorded_ttl_s=recorded_ttl_s,
    )


def _exit(seq: int) -> ExitEvent:
    return ExitEvent(seq, "succeeded", 0, None, 1.0, 1.0, 0, True)


def _run(bus: InProcessBus, owner: str, chunks: int, size: int, finish: bool = True) -> str:
    """A run of ``chunks`` output events of ``size`` characters, as the agent publishes them."""
    eid = f"ex-{uuid.uuid4().hex}"
    bus.output_open(eid, owner)
    for seq in range(1, chunks + 1):
        bus.publish(eid, [OutputEvent(seq, "stdout", "x" * size)])
    if finish:
        bus.publish(eid, [_exit(chunks + 1)])
    return eid


def test_many_runs_with_large_output_stay_within_the_budgets():
    bus = _bus(total=600 * KB, owner=250 * KB)
    exits = EVENT_OVERHEAD * 200  # exit records are always kept (a run can always be recorded)
    runs = []
    for i in range(100):
        runs.append(_run(bus, f"org-{i % 5}", chunks=10, size=10 * KB))
        assert bus.held_bytes() <= 600 * KB + exits
        assert all(bus.held_bytes(f"org-{n}") <= 250 * KB + exits for n in range(5))
    # the newest run kept its output; the oldest kept only its exit record, so it can still be recorded
    assert [type(e) for e in bus.read_output(runs[-1], 0, 0, 100)] == [OutputEvent] * 10 + [ExitEvent]
    assert [e.seq for e in bus.read_output(runs[0], 0, 0, 100)] == [11]


def test_a_recorded_stream_is_dropped():
    bus = _bus(total=10_000 * KB, owner=10_000 * KB, recorded_ttl_s=0)
    eid = _run(bus, "org-a", chunks=3, size=KB)
    assert len(bus.read_output(eid, 0, 0, 100)) == 4
    bus.output_recorded(eid)
    assert bus.read_output(eid, 0, 0, 100) == []
    assert bus.held_bytes() == 0


def test_recorded_streams_go_first_when_room_is_needed():
    bus = _bus(total=100 * KB, owner=100 * KB)  # grace: recorded streams stay until room is needed
    older = _run(bus, "org-a", chunks=4, size=10 * KB)
    recorded = _run(bus, "org-a", chunks=4, size=10 * KB)
    bus.output_recorded(recorded)
    assert len(bus.read_output(recorded, 0, 0, 100)) == 5  # readers already connected can finish
    _run(bus, "org-b", chunks=4, size=10 * KB)
    assert bus.read_output(recorded, 0, 0, 100) == []
    assert len(bus.read_output(older, 0, 0, 100)) == 5


def test_a_tenant_at_its_budget_never_evicts_another_tenants_live_stream():
    bus = _bus(total=200 * KB, owner=80 * KB)
    live = _run(bus, "org-b", chunks=6, size=10 * KB, finish=False)
    for _ in range(20):
        _run(bus, "org-a", chunks=10, size=10 * KB)
    flood = _run(bus, "org-a", chunks=30, size=10 * KB, finish=False)  # a's own live stream, over budget
    assert [e.seq for e in bus.read_output(live, 0, 0, 100)] == [1, 2, 3, 4, 5, 6]
    assert bus.held_bytes("org-a") <= 80 * KB + EVENT_OVERHEAD * 21
    kept = [e.seq for e in bus.read_output(flood, 0, 0, 100)]
    assert kept and kept[-1] < 30  # past its owner's budget the new output is dropped, not stored
    bus.publish(live, [OutputEvent(7, "stdout", "y" * KB), _exit(8)])
    assert [e.seq for e in bus.read_output(live, 0, 0, 100)] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_the_agents_runs_stay_within_the_bus_budget(engine):
    bus = engine.agent.bus
    saved = bus.budget.total_bytes, bus.budget.owner_bytes
    bus.budget.total_bytes, bus.budget.owner_bytes = 4 << 20, 1 << 20
    try:
        sid = engine.create(limits=Limits(output_bytes=1 << 20))
        for _ in range(8):
            res = engine.run(sid, "import sys\nfor i in range(10): sys.stdout.write('x' * 40000 + '\\n')")
            assert res.exit.status == "succeeded"
            assert bus.held_bytes(f"sandbox:{sid}") <= (1 << 20) + 64 * EVENT_OVERHEAD
        assert "".join(e.data for e in res.events if isinstance(e, OutputEvent)) == ("x" * 40000 + "\n") * 10
    finally:
        bus.budget.total_bytes, bus.budget.owner_bytes = saved
