"""Agent-side records of sandboxes and runs (no process work here: see agent.py)."""

from __future__ import annotations

import codecs
import os
import queue
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

from .cgroups import Cgroup
from .protocol import EngineError, Limits
from .runtimes import Runtime
from .wire import FrameReader


@dataclass
class Lineage:
    """Sandboxes sharing one PID namespace and its init (a sandbox and its forks)."""

    init_pid: int  # host pid of the reaper init R
    uid_base: int
    reaper_fd: int
    members: dict[int, Sandbox] = field(default_factory=dict)  # inside pid -> sandbox
    buf: bytes = b""


@dataclass
class Run:
    execution_id: str
    started: float
    deadline: float
    counters: dict
    output_cap: int
    seq: int = 0
    out_bytes: int = 0
    limit: str | None = None
    interrupted_at: float | None = None
    killed: bool = False
    decoders: dict = field(
        default_factory=lambda: {
            "stdout": codecs.getincrementaldecoder("utf-8")("replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")("replace"),
        }
    )

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


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
        out_fd: int,
        err_fd: int,
        py_fd: int,
    ):
        self.slot = slot
        self.sandbox_id: str | None = None
        self.runtime = runtime
        self.zygote = zygote
        self.cgroup = cgroup
        self.lineage = lineage
        self.ctl = ctl
        self.out_fd = out_fd
        self.err_fd = err_fd
        self.py_fd = py_fd  # framed output of sys.stdout/sys.stderr (see kernel.FramedWriter)
        self.py_buf = b""
        self.reader = FrameReader()
        self.replies: queue.Queue = queue.Queue()
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

    @property
    def alive(self) -> bool:
        return self.state in ("pooled", "running")

    @property
    def owner_uid(self) -> int:
        from .isolation import SANDBOX_UID

        return self.lineage.uid_base + SANDBOX_UID

    def send(self, msg: dict, fds: list[int] | None = None) -> None:
        from . import wire

        try:
            wire.send(self.ctl, msg, fds)
        except OSError as exc:
            raise EngineError("sandbox_not_running", f"sandbox {self.sandbox_id} is not running") from exc

    def wait_reply(self, kind: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EngineError("agent_timeout", f"sandbox did not answer {kind}")
            try:
                msg = self.replies.get(timeout=remaining)
            except queue.Empty:
                continue
            if msg.get("ev") == "eof":
                raise EngineError("sandbox_not_running", "sandbox exited")
            if msg.get("ev") == kind:
                return msg
            if msg.get("ev") == "error":
                raise EngineError("internal_error", str(msg.get("message")))

    def interrupt(self) -> None:
        """End the current run but keep the interpreter's state: every other process of the
        sandbox is killed (the whole tree the run may have started), the interpreter gets
        SIGINT (KeyboardInterrupt in the user's code)."""
        self.cgroup.kill_all(exclude={self.lineage.init_pid, self.host_pid})
        try:
            os.kill(self.host_pid, signal.SIGINT)
        except ProcessLookupError:
            pass


def find_host_pid(candidates: list[int], inside_pid: int) -> int:
    """Host pid of the process known as ``inside_pid`` in its sandbox's PID namespace."""
    for pid in candidates:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        if int(line.split()[-1]) == inside_pid:
                            return pid
                        break
        except OSError:
            continue
    return 0
