"""The stateful interpreter inside a sandbox (``K``): a control loop that runs code in one
persistent globals dict, like a notebook kernel.

Run semantics (what ends a run, and whether the sandbox survives):
  * normal completion -> ``succeeded``/0; an uncaught exception -> traceback on stderr,
    ``failed``/1; ``SystemExit(n)`` -> ``succeeded`` if n in (None, 0) else ``failed``/n;
    a ``KeyboardInterrupt`` raised by user code -> ``failed``/130. The sandbox survives all of these.
  * timeout, output cap or a cancel: the agent kills every other process of the sandbox and sends
    the interpreter SIGINT (KeyboardInterrupt in user code); the interpreter survives with its
    globals; if it does not return within a grace period the agent ends it (and restarts it, below).
  * processes user code leaves running after a run that ended normally keep running (within
    the sandbox's limits) until a timeout, the sandbox's kill or its death; their output between
    runs is discarded, and goes to the current run's stream while one is active.
  * ``os._exit``, a fatal signal (segfault), the OOM killer: the interpreter is gone; the run
    ends ``failed``/``killed`` with an ``interpreter_exited`` error, and the agent gives the sandbox a
    fresh interpreter with its workspace (``memory_lost``; ``Agent._revive``), as Jupyter restarts a kernel.

A run (``display.py``): the snippet's last expression is evaluated and published, ``display()`` is a
builtin, matplotlib figures are published as PNG and closed, an uncaught exception is published as
``{name, value, traceback}``; all as result frames on the framed pipe (``results.py``). ``stdin``
in a run request is what ``sys.stdin`` reads during that run (then end of file).

The request channel (see ``status.py``): the agent writes requests on fd 3 and the interpreter
only reads it (its write side is shut down before any user code runs, so nothing user code
writes reaches the agent there). Nothing the interpreter could say is trusted, because user
code shares its address space: an op's end is *observed* by the agent (the interpreter's main
thread blocked reading fd 3, seen in ``/proc``), prompted by a data-free "idle" frame on the
output pipe, and the only value read back is the 16-byte status page (op sequence number and
exit code), bounds-checked. Timings, CPU, memory and limits come from the agent's clock and
the sandbox's cgroups.

Fork (``op: fork``): the interpreter, which holds no capability, clones itself into new user,
PID, mount, network, IPC and UTS namespaces (CLONE_NEWUSER needs none; the seccomp filter
holds that clone until the agent, which asked for the fork, lets it through). The clone ``C``
is PID 1 of the fork's PID namespace; it waits on its own request socket while the agent maps
its uid, moves it to the fork's cgroup and has the zygote give the fork its own /proc, /tmp
and /dev/shm (copies of the parent's, made with the parent frozen) and workspace (copy-on-write
layers, ``layers.py``). On "go" C drops every capability of its new user namespace, forks the
fork's interpreter ``K'`` and stays as its init (reaping, reporting exits). The agent checks in
/proc that C and K' hold no capability before the fork is handed out. What a parent and its
fork can see of each other:
  * memory: a copy at fork time, then private (copy-on-write); nothing shared afterwards.
  * workspace, /tmp, /dev/shm: the same files at fork time, then private.
  * processes: the fork's PID namespace is a child of the parent's, so the fork can neither see
    nor name its parent's processes. The parent's processes can see the fork's (pids of a child
    namespace) and, because the fork's user namespace is owned by the parent's uid, could
    signal them, and read /proc/<pid>/{root,environ,mem} of the fork's processes that exec'd a
    program: the one way in which a parent reaches its fork (README, residual risks). The
    interpreters themselves are not dumpable: neither can read the other's interpreter memory.
  * network, System V IPC / POSIX message queues, hostname: separate (new namespaces).
  * limits and accounting: separate cgroups; separate lifetimes (a fork outlives its parent).
"""

from __future__ import annotations

import builtins
import fcntl
import gc
import io
import os
import signal
import socket
import sys
import termios
import time
import traceback

from . import command_spawn, display, isolation, linux, seccomp, status, wire
from .reaper import exec_reaper, reap_forever

CTL_FD = 3  # requests from the agent (read-only for the sandbox: write side shut down)
PY_FD = 4  # sys.stdout and sys.stderr, framed on one pipe so their interleaving is kept
PAGE_FD = 5  # the status page's memfd at start: mapped, then closed
STDOUT_ID, STDERR_ID, IDLE_ID = 1, 2, 3
# A frame: FRAME_MARK, stream id, u16 length, payload. The mark lets the agent find the next
# frame again after bytes user code wrote on the pipe itself (those are shown as stderr).
FRAME_MARK = 0xFE
FRAME_HEADER = 4
FRAME_PAYLOAD = 4092  # header + payload <= PIPE_BUF: every frame is one atomic write
IDLE_FRAME = bytes((FRAME_MARK, IDLE_ID, 0, 0))  # "look at me": carries nothing the agent believes


