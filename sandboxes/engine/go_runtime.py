"""The control loop of a Go sandbox (inside it): each run builds the code as a main package and runs it.

A Go sandbox is made like a Python one (a zygote of its own with nothing preloaded, the same
isolation, limits, metering, warm pool and channels): this small Python control loop is its
"interpreter", and only ``run`` differs. Per run, in the sandbox's own processes (so the compiler has exactly
the sandbox's isolation, and its time and CPU count toward the run's timeout and metering):
  1. ``go_source.main_package``: the code, wrapped into ``package main`` when it is a snippet;
  2. the program cache: a binary built from the same source by the same toolchain is run again without
     building (``PROGRAMS``, in the sandbox's private /tmp: its own, lost with it);
  3. otherwise ``go build`` in a private build directory, with the shared read-only standard-library
     cache (``go_toolchain``) as GOCACHE: only package main is compiled, then linked. A failure ends
     the run ``compile_error`` (status page flag) with the compiler's messages (bounded) on stderr;
  4. the binary runs in /workspace with the sandbox's environment; its stdout and stdin are the
     sandbox's own, its stderr passes through here (to spot the Go runtime's out-of-memory death,
     labelled ``limit: "memory"`` like Python's MemoryError) and on to the sandbox's stderr.
Exit: 0 succeeded; a panic 2 (Go's code) with the panic on stderr; os.Exit(n) n; a signal 128+n.
A Go sandbox has no state between runs but its files: a fork is a fresh sandbox with a copy of the
workspace (``memory: "fresh"``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import resource
import selectors
import signal
import subprocess
import sys
import threading

from . import go_source, go_toolchain, status
from .kernel import Kernel

WORK = "/tmp/.mem0-go"
PROGRAMS = f"{WORK}/programs"  # built binaries by source digest
BUILD = f"{WORK}/build"
PROGRAMS_KEPT = 8
PROGRAMS_BYTES = 24 << 20  # /tmp is small (64 MiB) and shared with the user's files
MESSAGES_BYTES = 64 << 10  # compiler output shown (the rest is read and dropped)
FUTURE_MTIME = 4102444800  # 2100-01-01: Go never writes a module index of these files (see go_toolchain)
# The Go runtime's words when an allocation fails (its goroutine dump follows: seen anywhere in stderr).
OUT_OF_MEMORY = re.compile(rb"fatal error: (?:runtime: )?out of memory")
CARRY_BYTES = 64
# A build that died for want of memory (RLIMIT_DATA): a memory limit, not the code's compile error. The
# go command links libc: its threads' stacks come from pthread_create, which fails with EAGAIN.
# At a line's start: the compiler's messages start with a position, so a string literal quoted in one
# cannot pass for these.
BUILD_OUT_OF_MEMORY = re.compile(
    r"^(?:fatal error: (?:runtime: )?out of memory|runtime/cgo: pthread_create failed: Resource temporarily)",
    re.M,
)
# glibc gives each thread of the go command a stack of RLIMIT_STACK (8 MiB by default), and RLIMIT_DATA
# counts it: 2 MiB, and the build's GOMAXPROCS bounded (else it follows the host's CPUs, not the
# sandbox's share), let a small program build within 64 MiB (it failed at 96 MiB before). Go programs
# themselves (no cgo) make their threads' stacks in Go; other programs may raise it to the hard limit.
THREAD_STACK_BYTES = 2 << 20
BUILD_PROCS = 2


class GoKernel(Kernel):
    """``Kernel`` with Go runs; every other op (configure, resume) is the same."""

    toolchain_id = ""

    def __init__(self) -> None:
        super().__init__()
        soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
        if soft == resource.RLIM_INFINITY or soft > THREAD_STACK_BYTES:
            resource.setrlimit(resource.RLIMIT_STACK, (THREAD_STACK_BYTES, hard))

    def run(self, msg: dict) -> tuple[int, int]:
        """Build and run one program; (exit code, status-page flags)."""
        code = msg.get("code", "")
        exit_code, flags = 0, 0
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # discard a stale pending SIGINT
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                exit_code, flags = self._build_and_run(code)
            finally:  # a SIGINT landing here is caught below, as one during the run
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        except KeyboardInterrupt:
            exit_code, flags = 130, 0  # timeout, output cap: the agent killed the build or the program
        except OSError as exc:  # e.g. no pid left to start the build (the pids limit)
            print(f"mem0: {exc}", file=sys.stderr)
            exit_code, flags = 1, 0
        self._flush_and_drain()
        return exit_code, flags

    def _build_and_run(self, code: str) -> tuple[int, int]:
        try:
            source = go_source.main_package(code)
        except go_source.GoSourceError as exc:
            print(f"{go_source.FILENAME}: {exc}", file=sys.stderr)
            return 1, status.FLAG_COMPILE_ERROR
        binary = f"{PROGRAMS}/{self._digest(source)}"
        if os.path.exists(binary):
            os.utime(binary)  # most recently used: kept longest
        else:
            ok, messages = _build(source, binary)
            if not ok:
                sys.stderr.write(messages)
                if BUILD_OUT_OF_MEMORY.search(messages):
                    return 1, status.FLAG_MEMORY_ERROR
                return 1, status.FLAG_COMPILE_ERROR
            _prune_programs(keep=binary)
        return _execute(binary)

    def _digest(self, source: str) -> str:
        if not self.toolchain_id:
            goroot = _goroot()
            with open(f"{goroot}/VERSION") as f:
                version = f.readline().strip()
            GoKernel.toolchain_id = (
                f"{version} {goroot} {go_toolchain.PROGRAM_FLAGS} {go_toolchain.BUILD_ENV}"
            )
        return hashlib.sha256(f"{self.toolchain_id}\0{source}".encode()).hexdigest()[:32]


def _goroot() -> str:
    return os.path.dirname(os.path.dirname(os.path.realpath(go_toolchain.GO_BINARY)))


def _build(source: str, binary: str) -> tuple[bool, str]:
    """``go build`` of ``source`` into ``binary``: (built, compiler messages for the user)."""
    os.makedirs(BUILD, exist_ok=True)
    os.makedirs(PROGRAMS, exist_ok=True)
    for name, text in (
        ("go.mod", f"module sandbox\n\ngo {_language_version()}\n"),
        (go_source.FILENAME, source),
    ):
        path = f"{BUILD}/{name}"
        with open(path, "w") as f:
            f.write(text)
        os.utime(path, (FUTURE_MTIME, FUTURE_MTIME))
    partial = f"{binary}.partial"
    env = go_toolchain.build_env(_goroot(), WORK, go_toolchain.GOCACHE_PATH)
    env["GOMAXPROCS"] = str(min(os.cpu_count() or 1, BUILD_PROCS))
    proc = subprocess.Popen(
        [go_toolchain.GO_BINARY, "build", *go_toolchain.PROGRAM_FLAGS, "-o", partial, "."],
        cwd=BUILD,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        messages = _read_bounded(proc.stdout, MESSAGES_BYTES)
        code = proc.wait()
    finally:
        _reap(proc)
    if code == 0 and os.path.exists(partial):
        os.replace(partial, binary)
        return True, ""
    return False, _user_messages(messages, code)


def _language_version() -> str:
    """The go.mod ``go`` line: the toolchain's own language version (go1.19.8 -> 1.19)."""
    with open(f"{_goroot()}/VERSION") as f:
        version = f.readline().strip().removeprefix("go")
    return ".".join(version.split(".")[:2])


