"""User code holds no capability and cannot create or join a namespace; a fork is a sandbox
of its own (issue 12, items 2 and 3). Each test fails on 426d6cf, where the interpreter kept
CAP_SYS_ADMIN and forks shared their parent's PID namespace and /tmp."""

from __future__ import annotations

from sandboxes.engine.protocol import Limits

CAPS = (
    "st = open('/proc/self/status').read().splitlines()\n"
    "print(sorted({l.split()[1] for l in st if l.startswith(('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'))}))\n"
)

NAMESPACES = """
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
flags = {'ns': 0x20000, 'cgroup': 0x2000000, 'uts': 0x4000000, 'ipc': 0x8000000, 'user': 0x10000000,
         'pid': 0x20000000, 'net': 0x40000000, 'time': 0x80}
made = [name for name, f in flags.items() if libc.unshare(f) == 0]
# clone(CLONE_NEWUSER) as a raw syscall: the seccomp filter hands it to the agent, which refuses.
pid = libc.syscall(56, ctypes.c_ulong(0x10000000 | 17), None, None, None, None)
if pid == 0:
    os._exit(0)
cloned = pid > 0
if cloned:
    os.waitpid(pid, 0)
fd = os.open('/proc/1/ns/mnt', os.O_RDONLY) if os.path.exists('/proc/1/ns/mnt') else -1
joined = fd >= 0 and libc.setns(fd, 0) == 0
try:
    socket.sethostname('x')
    hostname = True
except OSError:
    hostname = False
print('made', made, 'cloned', cloned, 'joined', joined, 'hostname', hostname)
"""


def test_the_interpreter_holds_no_capability(engine, witness):
    sid = engine.create()
    assert engine.ok(sid, CAPS) == "['0000000000000000']\n"


def test_user_code_cannot_create_or_join_a_namespace(engine, witness):
    sid = engine.create()
    assert engine.ok(sid, NAMESPACES) == "made [] cloned False joined False hostname False\n"
    assert engine.ok(sid, "print('alive')") == "alive\n"


def test_a_fork_holds_no_capability_and_cannot_create_namespaces(engine, witness):
    sid = engine.create()
    child = engine.fork(sid)["sandbox_id"]
    assert engine.ok(child, CAPS) == "['0000000000000000']\n"
    assert engine.ok(child, NAMESPACES) == "made [] cloned False joined False hostname False\n"


def test_a_fork_has_its_own_processes_tmp_and_shm(engine, witness):
    sid = engine.create()
    engine.ok(sid, "open('/tmp/before', 'w').write('b')\nopen('/dev/shm/seg', 'w').write('s')\nkept = 7")
    child = engine.fork(sid)["sandbox_id"]
    engine.ok(sid, "open('/tmp/after', 'w').write('secret')\nopen('/dev/shm/seg', 'w').write('changed')")
    out = engine.ok(
        child,
        "import os, signal\n"
        "print(sorted(os.listdir('/tmp')), open('/dev/shm/seg').read(), kept)\n"
        "hits = 0\n"
        "for p in (int(p) for p in os.listdir('/proc') if p.isdigit()):\n"
        "    if p not in (1, os.getpid()):\n"
        "        try:\n"
        "            os.kill(p, signal.SIGSTOP); hits += 1\n"
        "        except OSError:\n"
        "            pass\n"
        "print('hits', hits)\n"
        "open('/tmp/from-fork', 'w').write('f')\n",
    )
    assert out == "['before'] s 7\nhits 0\n"
    assert engine.ok(sid, "import os\nprint(sorted(os.listdir('/tmp')), open('/dev/shm/seg').read())") == (
        "['after', 'before'] changed\n"
    )


def test_a_fork_cannot_reach_its_parents_pids_by_number(engine, witness):
    """The parent's pids do not exist in the fork's PID namespace: guessing them hits nothing of the parent."""
    sid = engine.create()
    engine.ok(sid, "import subprocess\nsleeper = subprocess.Popen(['sleep', '300'])\nprint(sleeper.pid)")
    parent_pids = engine.ok(
        sid, "import os\nprint(' '.join(p for p in os.listdir('/proc') if p.isdigit()))"
    ).split()
    child = engine.fork(sid)["sandbox_id"]
    engine.ok(
        child,
        "import os, signal\n"
        f"for p in {sorted(int(p) for p in parent_pids)}:\n"
        "    if p not in (1, os.getpid()):\n"
        "        try: os.kill(p, signal.SIGKILL)\n"
        "        except OSError: pass\n",
    )
    assert engine.ok(sid, "print(sleeper.poll())") == "None\n"  # the parent's process lives on