class FramedWriter(io.RawIOBase):
    """sys.stdout / sys.stderr of the interpreter: frames ``[mark][stream id][u16 length][bytes]`` on
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
            os.write(PY_FD, bytes((FRAME_MARK, self.stream_id)) + len(chunk).to_bytes(2, "big") + chunk)
        return len(view)

    def fileno(self) -> int:
        return STDOUT_ID if self.stream_id == STDOUT_ID else 2


FORK_CLONE_FLAGS = (
    linux.CLONE_PARENT
    | linux.CLONE_NEWUSER
    | linux.CLONE_NEWPID
    | linux.CLONE_NEWNS
    | linux.CLONE_NEWNET
    | linux.CLONE_NEWIPC
    | linux.CLONE_NEWUTS
)
REAP_FD = 7  # a fork's init reports its exits here
INIT_BINARY_FD = 8  # the compiled init (``reaper.py``) a fork's init execs, when the agent has one


ENGINE_FILES = frozenset({__file__, display.__file__})


def _user_traceback(exc: BaseException):
    """The traceback as the user wrote it: frames of this control loop (and ``display``) left out."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename in ENGINE_FILES:
        tb = tb.tb_next
    return tb


def _print_user_traceback(exc: BaseException) -> None:
    traceback.print_exception(type(exc), exc, _user_traceback(exc))


