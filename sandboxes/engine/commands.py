"""Commands and processes in a sandbox, beside its interpreter: the agent's side.

A command is started by the sandbox's interpreter on the agent's ``command`` op (``command_spawn``:
it inherits the sandbox's isolation by construction, and the sandbox's init is its parent). Its
output goes to the bus under its execution id exactly as a run's does (sequence-numbered
``OutputEvent``s, then one ``ExitEvent``), so the execution stream and websocket routes carry it
unchanged and a reader can reattach from any sequence number.

What the agent believes, and why:
  * the pid: the interpreter writes it on the status page (user code could write anything there);
    the agent only uses a pid that names a process in the sandbox's own cgroup, never the
    interpreter or the init, and it signals processes only after finding them in that cgroup.
    A lie can only misdirect the sandbox's own command at the sandbox's own processes.
  * the exit status: the init's ``exit <pid> <status>`` report (it reaps the command), never
    anything the command or the interpreter says. A report can come before the pid is known (a
    short command); such reports wait in ``unclaimed`` (bounded). PIDs are handed out in order
    over the namespace's whole range, so an old report for a reused pid is not mistaken for the
    new command's: a pid found alive drops any earlier report for it.
  * output: bounded by the sandbox's output cap (stdout and stderr together, counted at the
    pipe); past it the command's process group is killed (``limit: "output"``).
  * wall time from the agent's clock; CPU, peak memory, OOM kills and pids-limit hits from the
    sandbox's cgroups (shared with whatever else runs there at the same time).

Ending: a command ends when the init reports its exit (what it wrote is then in its pipes and is
drained first); a deadline (``timeout``) or the output cap kills its process group (the command
runs in a session of its own; processes that leave the group by calling ``setsid`` are not
followed, as a terminal's job control would not follow them); the sandbox's death ends every
command it has (``killed``). A run's timeout or output cap kills the processes the run left, not
the commands' groups (``Sandbox.interrupt``).

Per sandbox at most ``MAX_COMMANDS`` live commands; more is ``sandbox_busy``. A command cannot
start while a run is active (the interpreter starts it between ops): ``sandbox_busy`` as well.
"""

from __future__ import annotations

import codecs
import itertools
import os
import signal
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from . import idle
from .iohub import PRIORITY_OUTPUT
from .protocol import EngineError, ExitEvent, OutputEvent
from .sandbox import Sandbox, process_group

MAX_COMMANDS = 16
UNCLAIMED_KEPT = 4096
LOST_PID_GRACE_S = 2.0  # after a kill, how long to wait for the init's report of a command we never found
DRAIN_MAX_BYTES = 4 << 20
SIGNALS = {
    name: getattr(signal, name)
    for name in ("SIGTERM", "SIGKILL", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGSTOP", "SIGCONT")
}


@dataclass(eq=False)
class Command:
    execution_id: str
    sandbox: Sandbox
    argv: list[str]
    started: float
    deadline: float
    counters: dict
    output_cap: int
    background: bool = False
    cwd: str = ""
    inside_pid: int = 0
    host_pid: int = 0
    pidfd: int = -1
    out_fd: int = -1
    err_fd: int = -1
    stdin_fd: int = -1
    open_pipes: int = 0
    events: int = 0
    out_bytes: int = 0
    exit_status: int | None = None
    limit: str | None = None
    signalled: bool = False  # a signal was sent on request (a death by signal is then "killed")
    killed_at: float | None = None
    not_started_code: int | None = None  # 127/126 when the program was not found / not runnable
    done: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)  # stdin writes and closes
    decoders: dict = field(
        default_factory=lambda: {
            "stdout": codecs.getincrementaldecoder("utf-8")("replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")("replace"),
        }
    )

    def next_seq(self) -> int:
        self.events += 1
        return self.events

    def describe(self) -> dict:
        return {
            "execution_id": self.execution_id,
            "pid": self.inside_pid or None,
            "argv": list(self.argv),
            "cwd": self.cwd,
            "background": self.background,
            "running": not self.done,
            "stdin_open": self.stdin_fd >= 0,
            "started_s_ago": round(time.monotonic() - self.started, 3),
        }


