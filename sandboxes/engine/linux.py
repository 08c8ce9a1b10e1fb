"""Thin ctypes wrappers for the Linux syscalls the engine needs and Python 3.11 lacks.

Each wrapper raises ``OSError`` with the real errno so an isolation step that fails aborts
loudly (fail closed). Numbers are for x86_64, the only architecture the agent supports.
"""

from __future__ import annotations

import ctypes
import os
import signal

_libc = ctypes.CDLL(None, use_errno=True)
# PyDLL keeps the GIL across the call: clone() must not race another Python thread.
_libc_gil = ctypes.PyDLL(None, use_errno=True)

SYS_clone = 56
SYS_capset = 126
SYS_pivot_root = 155
SYS_unshare = 272
SYS_setns = 308
SYS_open_tree = 428
SYS_move_mount = 429
SYS_openat2 = 437
SYS_fsopen = 430
SYS_fsconfig = 431
SYS_fsmount = 432
SYS_pidfd_getfd = 438
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_PARENT = 0x00008000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

OPEN_TREE_CLONE = 1
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_EMPTY_PATH = 0x1000

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

CAP_SYS_ADMIN = 21

# The device nodes a root gets (character devices, major 1: minor).
CHAR_DEVICES = {"null": 3, "zero": 5, "full": 7, "random": 8, "urandom": 9}
CAP_LAST_CAP = 40


def _check(ret: int, what: str) -> int:
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def clone_process(flags: int) -> int:
    """fork() with namespace flags: returns 0 in the child, the child's pid in the parent.

    ``os.fork`` cannot take CLONE_NEW* flags; unshare()+fork() would cost a second fork of a
    large zygote. The CPython fork hooks run around the raw syscall exactly as os.fork does.
    """
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = _libc_gil.syscall(SYS_clone, ctypes.c_ulong(flags | signal.SIGCHLD), None, None, None, None)
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    ctypes.pythonapi.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone: {os.strerror(err)}")
    return pid


def unshare(flags: int) -> None:
    _check(_libc.syscall(SYS_unshare, ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.syscall(SYS_setns, ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None
) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    ret = _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))
    _check(ret, f"mount {fstype or ''} {source} -> {target}")


def umount(target: str, flags: int = MNT_DETACH) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(SYS_pivot_root, new_root.encode(), put_old.encode()), "pivot_root")


def open_tree(path: str, flags: int) -> int:
    return _check(
        _libc.syscall(SYS_open_tree, -100, path.encode(), ctypes.c_uint(flags)), f"open_tree {path}"
    )


def move_mount_fd(fd: int, target: str) -> None:
    """Attach the detached mount ``fd`` at ``target`` in the caller's current mount namespace."""
    ret = _libc.syscall(
        SYS_move_mount, fd, b"", -100, target.encode(), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)
    )
    _check(ret, f"move_mount -> {target}")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2_beneath(dirfd: int, path: str, flags: int, mode: int = 0o644) -> int:
    """Open ``path`` strictly below ``dirfd``: no '..' escape, no symlinks, no magic links."""
    how = _OpenHow(
        flags | os.O_CLOEXEC,
        mode if flags & os.O_CREAT else 0,
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )
    ret = _libc.syscall(SYS_openat2, dirfd, path.encode(), ctypes.byref(how), ctypes.sizeof(how))
    return _check(ret, f"openat2 {path}")


def prctl(option: int, arg2: int = 0, arg3: int = 0) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), 0, 0), f"prctl {option}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def set_capabilities(keep: set[int]) -> None:
    """Set effective and permitted capabilities to exactly ``keep``; inheritable empty."""
    mask = sum(1 << c for c in keep)
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = mask & 0xFFFFFFFF
    data[1].effective = data[1].permitted = mask >> 32
    _check(_libc.syscall(SYS_capset, ctypes.byref(header), ctypes.byref(data)), "capset")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


SYS_seccomp = 317
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3


def load_seccomp_bpf(program: bytes, flags: int = 0) -> int:
    """Install a compiled classic-BPF seccomp program (8 bytes per instruction). With
    ``SECCOMP_FILTER_FLAG_NEW_LISTENER``, returns the user-notification listener's descriptor."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    return _check(
        _libc.syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, ctypes.c_uint(flags), ctypes.byref(prog)), "seccomp"
    )


def pidfd_getfd(pidfd: int, target_fd: int) -> int:
    """A duplicate of descriptor ``target_fd`` of the process behind ``pidfd`` (close-on-exec)."""
    return _check(_libc.syscall(SYS_pidfd_getfd, pidfd, target_fd, 0), "pidfd_getfd")


def procfs_mount(attrs: int = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC) -> int:
    """A detached procfs (``subset=pid``) of the caller's PID namespace (new mount API), as a
    mount descriptor.

    Made in the caller's mount namespace and attached elsewhere with ``move_mount_fd``: a new
    procfs mounted straight into a namespace owned by a user namespace is refused when that
    namespace's /proc has masked entries (the kernel's "mount too revealing" rule)."""
    fs = _check(_libc.syscall(SYS_fsopen, b"proc", 1), "fsopen proc")  # 1: FSOPEN_CLOEXEC
    try:
        # subset=pid, as every sandbox's procfs (``isolation.mount_proc``)
        _check(_libc.syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, b"subset", b"pid", 0), "fsconfig subset")
        _check(_libc.syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, b"source", b"proc", 0), "fsconfig source")
        _check(_libc.syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, None, None, 0), "fsconfig proc")
        return _check(_libc.syscall(SYS_fsmount, fs, 1, ctypes.c_uint(attrs)), "fsmount proc")
    finally:
        os.close(fs)


def sethostname(name: str) -> None:
    _check(_libc.sethostname(name.encode(), len(name)), "sethostname")


SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """Bring ``lo`` of the caller's network namespace up (needs CAP_NET_ADMIN over it)."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


SYS_renameat2 = 316
RENAME_NOREPLACE = 1


def renameat2(olddirfd: int, oldname: str, newdirfd: int, newname: str, noreplace: bool = False) -> None:
    """rename(2) between directory descriptors; with ``noreplace`` an existing target is EEXIST
    (atomically, unlike a check before the rename)."""
    flags = RENAME_NOREPLACE if noreplace else 0
    ret = _libc.syscall(
        SYS_renameat2, olddirfd, oldname.encode(), newdirfd, newname.encode(), ctypes.c_uint(flags)
    )
    _check(ret, f"renameat2 {oldname} -> {newname}")
