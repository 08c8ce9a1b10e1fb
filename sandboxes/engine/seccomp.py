"""The seccomp policy of every sandbox process (the last isolation step, ``isolation.py``): the
syscalls sandboxed code has no use for, each with its reason; the socket families it may use; no
namespace it can make (clone(CLONE_NEWUSER) waits for the agent's ``forkgate``). Compiled once per
zygote to a BPF program; installed with a user-notification listener the agent takes.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import tempfile

import pyseccomp

from . import linux

# Syscalls sandboxed code has no use for, each with the reason it is denied (EPERM).
DENIED_SYSCALLS = {
    "ptrace": "inspect/modify other processes",
    "process_vm_readv": "read another process's memory",
    "process_vm_writev": "write another process's memory",
    "mount": "filesystem layout is fixed",
    "umount2": "would reveal what a mount hides",
    "pivot_root": "root is fixed",
    "chroot": "root is fixed",
    "move_mount": "new mount API",
    "open_tree": "new mount API",
    "fsopen": "new mount API",
    "fsconfig": "new mount API",
    "fsmount": "new mount API",
    "fspick": "new mount API",
    "mount_setattr": "new mount API",
    "setns": "joining other namespaces",
    "kexec_load": "replace kernel",
    "kexec_file_load": "replace kernel",
    "init_module": "kernel modules",
    "finit_module": "kernel modules",
    "delete_module": "kernel modules",
    "bpf": "kernel attack surface",
    "perf_event_open": "kernel attack surface / side channels",
    "keyctl": "kernel keyrings are not namespaced",
    "add_key": "kernel keyrings",
    "request_key": "kernel keyrings",
    "userfaultfd": "exploit primitive",
    "io_uring_setup": "bypasses seccomp",
    "io_uring_enter": "bypasses seccomp",
    "io_uring_register": "bypasses seccomp",
    "open_by_handle_at": "escapes mount restrictions",
    "name_to_handle_at": "file handles",
    "swapon": "host swap",
    "swapoff": "host swap",
    "reboot": "host power",
    "iopl": "raw I/O",
    "ioperm": "raw I/O",
    "acct": "host accounting",
    "quotactl": "host quotas",
    "settimeofday": "host clock",
    "clock_settime": "host clock",
    "clock_adjtime": "host clock",
    "adjtimex": "host clock",
    "syslog": "kernel log",
    "vhangup": "terminals",
    "lookup_dcookie": "profiling",
    "fanotify_init": "filesystem-wide monitoring",
    "personality": "disables ASLR and other protections",
    "uselib": "obsolete",
    "ustat": "obsolete",
    "sysfs": "obsolete",
    "nfsservctl": "obsolete",
    "pidfd_getfd": "steal descriptors",
    "kcmp": "probe other processes",
}


def seccomp_filter() -> pyseccomp.SyscallFilter:
    f = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    deny = pyseccomp.ERRNO(errno.EPERM)
    for name in DENIED_SYSCALLS:
        try:
            f.add_rule(deny, name)
        except (OSError, ValueError, RuntimeError):
            pass  # not a syscall on this architecture
    # Namespaces. Without capabilities the kernel refuses every CLONE_NEW* flag except
    # CLONE_NEWUSER, the kernel's largest unprivileged attack surface: unshare() may create
    # none (but a cgroup namespace: a fork's first process, which holds the capabilities of its
    # new user namespace until it drops them, makes one so that its /proc/self/cgroup reads
    # "/"; without a capability the kernel refuses it), and clone(CLONE_NEWUSER…) waits for
    # the agent (user notification), which lets exactly one through for a fork it asked for and
    # refuses every other with EPERM.
    for flag in NAMESPACE_FLAGS:
        if flag == linux.CLONE_NEWCGROUP:
            continue
        f.add_rule(deny, "unshare", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    f.add_rule(
        pyseccomp.NOTIFY, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, linux.CLONE_NEWUSER, linux.CLONE_NEWUSER)
    )
    # clone3 passes flags in memory, which seccomp cannot inspect: ENOSYS makes libc fall back to clone.
    f.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    # Device nodes: mknod of character/block devices; FIFOs and sockets stay allowed.
    for kind in (stat.S_IFCHR, stat.S_IFBLK):
        f.add_rule(deny, "mknod", pyseccomp.Arg(1, pyseccomp.MASKED_EQ, 0o170000, kind))
        f.add_rule(deny, "mknodat", pyseccomp.Arg(2, pyseccomp.MASKED_EQ, 0o170000, kind))
    _allow_socket_families(f)
    # TIOCSTI / TIOCLINUX: inject keystrokes into a terminal.
    f.add_rule(deny, "ioctl", pyseccomp.Arg(1, pyseccomp.MASKED_EQ, 0xFFFFFFFF, 0x5412))
    f.add_rule(deny, "ioctl", pyseccomp.Arg(1, pyseccomp.MASKED_EQ, 0xFFFFFFFF, 0x541C))
    return f


# Socket families user code may create: local sockets, IPv4 and IPv6 (the network namespace has
# only ``lo``), and netlink for NETLINK_ROUTE alone (getaddrinfo/if_nameindex read addresses
# through it). Every other family (AF_VSOCK reaches the hypervisor, AF_PACKET raw frames, AF_ALG
# the kernel crypto API, AF_BLUETOOTH, AX25, other netlink protocols...) is old, rarely audited
# kernel code with a history of privilege escalations, and has no use here.
ALLOWED_SOCKET_FAMILIES = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK)
NETLINK_ROUTE = 0


def _allow_socket_families(f: pyseccomp.SyscallFilter) -> None:
    """``socket``/``socketpair`` fail with EAFNOSUPPORT for every family not allow-listed.

    libseccomp ORs the rules of one syscall and allows one comparison per argument in a rule,
    so the allow-list is written as its complement: each refused family below the highest
    allowed one, then every value above it (compared on all 64 bits: a family with high bits
    set, which the kernel truncates to an int, is refused too)."""
    refuse = pyseccomp.ERRNO(errno.EAFNOSUPPORT)
    top = max(ALLOWED_SOCKET_FAMILIES)
    for name in ("socket", "socketpair"):
        for family in range(top):
            if family not in ALLOWED_SOCKET_FAMILIES:
                f.add_rule(refuse, name, pyseccomp.Arg(0, pyseccomp.EQ, family))
        f.add_rule(refuse, name, pyseccomp.Arg(0, pyseccomp.GT, top))
        f.add_rule(
            refuse,
            name,
            pyseccomp.Arg(0, pyseccomp.EQ, socket.AF_NETLINK),
            pyseccomp.Arg(2, pyseccomp.NE, NETLINK_ROUTE),
        )


def compile_seccomp() -> bytes:
    """The filter as a BPF program. Compiled once in the zygote: libseccomp regenerates the
    program on every ``load()``, which cost 0.3-9 ms per sandbox here; loading bytes is one syscall."""
    with tempfile.TemporaryFile() as f:
        seccomp_filter().export_bpf(f)
        f.seek(0)
        return f.read()


LISTENER_FD = 6  # the seccomp listener, until the agent has taken it (see ``kernel.py``)
NAMESPACE_FLAGS = (
    linux.CLONE_NEWNS,
    linux.CLONE_NEWCGROUP,
    linux.CLONE_NEWUTS,
    linux.CLONE_NEWIPC,
    linux.CLONE_NEWUSER,
    linux.CLONE_NEWPID,
    linux.CLONE_NEWNET,
    0x00000080,  # CLONE_NEWTIME
)


def load_seccomp(program: bytes) -> None:
    """Install the filter; its listener goes to ``LISTENER_FD`` for the agent to take."""
    listener = linux.load_seccomp_bpf(program, linux.SECCOMP_FILTER_FLAG_NEW_LISTENER)
    if listener != LISTENER_FD:
        os.dup2(listener, LISTENER_FD, inheritable=False)
        os.close(listener)
