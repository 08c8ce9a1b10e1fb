"""Watches every sandbox process of an agent from the I/O hub thread: streams run output to the
bus, ends runs (observed idle, death, deadline, output cap), and notices interpreters that died.

Nothing a sandbox sends is believed: its pipes carry output (bounded by the run's output cap,
counted at the descriptor, malformed framing discarded and counted too) and a data-free "idle"
frame that only prompts the agent to look. A run ends when the agent sees the interpreter's main
thread blocked on its request socket (``idle.py``) and reads the op's sequence number and exit
code from the status page (``status.py``); a sequence number the agent never sent ends the
sandbox (``killed``, with a notice on stderr). Wall time is the agent's clock, CPU and memory
are the cgroup's counters, death is the process's pidfd plus the init's wait status.

All run state is mutated in the hub thread only (op threads hand work over with
``hub.call``), so a run ends exactly once.

How a run ends (``ExitEvent``):
  status      limit      when
  succeeded   -          the snippet finished (or SystemExit(0))
  compile_error -        the code did not compile (Go; the interpreter's label, no limit hit)
  failed      -/pids/disk an exception, SystemExit(n != 0), os._exit(n != 0), a fatal signal;
                         ``pids``/``disk`` if the pids cgroup refused a fork / the workspace is full
  timeout     timeout    wall clock passed: every other process of the sandbox is killed and the
                         interpreter gets SIGINT; it survives with its globals unless it does
                         not stop within ``INTERRUPT_GRACE_S``: then the whole sandbox is killed
  killed      output     output cap reached: handled as a timeout, output past the cap dropped
  killed      memory     the memory cgroup's OOM killer ended the interpreter
  killed      -          kill op during the run
  cancelled   -          cancel op during the run: handled as a timeout (SIGINT, then the interpreter's end)

Rich results (``results.py``) arrive as result frames on the framed pipe, are validated and bounded
there, count against the output cap and go out as ``ResultEvent``s; a run's structured error rides on
its ``ExitEvent``.

An interpreter that dies (``os._exit``, a fatal signal, the OOM killer, an interrupt it ignored) in
a handed-over sandbox that nobody asked to kill and that kept to the protocol is restarted when the
agent says so (``restartable``): the run ends with ``sandbox_alive`` true, ``memory_lost`` and an
``interpreter_exited`` error, and the agent gives the sandbox's id a fresh interpreter with the
workspace (``Agent._revive``).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from . import idle, linux, results, seccomp, status
from .commands import CommandTable
from .forkgate import ForkGate
from .iohub import PRIORITY_CONTROL, PRIORITY_OUTPUT, PRIORITY_REAPER, IOHub
from .kernel import FRAME_HEADER, FRAME_MARK, FRAME_PAYLOAD, IDLE_ID, STDERR_ID, STDOUT_ID
from .protocol import ExitEvent, OutputEvent, ResultEvent
from .results import RESULT_END_ID, RESULT_PART_ID
from .sandbox import Lineage, Run, Sandbox
from .transport import Bus

log = logging.getLogger("mem0.engine.supervisor")

INTERRUPT_GRACE_S = 1.0
DEATH_REPORT_WAIT_S = 0.5
PUBLISH_RETRY_S = 30.0  # how long to keep retrying a failing bus publish
IDLE_RECHECK_S = 2.0  # an idle frame seen before the interpreter blocks: look again this long
IDLE_RECHECK_INTERVAL_S = 0.0002
FRAME_KINDS = frozenset({STDOUT_ID, STDERR_ID, IDLE_ID, RESULT_PART_ID, RESULT_END_ID})


class Supervisor:
    def __init__(
        self,
        bus: Bus,
        on_dead: Callable[[Sandbox], None],
        restartable: Callable[[Sandbox], bool] = lambda sb: False,
    ):
        self.bus = bus
        self.on_dead = on_dead
        self.restartable = restartable
        self.hub = IOHub(self._tick, self._flush, timeout_fn=self._next_timeout)
        self.active_runs: set[Sandbox] = set()
        self.rechecks: dict[Sandbox, float] = {}  # sandbox -> give up looking at this time
        self.gate = ForkGate()
        self.dying: set[Sandbox] = set()
        self.pending_events: dict[str, list] = {}
        self.publish_failing_since: float | None = None
        self.publish_retry_at = 0.0
        self.commands = CommandTable(self)  # commands beside the interpreters (``commands.py``)

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

    def watch_lineage(self, lineage: Lineage) -> None:
        self.hub.add(lineage.reaper_fd, lambda: self._on_reaper(lineage), PRIORITY_REAPER)

    def begin_run(self, sb: Sandbox, run: Run, code: str, stdin: str | None = None) -> None:
        def start(seq: int) -> None:
            run.seq = seq
            sb.run = run
            sb.result_buf.clear()
            self.active_runs.add(sb)

        msg = {"op": "run", "code": code, **({"stdin": stdin} if stdin is not None else {})}
        try:
            sb.send(msg, on_seq=start)
        except Exception:
            self.hub.call(lambda: self._finish_dead(sb))
            raise

    def cancel(self, sb: Sandbox, execution_id: str) -> bool:
        """Interrupt the run ``execution_id`` if it is the sandbox's current one (any thread): SIGINT as
        a timeout does; an interpreter that ignores it is ended and restarted. False if not running."""
        done, called = [], threading.Event()

        def interrupt() -> None:
            try:
                run = sb.run
                if run is None or run.execution_id != execution_id or not sb.alive:
                    return
                done.append(True)
                if run.interrupted_at is None:
                    run.cancelled = True
                    run.interrupted_at = time.monotonic()
                    sb.interrupt()
            finally:
                called.set()

        self.hub.call(interrupt)
        called.wait(5)
        return bool(done)

    def kill(self, sb: Sandbox) -> None:
        """Kill the sandbox's whole process tree (its cgroup); its forks live on."""
        if sb.state == "dead":
            return
        sb.kill_requested = True
        sb.mark_dead()
        sb.cgroup.kill_all(exclude={sb.lineage.init_pid}, fast=True)  # release() sweeps again
        # The interpreter's exit wakes its pidfd and the hub then ends any run (status
        # "killed") and cleans up. An interpreter never seen idle has no pidfd: from here.
        if sb.pidfd < 0:
            self.hub.call(lambda: self._finish_dead(sb))

    # -- hub thread

    def _adopt(self, sb: Sandbox, host_pid: int) -> bool:
        """The interpreter was first seen waiting for requests: check in /proc that it holds no
        capability, take its family's seccomp listener (a spawned one still holds it), and
        watch its exit from now on. False if the sandbox had to be ended instead."""
        sb.host_pid = host_pid
        sb.inside_pid = idle.inside_pid(host_pid)
        sb.lineage.members[sb.inside_pid] = sb
        try:
            sb.pidfd = os.pidfd_open(host_pid)
        except OSError:
            self._on_exit(sb)
            return False
        self.hub.add(sb.pidfd, lambda: self._on_exit(sb), PRIORITY_CONTROL)
        if not idle.holds_no_capability(host_pid):
            self._violation(sb, "the interpreter holds capabilities")
            return False
        family = sb.lineage.family
        if family.listener_fd < 0:
            try:
                listener = linux.pidfd_getfd(sb.pidfd, seccomp.LISTENER_FD)
            except OSError as exc:
                self._violation(sb, f"no seccomp listener ({exc.strerror})")
                return False
            family.listener_fd = listener
            self.hub.add(listener, lambda: self.gate.on_notification(listener), PRIORITY_CONTROL)
        return True

    def drop_listener(self, family) -> None:
        """The family's last sandbox is gone: stop answering for it (any thread)."""
        fd, family.listener_fd = family.listener_fd, -1
        if fd >= 0:
            self.hub.remove(fd, lambda: os.close(fd))

    def _check_idle(self, sb: Sandbox) -> None:
        """An idle frame (or a pending recheck): end the op it claims only if the interpreter is
        seen waiting on its request socket and the status page names a request we sent."""
        if sb.state == "dead":
            self.rechecks.pop(sb, None)
            return
        seq, exit_code, flags = status.read(sb.page)
        if not sb.done_seq <= seq <= sb.sent_seq:
            self.rechecks.pop(sb, None)
            self._violation(sb, f"status page names request {seq}; sent {sb.sent_seq}")
            return
        if seq == sb.done_seq and sb.host_pid:
            self.rechecks.pop(sb, None)  # nothing new ended: a stray frame, or one ahead of its page
            return
        host_pid = sb.host_pid or idle.find_waiting(sb.birth_cgroup.pids(), sb.request_ino)
        if not host_pid or not idle.blocked_on_request(host_pid, sb.request_ino):
            self.rechecks.setdefault(sb, time.monotonic() + IDLE_RECHECK_S)
            return
        self.rechecks.pop(sb, None)
        if not sb.host_pid and not self._adopt(sb, host_pid):
            return
        run = sb.run
        if run is not None and run.seq <= seq:
            run.memory_error = bool(flags & status.FLAG_MEMORY_ERROR)
            run.memory_lost = bool(flags & status.FLAG_MEMORY_LOST)
            outcome = "succeeded" if exit_code == 0 else "failed"
            if exit_code and flags & status.FLAG_COMPILE_ERROR:
                outcome = "compile_error"
            self._finish_run(sb, outcome, exit_code, alive=True)
        sb.mark_done(seq)

    def _violation(self, sb: Sandbox, what: str) -> None:
        """The sandbox broke the protocol: end it, and say so in its run's stderr."""
        log.warning("event=protocol_violation sandbox=%s detail=%r", sb.sandbox_id, what[:200])
        sb.violated = True
        run = sb.run
        if run is not None and run.violation is None:
            run.violation = what
            self._emit(
                run,
                OutputEvent(
                    run.next_seq(), "stderr", f"\nmem0: sandbox ended: protocol violation ({what})\n"
                ),
            )
        self.kill(sb)

    def _next_timeout(self) -> float:
        return IDLE_RECHECK_INTERVAL_S if self.rechecks else self.hub.tick_s

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
        """sys.stdout/sys.stderr frames (``kernel.FramedWriter``): one pipe keeps their order.
        Bytes that are not a frame (user code may write anything there) are the run's stderr,
        up to the next frame mark: nothing is lost and nothing is believed. An idle frame only
        makes the agent look (``_check_idle``)."""
        data = self._read_pipe(sb.py_fd)
        if not data:
            return
        buf = sb.py_buf + data
        pos, stray, saw_idle = 0, bytearray(), False
        while len(buf) - pos >= FRAME_HEADER:
            mark, kind = buf[pos], buf[pos + 1]
            size = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            if mark != FRAME_MARK or kind not in FRAME_KINDS or size > FRAME_PAYLOAD:
                nxt = buf.find(FRAME_MARK, pos + 1)  # C speed: a garbage flood must not cost the hub
                nxt = len(buf) if nxt < 0 else nxt
                stray += buf[pos:nxt]
                pos = nxt
                continue
            if len(buf) - pos - FRAME_HEADER < size:
                break
            if stray:
                self._deliver(sb, "stderr", bytes(stray))
                stray.clear()
            if kind == IDLE_ID:
                saw_idle = True
            elif kind in (RESULT_PART_ID, RESULT_END_ID):
                self._on_result_part(
                    sb, buf[pos + FRAME_HEADER : pos + FRAME_HEADER + size], kind == RESULT_END_ID
                )
                if sb.state == "dead":
                    return
            else:
                payload = buf[pos + FRAME_HEADER : pos + FRAME_HEADER + size]
                self._deliver(sb, "stdout" if kind == STDOUT_ID else "stderr", payload)
            pos += FRAME_HEADER + size
        if stray:
            self._deliver(sb, "stderr", bytes(stray))
        sb.py_buf = buf[pos:]
        if saw_idle:
            self._check_idle(sb)

    def _on_result_part(self, sb: Sandbox, part: bytes, last: bool) -> None:
        """A part of a result message (``results.py``): gathered up to its end, bounded, then checked."""
        if len(sb.result_buf) + len(part) > results.MAX_RESULT_BYTES:
            sb.result_buf.clear()
            if sb.run is not None and not sb.run.killed:
                self._violation(sb, f"a result larger than {results.MAX_RESULT_BYTES} bytes")
            return
        sb.result_buf += part
        if not last:
            return
        payload, sb.result_buf = bytes(sb.result_buf), bytearray()
        run = sb.run
        if run is None or run.killed or run.limit is not None:
            return  # between runs (a background thread), or the run is ending: dropped like output
        # Every message counts against the output cap before it is parsed (errors too), so a flood of
        # messages costs the hub no more than the same bytes of output would.
        run.results += 1
        if len(payload) > run.output_cap - run.out_bytes or run.results > results.MAX_RESULTS:
            run.out_bytes = run.output_cap
            self._output_limit(sb, run)
            return
        run.out_bytes += len(payload)
        try:
            kind, value = results.parse(payload)
        except results.ResultRejected as exc:
            self._violation(sb, str(exc))
            return
        if kind == "error":
            run.error = run.error or value
            return
        self._emit(run, ResultEvent(run.next_seq(), value, len(payload)))

    def _deliver(self, sb: Sandbox, stream: str, data: bytes) -> None:
        run = sb.run
        if run is None or run.killed:
            return  # output of background processes between runs is discarded
        room = max(0, run.output_cap - run.out_bytes)
        chunk = data[:room]
        run.out_bytes += len(chunk)
        if chunk:
            text = run.decoders[stream].decode(chunk)
            if text:
                self._emit(run, OutputEvent(run.next_seq(), stream, text))
        if len(data) > room:
            self._output_limit(sb, run)

    def _output_limit(self, sb: Sandbox, run: Run) -> None:
        """Output (stdout and stderr together, at the descriptors) passed the cap: end the run."""
        if run.limit is None:
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

    def _unwatch_exit(self, sb: Sandbox) -> None:
        if sb.pidfd >= 0:
            fd, sb.pidfd = sb.pidfd, -2  # -2: watched once, never again
            self.hub.remove(fd, lambda: os.close(fd))

    def _on_exit(self, sb: Sandbox) -> None:
        """The interpreter's pidfd says it exited."""
        self._unwatch_exit(sb)
        sb.died_at = time.monotonic()
        sb.mark_dead()
        self.rechecks.pop(sb, None)
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
                else:
                    self.commands.on_exit(lineage, int(parts[1]), int(parts[2]))
            elif parts and parts[0] == b"fail":
                log.error("event=sandbox_init_failed detail=%s", line[:2000])

    def _finish_dead(self, sb: Sandbox) -> None:
        """The interpreter is gone: end its run, then let the agent release the sandbox (once) or, if
        it may (``restartable``), give the sandbox a fresh interpreter."""
        self.dying.discard(sb)
        self.rechecks.pop(sb, None)
        sb.mark_dead()
        if not sb.finished and not sb.kill_requested and not sb.violated:
            sb.restarting = self.restartable(sb)
        if sb.run is not None:
            code = None
            status = "failed"
            if sb.exit_status is not None:
                code = os.waitstatus_to_exitcode(sb.exit_status)
                status = "succeeded" if code == 0 else "failed"
            if not sb.kill_requested and not sb.violated:
                sb.run.error = _death_error(code, sb.restarting)
            self._finish_run(sb, status, code, alive=False)
        self.commands.sandbox_dead(sb)
        self._unwatch_exit(sb)
        sb.ctl.close()  # the interpreter, if still there, reads EOF and exits
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
        elif limit is None and (cg.pids_max_hits() > run.counters["pids"] or (status == "failed" and cg.pids_at_max())):
            limit = "pids"
        elif limit is None and status == "failed" and run.memory_error:
            limit = "memory"  # the interpreter's RLIMIT_DATA (status.FLAG_MEMORY_ERROR: a label only)
        elif limit is None and status == "failed" and _workspace_full(sb):
            limit = "disk"
        if status == "compile_error" and limit is not None:
            status = "failed"  # the compiler hit a limit: the code itself may be fine
        if run.killed or run.violation or (sb.kill_requested and limit is None):
            status = "killed"
        elif run.cancelled:
            status = "cancelled"
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
                sandbox_alive=(alive and sb.alive) or sb.restarting,
                error=run.error,
                memory_lost=run.memory_lost or sb.restarting,
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
        for sb, give_up in list(self.rechecks.items()):
            if now > give_up:
                self.rechecks.pop(sb, None)
            else:
                self._check_idle(sb)
        self.commands.tick(now)
        for sb in list(self.dying):
            if sb.died_at is not None and now - sb.died_at > DEATH_REPORT_WAIT_S:
                self._finish_dead(sb)


def _death_error(code: int | None, restarted: bool) -> dict:
    """The agent's own account of an interpreter that died during a run (from its wait status)."""
    if code is None:
        how = "was killed"
    elif code < 0:
        how = f"was killed by signal {signal.Signals(-code).name if -code in _SIGNALS else -code}"
    else:
        how = f"exited with code {code}"
    then = (
        "a fresh interpreter has started: the workspace is kept, variables and imports are lost"
        if restarted
        else "the sandbox has ended"
    )
    return {"name": "interpreter_exited", "value": f"the interpreter {how}; {then}", "traceback": []}


_SIGNALS = {s.value for s in signal.Signals}


def _workspace_full(sb: Sandbox) -> bool:
    try:
        st = os.statvfs(sb.zygote.workspace_path(sb.slot))
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (64 << 10)
