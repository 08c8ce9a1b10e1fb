"""Hostile code against real isolation: each test asserts the safe outcome, and the
``witness`` fixture checks that another sandbox and the agent still work afterwards."""

from __future__ import annotations

import os
import time

from sandboxes.engine.protocol import Limits


def test_fork_bomb_hits_pids_limit(engine, witness):
    sid = engine.create(limits=Limits(pids=32))
    res = engine.run(sid, "import os\nwhile True:\n    os.fork()", timeout_s=10)
    assert res.exit.limit == "pids"
    assert res.exit.status in ("failed", "killed")
    assert engine.agent.sandboxes[sid].cgroup.pids() or not engine.alive(sid)


def test_memory_bomb_is_stopped_at_the_memory_cap(engine, witness):
    sid = engine.create(limits=Limits(memory_bytes=64 << 20))
    res = engine.run(sid, "blocks = []\nwhile True:\n    blocks.append(b'x' * (8 << 20))", timeout_s=20)
    # RLIMIT_DATA refuses the allocation (MemoryError, the sandbox lives on); the cgroup's OOM killer is
    # the backstop for several processes together (limit "memory").
    assert res.exit.limit == "memory", res
    assert "MemoryError" in res.stderr and res.exit.sandbox_alive or res.exit.status == "killed", res
    assert res.exit.status in ("killed", "failed")
    # the heap is bounded by the cap; what is over it is the runtime's mapped files
    assert res.exit.peak_memory_bytes <= (64 << 20) + (16 << 20)


def test_cpu_loop_times_out_and_sandbox_survives(engine, witness):
    sid = engine.create()
    engine.ok(sid, "kept = 'state'")
    res = engine.run(sid, "while True:\n    pass", timeout_s=1)
    assert (res.exit.status, res.exit.limit) == ("timeout", "timeout")
    assert res.exit.sandbox_alive
    assert 900 <= res.exit.wall_ms < 3000
    assert res.exit.cpu_ms > 100  # a busy 2-core CI host may give the loop well under a full core
    assert engine.ok(sid, "print(kept)") == "state\n"


def test_ignoring_sigint_past_timeout_restarts_the_interpreter(engine, witness):
    sid = engine.create()
    engine.ok(sid, "kept = 1")
    res = engine.run(
        sid, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass", timeout_s=1
    )
    assert (res.exit.status, res.exit.limit, res.exit.sandbox_alive) == ("timeout", "timeout", True)
    assert res.exit.memory_lost and engine.ok(sid, "print('kept' in globals())") == "False\n"


def test_sleeping_past_timeout(engine, witness):
    sid = engine.create()
    res = engine.run(sid, "import time\ntime.sleep(100)", timeout_s=1)
    assert (res.exit.status, res.exit.limit, res.exit.sandbox_alive) == ("timeout", "timeout", True)
    assert engine.ok(sid, "print('after')") == "after\n"


def test_output_flood_is_capped(engine, witness):
    sid = engine.create(limits=Limits(output_bytes=100_000))
    res = engine.run(sid, "while True:\n    print('x' * 1000)", timeout_s=10)
    assert res.exit.limit == "output"
    assert res.exit.status == "killed"
    assert len(res.stdout) + len(res.stderr) <= 100_000
    assert res.exit.wall_ms < 5000


def test_cannot_write_outside_workspace(engine, witness):
    sid = engine.create()
    out = engine.ok(
        sid,
        """
import errno
for path in ['/etc/passwd', '/usr/evil', '/evil', '/proc/sys/kernel/hostname', '/home/x']:
    try:
        open(path, 'w').write('x')
        print('WROTE', path)
    except OSError as e:
        print('denied', path, errno.errorcode[e.errno])
open('/workspace/ok', 'w').write('fine')
open('/tmp/ok', 'w').write('fine')
print('workspace ok')
""",
    )
    assert "WROTE" not in out
    assert "workspace ok" in out


def test_cannot_read_host_secrets_agent_env_or_host_proc(engine, witness):
    os.environ["MEM0_AGENT_SECRET_FOR_TEST"] = "hunter2"
    try:
        sid = engine.create()
        out = engine.ok(
            sid,
            f"""
import os
print('shadow', os.path.exists('/etc/shadow'))
print('secret' , 'hunter2' in str(dict(os.environ)))
found = []
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            if b'hunter2' in open(f'/proc/{{pid}}/environ', 'rb').read():
                found.append(pid)
        except OSError:
            pass
print('environ_leak', found)
print('pids', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
print('agent_visible', os.path.exists('/proc/{os.getpid()}/status') and {os.getpid()} > 10)
print('repo_visible', os.path.exists({os.path.dirname(__file__)!r}))
""",
        )
    finally:
        del os.environ["MEM0_AGENT_SECRET_FOR_TEST"]
    assert "shadow False" in out
    assert "secret False" in out
    assert "environ_leak []" in out
    assert "agent_visible False" in out
    assert "repo_visible False" in out
    pids = eval(out.split("pids ")[1].splitlines()[0])
    assert pids[:2] == [1, 2] and len(pids) < 6


