"""One thread multiplexing every sandbox descriptor of an agent (output pipes, interpreter
pidfds, reaper pipes) plus a periodic tick for run deadlines and idle rechecks.

Within one wake-up, output pipes are handled before pidfds: all output a dead interpreter
left in its pipes is published before its exit record.
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
from collections.abc import Callable

log = logging.getLogger("mem0.engine.iohub")

PRIORITY_OUTPUT, PRIORITY_REAPER, PRIORITY_CONTROL = 0, 1, 2


class IOHub(threading.Thread):
    def __init__(
        self,
        on_tick: Callable[[], None],
        on_flush: Callable[[], None],
        tick_s: float = 0.02,
        timeout_fn: Callable[[], float] | None = None,
    ):
        super().__init__(name="mem0-iohub", daemon=True)
        self.sel = selectors.DefaultSelector()
        self.on_tick = on_tick
        self.on_flush = on_flush
        self.tick_s = tick_s
        self.timeout_fn = timeout_fn  # the wait before the next tick (default ``tick_s``)
        self.stop_event = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._changes: list[tuple[str, int, tuple | None]] = []

    def add(self, fd: int, callback: Callable[[], None], priority: int) -> None:
        with self._lock:
            self._changes.append(("add", fd, (priority, callback)))
        self.wake()

    def remove(self, fd: int, close: Callable[[], None] | None = None) -> None:
        """Stop watching ``fd`` and run ``close`` in the hub thread, after unregistering: an fd
        closed elsewhere could be reused by a new registration before this one is dropped."""
        with self._lock:
            self._changes.append(("remove", fd, close))
        self.wake()

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the hub thread (where run state is mutated) at its next wake-up."""
        with self._lock:
            self._changes.append(("call", -1, fn))
        self.wake()

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass

    def _apply_changes(self) -> None:
        with self._lock:
            changes, self._changes = self._changes, []
        for kind, fd, data in changes:
            if kind == "call":
                try:
                    data()
                except Exception:
                    log.exception("event=iohub_call_failed")
                continue
            try:
                if kind == "add":
                    self.sel.register(fd, selectors.EVENT_READ, data)
                else:
                    self.sel.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass
            if kind == "remove" and data is not None:
                try:
                    data()
                except OSError:
                    pass

    def run(self) -> None:
        while not self.stop_event.is_set():
            self._apply_changes()
            try:
                ready = self.sel.select(self.timeout_fn() if self.timeout_fn else self.tick_s)
            except OSError:
                continue
            calls = []
            for key, _ in ready:
                if key.data is None:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                    continue
                calls.append(key.data)
            calls.sort(key=lambda d: d[0])
            for _, callback in calls:
                try:
                    callback()
                except Exception:
                    log.exception("event=iohub_callback_failed")
            try:
                self.on_flush()
                self.on_tick()
            except Exception:
                log.exception("event=iohub_tick_failed")

    def stop(self) -> None:
        self.stop_event.set()
        self.wake()
