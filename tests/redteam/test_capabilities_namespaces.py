"""Hostile programs against capabilities and namespaces: user code holds no capability and can neither
create nor join a namespace, nor reach the syscalls DESIGN §4 denies (x86_64 syscall numbers)."""

import pytest

from tests.redteam.harness import Hostile, denied, prints, table


def unshare(flag_name: str, flag: int, item: str = "item2") -> Hostile:
    return Hostile(
        f"{item}_unshare_{flag_name.lower()}",
        f"unshare({flag_name}) in the interpreter's process -> refused (EPERM), no namespace made",
        f"print('unshare', probe(sc, 272, {flag:#x}))",
        denied("unshare"),
    )


PROGRAMS = [
    Hostile(
        "item2_capability_sets_empty",
        "read CapEff/CapPrm/CapBnd/CapInh/CapAmb of the interpreter -> all five are zero",
        "for line in open('/proc/self/status'):\n"
        "    if line.startswith('Cap'):\n"
        "        print(line.split()[0].rstrip(':'), line.split()[1])",
        prints(
            "".join(f"{s} 0000000000000000\n" for s in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"))
        ),
    ),
    unshare("CLONE_NEWNS", 0x00020000),
    unshare("CLONE_NEWNET", 0x40000000),
    unshare("CLONE_NEWUTS", 0x04000000),
    unshare("CLONE_NEWIPC", 0x08000000),
    unshare("CLONE_NEWPID", 0x20000000),
    unshare("CLONE_NEWCGROUP", 0x02000000),
    unshare("CLONE_NEWTIME", 0x00000080),
    unshare("CLONE_NEWUSER", 0x10000000, item="base"),
    Hostile(
        "item2_clone_newns",
        "clone(CLONE_NEWNS|SIGCHLD) (a fork into a new mount namespace) -> refused",
        "print('clone', probe(sc, 56, 0x00020000 | 17, 0, 0, 0, 0))",
        denied("clone"),
    ),
    Hostile(
        "base_clone3_newuser",
        "clone3 with CLONE_NEWUSER|CLONE_NEWNS in clone_args (flags seccomp cannot inspect) -> refused",
        "import struct\n"
        "args = struct.pack('<11Q', 0x10000000 | 0x00020000, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0)\n"
        "print('clone3', probe(sc, 435, buf(args), len(args)))",
        denied("clone3"),
    ),
    Hostile(
        "item2_setns_every_namespace",
        "open /proc/1/ns/* and /proc/self/ns/* and setns() into each -> every open or setns refused",
        "for who in ('1', 'self'):\n"
        "    for ns in ('mnt', 'net', 'pid', 'uts', 'ipc', 'user', 'cgroup', 'time'):\n"
        "        def join(path=f'/proc/{who}/ns/{ns}'):\n"
        "            try:\n"
        "                fd = os.open(path, os.O_RDONLY)\n"
        "            except OSError as e:\n"
        "                return _name(e.errno)\n"
        "            return sc(308, fd, 0)\n"
        "        print(f'setns {who} {ns}', probe(join))",
        denied("setns 1 mnt", "setns self net", "setns self user"),
    ),
    Hostile(
        "item2_sethostname",
        "sethostname('pwned') -> EPERM (no CAP_SYS_ADMIN)",
        "import socket\nprint('sethostname', probe(err, socket.sethostname, 'pwned'))",
        denied("sethostname"),
    ),
    Hostile(
        "item2_setdomainname",
        "setdomainname('pwned') -> EPERM (no CAP_SYS_ADMIN)",
        "print('setdomainname', probe(sc, 171, buf(b'pwned'), 5))",
        denied("setdomainname"),
    ),
    Hostile(
        "base_mount_tmpfs",
        "mount a tmpfs over /tmp, and over /workspace -> refused",
        "for target in (b'/tmp', b'/workspace'):\n"
        "    print('mount', target.decode(), probe(sc, 165, buf(b'none'), buf(target), buf(b'tmpfs'), 0, 0))",
        denied("mount /tmp", "mount /workspace"),
    ),
    Hostile(
        "base_chroot",
        "chroot('/tmp') -> refused",
        "print('chroot', probe(err, os.chroot, '/tmp'))",
        denied("chroot"),
    ),
    Hostile(
        "base_pivot_root",
        "pivot_root('/tmp', '/tmp') -> refused",
        "print('pivot_root', probe(sc, 155, buf(b'/tmp'), buf(b'/tmp')))",
        denied("pivot_root"),
    ),
    Hostile(
        "base_keyrings",
        "keyctl(GET_KEYRING_ID, session) and add_key('user', ...) -> refused (keyrings are not namespaced)",
        "print('keyctl', probe(sc, 250, 0, -3, 1))\n"
        "print('add_key', probe(sc, 248, buf(b'user'), buf(b'redteam'), buf(b'v'), 1, -3))",
        denied("keyctl", "add_key"),
    ),
    Hostile(
        "base_bpf",
        "bpf(BPF_MAP_CREATE) with a zeroed attr -> refused before argument checks",
        "print('bpf', probe(sc, 321, 0, buf(size=128), 128))",
        denied("bpf"),
    ),
    Hostile(
        "base_perf_event_open",
        "perf_event_open on a software clock for this process -> refused",
        "import struct\nattr = struct.pack('<IIQ', 1, 128, 0) + bytes(112)\n"
        "print('perf_event_open', probe(sc, 298, buf(attr), 0, -1, -1, 0))",
        denied("perf_event_open"),
    ),
    Hostile(
        "base_userfaultfd",
        "userfaultfd(0) -> refused",
        "print('userfaultfd', probe(sc, 323, 0))",
        denied("userfaultfd"),
    ),
    Hostile(
        "base_io_uring_setup",
        "io_uring_setup(8, params) -> refused (io_uring bypasses seccomp)",
        "print('io_uring_setup', probe(sc, 425, 8, buf(size=120)))",
        denied("io_uring_setup"),
    ),
    Hostile(
        "base_kexec",
        "kexec_load and kexec_file_load -> refused",
        "print('kexec_load', probe(sc, 246, 0, 0, 0, 0))\nprint('kexec_file_load', probe(sc, 320, -1, -1, 0, 0, 0))",
        denied("kexec_load", "kexec_file_load"),
    ),
    Hostile(
        "base_kernel_modules",
        "init_module, finit_module and delete_module -> refused",
        "print('init_module', probe(sc, 175, buf(b'x'), 1, buf(b'')))\n"
        "print('finit_module', probe(sc, 313, 0, buf(b''), 0))\n"
        "print('delete_module', probe(sc, 176, buf(b'ext4'), 0))",
        denied("init_module", "finit_module", "delete_module"),
    ),
    Hostile(
        "base_ptrace_pid1",
        "PTRACE_ATTACH and PTRACE_SEIZE to pid 1 (the sandbox init) -> refused",
        "print('attach', probe(sc, 101, 16, 1, 0, 0))\nprint('seize', probe(sc, 101, 0x4206, 1, 0, 0))",
        denied("attach", "seize"),
    ),
    Hostile(
        "base_process_vm_readv_pid1",
        "process_vm_readv of pid 1's memory -> refused",
        "import struct\nlocal = buf(size=64)\niov = buf(struct.pack('<QQ', local, 16))\n"
        "remote = buf(struct.pack('<QQ', 0x400000, 16))\n"
        "print('process_vm_readv', probe(sc, 310, 1, iov, 1, remote, 1, 0))",
        denied("process_vm_readv"),
    ),
    Hostile(
        "base_personality",
        "personality(ADDR_NO_RANDOMIZE) to switch ASLR off -> refused",
        "print('personality', probe(sc, 135, 0x0040000))",
        denied("personality"),
    ),
]


@pytest.mark.parametrize("program", table(PROGRAMS))
def test_capabilities_and_namespaces(program, arena):
    arena.play(program, "capabilities")
