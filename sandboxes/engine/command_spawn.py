"""Starting a command inside a sandbox (runs in the interpreter ``K``, on the agent's ``command`` op).

Why the interpreter starts it: ``K`` already holds exactly the sandbox's isolation (its user, PID,
mount, network, IPC, UTS and cgroup namespaces, its cgroups, the seccomp filter, no capability,
no_new_privs, the sandbox's rlimits and environment, uid 1000). A process it starts inherits all of
it by construction; nothing is joined or re-applied, so nothing can be forgotten. Entering from the
host side instead (setns into six namespaces, cgroup move, capability drop, seccomp load in the
right order, from a multi-threaded agent) would be a second isolation recipe to keep in step.

The command's parent is the sandbox's init (PID 1, which user code cannot signal, trace or read), so
the init reaps it and reports its wait status to the agent (``reaper.py``): its exit status is observed
by trusted code, never said by user code. Two ways to get there:
  * ``_launch`` (when the root has busybox, ``userland.py``): ``posix_spawn`` of ``busybox setsid
    PROGRAM`` as a process-group leader; busybox forks, its parent exits, its child (an orphan, so the
    init's) calls setsid() and execs the program. vfork-based: the interpreter is not copied.
  * ``clone(CLONE_PARENT)`` of the interpreter, whose child execs the program: the same result for
    ~5x the CPU (the interpreter's page tables are copied and both sides take copy-on-write faults).
The only value ``K`` hands back is the command's pid in the sandbox's PID namespace (or ``-errno``
when it could not be started), through the status page; the agent checks that pid against the
sandbox's own cgroup before it uses it (``commands.py``).

What the program starts with: a session and process group of its own (so the agent can end the
command's whole group on a timeout), the agent's pipes as stdin/stdout/stderr and no other descriptor
of the interpreter, an empty signal mask and default dispositions for the signals the interpreter
blocks or ignores (SIGINT is blocked between runs, SIGPIPE ignored; both would survive exec), the
working directory asked for (default the workspace). SIGXFSZ stays ignored, as for the interpreter.
"""

from __future__ import annotations

import errno
import os
import signal

from . import linux

MAX_ARGV = 4096
MAX_FD = 1 << 16
DEFAULT_CWD = "/home/sandbox"
LAUNCHER = "/usr/bin/busybox"  # ``userland.py``; without it, the clone path below
RESET_SIGNALS = frozenset(
    {signal.SIGPIPE, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2}
)


def _valid(argv, env, cwd) -> bool:
    if not isinstance(argv, list) or not 0 < len(argv) <= MAX_ARGV:
        return False
    if not all(isinstance(a, str) and "\x00" not in a for a in argv):
        return False
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        return False
    return isinstance(cwd, str) and "\x00" not in cwd


def spawn(msg: dict, fds: list[int]) -> int:
    """Start ``msg["argv"]`` with ``fds`` (stdin, stdout, stderr) as its stdio; the command's pid
    in this PID namespace, or ``-errno`` if it could not be started. Always closes ``fds``."""
    argv, env, cwd = msg.get("argv"), msg.get("env") or {}, msg.get("cwd") or DEFAULT_CWD
    try:
        if len(fds) != 3 or not _valid(argv, env, cwd):
            return -errno.EINVAL
        environ = {**os.environ, **env}
        if os.access(LAUNCHER, os.X_OK):
            return _launch(argv, environ, cwd, fds)
        try:
            pid = linux.clone_process(linux.CLONE_PARENT)
        except OSError as exc:
            return -(exc.errno or errno.EAGAIN)
        if pid == 0:
            _exec(argv, environ, cwd, fds)
        return pid
    except Exception:  # e.g. user code left a NUL in os.environ: the command fails, the interpreter stays
        return -errno.EINVAL
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _resolve(program: str, path: str) -> str | None:
    """``program`` as execvp would find it (a name with a slash is used as it is)."""
    if "/" in program:
        return program
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _launch(argv: list[str], environ: dict, cwd: str, fds: list[int]) -> int:
    """The fast path (~0.9 ms of CPU against ~4.6 ms for cloning the interpreter, measured in a sandbox
    on the 2-vCPU host): ``posix_spawn`` (vfork: no copy of the interpreter's page tables, no
    copy-on-write faults after it) of ``busybox setsid PROGRAM...`` as a process-group leader, so that
    busybox's setsid() fails and it forks: its parent exits at once (this interpreter reaps it) and its
    child calls setsid() and execs the program, an orphan whose parent is then the sandbox's init. The
    program is resolved here, to an absolute path, so busybox runs it and not an applet of that name
    (its argv[0] is that path). The pid: the launcher's child is the next pid allocated in this PID
    namespace; it is checked when still alive (its session is its own, its parent the launcher or the
    init, its stdout the command's pipe)."""
    program = _resolve(argv[0], environ.get("PATH", ""))
    if program is None:
        return -errno.ENOENT
    stdin_fd, out_fd, err_fd = fds
    pipe_ino = os.fstat(out_fd).st_ino
    actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds(exclude={0, 1, 2})]
    here = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # posix_spawn has no chdir before Python 3.13: the interpreter's for the instant of the spawn.
        os.chdir(cwd if cwd.startswith("/") else os.path.join(DEFAULT_CWD, cwd))
        launcher = os.posix_spawn(
            LAUNCHER, ["setsid", program, *argv[1:]], environ, file_actions=actions, setpgroup=0,
            setsigmask=(), setsigdef=RESET_SIGNALS,
        )
    except OSError as exc:
        return -(exc.errno or errno.EAGAIN)
    finally:
        os.fchdir(here)
        os.close(here)
    status = 0
    while True:
        try:
            status = os.waitpid(launcher, 0)[1]
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            break  # user code reaped it first
    if status != 0:
        return -errno.EAGAIN  # busybox exits 1 when its fork failed (the pids limit): nothing was started
    return _launched_pid(launcher, pipe_ino)


def _inheritable_fds(exclude: set[int]) -> list[int]:
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd in exclude:
            continue
        try:
            if os.get_inheritable(fd):
                found.append(fd)
        except OSError:
            pass  # the directory's own descriptor, closed by now
    return found


def _launched_pid(launcher: int, pipe_ino: int) -> int:
    guess = launcher + 1
    try:
        with open(f"/proc/{guess}/stat", "rb") as f:
            fields = f.read(512).rsplit(b")", 1)[1].split()
        ppid, sid = int(fields[1]), int(fields[3])
        if sid == guess and ppid in (launcher, 1) and os.readlink(f"/proc/{guess}/fd/1") == f"pipe:[{pipe_ino}]":
            return guess
    except (OSError, ValueError, IndexError):
        return guess  # already gone: its exit report names it
    for name in os.listdir("/proc"):  # another process took the next pid: find the command by its pipe
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/fd/1") == f"pipe:[{pipe_ino}]" and os.getsid(int(name)) == int(name):
                    return int(name)
            except OSError:
                continue
    return guess


def _exec(argv: list[str], environ: dict, cwd: str, fds: list[int]) -> None:
    """The child: never returns (exec, or exit 126/127 with the reason on its stderr)."""
    code = 127
    try:
        os.setsid()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)  # inheritable
        os.closerange(3, MAX_FD)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(cwd if cwd.startswith("/") else os.path.join(DEFAULT_CWD, cwd))
        code = 126
        os.execvpe(argv[0], argv, environ)
    except BaseException as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        if isinstance(exc, FileNotFoundError) and code == 126:
            code = 127
        try:
            os.write(2, f"mem0: {argv[0][:200]}: {reason}\n".encode(errors="replace"))
        except OSError:
            pass
    os._exit(code)
