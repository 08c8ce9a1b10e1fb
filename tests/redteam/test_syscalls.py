"""Hostile programs against the syscall filter: other ABIs, device nodes, terminal injection, file handles,
and the host-wide syscalls (clock, accounting, swap, reboot, kernel log, raw I/O) user code has no use for."""

import pytest

from tests.redteam.harness import DENIED, Hostile, denied, each, table

# Machine code run from an executable mapping: `mov eax, NR; int 0x80; ret` (the i386 ABI from 64-bit code).
INT80 = r"""
import ctypes, mmap
def int80(nr):
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(b"\xb8" + nr.to_bytes(4, "little") + b"\xcd\x80\xc3")
    ret = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))()
    return "OK" if ret >= 0 else _name(-ret)
"""

PROGRAMS = [
    Hostile(
        "base_i386_int80_getpid",
        "i386 getpid through int 0x80 (the 32-bit table seccomp rules for x86_64 do not cover) -> killed or refused",
        INT80 + "print('int80_getpid', probe(int80, 20))",
        denied("int80_getpid"),
    ),
    Hostile(
        "base_i386_int80_mount",
        "i386 mount (nr 21) through int 0x80 -> killed or refused",
        INT80 + "print('int80_mount', probe(int80, 21))",
        denied("int80_mount"),
    ),
    Hostile(
        "base_x32_syscalls",
        "x32 ABI getpid and unshare (__X32_SYSCALL_BIT | nr) -> killed or refused",
        "print('x32_getpid', probe(sc, 0x40000000 | 39))\nprint('x32_unshare', probe(sc, 0x40000000 | 272, 0x20000))",
        denied("x32_getpid", "x32_unshare"),
    ),
    Hostile(
        "base_mknod_char_device",
        "mknod a character device (1,3 = /dev/null's numbers; 1,1 = /dev/mem) in /tmp and /workspace -> refused",
        "import stat\nfor path, dev in (('/tmp/null', (1, 3)), ('/workspace/mem', (1, 1))):\n"
        "    print('mknod', path, probe(err, os.mknod, path, stat.S_IFCHR | 0o666, os.makedev(*dev)))",
        denied("mknod /tmp/null", "mknod /workspace/mem"),
    ),
    Hostile(
        "base_mknod_block_device",
        "mknod a block device (8,0 = the first disk) -> refused",
        "import stat\nprint('mknod_block', probe(err, os.mknod, '/tmp/sda', stat.S_IFBLK | 0o666, os.makedev(8, 0)))",
        denied("mknod_block"),
    ),
    Hostile(
        "base_tiocsti_tioclinux",
        "ioctl TIOCSTI (inject keystrokes) and TIOCLINUX on stdin, stdout and stderr -> refused by the filter",
        "import fcntl\nfor fd in (0, 1, 2):\n"
        "    print('TIOCSTI', fd, probe(err, fcntl.ioctl, fd, 0x5412, b'x'))\n"
        "    print('TIOCLINUX', fd, probe(err, fcntl.ioctl, fd, 0x541C, b'\\x0b'))",
        denied("TIOCSTI 0", "TIOCLINUX 2"),
    ),
    Hostile(
        "base_file_handles",
        "name_to_handle_at('/') then open_by_handle_at (the 'shocker' escape) -> refused",
        "import struct\nhandle = buf(struct.pack('<Ii', 120, 0), size=128)\nmount_id = buf(size=8)\n"
        "print('name_to_handle_at', probe(sc, 303, -100, buf(b'/'), handle, mount_id, 0))\n"
        "print('open_by_handle_at', probe(sc, 304, -100, handle, 0))",
        denied("name_to_handle_at", "open_by_handle_at"),
    ),
    Hostile(
        "base_acct",
        "acct('/tmp/acct') (process accounting of the host) -> refused",
        "open('/tmp/acct', 'w').close()\nprint('acct', probe(sc, 163, buf(b'/tmp/acct')))",
        denied("acct"),
    ),
    Hostile(
        "base_set_clock",
        "settimeofday, clock_settime and adjtimex on the host clock -> refused",
        "import time, struct\nnow = struct.pack('<qq', int(time.time()) + 3600, 0)\n"
        "print('settimeofday', probe(sc, 164, buf(now), 0))\nprint('clock_settime', probe(sc, 227, 0, buf(now)))\n"
        "print('adjtimex', probe(sc, 159, buf(struct.pack('<I', 1), size=208)))",
        denied("settimeofday", "clock_settime", "adjtimex"),
    ),
    Hostile(
        "base_reboot",
        "reboot(LINUX_REBOOT_CMD_CAD_OFF) -> refused",
        "print('reboot', probe(sc, 169, 0xfee1dead, 672274793, 0, 0))",
        denied("reboot"),
    ),
    Hostile(
        "base_swapon",
        "swapon a file in /tmp, swapoff -> refused",
        "open('/tmp/swap', 'wb').write(bytes(65536))\n"
        "print('swapon', probe(sc, 167, buf(b'/tmp/swap'), 0))\nprint('swapoff', probe(sc, 168, buf(b'/tmp/swap')))",
        denied("swapon", "swapoff"),
    ),
    Hostile(
        "base_syslog",
        "syslog(SYSLOG_ACTION_READ_ALL): read the host kernel log -> refused",
        "print('syslog', probe(sc, 103, 3, buf(size=4096), 4096))",
        denied("syslog"),
    ),
    Hostile(
        "base_raw_io_ports",
        "iopl(3) and ioperm(0x80) for raw port I/O -> refused",
        "print('iopl', probe(sc, 172, 3))\nprint('ioperm', probe(sc, 173, 0x80, 1, 1))",
        denied("iopl", "ioperm"),
    ),
    Hostile(
        "base_pidfd_getfd_kcmp",
        "pidfd_getfd on pid 1 (steal the init's descriptors) and kcmp -> refused",
        "def steal():\n    pidfd = os.pidfd_open(1)\n    return sc(438, pidfd, 0, 0)\n"
        "print('pidfd_getfd', probe(steal))\nprint('kcmp', probe(sc, 312, 1, os.getpid(), 0, 0, 0))",
        denied("pidfd_getfd", "kcmp"),
    ),
    Hostile(
        "base_umount_proc",
        "umount2('/proc', MNT_DETACH) and umount2('/workspace') to uncover what is below -> refused",
        "print('umount /proc', probe(sc, 166, buf(b'/proc'), 2))\nprint('umount /workspace', probe(sc, 166, buf(b'/workspace'), 2))",
        denied("umount /proc", "umount /workspace"),
    ),
    Hostile(
        "base_new_mount_api",
        "fsopen('tmpfs') and open_tree('/', OPEN_TREE_CLONE) (the new mount API) -> refused",
        "print('fsopen', probe(sc, 430, buf(b'tmpfs'), 0))\nprint('open_tree', probe(sc, 428, -100, buf(b'/'), 1))",
        denied("fsopen", "open_tree"),
    ),
    Hostile(
        "base_become_root",
        "setuid(0), setgid(0), setgroups([0]) and chown of a file to root -> refused",
        "open('/tmp/mine', 'w').close()\n"
        "print('setuid', probe(err, os.setuid, 0))\nprint('setgid', probe(err, os.setgid, 0))\n"
        "print('setgroups', probe(err, os.setgroups, [0]))\nprint('chown', probe(err, os.chown, '/tmp/mine', 0, 0))",
        denied("setuid", "setgid", "setgroups", "chown"),
    ),
    Hostile(
        "base_fanotify_quotactl_vhangup",
        "fanotify_init (filesystem-wide monitoring), quotactl and vhangup -> refused",
        "print('fanotify_init', probe(sc, 300, 0, 0))\nprint('quotactl', probe(sc, 179, 0x800007, buf(b'/'), 0, 0))\n"
        "print('vhangup', probe(sc, 153))",
        denied("fanotify_init", "quotactl", "vhangup"),
    ),
    Hostile(
        "base_seccomp_cannot_be_loosened",
        "prctl(PR_SET_SECCOMP, SECCOMP_MODE_DISABLED)/PR_SET_NO_NEW_PRIVS 0 -> refused; the filter stays",
        "print('seccomp_off', probe(sc, 157, 22, 0, 0, 0, 0))\nprint('nnp_off', probe(sc, 157, 38, 0, 0, 0, 0))\n"
        "status = open('/proc/self/status').read()\n"
        "print('filter', 'kept' if 'Seccomp:\\t2' in status and 'NoNewPrivs:\\t1' in status else 'GONE')",
        each(DENIED | {"EINVAL", "kept"}, "seccomp_off", "nnp_off", "filter"),
    ),
]


@pytest.mark.parametrize("program", table(PROGRAMS))
def test_syscalls(program, arena):
    arena.play(program, "syscalls")
