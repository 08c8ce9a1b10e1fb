"""Per-organisation limit on live output streams (SSE responses and websockets) in one web process.

Every open stream may hold one thread of the shared reader pool (sandboxes/streaming.py READERS) while it
waits on the bus, and a websocket holds a connection; without a limit one tenant could take every reader
and leave the others' streams queued behind its own. An organisation holds at most MEM0_STREAMS_PER_ORG
streams per web process (well under MEM0_STREAM_READERS, so no single tenant can fill the pool); one more is
refused at once with 429 `rate_limited` (a websocket: that error as a JSON message, then close 4429),
before any reader thread is taken. The limit is per process, like the pool it protects.
"""

import threading
from collections import Counter

from django.conf import settings

from billing.throttling import RateLimited

CLOSE_TOO_MANY_STREAMS = 4429

_lock = threading.Lock()
_open: Counter = Counter()


class StreamSlot:
    """One stream's hold on its organisation's allowance; `release()` gives it back (once, from any thread)."""

    def __init__(self, org_id: int):
        self.org_id = org_id
        self._held = True

    def release(self) -> None:
        with _lock:
            if not self._held:
                return
            self._held = False
            _open[self.org_id] -= 1
            if _open[self.org_id] <= 0:
                del _open[self.org_id]


def stream_slot_take(org_id: int) -> StreamSlot:
    """A slot for one more stream of this organisation, or RateLimited (429 rate_limited) at its limit."""
    limit = settings.MEM0_STREAMS_PER_ORG
    with _lock:
        if _open[org_id] >= limit:
            raise RateLimited(
                f"At most {limit} live output streams at once per organisation; close one first.",
                details={"limit_name": "streams_per_organization", "limit": limit},
            )
        _open[org_id] += 1
    return StreamSlot(org_id)


def streams_open(org_id: int) -> int:
    with _lock:
        return _open[org_id]