def _read_bounded(stream, limit: int) -> bytes:
    """The first ``limit`` bytes of ``stream``, read to its end (the writer never blocks on a full pipe)."""
    kept = bytearray()
    while True:
        chunk = stream.read1(65536)
        if not chunk:
            return bytes(kept)
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]


def _user_messages(raw: bytes, code: int) -> str:
    """The compiler's messages as the user should read them: no package header, no build paths."""
    text = raw.decode("utf-8", errors="replace").replace(f"{BUILD}/", "").replace(WORK, "")
    lines = [line for line in text.splitlines() if not line.startswith("# sandbox")]
    if len(raw) >= MESSAGES_BYTES:
        lines.append("mem0: compiler output truncated")
    if code < 0:
        lines.append(f"mem0: the compiler was killed by signal {-code}")
    return "\n".join(lines) + "\n"


def _prune_programs(keep: str) -> None:
    """Keep the program cache within ``PROGRAMS_KEPT`` binaries and ``PROGRAMS_BYTES``, newest first."""
    entries = []
    for name in os.listdir(PROGRAMS):
        path = f"{PROGRAMS}/{name}"
        try:
            st = os.stat(path)
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, path))
    entries.sort(reverse=True)
    total = 0
    for kept, (_, size, path) in enumerate(entries):
        total += size
        if path != keep and (kept >= PROGRAMS_KEPT or total > PROGRAMS_BYTES or path.endswith(".partial")):
            try:
                os.unlink(path)
            except OSError:
                pass