def test_neither_side_can_read_the_others_interpreter(engine, witness):
    """The parent sees the fork's pids (README, residual risks) but cannot read its interpreter: not
    dumpable. (The fork's init is the compiled init, exec'd: it holds nothing of the user's.)"""
    sid = engine.create()
    child = engine.fork(sid)["sandbox_id"]
    engine.ok(child, "secret = 'fork-only'")
    out = engine.ok(
        sid,
        "import os\nread, interpreters = [], 0\n"
        "for p in (p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()):\n"
        "    if open(f'/proc/{p}/cmdline', 'rb').read().split(b'\\0')[0] != b'python3':\n"
        "        continue\n"
        "    interpreters += 1\n"
        "    for f in ('mem', 'environ', 'maps'):\n"
        "        try:\n"
        "            with open(f'/proc/{p}/{f}', 'rb') as fh: fh.read(1); read.append((p, f))\n"
        "        except OSError:\n"
        "            pass\n"
        "print(interpreters, read)\n",
    )
    assert out == "1 []\n"


def test_a_fork_of_a_fork_is_its_own_sandbox_too(engine, witness):
    sid = engine.create()
    engine.ok(sid, "depth = 0")
    first = engine.fork(sid)["sandbox_id"]
    engine.ok(first, "depth += 1\nopen('/tmp/one', 'w').write('1')")
    second = engine.fork(first)["sandbox_id"]
    assert (
        engine.ok(second, "depth += 1\nimport os\nprint(depth, sorted(os.listdir('/tmp')))") == "2 ['one']\n"
    )
    assert engine.ok(second, CAPS) == "['0000000000000000']\n"
    assert engine.ok(first, "print(depth)") == "1\n"
    assert engine.ok(sid, "print(depth)") == "0\n"


def test_fork_chains_stop_at_a_clear_depth_limit(engine, witness, monkeypatch):
    from sandboxes.engine import factory
    from sandboxes.engine.protocol import EngineError

    monkeypatch.setattr(factory, "MAX_FORK_DEPTH", 2)
    sid = engine.create()
    first = engine.fork(sid)["sandbox_id"]
    second = engine.fork(first)["sandbox_id"]
    try:
        engine.fork(second)
        raise AssertionError("a third nested fork was made")
    except EngineError as exc:
        assert exc.code == "conflict" and "nest" in exc.message
    assert engine.ok(second, "print('alive')") == "alive\n"


def test_a_fork_sees_no_more_of_the_host_than_its_parent(engine, witness):
    sid = engine.create()
    child = engine.fork(sid)["sandbox_id"]
    code = (
        "import os\n"
        "print(os.path.exists('/proc/config.gz'), os.path.exists('/proc/meminfo'))\n"
        "print(sorted({l.split(':')[-1].strip() for l in open('/proc/self/cgroup')}))\n"
    )
    assert engine.ok(child, code) == engine.ok(sid, code) == "False False\n['/']\n"


def test_a_fork_that_cannot_start_leaves_its_parent_alive(engine, witness):
    """With the parent's pids cgroup full (zombies it has not reaped) the fork fails with a clear
    error and the parent keeps its state (it died with the old fork path)."""
    from sandboxes.engine.protocol import EngineError

    sid = engine.create(limits=Limits(pids=8))
    engine.ok(
        sid,
        "import subprocess, os, signal\nkept = 'state'\nprocs = []\n"
        "for _ in range(20):\n"
        "    try:\n"
        "        p = subprocess.Popen(['sleep', '60']); os.kill(p.pid, signal.SIGKILL); procs.append(p)\n"
        "    except OSError:\n"
        "        break\n",
    )
    try:
        engine.fork(sid)
        raise AssertionError("the fork was made with a full pids cgroup")
    except EngineError as exc:
        assert (exc.code, "process limit" in exc.message) == ("conflict", True), exc
    assert engine.ok(sid, "print(kept)") == "state\n"
