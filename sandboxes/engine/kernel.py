"""The stateful interpreter inside a sandbox (``K``): a control loop that runs code in one
persistent globals dict, like a notebook kernel.

Run semantics (what ends a run, and whether the sandbox survives):
  * normal completion -> ``succeeded``/0; an uncaught exception -> traceback on stderr,
    ``failed``/1; ``SystemExit(n)`` -> ``succeeded`` if n in (None, 0) else ``failed``/n;
    a ``KeyboardInterrupt`` raised by user code -> ``failed``/130. The sandbox survives all of these.
  * timeout or output cap: the agent kills every other process of the sandbox and sends the
    interpreter SIGINT (KeyboardInterrupt in user code); the interpreter survives with its
    globals; if it does not return within a grace period the agent kills the whole sandbox.
  * processes user code leaves running after a run that ended normally keep running (within
    the sandbox's limits) until a timeout, the sandbox's kill or its death; their output between
    runs is discarded, and goes to the current run's stream while one is active.
  * ``os._exit``, a fatal signal (segfault), the OOM killer: the interpreter is gone; the run
    ends ``failed``/``killed`` and the sandbox is reported not running (``sandbox_alive`` false).

Fork (``op: fork``): the interpreter clones itself (copy-on-write memory) with CLONE_PARENT,
so the child's parent is the sandbox init (the PID-1 reaper), not this interpreter: killing the
parent sandbox (its cgroup) leaves the fork running, and init lives while any member lives.
The child gets new mount, network and IPC namespaces; the zygote then gives each side its own
workspace overlay (see ``layers.py``). What a parent and its fork can see of each other:
  * memory: a copy at fork time, then private (copy-on-write); nothing shared afterwards.
  * workspace: the same files at fork time, then private (separate overlay upper layers).
  * /tmp and /dev/shm: the parent's mounts are inherited (same tmpfs): files written there
    after the fork are visible to both; use /workspace for private files.
  * processes: same user and PID namespace, so each can see the other's processes in /proc and
    send them signals; neither is dumpable, so neither can read the other's memory.
  * network, System V IPC / POSIX message queues: separate (new namespaces); no loopback path.
  * limits and accounting: separate cgroups; separate lifetimes.
"""

from __future__ import annotations

import builtins
import fcntl
import io
import os
import signal
import socket
import sys
import termios
import time
import traceback

from . import linux, wire

CTL_FD = 3
PY_FD = 4  # sys.stdout and sys.stderr, framed on one pipe so their interleaving is kept
STDOUT_ID, STDERR_ID = 1, 2
FRAME_PAYLOAD = 4093  # 3-byte header + payload <= PIPE_BUF: every frame is one atomic write


class FramedWriter(io.RawIOBase):
    """sys.stdout / sys.stderr of the interpreter: frames ``[stream id][u16 length][bytes]`` on
    one pipe, so the agent sees Python-level output in the order it was written across both
    streams. fds 1 and 2 stay plain pipes for subprocesses and os.write (ordered per stream)."""

    def __init__(self, stream_id: int):
        super().__init__()
        self.stream_id = stream_id

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        for off in range(0, len(view), FRAME_PAYLOAD):
            chunk = view[off : off + FRAME_PAYLOAD]
            os.write(PY_FD, bytes((self.stream_id,)) + len(chunk).to_bytes(2, "big") + chunk)
        return len(view)

    def fileno(self) -> int:
        return STDOUT_ID if self.stream_id == STDOUT_ID else 2


FORK_CLONE_FLAGS = linux.CLONE_PARENT | linux.CLONE_NEWNS | linux.CLONE_NEWNET | linux.CLONE_NEWIPC