def test_no_network_egress_or_loopback(engine, witness):
    sid = engine.create()
    out = engine.ok(
        sid,
        """
import socket
for target in [('1.1.1.1', 80), ('8.8.8.8', 53), ('127.0.0.1', 6379), ('10.0.0.1', 22)]:
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(target)
        print('CONNECTED', target)
    except OSError as e:
        print('blocked', target, e.errno)
try:
    socket.getaddrinfo('example.com', 80)
    print('RESOLVED')
except OSError:
    print('no dns')
print(sorted(i[1] for i in socket.if_nameindex()))
""",
    )
    assert "CONNECTED" not in out and "RESOLVED" not in out
    assert "['lo']" in out


def test_cannot_reach_another_sandbox_over_tcp_or_abstract_unix(engine, witness):
    a, b = engine.create(), engine.create()
    engine.ok(
        a,
        """
import socket
srv = socket.socket(socket.AF_UNIX)
srv.bind('\\0mem0-probe')
srv.listen()
try:
    tcp = socket.socket()
    tcp.bind(('127.0.0.1', 8765))
    tcp.listen()
    print('tcp listening')
except OSError as e:
    print('no tcp', e.errno)
""",
    )
    out = engine.ok(
        b,
        """
import socket
c = socket.socket(socket.AF_UNIX)
try:
    c.connect('\\0mem0-probe')
    print('REACHED unix')
except OSError as e:
    print('unix blocked', e.errno)
t = socket.socket()
t.settimeout(1)
try:
    t.connect(('127.0.0.1', 8765))
    print('REACHED tcp')
except OSError as e:
    print('tcp blocked', e.errno)
""",
    )
    assert "REACHED" not in out


def test_ptrace_mount_unshare_setuid_mknod_are_denied(engine, witness):
    sid = engine.create()
    out = engine.ok(
        sid,
        """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(rc):
    return 'ALLOWED' if rc == 0 else ctypes.get_errno()
print('ptrace', errno_of(libc.ptrace(16, 1, 0, 0)))
print('traceme', errno_of(libc.ptrace(0, 0, 0, 0)))
print('mount', errno_of(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)))
print('umount', errno_of(libc.umount2(b'/workspace', 2)))
print('unshare_user', errno_of(libc.unshare(0x10000000)))
print('setns', errno_of(libc.setns(os.open('/proc/1/ns/mnt', os.O_RDONLY) if os.access('/proc/1/ns/mnt', os.R_OK) else -1, 0)))
print('keyctl', errno_of(libc.syscall(250, 0, 0, 0, 0, 0)))
print('bpf', errno_of(libc.syscall(321, 0, 0, 0)))
try:
    os.setuid(0); print('setuid ALLOWED')
except PermissionError:
    print('setuid denied')
try:
    os.mknod('/workspace/null', 0o20666, os.makedev(1, 3)); print('mknod ALLOWED')
except PermissionError:
    print('mknod denied')
os.mkfifo('/workspace/fifo')
print('fifo ok')
print('uid', os.getuid(), os.geteuid())
""",
    )
    assert "ALLOWED" not in out, out
    assert "uid 1000 1000" in out


def test_kill_minus_one_and_signalling_the_agent_harm_nobody(engine, witness):
    sid = engine.create()
    out = engine.ok(
        sid,
        f"""
import os, signal
for target in ({os.getpid()}, 1):
    try:
        os.kill(target, signal.SIGKILL)
        print('SIGNALLED', target)
    except OSError as e:
        print('denied', target, e.errno)
""",
    )
    assert "SIGNALLED" not in out
    engine.run(sid, "import os, signal\nos.kill(-1, signal.SIGKILL)")
    assert engine.ok(witness, "print('still here')") == "still here\n"


def test_background_child_is_killed_with_the_sandbox(engine, witness):
    sid = engine.create()
    engine.ok(sid, "import subprocess\nchild = subprocess.Popen(['sleep', '1000'])")
    cg = engine.agent.sandboxes[sid].cgroup
    pids = cg.pids()
    assert len(pids) == 2  # interpreter + background sleep
    engine.kill(sid)
    deadline = time.monotonic() + 5
    while any(
        os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z" for p in pids
    ):
        assert time.monotonic() < deadline, "background child survived the kill"
        time.sleep(0.02)


def test_cannot_read_another_sandboxs_workspace(engine, witness):
    a, b = engine.create(), engine.create()
    engine.ok(a, "open('/workspace/secret.txt', 'w').write('tenant-a-secret')")
    out = engine.ok(
        b,
        """
import os
hits = []
for root in ['/workspace', '/tmp', '/proc']:
    for dirpath, dirs, files in os.walk(root):
        if dirpath.startswith('/proc/') and dirpath.count('/') > 2:
            dirs[:] = []
        if 'secret.txt' in files:
            hits.append(dirpath)
print('hits', hits)
""",
    )
    assert "hits []" in out


