"""Warm pool of already-isolated idle sandboxes per runtime, refilled in the background.

Sizing: an exponentially decaying moving average of the create rate (``tau`` seconds) times
a refill horizon, clamped to [min_size, max_size]. A burst grows the pool for the next burst;
an idle agent shrinks back to ``min_size`` (surplus sandboxes are retired slowly).

The horizon is 0.1 s: a spawn takes ~10-20 ms and two run at once, so at 100 creates/s ten
spare sandboxes cover the refill. A 0.5 s horizon kept ~50 spawning at that rate and the
refill's CPU use pushed create -> first output p99 from ~7 ms to 23 ms on this 2-vCPU host.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger("mem0.engine.pool")

REFILL_DELAY_S = 0.01


class DemandRate:
    """Creates per second, exponentially weighted with time constant ``tau``."""

    def __init__(self, tau: float = 10.0):
        self.tau = tau
        self.rate = 0.0
        self.at = time.monotonic()

    def _decay(self, now: float) -> None:
        self.rate *= math.exp(-(now - self.at) / self.tau)
        self.at = now

    def hit(self) -> None:
        now = time.monotonic()
        self._decay(now)
        self.rate += 1.0 / self.tau

    def value(self) -> float:
        self._decay(time.monotonic())
        return self.rate


class WarmPool:
    def __init__(
        self,
        runtime: str,
        spawn: Callable[[], object],
        retire: Callable[[object], None],
        *,
        min_size: int = 2,
        max_size: int = 32,
        horizon_s: float = 0.1,
        refill_threads: int = 2,
    ):
        self.runtime = runtime
        self.spawn = spawn
        self.retire = retire
        self.min_size = min_size
        self.max_size = max_size
        self.horizon_s = horizon_s
        self.demand = DemandRate()
        self.idle: collections.deque = collections.deque()
        self.cond = threading.Condition()
        self.stopped = False
        self.failures = 0
        self.last_take = 0.0
        # Two refillers: a spawn spends most of its time waiting (the zygote's clone, the cgroup
        # join's RCU grace period, the new interpreter's start), which two can overlap.
        self.threads = [
            threading.Thread(target=self._refill_loop, name=f"mem0-pool-{runtime}-{i}", daemon=True)
            for i in range(refill_threads)
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def target(self) -> int:
        want = self.min_size + math.ceil(self.demand.value() * self.horizon_s)
        return max(self.min_size, min(self.max_size, want))

    def take(self):
        """An idle sandbox, or None if the pool is empty (the caller then spawns inline)."""
        with self.cond:
            self.demand.hit()
            sb = self.idle.popleft() if self.idle else None
            self.last_take = time.monotonic()
            self.cond.notify_all()
            return sb

    def discard(self, sb) -> None:
        with self.cond:
            try:
                self.idle.remove(sb)
            except ValueError:
                pass

    def size(self) -> int:
        return len(self.idle)

    def _refill_loop(self) -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)  # this thread only (as the zygote)
        while True:
            with self.cond:
                while not self.stopped and len(self.idle) >= self.target():
                    if len(self.idle) > self.target() + 2:
                        break
                    self.cond.wait(0.5)
                if self.stopped:
                    return
                surplus = self.idle.pop() if len(self.idle) > self.target() + 2 else None
            if surplus is not None:
                self.retire(surplus)
                time.sleep(0.2)
                continue
            # Let a hand-over and the first run it leads to finish before competing with them
            # for the CPU (2 vCPUs here), unless the pool is running dry.
            wait = self.last_take + REFILL_DELAY_S - time.monotonic()
            if wait > 0 and len(self.idle) > 1:
                time.sleep(wait)
            try:
                sb = self.spawn()
                self.failures = 0
            except Exception:
                if self.stopped:
                    return
                self.failures += 1
                log.exception("event=pool_spawn_failed runtime=%s", self.runtime)
                time.sleep(min(5.0, 0.1 * 2**self.failures))
                continue
            with self.cond:
                if self.stopped:
                    stale = sb
                else:
                    self.idle.append(sb)
                    stale = None
            if stale is not None:
                self.retire(stale)

    def stop(self) -> list:
        """Stop refilling; returns the idle sandboxes (for the caller to kill)."""
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        for t in self.threads:
            t.join(timeout=15)  # a spawn in flight finishes (or fails) first
        with self.cond:
            left, self.idle = list(self.idle), collections.deque()
        return left
