"""Agent-side records of sandboxes and runs (no process work here: see agent.py)."""

from __future__ import annotations

import codecs
import mmap
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

from . import wire
from .cgroups import Cgroup
from .protocol import EngineError, Limits
from .runtimes import Runtime


@dataclass
class Family:
    """A spawned sandbox and all its forks: one uid range, one seccomp listener."""

    uid_base: int
    listener_fd: int = -1  # taken from the first interpreter (``seccomp.LISTENER_FD``)
    lineages: int = 0  # PID namespaces of the family still holding a sandbox


@dataclass
class Lineage:
    """The sandbox of one PID namespace and its init (a spawned sandbox's R, a fork's C)."""

    init_pid: int  # host pid of the init
    family: Family
    reaper_fd: int
    members: dict[int, Sandbox] = field(default_factory=dict)  # inside pid -> sandbox
    buf: bytes = b""
    depth: int = 0  # forks between this and the spawned sandbox (namespaces nest one level each)

    @property
    def uid_base(self) -> int:
        return self.family.uid_base


@dataclass
class Run:
    execution_id: str
    started: float
    deadline: float
    counters: dict
    output_cap: int
    seq: int = 0  # the request number of this run on the sandbox's request socket
    events: int = 0
    out_bytes: int = 0
    violation: str | None = None  # set when the sandbox broke the protocol during the run
    memory_error: bool = False  # the interpreter said the run ended with a MemoryError
    memory_lost: bool = False  # the interpreter said its runtime process was replaced (a label only)
    limit: str | None = None
    interrupted_at: float | None = None
    killed: bool = False
    cancelled: bool = False  # the cancel op interrupted it (status ``cancelled``)
    results: int = 0  # rich results delivered (``results.MAX_RESULTS``)
    error: dict | None = None  # the structured error (validated by ``results.parse``)
    decoders: dict = field(
        default_factory=lambda: {
            "stdout": codecs.getincrementaldecoder("utf-8")("replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")("replace"),
        }
    )

    def next_seq(self) -> int:
        self.events += 1
        return self.events