def test_disk_limit(engine, witness):
    sid = engine.create(limits=Limits(workspace_bytes=4 << 20))
    res = engine.run(sid, "open('/workspace/big', 'wb').write(b'x' * (16 << 20))")
    assert res.exit.status == "failed"
    assert res.exit.limit == "disk"
    assert "No space left" in res.stderr or "File too large" in res.stderr


def test_timeout_kills_what_the_run_started_but_keeps_the_interpreter(engine, witness):
    sid = engine.create()
    res = engine.run(
        sid,
        "import subprocess, time\nchild = subprocess.Popen(['sleep', '1000'])\ntime.sleep(100)",
        timeout_s=1,
    )
    assert (res.exit.status, res.exit.sandbox_alive) == ("timeout", True)
    sb = engine.agent.sandboxes[sid]
    deadline = time.monotonic() + 5  # SIGKILLed; on a loaded host its exit may take a moment to complete
    while sb.cgroup.pids() != [sb.host_pid] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sb.cgroup.pids() == [sb.host_pid]
    assert engine.ok(sid, "print(child.wait())") == "-9\n"


def test_socket_families_other_than_unix_inet_inet6_and_netlink_route_are_refused(engine, witness):
    sid = engine.create()
    out = engine.ok(
        sid,
        """
import ctypes, socket
libc = ctypes.CDLL(None, use_errno=True)
def probe(name, rc):
    print(name, 'ALLOWED' if rc >= 0 else ctypes.get_errno())
# family, type, protocol: VSOCK, PACKET raw, ALG, APPLETALK, AX25, BLUETOOTH, a netlink
# family other than ROUTE (NETLINK_AUDIT 9, NETLINK_KOBJECT_UEVENT 15), and a family with high
# bits set that the kernel truncates to AF_VSOCK.
for name, args in [('vsock', (40, 1, 0)), ('packet', (17, 3, 0x300)), ('alg', (38, 5, 0)),
                   ('appletalk', (5, 2, 0)), ('ax25', (3, 5, 0)), ('bluetooth', (31, 1, 0)),
                   ('netlink_audit', (16, 3, 9)), ('netlink_uevent', (16, 2, 15)),
                   ('vsock_high_bits', (ctypes.c_long(0x100000028), 1, 0))]:
    probe(name, libc.socket(*args))
sv = (ctypes.c_int * 2)()
probe('socketpair_vsock', libc.socketpair(40, 1, 0, sv))
probe('socketpair_alg', libc.socketpair(38, 5, 0, sv))
a, b = socket.socketpair(socket.AF_UNIX)
a.send(b'x'); print('unix pair', b.recv(1))
for fam in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6):
    socket.socket(fam, socket.SOCK_STREAM).close(); print('ok', fam.name)
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close(); print('ok udp')
socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close(); print('ok netlink_route')
print(sorted(i[1] for i in socket.if_nameindex()))
""",
    )
    assert "ALLOWED" not in out, out
    for refused in ("vsock", "packet", "alg", "appletalk", "ax25", "bluetooth", "netlink_audit"):
        assert f"{refused} 97" in out or f"{refused} 1" in out, out  # EAFNOSUPPORT (or EPERM)
    for works in (
        "unix pair b'x'",
        "ok AF_UNIX",
        "ok AF_INET",
        "ok AF_INET6",
        "ok udp",
        "ok netlink_route",
        "['lo']",
    ):
        assert works in out, out


def test_filling_the_workspace_is_enospc_and_the_memory_cap_still_holds(engine, witness):
    """Workspace tmpfs pages are charged to the sandbox's memory cgroup: a full workspace must not OOM-kill
    the sandbox, and a full workspace must not take from (or add to) what its processes may allocate."""
    sid = engine.create(limits=Limits(memory_bytes=64 << 20, workspace_bytes=96 << 20))
    fill = """
import errno
block = b'w' * (1 << 20)
written = 0
try:
    with open('/workspace/fill.bin', 'wb') as f:
        while True:
            f.write(block)
            f.flush()
            written += 1
except OSError as e:
    print('errno', e.errno, 'mib', written)
"""
    res = engine.run(sid, fill)
    assert (res.exit.status, res.exit.sandbox_alive) == ("succeeded", True), (res.exit, res.stderr)
    assert res.stdout.startswith("errno 28 "), res.stdout
    assert int(res.stdout.split()[-1]) >= 90
    assert engine.ok(sid, "print(1)") == "1\n"
    # the workspace stays full: the plan's memory is still there for the processes...
    assert engine.ok(sid, "x = bytearray(40 << 20); x[::4096] = b'y' * len(x[::4096]); print(len(x))") == (
        f"{40 << 20}\n"
    )
    # ...and no more: past the memory cap the allocation fails (and the sandbox lives on)
    res = engine.run(sid, "del x\ny = bytearray(80 << 20)")
    assert res.exit.status in ("failed", "killed"), res.exit
    assert res.exit.limit == "memory" and "MemoryError" in res.stderr, (res.exit, res.stderr)
    assert engine.ok(sid, "import os; print(os.path.getsize('/workspace/fill.bin') >= 90 << 20)") == "True\n"