class Kernel:
    def __init__(self) -> None:
        self.sock = socket.socket(fileno=CTL_FD)
        # Before any user code: this side never writes again, so nothing user code writes on
        # fd 3 reaches the agent (it gets EPIPE).
        self.sock.shutdown(socket.SHUT_WR)
        self.page = status.attach(PAGE_FD)
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
        sys.stdin = self.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        # Rich results (display.py): published as result frames on the framed pipe.
        self.display = display.Display(self._write_frame, FRAME_PAYLOAD, FRAME_MARK, self._flush_streams)
        display.install(self.display)
        sys.argv = [""]
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        self.pid = os.getpid()
        self._forking = False
        self.listener_open = True
        os.register_at_fork(after_in_child=self._after_user_fork)

    def _after_user_fork(self) -> None:
        """A process forked by user code does not read the agent's requests."""
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
            self.run({"code": warmup})
            self.user_globals.clear()
            self.user_globals.update({"__name__": "__main__", "__builtins__": builtins})
        self.idle(0)
        while True:
            try:
                msg, fds = wire.recv(self.sock, max_fds=7)
            except KeyboardInterrupt:
                continue
            if msg is None:
                os._exit(0)  # agent closed the request socket: the sandbox is being killed
            self._close_listener()
            op, seq = msg.get("op"), int(msg.get("seq", 0))
            code, flags = 0, 0
            if op == "run":
                code, flags = self.run(msg)
            elif op == "configure":
                self.configure(msg)
            elif op == "fork":
                seq = self.fork(fds, seq)
            elif op == "command":
                code = command_spawn.spawn(msg, fds)  # the command's pid (see command_spawn)
            elif op == "resume":
                os.chdir("/workspace")
            self.idle(seq, code, flags)

    def _close_listener(self) -> None:
        """The agent took the seccomp listener when it first saw this interpreter idle; it is
        closed before the first request, so user code never holds it."""
        if self.listener_open:
            self.listener_open = False
            try:
                os.close(seccomp.LISTENER_FD)
            except OSError:
                pass

    def idle(self, seq: int, exit_code: int = 0, flags: int = 0) -> None:
        """Op ``seq`` is done: record its exit code, then ask the agent to look (it checks that
        this thread really waits on fd 3 before it believes the page)."""
        status.write(self.page, seq, exit_code, flags)
        os.write(PY_FD, IDLE_FRAME)

    def configure(self, msg: dict) -> None:
        import resource

        os.environ.update({str(k): str(v) for k, v in (msg.get("env") or {}).items()})
        for res, key in (
            (resource.RLIMIT_NOFILE, "nofile"),
            (resource.RLIMIT_NPROC, "nproc"),
            (resource.RLIMIT_FSIZE, "fsize"),
            (resource.RLIMIT_DATA, "data"),
        ):
            if key in msg:
                soft, hard = resource.getrlimit(res)
                value = min(int(msg[key]), hard) if hard != resource.RLIM_INFINITY else int(msg[key])
                resource.setrlimit(res, (value, value))

    def run(self, msg: dict) -> tuple[int, int]:
        """Run one snippet; (exit code: 0 succeeded, else failed; status-page flags). ``stdin``: what
        ``sys.stdin`` reads during this run, then end of file (``input()`` works)."""
        code = msg.get("code", "")
        stdin = msg.get("stdin")
        sys.stdin = io.StringIO(stdin) if isinstance(stdin, str) else self.stdin
        self.display.begin()
        exit_code, flags = 0, 0
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # discard a stale pending SIGINT
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                self.display.run_cell(code, self.user_globals)
            finally:
                if os.getpid() != self.pid:
                    os._exit(0)  # a child forked by user code ran off the end of the snippet
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        except KeyboardInterrupt as exc:
            exit_code = 130
            self._report(exc)
        except SystemExit as exc:
            if exc.code is None or exc.code == 0:
                exit_code = 0
            elif isinstance(exc.code, int):
                exit_code = status.clamp_exit_code(exc.code) or 1
            else:
                print(exc.code, file=sys.stderr)
                exit_code = 1
        except BaseException as exc:
            exit_code = 1
            if isinstance(exc, MemoryError):
                flags |= status.FLAG_MEMORY_ERROR
            self._report(exc)
        try:
            self.display.flush_figures()  # figures still open: published (even after an error), closed
        except BaseException as exc:
            print(f"mem0: figures not published ({type(exc).__name__}: {exc})", file=sys.stderr)
        sys.stdin = self.stdin
        self.display.end()
        self._flush_and_drain()
        return exit_code, flags

    def _report(self, exc: BaseException) -> None:
        """An uncaught exception: its traceback on stderr, and as the run's structured error."""
        _print_user_traceback(exc)
        try:
            self.display.error(exc, _user_traceback(exc))
        except Exception:
            pass

    def _write_frame(self, frame: bytes) -> None:
        os.write(PY_FD, frame)  # <= PIPE_BUF: one atomic write

    def _flush_streams(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass

    def _flush_and_drain(self) -> None:
        """Return only once the agent has read all output: the idle frame must come after it."""
        self._flush_streams()
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

    def fork(self, fds: list[int], seq: int) -> int:
        """Clone this interpreter into new namespaces (see the module docstring)."""
        if len(fds) not in (6, 7):
            for fd in fds:
                os.close(fd)
            return seq
        self._forking = True
        try:
            pid = linux.clone_process(FORK_CLONE_FLAGS)
        except OSError:
            pid = -1  # the agent refused or the kernel did: the fork is not there, said by the agent
        finally:
            self._forking = False
        if pid == 0:
            self._become_fork(fds)
            return 0  # the fork's first idle: request 0 of its own channel
        for fd in fds:
            os.close(fd)
        return seq

    def _become_fork(self, fds: list[int]) -> None:
        """In C, PID 1 of the fork's namespaces: wait for the agent's "go", drop the new user
        namespace's capabilities, fork the fork's interpreter and stay as its init."""
        gc.disable()  # until K' is forked (it re-enables): no collection walks and copies the heap
        status.detach(self.page)  # the parent's page: never reachable from the fork
        ctl, out, err, py, page, reap, *init_binary = fds
        moves = [(out, 1), (err, 2), (ctl, CTL_FD), (py, PY_FD), (page, PAGE_FD), (reap, REAP_FD)]
        moves += [(fd, INIT_BINARY_FD) for fd in init_binary]
        tmp = [(os.dup(src), dst) for src, dst in moves]  # no move may overwrite a later source
        for src, dst in tmp:
            os.dup2(src, dst, inheritable=dst in (1, 2, PY_FD))
            os.close(src)
        os.closerange(INIT_BINARY_FD + 1, 1 << 20)
        try:  # the one slot below the targets that is none of them: a received descriptor may sit there
            os.close(seccomp.LISTENER_FD)
        except OSError:
            pass
        # self.sock wraps fd 3, which now is the fork's own request socket.
        self.sock.shutdown(socket.SHUT_WR)
        msg, extra = wire.recv(self.sock)
        if msg is None or msg.get("op") != "go":
            os._exit(0)
        # Now in the fork's cgroup: a cgroup namespace rooted there, as a spawned sandbox has.
        linux.unshare(linux.CLONE_NEWCGROUP)
        linux.loopback_up()  # the fork's own network namespace, as a spawned sandbox's
        isolation.drop_all_capabilities()
        linux.prctl(linux.PR_SET_DUMPABLE, 0)
        self._forking = True
        try:
            pid = os.fork()
        finally:
            self._forking = False
        if pid:
            # The fork's init: the compiled init by exec, so it stops holding (and pinning) a
            # copy-on-write image of the parent's memory; Python's loop when there is none.
            if init_binary:
                exec_reaper(INIT_BINARY_FD, REAP_FD)
            for fd in (0, 1, 2, CTL_FD, PY_FD, PAGE_FD):
                os.close(fd)
            reap_forever(REAP_FD)
        os.close(REAP_FD)
        if init_binary:
            os.close(INIT_BINARY_FD)
        gc.enable()
        self.pid = os.getpid()
        self.page = status.attach(PAGE_FD)