def _execute(binary: str) -> tuple[int, int]:
    """Run the program: stdout straight to the sandbox's, stderr through here; (exit code, flags)."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        proc = subprocess.Popen(["main"], executable=binary, stdin=0, stdout=1, stderr=err_w)
    finally:
        os.close(err_w)
    watch = _StderrWatch()
    try:
        _forward_stderr(proc, err_r, watch)
        code = proc.wait()
    finally:
        _reap(proc)
    flags = 0
    if code == 2 and watch.out_of_memory:
        flags |= status.FLAG_MEMORY_ERROR
    if code < 0:
        return 128 - code, flags
    return status.clamp_exit_code(code), flags


class _StderrWatch:
    """Whether the program's stderr said the Go runtime ran out of memory (a label only: the program
    writes what it likes there)."""

    def __init__(self) -> None:
        self.out_of_memory = False
        self.carry = b""

    def feed(self, data: bytes) -> None:
        _write_all(2, data)
        if not self.out_of_memory:
            self.out_of_memory = OUT_OF_MEMORY.search(self.carry + data) is not None
            self.carry = data[-CARRY_BYTES:]


def _forward_stderr(proc: subprocess.Popen, err_r: int, watch: _StderrWatch) -> None:
    """Copy the program's stderr to the sandbox's until the program exits. Processes the program
    leaves running keep writing there through a thread, as their stdout does."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(err_r, selectors.EVENT_READ)
            sel.register(pidfd, selectors.EVENT_READ)
            open_pipe, exited = True, False
            while open_pipe and not exited:
                for key, _ in sel.select():
                    if key.fd == pidfd:
                        exited = True
                        continue
                    data = os.read(err_r, 65536)
                    if not data:
                        open_pipe = False
                        sel.unregister(err_r)
                        break
                    watch.feed(data)
            if open_pipe:  # the program exited: what it wrote is in the pipe already
                fcntl.fcntl(err_r, fcntl.F_SETFL, os.O_NONBLOCK)
                while True:
                    try:
                        data = os.read(err_r, 65536)
                    except BlockingIOError:  # someone else still holds the pipe
                        fcntl.fcntl(err_r, fcntl.F_SETFL, 0)
                        threading.Thread(target=_forward_forever, args=(err_r,), daemon=True).start()
                        err_r = -1
                        break
                    if not data:
                        break
                    watch.feed(data)
    finally:
        os.close(pidfd)
        if err_r >= 0:
            os.close(err_r)


def _forward_forever(fd: int) -> None:
    try:
        while data := os.read(fd, 65536):
            _write_all(2, data)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _reap(proc: subprocess.Popen) -> None:
    """The child is gone when this returns (an interrupted wait would leave a zombie and a pipe)."""
    if proc.returncode is None:
        try:
            proc.kill()
        except OSError:
            pass
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
