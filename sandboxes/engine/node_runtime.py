"""The Node.js runtime: a node process that lives inside a sandbox and keeps its state across runs.

A node sandbox is made exactly like a Python one (a zygote with nothing preloaded clones it, with
the same namespaces, seccomp filter, rlimits, cgroups, pool, channels and metering); its control
loop, ``NodeKernel``, starts one ``node`` child while the sandbox is still in the warm pool (so a
create does not wait on node's ~80 ms start) and relays each run to it. Node cannot fork its heap,
so the pool is what makes create fast, and a fork is a fresh sandbox with a copy of the workspace
(``memory: "fresh"``; ``Runtime.can_fork`` false). node is an ordinary process of the sandbox:
forked by the kernel after every isolation step, so it holds no capability, runs as the sandbox's
uid under the same seccomp filter (node needs no syscall the filter denies: ``clone3`` gets ENOSYS
and glibc falls back to ``clone``; io_uring is refused and libuv falls back to its thread pool) and
is charged to the sandbox's cgroups. It never sees the agent's request socket, the status page or
the seccomp listener (all close-on-exec, and the listener is passed over before any run).

``node_driver.js`` (in node) evaluates runs in V8's REPL mode and writes console output as frames
on the sandbox's framed pipe, where the agent reads Python's (``kernel.FramedWriter``): stdout and
stderr in order, streamed as written. Requests go to node on a pipe (u32 length + JSON); the end of
a run comes back as 8 bytes (run number, exit code), which the kernel bounds and checks but does not
believe beyond "this run ended" (the agent observes the kernel, as for Python: ``idle.py``).

Run semantics:
  * succeeded / failed(1): the code's completion (top-level ``await`` included) or an uncaught
    exception, rejection, syntax error (printed on stderr as node's REPL does); ``process.exit(n)``
    ends the run with n and keeps the state (as ``SystemExit`` in Python). Timers and servers a run
    leaves behind keep running; their output goes to the run in progress, if any. A run request
    that carries ``stdin`` (a string) gives the run a ``process.stdin`` that reads it, then EOF.
  * timeout, output cap, cancel: the agent kills every process of the sandbox but the kernel and
    node (the runtime is ``resident``: ``Sandbox.interrupt``) and sends the kernel SIGINT, which it
    passes on. Code running synchronously (``while (true) {}``) is stopped by vm's SIGINT watchdog
    and a run waiting on a promise is abandoned: the state is kept, as Python's on KeyboardInterrupt.
    A node that has not ended the run within ``NODE_INTERRUPT_GRACE_S`` (a loop in a promise's
    continuation) is replaced: the kernel starts a fresh node at once and the run ends with
    ``memory_lost`` (the status flag ``FLAG_MEMORY_LOST``) and a notice on stderr; files in
    /workspace are kept.
  * node dies (a heap blowup, ``process.abort()``, a signal): replaced the same way; a heap blowup
    is labelled ``limit: "memory"``.
Residual: a process that native code loaded into node (an addon the user brought) makes a child of
the kernel with CLONE_PARENT is spared by interrupts as node is; it stays within the sandbox's
cgroup limits and ends with the sandbox.
Memory: the warm node starts before the plan is known, and V8 fixes its heap limit at start. So the
plan's memory is enforced on node as on Python, by RLIMIT_DATA (set on node at hand-over): V8 meets
it as a failed allocation, collects as a last resort, then stops with "JavaScript heap out of
memory" (SIGABRT); the cgroup's OOM killer is the backstop. A node started after hand-over gets
``--max-old-space-size`` at 3/4 of the plan's memory as well, so V8 stops at its own limit first.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import resource
import select
import shutil
import signal
import struct
import sys
import time

from . import status, wire
from .kernel import Kernel

# Inside the sandbox root (``root_dirs`` puts them there, read-only).
NODE_DIR = "/usr/lib/node"
NODE_BINARY = f"{NODE_DIR}/node"
DRIVER = f"{NODE_DIR}/driver.js"
HOST_PATH = "/usr/local/bin:/usr/bin:/bin"
DRIVER_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_driver.js")

REQUEST_FD, REPLY_FD = 3, 5  # in node (its fd 4 is the framed pipe, inherited)
_REPLY = struct.Struct(">Ii")  # run number, exit code
HEAP_SHARE = 0.75  # --max-old-space-size of a node started after hand-over, as a share of the memory
MIN_HEAP_MB = 16
# V8's worker threads (node's default: 4). Each thread's 8 MiB stack counts against RLIMIT_DATA and
# each thread against the pids limit: with 4, a node restarted in a sandbox of 32 MiB could not start
# (its thread creation failed and it hung); a sandbox has one CPU core by default anyway.
V8_POOL_SIZE = 1
# How long node has to stop a run after the SIGINT passed on; then it is replaced (memory lost). Well
# inside the agent's grace (``supervisor.INTERRUPT_GRACE_S``) for the whole kernel.
NODE_INTERRUPT_GRACE_S = 0.4
# V8 and the Node runtime stop with SIGABRT when an allocation fails (also SIGTRAP/SIGILL from V8's
# own checks); such a death with a peak RSS of at least half the memory is labelled "memory".
OOM_SIGNALS = frozenset({signal.SIGABRT, signal.SIGTRAP, signal.SIGILL})
NOTICE = (
    "mem0: Node.js {how}; a fresh one took over: variables and functions of earlier runs are gone "
    "(files in /workspace are kept)\n"
)


# ---------------------------------------------------------------- host side (agent)


def find_node() -> str | None:
    """The host's node binary (Debian's ``nodejs`` installs /usr/bin/node, NodeSource's the same,
    an upstream tarball /usr/local/bin/node), resolved through links; None if there is none."""
    for name in ("node", "nodejs"):
        path = shutil.which(name, path=HOST_PATH)
        if path:
            return os.path.realpath(path)
    return None


def root_dirs(state_dir: str) -> dict:
    """What a node zygote's root adds (``zygote_root.build``): a directory with the node binary and
    the driver at ``NODE_DIR`` (read-only overlay), /usr/bin/node linking to it. The directory lives
    in ``state_dir``, keyed by the binary's identity and the driver's digest: a hard link to the
    binary when on the same filesystem (else a copy, made once), so that no host path is bound into
    the root. Raises RuntimeError without a node on the host."""
    host = find_node()
    if host is None:
        raise RuntimeError("no node on the system PATH (Debian package nodejs)")
    st = os.stat(host)
    with open(DRIVER_SOURCE, "rb") as f:
        driver = f.read()
    key = f"{st.st_dev}-{st.st_ino}-{st.st_mtime_ns}-{st.st_size}-{hashlib.sha256(driver).hexdigest()[:16]}"
    target = os.path.join(state_dir, f"node-{key}")
    if not os.path.isdir(target):
        tmp = f"{target}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp, mode=0o755)
        try:
            os.link(host, f"{tmp}/node")
        except OSError:
            shutil.copy2(host, f"{tmp}/node")
        with open(f"{tmp}/driver.js", "wb") as f:
            f.write(driver)
        os.chmod(tmp, 0o755)
        os.chmod(f"{tmp}/driver.js", 0o644)
        try:
            os.rename(tmp, target)
        except OSError:  # another agent made it first
            shutil.rmtree(tmp, ignore_errors=True)
    return {"binds": {target: NODE_DIR}, "links": {"/usr/bin/node": NODE_BINARY}}


# ---------------------------------------------------------------- sandbox side (the kernel)


def _high_fd(fd: int) -> int:
    """``fd`` moved above the numbers node's are dup2'd to (3-5), close-on-exec."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class NodeKernel(Kernel):
    """``Kernel`` whose runs go to a node child (module docstring); configure, resume and the
    agent's protocol are the Python kernel's."""

    def __init__(self) -> None:
        super().__init__()
        self.node_pid = 0
        self.requests = -1  # write end of node's request pipe
        self.replies = -1  # read end of node's reply pipe
        self.run_seq = 0
        self.memory_bytes = 0
        self.node_env: dict[str, str] = {}
        self.node_limits: list[tuple[int, int]] = []

    def serve(self, warmup: str = "") -> None:
        os.chdir("/workspace")
        self._start_node()
        self._await_reply(0)  # node is up before the sandbox joins the pool
        super().serve(warmup)

    # -- node's lifetime

    def _start_node(self) -> None:
        req_r, req_w = (_high_fd(fd) for fd in os.pipe())
        rep_r, rep_w = (_high_fd(fd) for fd in os.pipe())
        argv = ["node", f"--v8-pool-size={V8_POOL_SIZE}"]
        if self.memory_bytes:
            argv.append(f"--max-old-space-size={max(MIN_HEAP_MB, int(self.memory_bytes * HEAP_SHARE) >> 20)}")
        argv.append(DRIVER)
        # NODE_OPTIONS of the sandbox's environment are for the user's node processes, not the driver.
        env = {k: v for k, v in os.environ.items() if k != "NODE_OPTIONS"}
        try:
            self.node_pid = os.posix_spawn(
                NODE_BINARY,
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, req_r, REQUEST_FD),
                    (os.POSIX_SPAWN_DUP2, rep_w, REPLY_FD),
                ],
            )
        finally:
            os.close(req_r)
            os.close(rep_w)
        self.requests, self.replies = req_w, rep_r
        if self.node_env:
            self._send({"op": "configure", "env": self.node_env})

    def _stop_node(self) -> tuple[int, int]:
        """Kill and reap node; (its wait status, its peak RSS in bytes)."""
        for fd in (self.requests, self.replies):
            if fd >= 0:
                os.close(fd)
        self.requests = self.replies = -1
        pid, self.node_pid = self.node_pid, 0
        if not pid:
            return 0, 0
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            _, wait_status, usage = os.wait4(pid, 0)
        except ChildProcessError:
            return 0, 0
        return wait_status, usage.ru_maxrss * 1024

    def _replace_node(self, how: str | None = None) -> int:
        """A fresh node for a dead or wedged one (not waited for: its ready reply is skipped by the
        next run); a notice on stderr. Returns the status-page flags of the run it happened in."""
        wait_status, peak = self._stop_node()
        flags = status.FLAG_MEMORY_LOST
        if how is None:
            how = "exited"
            if os.WIFSIGNALED(wait_status):
                sig = os.WTERMSIG(wait_status)
                how = (
                    f"was ended by {signal.Signals(sig).name}"
                    if sig in signal.valid_signals()
                    else "was ended"
                )
                if sig in OOM_SIGNALS and (not self.memory_bytes or peak * 2 >= self.memory_bytes):
                    flags |= status.FLAG_MEMORY_ERROR
                    how = "ran out of memory"
            elif os.WIFEXITED(wait_status):
                how = f"exited with code {os.WEXITSTATUS(wait_status)}"
        print(NOTICE.format(how=how), end="", file=sys.stderr, flush=True)
        self._start_node()
        return flags

    # -- channel to node

    def _send(self, msg: dict) -> None:
        view = memoryview(wire.encode(msg))
        while view:
            view = view[os.write(self.requests, view) :]

    def _await_reply(self, seq: int, timeout: float | None = None) -> int | None:
        """The exit code node gives for run ``seq`` (other replies are stale or forged: skipped), or
        None if node went away (or gave none within ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        buf = b""
        while True:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self.replies], [], [], remaining)[0]:
                    return None
            chunk = os.read(self.replies, _REPLY.size - len(buf))
            if not chunk:
                return None
            buf += chunk
            if len(buf) < _REPLY.size:
                continue
            got, code = _REPLY.unpack(buf)
            buf = b""
            if got == seq:
                return status.clamp_exit_code(code)

    def _interrupt_node(self, seq: int) -> int | None:
        try:
            os.kill(self.node_pid, signal.SIGINT)
        except ProcessLookupError:
            return None
        try:
            return self._await_reply(seq, NODE_INTERRUPT_GRACE_S)
        except OSError:
            return None

    # -- ops

    def configure(self, msg: dict) -> None:
        super().configure(msg)
        self.memory_bytes = int(msg.get("data") or 0)
        self.node_env = {str(k): str(v) for k, v in (msg.get("env") or {}).items()}
        # node started in the pool, before this sandbox's limits: it gets the kernel's.
        for res in (
            resource.RLIMIT_NOFILE,
            resource.RLIMIT_NPROC,
            resource.RLIMIT_FSIZE,
            resource.RLIMIT_DATA,
        ):
            if not self.node_pid:  # gone already: the next run starts one, which inherits them
                break
            try:
                resource.prlimit(self.node_pid, res, resource.getrlimit(res))
            except (OSError, ValueError):
                self._replace_node("did not take the sandbox's limits")  # started afresh, inheriting them
                break
        if self.node_env:
            try:
                self._send({"op": "configure", "env": self.node_env})
            except OSError:
                pass  # node is gone: the next run replaces it (a new one gets the environment)

    def run(self, msg: dict) -> tuple[int, int]:
        """Relay one run to node; (exit code, status-page flags)."""
        code = msg.get("code", "")
        flags = 0
        if not self.node_pid:
            flags |= self._replace_node("was not running")
        self.run_seq += 1
        exit_code: int | None = None
        sent = interrupted = False
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # discard a stale pending SIGINT
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            stdin = msg.get("stdin")
            self._send(
                {
                    "op": "run",
                    "seq": self.run_seq,
                    "code": code,
                    **({"stdin": stdin} if isinstance(stdin, str) else {}),
                }
            )
            sent = True
            exit_code = self._await_reply(self.run_seq)
        except KeyboardInterrupt:
            interrupted = True  # timeout, output cap or cancel: the agent killed all but node and us
        except OSError:
            pass  # node is gone (EPIPE)
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        if interrupted:
            # Passed on to node, which stops the run and keeps its state; one that does not (a loop in
            # a promise's continuation) or that had half a request (``sent`` false) is replaced.
            exit_code = self._interrupt_node(self.run_seq) if sent else None
            if exit_code is None:
                flags |= self._replace_node("did not stop when the run was interrupted")
                exit_code = 130
        elif exit_code is None:
            flags |= self._replace_node()
            exit_code = 1
        self._flush_and_drain()
        return exit_code, flags
