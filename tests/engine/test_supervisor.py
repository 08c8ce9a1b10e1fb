"""Supervisor details that need no sandbox: output publishing survives a bus outage."""

from __future__ import annotations

from sandboxes.engine.protocol import OutputEvent
from sandboxes.engine.sandbox import Run
from sandboxes.engine.supervisor import Supervisor


class FlakyBus:
    def __init__(self, failures: int):
        self.failures = failures
        self.published: list = []

    def publish(self, execution_id, events):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("redis is restarting")
        self.published += [(execution_id, e.seq) for e in events]


def test_events_are_kept_and_retried_in_order_while_the_bus_fails():
    bus = FlakyBus(failures=2)
    sup = Supervisor(bus, on_dead=lambda sb: None)
    run = Run(execution_id="e", started=0.0, deadline=1e18, counters={}, output_cap=1000)
    for i in range(3):
        sup._emit(run, OutputEvent(run.next_seq(), "stdout", str(i)))
        sup.publish_retry_at = 0.0
        sup._flush()
    sup._emit(run, OutputEvent(run.next_seq(), "stdout", "last"))
    sup.publish_retry_at = 0.0
    sup._flush()
    assert bus.published == [("e", 1), ("e", 2), ("e", 3), ("e", 4)]
    assert sup.pending_events == {}
