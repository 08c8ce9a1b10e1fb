"""Starting a command inside a sandbox (runs in the interpreter ``K``, on the agent's ``command`` op).

Why the interpreter starts it: ``K`` already holds exactly the sandbox's isolation (its user, PID,
mount, network, IPC, UTS and cgroup namespaces, its cgroups, the seccomp filter, no capability,
no_new_privs, the sandbox's rlimits and environment, uid 1000). A process it clones inherits all of
it by construction; nothing is joined or re-applied, so nothing can be forgotten. Entering from the
host side instead (setns into six namespaces, cgroup move, capability drop, seccomp load in the
right order, from a multi-threaded agent) would be a second isolation recipe to keep in step.

The command is cloned with ``CLONE_PARENT``: its parent is the sandbox's init (PID 1, which user
code cannot signal, trace or read), so the init reaps it and reports its wait status to the agent
(``reaper.py``). Its exit status is therefore observed by trusted code, never said by user code.
The only value ``K`` hands back is the command's pid in the sandbox's PID namespace (or ``-errno``
when the clone failed), through the status page; the agent checks that pid against the sandbox's
own cgroup before it uses it (``commands.py``).

In the child, before ``execve``: a session of its own (so the agent can end the command's whole
process group on a timeout), the agent's pipes as stdin/stdout/stderr and nothing else open, the
signal mask and SIGPIPE/SIGINT back to their defaults (the interpreter blocks SIGINT between runs
and ignores SIGPIPE; both would survive exec), then the working directory and the program.
"""

from __future__ import annotations

import errno
import os
import signal

from . import linux

MAX_ARGV = 4096
MAX_FD = 1 << 16
DEFAULT_CWD = "/home/sandbox"


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
        try:
            pid = linux.clone_process(linux.CLONE_PARENT)
        except OSError as exc:
            return -(exc.errno or errno.EAGAIN)
        if pid == 0:
            _exec(argv, environ, cwd, fds)
        return pid
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


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
