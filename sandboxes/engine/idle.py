"""Is an interpreter idle? Observed from /proc, never taken from the sandbox's word.

An interpreter that has finished an op is blocked in ``recvmsg``/``recvfrom``/``read`` on its
request socket (fd 3). The agent checks that the process's main thread is blocked in such a
call on that descriptor, and that the descriptor is the very socket the agent handed over
(same inode), before it ends a run. User code can make this true only by blocking the main
thread on the request socket itself, that is by ending its own snippet: it can end its run
early (as returning does) but never extend it, hide CPU or speak for another sandbox.
"""

from __future__ import annotations

import os

# x86_64 syscall numbers of a blocking read on a socket.
_READ_SYSCALLS = {0, 45, 47}  # read, recvfrom, recvmsg
REQUEST_FD = 3


def blocked_on_request(host_pid: int, request_ino: int) -> bool:
    """True if ``host_pid``'s main thread waits for the agent's next request."""
    try:
        with open(f"/proc/{host_pid}/syscall", "rb") as f:
            fields = f.read(256).split()
        if len(fields) < 2 or not fields[0].isdigit() or int(fields[0]) not in _READ_SYSCALLS:
            return False
        if int(fields[1], 16) != REQUEST_FD:
            return False
        return os.readlink(f"/proc/{host_pid}/fd/{REQUEST_FD}") == f"socket:[{request_ino}]"
    except (OSError, ValueError):
        return False


def find_waiting(candidates: list[int], request_ino: int) -> int:
    """The one process among ``candidates`` blocked on the request socket ``request_ino`` (0 if none)."""
    for pid in candidates:
        if blocked_on_request(pid, request_ino):
            return pid
    return 0


def inside_pid(host_pid: int) -> int:
    """The pid of ``host_pid`` in its innermost PID namespace, as the kernel reports it."""
    try:
        with open(f"/proc/{host_pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return 0


CAP_FIELDS = (b"CapInh:", b"CapPrm:", b"CapEff:", b"CapBnd:", b"CapAmb:")


def holds_no_capability(host_pid: int) -> bool:
    """All five capability sets of ``host_pid`` are empty (read from /proc, not asked)."""
    try:
        with open(f"/proc/{host_pid}/status", "rb") as f:
            seen = [line.split()[1] for line in f if line.startswith(CAP_FIELDS)]
    except (OSError, IndexError):
        return False
    return len(seen) == len(CAP_FIELDS) and all(int(v, 16) == 0 for v in seen)