def _print_user_traceback(exc: BaseException) -> None:
    """The traceback as the user wrote it: frames of this control loop are left out."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


class Kernel:
    def __init__(self) -> None:
        self.sock = socket.socket(fileno=CTL_FD)
        self.user_globals: dict = {"__name__": "__main__", "__builtins__": builtins}
        # Line-buffered: a print() arrives as one chunk per line, as soon as the line ends;
        # partial lines are flushed when the run ends.
        sys.stdout = io.TextIOWrapper(
            io.BufferedWriter(FramedWriter(STDOUT_ID)),
            encoding="utf-8",
            errors="replace",
            line_buffering=True,
        )
        sys.stderr = io.TextIOWrapper(
            io.BufferedWriter(FramedWriter(STDERR_ID)),
            encoding="utf-8",
            errors="backslashreplace",
            line_buffering=True,
        )
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.argv = [""]
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        self.pid = os.getpid()
        self._forking = False
        os.register_at_fork(after_in_child=self._after_user_fork)

    def _after_user_fork(self) -> None:
        """A process forked by user code must never speak on (or read) the control socket."""
        if self._forking:
            return
        try:
            os.close(self.sock.detach())
        except OSError:
            pass

    def serve(self, warmup: str = "") -> None:
        os.chdir("/workspace")
        # Warm-up while still in the pool: the first run of a freshly forked interpreter takes
        # copy-on-write faults on every page compile/exec/print touch; take them now.
        if warmup:
            self.run({"id": None, "code": warmup})
            self.user_globals.clear()
            self.user_globals.update({"__name__": "__main__", "__builtins__": builtins})
        wire.send(self.sock, {"ev": "hello", "pid": os.getpid()})
        while True:
            try:
                msg, fds = wire.recv(self.sock, max_fds=4)
            except KeyboardInterrupt:
                continue
            if msg is None:
                os._exit(0)  # agent closed the control socket: the sandbox is being killed
            op = msg.get("op")
            if op == "run":
                self.send(self.run(msg))
            elif op == "configure":
                self.configure(msg)
                self.send({"ev": "configured"})
            elif op == "fork":
                self.fork(fds)
            elif op == "resume":
                os.chdir("/workspace")
            else:
                self.send({"ev": "pong"})

    def send(self, msg: dict) -> None:
        wire.send(self.sock, msg)

    def configure(self, msg: dict) -> None:
        import resource

        os.environ.update({str(k): str(v) for k, v in (msg.get("env") or {}).items()})
        for res, key in (
            (resource.RLIMIT_NOFILE, "nofile"),
            (resource.RLIMIT_NPROC, "nproc"),
            (resource.RLIMIT_FSIZE, "fsize"),
        ):
            if key in msg:
                soft, hard = resource.getrlimit(res)
                value = min(int(msg[key]), hard) if hard != resource.RLIM_INFINITY else int(msg[key])
                resource.setrlimit(res, (value, value))

    def run(self, msg: dict) -> dict:
        code = msg.get("code", "")
        result: dict = {"ev": "result", "id": msg.get("id")}
        status, exit_code, interrupted = "succeeded", 0, False
        try:
            compiled = compile(code, "<run>", "exec")
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # discard a stale pending SIGINT
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                exec(compiled, self.user_globals)
            finally:
                if os.getpid() != self.pid:
                    os._exit(0)  # a child forked by user code ran off the end of the snippet
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        except KeyboardInterrupt as exc:
            status, exit_code, interrupted = "failed", 130, True
            _print_user_traceback(exc)
        except SystemExit as exc:
            if exc.code is None or exc.code == 0:
                status, exit_code = "succeeded", 0
            elif isinstance(exc.code, int):
                status, exit_code = "failed", exc.code
            else:
                print(exc.code, file=sys.stderr)
                status, exit_code = "failed", 1
        except BaseException as exc:
            status, exit_code = "failed", 1
            _print_user_traceback(exc)
        self._flush_and_drain()
        result.update(status=status, exit_code=exit_code, interrupted=interrupted)
        return result

    def _flush_and_drain(self) -> None:
        """Return only once the agent has read all output: the result must come after it."""
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        deadline = time.monotonic() + 2.0
        buf = bytearray(4)
        for fd in (PY_FD, 1, 2):
            while time.monotonic() < deadline:
                try:
                    fcntl.ioctl(fd, termios.FIONREAD, buf)
                except OSError:
                    break
                if int.from_bytes(buf, sys.byteorder) == 0:
                    break
                time.sleep(0.0002)

    def fork(self, fds: list[int]) -> None:
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            self.send({"ev": "error", "message": "fork needs 4 descriptors"})
            return
        self._forking = True
        try:
            pid = linux.clone_process(FORK_CLONE_FLAGS)
        finally:
            self._forking = False
        if pid == 0:
            self.pid = os.getpid()
            ctl, out, err, py = fds
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.dup2(ctl, CTL_FD, inheritable=False)
            os.dup2(py, PY_FD)
            os.closerange(PY_FD + 1, 1 << 20)
            linux.prctl(linux.PR_SET_DUMPABLE, 0)
            # self.sock wraps fd 3, which now is the fork's own control socket.
            wire.send(self.sock, {"ev": "hello", "pid": os.getpid(), "forked": True})
            return
        for fd in fds:
            os.close(fd)
        self.send({"ev": "forked", "child_pid": pid})
