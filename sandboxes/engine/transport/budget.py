"""How much run output a bus holds: a byte budget for all streams and one per owner (tenant).

Finding 4 of issue 12: every execution's output stayed in server memory for an hour, with no global
and no per-tenant bound. The publisher asks ``admit`` before it stores events; the answer says which
events to keep and which older streams to evict to make room, so the bytes held never pass either
budget:

* a stream's owner is given when the run starts (``open``; the run op carries it from the Django
  side, which knows the organisation); a stream nobody opened is its own owner;
* room is made by evicting, oldest first, streams whose execution is already recorded (their copy
  is in the database), then the output of finished streams (their exit record is kept: the run can
  still be recorded, its output shows as truncated); for the owner's budget only that owner's
  streams are candidates, for the global budget anybody's finished ones;
* a live stream (no exit record yet) is never evicted for somebody else; when nothing can be
  evicted, the new output itself is dropped (the reader sees a gap in the sequence numbers and
  records the run as truncated). Exit records are always kept.

Sizes are approximate: characters of output plus ``EVENT_OVERHEAD`` per event (what one event costs
as Python objects, or as a Redis stream entry, within a small factor).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from ..protocol import ExitEvent, OutputEvent, ResultEvent

EVENT_OVERHEAD = 128


def event_bytes(event: OutputEvent | ExitEvent) -> int:
    if isinstance(event, ResultEvent):
        return EVENT_OVERHEAD + event.nbytes
    return EVENT_OVERHEAD + (len(event.data) if isinstance(event, OutputEvent) else 0)


@dataclass
class _Held:
    owner: str
    touched: float
    bytes: int = 0
    exit: ExitEvent | None = None  # set once the stream has its exit record (it is finished)
    recorded: bool = False
    trimmed: bool = False  # its output was evicted; only the exit record is left


@dataclass
class Eviction:
    """Evict ``execution_id``'s stream: all of it, or (``keep_exit``) all but its exit record."""

    execution_id: str
    keep_exit: ExitEvent | None = None


@dataclass
class Admission:
    events: list[OutputEvent | ExitEvent]  # what to store
    evictions: list[Eviction] = field(default_factory=list)  # done before storing
    dropped_bytes: int = 0


class _Queues:
    """Streams that may be evicted, oldest first: recorded ones (dropped whole), then finished ones
    (trimmed to their exit record). Live and already-trimmed unrecorded streams are in neither."""

    def __init__(self) -> None:
        self.recorded: OrderedDict[str, None] = OrderedDict()
        self.finished: OrderedDict[str, None] = OrderedDict()

    def discard(self, execution_id: str) -> None:
        self.recorded.pop(execution_id, None)
        self.finished.pop(execution_id, None)

    def oldest(self) -> str | None:
        for queue in (self.recorded, self.finished):
            if queue:
                return next(iter(queue))
        return None


class OutputBudget:
    """Accounting only (no I/O): the caller holds its own lock around every call. Every operation is
    O(1) per stream evicted (queues per owner and in all), so a flood costs its publisher, not a scan."""

    def __init__(self, total_bytes: int, owner_bytes: int):
        self.total_bytes = total_bytes
        self.owner_bytes = owner_bytes
        self.streams: dict[str, _Held] = {}
        self.held = 0
        self.by_owner: dict[str, int] = {}
        self.evictable = _Queues()
        self.evictable_of: dict[str, _Queues] = {}

    def open(self, execution_id: str, owner: str, now: float) -> None:
        if execution_id not in self.streams:
            self.streams[execution_id] = _Held(owner=owner, touched=now)

    def owner_held(self, owner: str) -> int:
        return self.by_owner.get(owner, 0)

    def admit(self, execution_id: str, events: list, now: float) -> Admission:
        held = self.streams.get(execution_id)
        if held is None:
            held = self.streams[execution_id] = _Held(owner=f"stream:{execution_id}", touched=now)
        held.touched = now
        adm = Admission(events=[])
        for event in events:
            size = event_bytes(event)
            if isinstance(event, ExitEvent):
                self._add(held, size)  # always kept: without it the run could never be recorded
                adm.events.append(event)
                if held.exit is None:
                    held.exit = event
                    self._enqueue(execution_id, held)
                continue
            if held.exit is not None or not self._make_room(held.owner, size, adm):
                adm.dropped_bytes += size
                continue
            self._add(held, size)
            adm.events.append(event)
        return adm

    def recorded(self, execution_id: str) -> None:
        held = self.streams.get(execution_id)
        if held is not None and not held.recorded:
            held.recorded = True
            if held.exit is not None:
                self._enqueue(execution_id, held)

    def forget(self, execution_id: str) -> None:
        held = self.streams.pop(execution_id, None)
        if held is not None:
            self._add(held, -held.bytes)
            self._dequeue(execution_id, held)

    def shrink(self, execution_id: str, size: int) -> None:
        """``size`` bytes of the stream went (its per-stream event cap)."""
        held = self.streams.get(execution_id)
        if held is not None:
            self._add(held, -min(size, held.bytes))

    def untouched_since(self, cutoff: float) -> list[str]:
        """Streams with no event since ``cutoff`` (their transport expired them): the caller forgets them."""
        return [eid for eid, held in self.streams.items() if held.touched < cutoff]

    def _add(self, held: _Held, size: int) -> None:
        held.bytes += size
        self.held += size
        left = self.by_owner.get(held.owner, 0) + size
        if left > 0:
            self.by_owner[held.owner] = left
        else:
            self.by_owner.pop(held.owner, None)

    def _enqueue(self, execution_id: str, held: _Held) -> None:
        self._dequeue(execution_id, held)
        if held.recorded:
            self.evictable.recorded[execution_id] = None
            self.evictable_of.setdefault(held.owner, _Queues()).recorded[execution_id] = None
        elif not held.trimmed:
            self.evictable.finished[execution_id] = None
            self.evictable_of.setdefault(held.owner, _Queues()).finished[execution_id] = None

    def _dequeue(self, execution_id: str, held: _Held) -> None:
        self.evictable.discard(execution_id)
        queues = self.evictable_of.get(held.owner)
        if queues is not None:
            queues.discard(execution_id)
            if not queues.recorded and not queues.finished:
                del self.evictable_of[held.owner]

    def _make_room(self, owner: str, size: int, adm: Admission) -> bool:
        """Evict until ``size`` more bytes fit both budgets; False if they cannot."""
        while self.by_owner.get(owner, 0) + size > self.owner_bytes:
            queues = self.evictable_of.get(owner)
            if queues is None or not self._evict(queues.oldest(), adm):
                return False
        while self.held + size > self.total_bytes:
            if not self._evict(self.evictable.oldest(), adm):
                return False
        return True

    def _evict(self, victim: str | None, adm: Admission) -> bool:
        if victim is None:
            return False
        held = self.streams[victim]
        if held.recorded:
            self.forget(victim)
            adm.evictions.append(Eviction(victim))
        else:
            self._add(held, -held.bytes + event_bytes(held.exit))
            held.trimmed = True
            self._dequeue(victim, held)
            adm.evictions.append(Eviction(victim, keep_exit=held.exit))
        return True