class CommandTable:
    """The agent's live commands; every state change happens in the supervisor's hub thread."""

    def __init__(self, supervisor):
        self.sup = supervisor
        self.hub = supervisor.hub
        self.lock = threading.Lock()  # guards the dicts for readers on op threads
        self.by_id: dict[str, Command] = {}
        self.by_pid: dict[tuple[int, int], Command] = {}  # (lineage key, pid inside) -> command
        self.unclaimed: OrderedDict[tuple[int, int], int] = OrderedDict()

    # -- any thread

    def of_sandbox(self, sb: Sandbox) -> list[Command]:
        with self.lock:
            return [c for c in self.by_id.values() if c.sandbox is sb]

    def get(self, sb: Sandbox, execution_id: str) -> Command:
        with self.lock:
            cmd = self.by_id.get(execution_id)
        if cmd is None or cmd.sandbox is not sb:
            raise EngineError("not_found", f"no running command {execution_id} in this sandbox")
        return cmd

    def add(self, cmd: Command, out_r: int, err_r: int) -> None:
        cmd.out_fd, cmd.err_fd, cmd.open_pipes = out_r, err_r, 2
        with self.lock:
            self.by_id[cmd.execution_id] = cmd
        self.hub.add(out_r, lambda: self._on_pipe(cmd, "stdout"), PRIORITY_OUTPUT)
        self.hub.add(err_r, lambda: self._on_pipe(cmd, "stderr"), PRIORITY_OUTPUT)

    # -- hub thread

    def attach(self, cmd: Command, inside_pid: int) -> None:
        """The interpreter says the command is ``inside_pid``: believe it only for a process of the
        sandbox's own cgroup that is neither its interpreter nor its init."""
        sb = cmd.sandbox
        if cmd.done or inside_pid <= 1 or inside_pid == sb.inside_pid:
            if not cmd.done:
                self._finish(cmd, lost=True)
            return
        key = (_lineage_key(sb.lineage), inside_pid)
        cmd.inside_pid = inside_pid
        for host_pid in sb.cgroup.pids():
            if host_pid in (sb.host_pid, sb.lineage.init_pid) or idle.inside_pid(host_pid) != inside_pid:
                continue
            try:
                cmd.pidfd = os.pidfd_open(host_pid)
            except OSError:
                break
            cmd.host_pid = host_pid
            sb.command_groups.add(host_pid)
            self.unclaimed.pop(key, None)  # alive now: any earlier report named an older process
            break
        with self.lock:
            self.by_pid[key] = cmd
        status_ = self.unclaimed.pop(key, None)
        if status_ is not None:
            self.on_exit(sb.lineage, inside_pid, status_)
        elif cmd.limit is not None and cmd.killed_at is None:
            self.kill(cmd, signal.SIGKILL)  # the cap or deadline passed before the pid was known

    def on_exit(self, lineage, inside_pid: int, wait_status: int) -> None:
        """The init reaped ``inside_pid`` (a process that is no sandbox's interpreter)."""
        key = (_lineage_key(lineage), inside_pid)
        with self.lock:
            cmd = self.by_pid.pop(key, None)
        if cmd is None or cmd.done:
            self.unclaimed[key] = wait_status
            while len(self.unclaimed) > UNCLAIMED_KEPT:
                self.unclaimed.popitem(last=False)
            return
        cmd.exit_status = wait_status
        self._drain(cmd)
        self._finish(cmd)

    def tick(self, now: float) -> None:
        with self.lock:
            live = [c for c in self.by_id.values() if not c.done]
        for cmd in live:
            if cmd.limit is None and now >= cmd.deadline:
                cmd.limit = "timeout"
                self.kill(cmd, signal.SIGKILL)
            elif cmd.killed_at is not None and now - cmd.killed_at > LOST_PID_GRACE_S:
                self._finish(cmd, lost=True)  # never saw the init's report: end it without a status

    def sandbox_dead(self, sb: Sandbox) -> None:
        for cmd in self.of_sandbox(sb):
            if not cmd.done:
                self._drain(cmd)
                self._finish(cmd, lost=True)

    def kill(self, cmd: Command, sig: int) -> None:
        """``sig`` to the command's process group: only processes found in the sandbox's cgroup."""
        if sig == signal.SIGKILL and cmd.killed_at is None:
            cmd.killed_at = time.monotonic()
        signal_group(cmd, sig)

    def _on_pipe(self, cmd: Command, stream: str) -> None:
        fd = cmd.out_fd if stream == "stdout" else cmd.err_fd
        if fd < 0:
            return
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_pipe(cmd, stream)
            return
        self._deliver(cmd, stream, data)

    def _drain(self, cmd: Command) -> None:
        """What the command wrote before it ended (a process it left behind may still write: bounded)."""
        budget = DRAIN_MAX_BYTES
        for stream in ("stdout", "stderr"):
            while budget > 0:
                fd = cmd.out_fd if stream == "stdout" else cmd.err_fd
                if fd < 0:
                    break
                try:
                    data = os.read(fd, 1 << 16)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    self._close_pipe(cmd, stream)
                    break
                budget -= len(data)
                self._deliver(cmd, stream, data)

    def _close_pipe(self, cmd: Command, stream: str) -> None:
        fd = cmd.out_fd if stream == "stdout" else cmd.err_fd
        if fd < 0:
            return
        if stream == "stdout":
            cmd.out_fd = -1
        else:
            cmd.err_fd = -1
        cmd.open_pipes -= 1
        self.hub.remove(fd, lambda: os.close(fd))

    def _deliver(self, cmd: Command, stream: str, data: bytes) -> None:
        if cmd.done:
            return
        room = max(0, cmd.output_cap - cmd.out_bytes)
        chunk = data[:room]
        cmd.out_bytes += len(chunk)
        if chunk:
            text = cmd.decoders[stream].decode(chunk)
            if text:
                self.sup._emit(cmd, OutputEvent(cmd.next_seq(), stream, text))
        if len(data) > room and cmd.limit is None:
            cmd.limit = "output"
            self.kill(cmd, signal.SIGKILL)

    def _finish(self, cmd: Command, *, lost: bool = False, not_started: bool = False) -> None:
        """Publish the command's exit record once. ``lost``: its end was not observed (the sandbox
        died, or the init never reported it): ``killed``. ``not_started``: the clone failed: ``failed``."""
        if cmd.done:
            return
        cmd.done = True
        sb = cmd.sandbox
        with self.lock:  # before the exit record goes out: whoever sees it sees the command gone
            self.by_id.pop(cmd.execution_id, None)
            key = (_lineage_key(sb.lineage), cmd.inside_pid)
            if self.by_pid.get(key) is cmd:
                del self.by_pid[key]
        for stream, dec in cmd.decoders.items():
            tail = dec.decode(b"", final=True)
            if tail:
                self.sup._emit(cmd, OutputEvent(cmd.next_seq(), stream, tail))
        cg = sb.cgroup
        exit_code = None if cmd.exit_status is None else os.waitstatus_to_exitcode(cmd.exit_status)
        if not_started:
            exit_code = cmd.not_started_code
        limit = cmd.limit
        if limit is None and cg.oom_kills() > cmd.counters["oom"]:
            limit = "memory"
        elif limit is None and cg.pids_max_hits() > cmd.counters["pids"]:
            limit = "pids"
        if not_started:
            state = "failed"
        elif limit == "timeout":
            state = "timeout"
        elif limit in ("output", "memory") or lost or (
            exit_code is not None and exit_code < 0 and (cmd.signalled or sb.kill_requested or not sb.alive)
        ):
            state = "killed"
        else:
            state = "succeeded" if exit_code == 0 else "failed"
        self.sup._emit(
            cmd,
            ExitEvent(
                seq=cmd.next_seq(),
                status=state,
                exit_code=exit_code,
                limit=limit,
                wall_ms=round((time.monotonic() - cmd.started) * 1000, 3),
                cpu_ms=round(max(0.0, (cg.cpu_ns() - cmd.counters["cpu_ns"]) / 1e6), 3),
                peak_memory_bytes=cg.peak_memory(),
                sandbox_alive=sb.alive,
            ),
        )
        self.sup._flush()
        for stream in ("stdout", "stderr"):
            self._close_pipe(cmd, stream)
        with cmd.lock:
            if cmd.stdin_fd >= 0:
                os.close(cmd.stdin_fd)
                cmd.stdin_fd = -1
        if cmd.pidfd >= 0:
            os.close(cmd.pidfd)
            cmd.pidfd = -1
        sb.command_groups.discard(cmd.host_pid)


_lineage_keys = itertools.count(1)


def _lineage_key(lineage) -> int:
    """A number for a PID namespace's lineage that is never reused (``id()`` is, once it is collected)."""
    key = getattr(lineage, "command_key", 0)
    if not key:
        key = lineage.command_key = next(_lineage_keys)
    return key


def signal_group(cmd: Command, sig: int) -> None:
    """Send ``sig`` to every process of the command's process group (the command leads it: it
    called setsid), looked up among the sandbox's cgroup members, never its interpreter or init.
    Never ``killpg`` by number: a group that has emptied could have its number reused on the host."""
    sb = cmd.sandbox
    if cmd.pidfd >= 0:
        try:
            signal.pidfd_send_signal(cmd.pidfd, sig)
        except OSError:
            pass
    if cmd.host_pid <= 0:
        return
    for host_pid in sb.cgroup.pids():
        if host_pid in (sb.host_pid, sb.lineage.init_pid, cmd.host_pid):
            continue
        if process_group(host_pid) == cmd.host_pid:
            try:
                os.kill(host_pid, sig)
            except OSError:
                pass
