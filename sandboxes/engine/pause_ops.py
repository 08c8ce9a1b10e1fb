"""Pause and resume (a mixin of ``agent.Agent``): a paused sandbox's cgroup is frozen, so every
one of its processes stops where it is, its memory kept as it is (nothing is written out: a
freeze costs the same for 1 MB or 1 GB); resume thaws it.

While paused: no run starts (``sandbox_paused``) and no CPU is used; files can be listed, read
and written, a snapshot taken (its own freeze nests inside the pause, see ``Cgroup.freeze``), and
the sandbox forked (thawed for the fork's copy-on-write clone, paused again straight after; the
fork starts running). A kill ends a pause. A pause lives with the agent: what survives an agent
restart is the workspace's last snapshot, nothing of the memory (the Django side says so).
"""

from __future__ import annotations

import time

from .protocol import EngineError


class PauseOps:
    def op_pause(self, *, sandbox_id: str) -> dict:
        sb = self._get(sandbox_id)
        if not sb.cgroup.can_freeze:
            raise EngineError("conflict", "this host has no cgroup freezer: sandboxes cannot be paused here")
        with sb.lock:
            if sb.run is not None:
                raise EngineError("sandbox_busy", "a run is active in this sandbox; pause between runs",
                                  {"execution_id": sb.run.execution_id})
            started = time.perf_counter()
            sb.cgroup.pause()
            if not sb.cgroup.frozen():
                sb.cgroup.resume()
                raise EngineError("internal_error", "the sandbox's cgroup did not freeze")
            return {"paused": True, "ms": round((time.perf_counter() - started) * 1000, 3)}

    def op_resume(self, *, sandbox_id: str) -> dict:
        sb = self._get(sandbox_id)
        with sb.lock:
            started = time.perf_counter()
            sb.cgroup.resume()
            return {"paused": False, "ms": round((time.perf_counter() - started) * 1000, 3)}

    def _refuse_if_paused(self, sb) -> None:
        if sb.cgroup.paused:
            raise EngineError("sandbox_paused", f"sandbox {sb.sandbox_id} is paused; resume it first")