class Sandbox:
    def __init__(
        self,
        *,
        slot: str,
        runtime: Runtime,
        zygote,
        cgroup: Cgroup,
        lineage: Lineage,
        ctl: socket.socket,
        request_ino: int,
        page: mmap.mmap,
        out_fd: int,
        err_fd: int,
        py_fd: int,
        birth_cgroup: Cgroup,
    ):
        self.slot = slot
        self.sandbox_id: str | None = None
        self.runtime = runtime
        self.zygote = zygote
        self.cgroup = cgroup
        self.lineage = lineage
        self.ctl = ctl  # the agent's end of the request socket (the sandbox only reads its end)
        self.request_ino = request_ino  # inode of the sandbox's end, to recognise its waiter
        self.page = page  # the status page (``status.py``)
        self.birth_cgroup = birth_cgroup  # where the interpreter is born (a fork: its parent's)
        self.out_fd = out_fd
        self.err_fd = err_fd
        self.py_fd = py_fd  # framed output of sys.stdout/sys.stderr (see kernel.FramedWriter)
        self.py_buf = b""
        self.result_buf = bytearray()  # parts of a rich result not yet ended (``results.py``)
        self.violated = False  # broke the protocol: ended, never restarted
        self.restarting = False  # its interpreter died; a fresh one takes over its id (``Agent._revive``)
        self.sent_seq = 0  # last request number sent
        self.done_seq = -1  # last request seen done (0: the interpreter's first idle, its hello)
        self.cond = threading.Condition()
        self.send_lock = threading.Lock()
        self.pidfd = -1
        self.lock = threading.Lock()  # serialises ops (run/fork/snapshot/kill) on this sandbox
        self.state = "starting"  # starting -> pooled -> running -> dead
        self.host_pid = 0
        self.inside_pid = 0
        self.limits = Limits()
        self.env: dict[str, str] = {}
        self.memory = "fresh"
        self.workspace_bytes = 0
        self.run: Run | None = None
        self.exit_status: int | None = None
        self.died_at: float | None = None
        self.kill_requested = False
        self.finished = False  # the supervisor has handed it to the agent for release
        self.snapshot_index = None
        self.created = time.time()
        self.command_groups: set[int] = set()  # host pids leading live commands' groups (``commands.py``)

    @property
    def alive(self) -> bool:
        return self.state in ("pooled", "running")

    @property
    def owner_uid(self) -> int:
        from .isolation import SANDBOX_UID

        return self.lineage.uid_base + SANDBOX_UID

    def send(self, msg: dict, fds: list[int] | None = None, on_seq=None) -> int:
        """Send a request (numbered here; ``on_seq(seq)`` runs just before it goes out); its end
        is observed by the supervisor."""
        with self.send_lock:  # not ``cond``: the hub thread must never wait behind a send
            self.sent_seq += 1
            seq = self.sent_seq
            if on_seq is not None:
                on_seq(seq)
            try:
                wire.send(self.ctl, {**msg, "seq": seq}, fds)
            except OSError as exc:
                raise EngineError("sandbox_not_running", f"sandbox {self.sandbox_id} is not running") from exc
        return seq

    def request(self, msg: dict, fds: list[int] | None = None, timeout: float = 10.0) -> None:
        """Send a request and wait until the interpreter is seen idle after it."""
        self.wait_done(self.send(msg, fds), timeout)

    def wait_done(self, seq: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.done_seq < seq:
                if self.state == "dead":
                    raise EngineError("sandbox_not_running", "sandbox exited")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise EngineError("agent_timeout", f"sandbox did not finish request {seq}")
                self.cond.wait(remaining)

    def mark_done(self, seq: int) -> None:
        with self.cond:
            self.done_seq = max(self.done_seq, seq)
            self.cond.notify_all()

    def mark_dead(self) -> None:
        with self.cond:
            self.state = "dead"
            self.cond.notify_all()

    def resident_threads(self) -> list[int]:
        """Host thread ids of the runtime's resident processes (see ``Runtime.resident``)."""
        if not self.runtime.resident:
            return []
        tids = []
        for pid in _children(self.host_pid):
            try:
                tids += [int(t) for t in os.listdir(f"/proc/{pid}/task")]
            except (OSError, ValueError):
                pass
        return tids

    def interrupt(self) -> None:
        """End the current run but keep the interpreter's state: every other process of the
        sandbox is killed (the whole tree the run may have started) but the process groups of
        its commands, the interpreter gets SIGINT (KeyboardInterrupt in the user's code). A runtime with
        a ``resident`` process (node) keeps the interpreter's children too: the interpreter passes the
        SIGINT on to them."""
        keep = {self.lineage.init_pid, self.host_pid}
        if self.runtime.resident:
            keep |= _children(self.host_pid)
        if self.command_groups:  # commands run beside the interpreter: a run's end is not theirs
            keep |= {p for p in self.cgroup.pids() if process_group(p) in self.command_groups}
        self.cgroup.kill_all(exclude=keep)
        try:
            os.kill(self.host_pid, signal.SIGINT)
        except ProcessLookupError:
            pass


def process_group(host_pid: int) -> int:
    """The process group of ``host_pid`` as the host numbers it (0 if it is gone or unreadable)."""
    try:
        with open(f"/proc/{host_pid}/stat", "rb") as f:
            text = f.read(1024)
        return int(text[text.rindex(b")") + 2 :].split()[2])
    except (OSError, ValueError, IndexError):
        return 0


def _children(pid: int) -> set[int]:
    """Host pids of ``pid``'s children (its main thread's: the interpreter's are forked from there)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(p) for p in f.read(4096).split()}
    except (OSError, ValueError):
        return set()
