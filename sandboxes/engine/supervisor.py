"""Watches every sandbox process of an agent from the I/O hub thread: streams run output to the
bus, ends runs (result, death, deadline, output cap), and notices interpreters that died.

All run state is mutated in the hub thread only (op threads hand work over with
``hub.call``), so a run ends exactly once.

How a run ends (``ExitEvent``):
  status      limit      when
  succeeded   -          the snippet finished (or SystemExit(0))
  failed      -/pids/disk an exception, SystemExit(n != 0), os._exit(n != 0), a fatal signal;
                         ``pids``/``disk`` if the pids cgroup refused a fork / the workspace is full
  timeout     timeout    wall clock passed: every other process of the sandbox is killed and the
                         interpreter gets SIGINT; it survives with its globals unless it does
                         not stop within ``INTERRUPT_GRACE_S``: then the whole sandbox is killed
  killed      output     output cap reached: handled as a timeout, output past the cap dropped
  killed      memory     the memory cgroup's OOM killer ended the interpreter
  killed      -          kill op during the run
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

from .iohub import PRIORITY_CONTROL, PRIORITY_OUTPUT, PRIORITY_REAPER, IOHub
from .kernel import FRAME_PAYLOAD
from .protocol import ExitEvent, OutputEvent
from .sandbox import Lineage, Run, Sandbox
from .transport import Bus

log = logging.getLogger("mem0.engine.supervisor")

INTERRUPT_GRACE_S = 1.0
DEATH_REPORT_WAIT_S = 0.5
PUBLISH_RETRY_S = 30.0  # how long to wait for the init's report of how an interpreter died


class Supervisor:
    def __init__(self, bus: Bus, on_dead: Callable[[Sandbox], None]):
        self.bus = bus
        self.on_dead = on_dead
        self.hub = IOHub(self._tick, self._flush)
        self.active_runs: set[Sandbox] = set()
        self.dying: set[Sandbox] = set()
        self.pending_events: dict[str, list] = {}
        self.publish_failing_since: float | None = None
        self.publish_retry_at = 0.0

    def start(self) -> None:
        self.hub.start()

    def stop(self) -> None:
        deadline = time.monotonic() + 3
        while (self.dying or self.active_runs) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.hub.stop()
        self.hub.join(timeout=5)

    # -- registration (any thread)

    def watch(self, sb: Sandbox) -> None:
        self.hub.add(sb.out_fd, lambda: self._on_pipe(sb, sb.out_fd, "stdout"), PRIORITY_OUTPUT)
        self.hub.add(sb.err_fd, lambda: self._on_pipe(sb, sb.err_fd, "stderr"), PRIORITY_OUTPUT)
        self.hub.add(sb.py_fd, lambda: self._on_framed(sb), PRIORITY_OUTPUT)
        self.hub.add(sb.ctl.fileno(), lambda: self._on_ctl(sb), PRIORITY_CONTROL)

    def watch_lineage(self, lineage: Lineage) -> None:
        self.hub.add(lineage.reaper_fd, lambda: self._on_reaper(lineage), PRIORITY_REAPER)

    def begin_run(self, sb: Sandbox, run: Run, code: str) -> None:
        sb.run = run
        self.active_runs.add(sb)
        try:
            sb.send({"op": "run", "id": run.execution_id, "code": code})
        except Exception:
            self.hub.call(lambda: self._finish_dead(sb))
            raise

    def kill(self, sb: Sandbox) -> None:
        """Kill the sandbox's whole process tree (its cgroup); its forks live on."""
        if sb.state == "dead":
            return
        sb.kill_requested = True
        sb.state = "dead"
        sb.cgroup.kill_all(exclude={sb.lineage.init_pid}, fast=True)  # release() sweeps again
        # The interpreter's death closes the control socket and the hub then ends any run
        # (status "killed") and cleans up. An interpreter that never said hello: from here.
        if not sb.inside_pid:
            self.hub.call(lambda: self._finish_dead(sb))

    # -- hub thread

    def _on_ctl(self, sb: Sandbox) -> None:
        try:
            data = sb.ctl.recv(1 << 16, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._on_eof(sb)
            return
        try:
            msgs = sb.reader.feed(data)
        except ValueError:
            log.warning("event=bad_frame sandbox=%s", sb.sandbox_id)
            self.kill(sb)
            return
        for msg in msgs:
            if msg.get("ev") == "result":
                self._on_result(sb, msg)
            else:
                sb.replies.put(msg)

    def _read_pipe(self, fd: int) -> bytes:
        """What a sandbox pipe holds (up to 64 KiB); b"" when nothing is ready or, after closing the pipe,
        at its end."""
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self.hub.remove(fd, lambda: os.close(fd))
        return data

    def _on_pipe(self, sb: Sandbox, fd: int, stream: str) -> None:
        data = self._read_pipe(fd)
        if data:
            self._deliver(sb, stream, data)

    def _on_framed(self, sb: Sandbox) -> None:
        """sys.stdout/sys.stderr frames (``kernel.FramedWriter``): one pipe keeps their order."""
        data = self._read_pipe(sb.py_fd)
        if not data:
            return
        buf = sb.py_buf + data
        pos = 0
        while len(buf) - pos >= 3:
            kind, size = buf[pos], int.from_bytes(buf[pos + 1 : pos + 3], "big")
            if kind not in (1, 2) or size > FRAME_PAYLOAD:
                buf, pos = b"", 0  # garbage written to the pipe by user code: drop it
                break
            if len(buf) - pos - 3 < size:
                break
            self._deliver(sb, "stdout" if kind == 1 else "stderr", buf[pos + 3 : pos + 3 + size])
            pos += 3 + size
        sb.py_buf = buf[pos:]

    def _deliver(self, sb: Sandbox, stream: str, data: bytes) -> None:
        run = sb.run
        if run is None or run.killed:
            return  # output of background processes between runs is discarded
        room = run.output_cap - run.out_bytes
        if room <= 0:
            return
        chunk = data[:room]
        run.out_bytes += len(chunk)
        text = run.decoders[stream].decode(chunk)
        if text:
            self._emit(run, OutputEvent(run.next_seq(), stream, text))
        if len(data) > room and run.limit is None:
            run.limit = "output"
            run.interrupted_at = time.monotonic()
            sb.interrupt()

    def _emit(self, run: Run, event) -> None:
        self.pending_events.setdefault(run.execution_id, []).append(event)

    def _flush(self) -> None:
        """Publish pending events; on a bus failure (Redis restarting) keep them and retry at the
        next tick for up to ``PUBLISH_RETRY_S``, so a stream is not left without its exit record."""
        if not self.pending_events:
            return
        now = time.monotonic()
        if now < self.publish_retry_at:
            return
        batch, self.pending_events = self.pending_events, {}
        for execution_id, events in batch.items():
            try:
                self.bus.publish(execution_id, events)
            except Exception:
                if self.publish_failing_since is None:
                    self.publish_failing_since = now
                    log.exception("event=publish_failed execution=%s", execution_id)
                if now - self.publish_failing_since < PUBLISH_RETRY_S:
                    self.pending_events.setdefault(execution_id, [])[:0] = events
                    self.publish_retry_at = now + 0.2
                else:
                    log.error("event=output_dropped execution=%s events=%d", execution_id, len(events))
            else:
                self.publish_failing_since = None

    def _on_result(self, sb: Sandbox, msg: dict) -> None:
        run = sb.run
        if run is None or msg.get("id") != run.execution_id:
            return
        status = msg.get("status") if msg.get("status") in ("succeeded", "failed") else "failed"
        code = msg.get("exit_code")
        self._finish_run(sb, status, code if isinstance(code, int) else 1, alive=True)

    def _on_eof(self, sb: Sandbox) -> None:
        self.hub.remove(sb.ctl.fileno(), sb.ctl.close)
        sb.state = "dead"
        sb.died_at = time.monotonic()
        sb.replies.put({"ev": "eof"})
        if sb.run is not None and sb.exit_status is None:
            self.dying.add(sb)  # wait briefly for the init's report of how it died
        else:
            self._finish_dead(sb)

    def _on_reaper(self, lineage: Lineage) -> None:
        try:
            data = os.read(lineage.reaper_fd, 1 << 16)
        except OSError:
            data = b""
        if not data:
            self.hub.remove(lineage.reaper_fd, lambda: os.close(lineage.reaper_fd))
            return
        lineage.buf += data
        *lines, lineage.buf = lineage.buf.split(b"\n")
        for line in lines:
            parts = line.split()
            if len(parts) == 3 and parts[0] == b"exit":
                sb = lineage.members.get(int(parts[1]))
                if sb is not None:
                    sb.exit_status = int(parts[2])
                    if sb in self.dying:
                        self._finish_dead(sb)
            elif parts and parts[0] == b"fail":
                log.error("event=sandbox_init_failed detail=%s", line[:2000])

    def _finish_dead(self, sb: Sandbox) -> None:
        """The interpreter is gone: end its run, then let the agent release the sandbox (once)."""
        self.dying.discard(sb)
        sb.state = "dead"
        if sb.run is not None:
            code = None
            status = "failed"
            if sb.exit_status is not None:
                code = os.waitstatus_to_exitcode(sb.exit_status)
                status = "succeeded" if code == 0 else "failed"
            self._finish_run(sb, status, code, alive=False)
        if sb.ctl.fileno() >= 0:
            self.hub.remove(sb.ctl.fileno(), sb.ctl.close)
        if not sb.finished:
            sb.finished = True
            self.on_dead(sb)

    def _finish_run(self, sb: Sandbox, status: str, exit_code: int | None, *, alive: bool) -> None:
        run = sb.run
        if run is None:
            return
        sb.run = None
        self.active_runs.discard(sb)
        for stream, dec in run.decoders.items():
            tail = dec.decode(b"", final=True)
            if tail:
                self._emit(run, OutputEvent(run.next_seq(), stream, tail))
        cg = sb.cgroup
        cpu_ms = max(0.0, (cg.cpu_ns() - run.counters["cpu_ns"]) / 1e6)
        limit = run.limit
        if limit is None and cg.oom_kills() > run.counters["oom"]:
            limit = "memory"
        elif limit is None and cg.pids_max_hits() > run.counters["pids"]:
            limit = "pids"
        elif limit is None and status == "failed" and _workspace_full(sb):
            limit = "disk"
        if run.killed or (sb.kill_requested and limit is None):
            status = "killed"
        elif limit == "timeout":
            status = "timeout"
        elif limit == "output" or (limit == "memory" and not alive):
            status = "killed"
        self._emit(
            run,
            ExitEvent(
                seq=run.next_seq(),
                status=status,
                exit_code=exit_code,
                limit=limit,
                wall_ms=round((time.monotonic() - run.started) * 1000, 3),
                cpu_ms=round(cpu_ms, 3),
                peak_memory_bytes=cg.peak_memory(),
                sandbox_alive=alive and sb.alive,
            ),
        )
        self._flush()

    def _tick(self) -> None:
        now = time.monotonic()
        for sb in list(self.active_runs):
            run = sb.run
            if run is None:
                self.active_runs.discard(sb)
                continue
            if run.interrupted_at is None and now >= run.deadline:
                run.limit = "timeout"
                run.interrupted_at = now
                sb.interrupt()
            elif run.interrupted_at is not None and now - run.interrupted_at > INTERRUPT_GRACE_S and sb.alive:
                # The interrupt was ignored (handler replaced, stuck in C code): kill the sandbox.
                sb.state = "dead"
                sb.cgroup.kill_all(exclude={sb.lineage.init_pid})
        for sb in list(self.dying):
            if sb.died_at is not None and now - sb.died_at > DEATH_REPORT_WAIT_S:
                self._finish_dead(sb)


def _workspace_full(sb: Sandbox) -> bool:
    try:
        st = os.statvfs(sb.zygote.workspace_path(sb.slot))
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (64 << 10)
