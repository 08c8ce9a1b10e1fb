"""The agent's answer to an interpreter's clone(CLONE_NEWUSER…), the one namespace-creating call
the seccomp filter does not refuse outright (``seccomp.seccomp_filter``): it waits for this
gate, which lets it through once for an interpreter the agent has just asked to fork, with
exactly the fork's flags, and refuses every other with EPERM.

Each spawned sandbox's filter has its own listener; forks inherit their parent's filter, so
one listener serves a sandbox and all its forks. The notification names the calling thread's
pid as the agent sees it; the agent knows its interpreters' pids from /proc, not from them.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import struct
import threading

log = logging.getLogger("mem0.engine.forkgate")

# ioctl numbers of <linux/seccomp.h>: _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1, resp)
SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
_NOTIF = struct.Struct("<QIIiIQ6Q")  # id, pid, flags, nr, arch, ip, args[6]: 80 bytes
_RESP = struct.Struct("<QqiI")  # id, val, error, flags: 24 bytes
SYS_clone = 56
AUDIT_ARCH_X86_64 = 0xC000003E


class ForkGate:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expected: dict[int, int] = {}  # interpreter host pid -> the clone flags asked for
        self._refused: dict[int, int] = {}  # pid -> refusals, to keep the log bounded

    def expect(self, pid: int, flags: int) -> None:
        """Let the next clone(flags) of interpreter ``pid`` through (once)."""
        with self._lock:
            self._expected[pid] = flags

    def forget(self, pid: int) -> None:
        with self._lock:
            self._expected.pop(pid, None)

    def on_notification(self, listener: int) -> None:
        """Hub callback: answer one pending notification (the caller waits until we do)."""
        buf = bytearray(_NOTIF.size)
        try:
            fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EINTR):  # ENOENT: the caller died first
                log.warning("event=forkgate_recv_failed errno=%s", exc.errno)
            return
        nid, pid, _, nr, arch, _, *args = _NOTIF.unpack(buf)
        with self._lock:
            wanted = self._expected.get(pid)
            allowed = (
                nr == SYS_clone and arch == AUDIT_ARCH_X86_64 and wanted is not None and args[0] == wanted
            )
            if allowed:
                del self._expected[pid]
        if not allowed:
            count = self._refused[pid] = self._refused.get(pid, 0) + 1
            if count & (count - 1) == 0:  # 1st, 2nd, 4th, 8th…: a loop cannot flood the log
                log.warning("event=namespace_refused pid=%d nr=%d flags=%#x count=%d", pid, nr, args[0], count)
            if len(self._refused) > 4096:
                self._refused.clear()
        resp = (
            _RESP.pack(nid, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)
            if allowed
            else _RESP.pack(nid, 0, -errno.EPERM, 0)
        )
        try:
            fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, bytearray(resp), True)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                log.warning("event=forkgate_send_failed errno=%s", exc.errno)
