"""Commands beside the interpreter: a real agent, real isolation (``sandboxes/engine/commands.py``)."""

from __future__ import annotations

import time
import uuid

import pytest

from sandboxes.engine.protocol import EngineError, ExitEvent, Limits

from .conftest import Result


def start(engine, sid: str, argv, **kw) -> str:
    eid = f"cmd-{uuid.uuid4().hex}"
    if isinstance(argv, str):
        argv = ["sh", "-c", argv]
    engine.client.command_start(engine.agent_id, sandbox_id=sid, execution_id=eid, argv=argv, **kw)
    return eid


def collect(engine, eid: str, timeout: float = 30) -> Result:
    exit_event = engine.client.wait(eid, timeout=timeout)
    events = engine.client.output(eid, count=100_000)
    out = "".join(e.data for e in events if not isinstance(e, ExitEvent) and e.stream == "stdout")
    err = "".join(e.data for e in events if not isinstance(e, ExitEvent) and e.stream == "stderr")
    return Result(exit_event, out, err, events)


def command(engine, sid: str, argv, **kw) -> Result:
    return collect(engine, start(engine, sid, argv, **kw))


def test_shell_string_with_pipe_and_stdin(engine):
    sid = engine.create()
    res = command(engine, sid, "read x; echo got-$x; ls / | wc -l", stdin="hello\n")
    assert res.exit.status == "succeeded" and res.exit.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0] == "got-hello" and int(lines[1]) > 3


def test_exit_code_and_stderr_are_reported(engine):
    sid = engine.create()
    res = command(engine, sid, ["sh", "-c", "echo oops >&2; exit 3"])
    assert (res.exit.status, res.exit.exit_code, res.stderr) == ("failed", 3, "oops\n")


def test_unknown_program_is_127_with_the_reason(engine):
    sid = engine.create()
    res = command(engine, sid, ["no-such-program"])
    assert res.exit.exit_code == 127 and "no-such-program" in res.stderr
    res = command(engine, sid, ["/workspace/missing.sh"])
    assert res.exit.exit_code == 127 and "missing.sh" in res.stderr
    res = command(engine, sid, "exec /etc/hostname")  # not executable: the shell says 126
    assert res.exit.exit_code == 126


def test_cwd_env_and_workspace_are_the_sandboxes(engine):
    sid = engine.create(env={"FROM_CREATE": "a"})
    engine.ok(sid, "import os; os.makedirs('/workspace/sub'); open('/workspace/sub/f.txt', 'w').write('data')")
    res = command(engine, sid, "pwd; cat f.txt; echo; echo $FROM_CREATE $EXTRA; id -u", cwd="sub", env={"EXTRA": "b"})
    assert res.stdout == "/home/sandbox/sub\ndata\na b\n1000\n", res.stderr
    command(engine, sid, "echo from-shell > /workspace/made.txt")
    assert engine.ok(sid, "print(open('/workspace/made.txt').read().strip())") == "from-shell\n"


def test_command_holds_no_capability_and_sees_no_host(engine):
    sid = engine.create()
    res = command(engine, sid, "grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; "
                               "ls /proc | grep -E '^[0-9]+$' | wc -l; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                               "ls /opt /work /root 2>&1; cat /etc/hostname")
    fields = dict(line.split(":\t") for line in res.stdout.splitlines() if ":\t" in line)
    assert fields["CapEff"] == fields["CapPrm"] == fields["CapBnd"] == fields["CapAmb"] == "0000000000000000"
    assert fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2"
    assert "mem0-init" in res.stdout or "python" in res.stdout  # pid 1 is the sandbox's init, not the host's
    assert "No such file" in res.stdout  # /opt (the engine) and /work are not there
    assert res.stdout.rstrip().endswith("sandbox")


def test_seccomp_still_refuses_namespaces(engine):
    sid = engine.create()
    probe = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nprint(libc.unshare(0x20000), ctypes.get_errno())"
    res = command(engine, sid, ["python3", "-c", probe])
    assert res.stdout == "-1 1\n", res.stderr  # EPERM: no capability to make a mount namespace


def test_timeout_kills_the_whole_process_group(engine):
    sid = engine.create()
    res = command(engine, sid, "sleep 60 & sleep 60; echo never", timeout_s=0.5)
    assert (res.exit.status, res.exit.limit) == ("timeout", "timeout")
    assert "never" not in res.stdout
    # SIGKILLed with their group; on a loaded host a killed process may take a moment to be gone
    left = engine.ok(sid, "import os, time\nfor _ in range(100):\n"
                          "    n = sum(1 for p in os.listdir('/proc') if p.isdigit()"
                          " and b'sleep' in open(f'/proc/{p}/cmdline','rb').read())\n"
                          "    if not n: break\n    time.sleep(0.05)\nprint(n)")
    assert left == "0\n"
    assert engine.ok(sid, "print('alive')") == "alive\n"


def test_background_reattach_stdin_and_signal(engine):
    sid = engine.create()
    eid = start(engine, sid, "echo ready; while read line; do echo got-$line; done; echo closed",
                background=True, timeout_s=60)
    listed = engine.client.command_list(engine.agent_id, sandbox_id=sid)
    assert [c["execution_id"] for c in listed] == [eid] and listed[0]["running"] and listed[0]["pid"] > 1
    engine.client.command_stdin(engine.agent_id, sandbox_id=sid, execution_id=eid, data="one\n")
    engine.client.command_stdin(engine.agent_id, sandbox_id=sid, execution_id=eid, data="two\n", close=True)
    res = collect(engine, eid)
    assert res.stdout == "ready\ngot-one\ngot-two\nclosed\n" and res.exit.exit_code == 0
    # reattach from any offset: the same events from seq 2 on
    later = engine.client.output(eid, after_seq=2)
    assert [e.seq for e in later] == list(range(3, len(res.events) + 1))
    assert engine.client.command_list(engine.agent_id, sandbox_id=sid) == []

    eid = start(engine, sid, ["sleep", "60"], background=True, timeout_s=60)
    engine.client.command_signal(engine.agent_id, sandbox_id=sid, execution_id=eid, signal="SIGTERM")
    res = collect(engine, eid)
    assert (res.exit.status, res.exit.exit_code) == ("killed", -15)
    with pytest.raises(EngineError) as err:
        engine.client.command_signal(engine.agent_id, sandbox_id=sid, execution_id=eid, signal="SIGSEGV")
    assert err.value.code == "invalid_request"


def test_commands_run_while_another_runs_and_runs_go_on(engine):
    sid = engine.create()
    slow = start(engine, sid, "sleep 1; echo slow", timeout_s=10)
    fast = command(engine, sid, "echo fast")
    assert fast.stdout == "fast\n"
    assert engine.ok(sid, "print(6 * 7)") == "42\n"
    assert collect(engine, slow).stdout == "slow\n"


def test_output_cap_holds(engine):
    sid = engine.create(limits=Limits(output_bytes=10_000))
    res = command(engine, sid, "yes abcdefghij")
    assert (res.exit.status, res.exit.limit) == ("killed", "output")
    assert len(res.stdout) <= 10_000


def test_pids_limit_holds(engine):
    sid = engine.create(limits=Limits(pids=16))
    res = command(engine, sid, "for i in $(seq 40); do sleep 5 & done; wait", timeout_s=3)
    assert "fork" in res.stderr.lower() or "resource" in res.stderr.lower() or res.exit.limit == "pids", res
    assert engine.ok(sid, "print('alive')") == "alive\n"


def test_memory_limit_holds(engine):
    sid = engine.create(limits=Limits(memory_bytes=64 << 20))
    res = command(engine, sid, ["python3", "-c", "x = bytearray(1 << 30); print('allocated')"])
    assert "allocated" not in res.stdout and res.exit.status in ("failed", "killed")


def test_a_command_cannot_see_another_sandboxs_processes(engine):
    a, b = engine.create(), engine.create()
    marker = uuid.uuid4().hex[:12]
    eid = start(engine, a, ["sleep", "30", marker][:2], background=True, env={"MARK": marker}, timeout_s=30)
    res = command(engine, b, "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c MARK=; true")
    assert res.stdout.strip() == "0"
    engine.client.command_signal(engine.agent_id, sandbox_id=a, execution_id=eid, signal="SIGKILL")
    assert collect(engine, eid).exit.status == "killed"


def test_too_many_commands_is_busy_and_a_dead_sandbox_ends_them(engine):
    sid = engine.create()
    eids = [start(engine, sid, ["sleep", "30"], background=True, timeout_s=30) for _ in range(16)]
    with pytest.raises(EngineError) as err:
        start(engine, sid, ["true"])
    assert err.value.code == "sandbox_busy"
    engine.kill(sid)
    for eid in eids:
        assert collect(engine, eid).exit.status == "killed"


def test_a_command_in_a_fork_is_reaped_by_the_forks_init(engine):
    sid = engine.create()
    fork = engine.fork(sid)["sandbox_id"]
    res = command(engine, fork, "echo in-fork; exit 4")
    assert (res.stdout, res.exit.exit_code) == ("in-fork\n", 4)


def test_pip_installs_a_local_wheel_into_the_workspace(engine):
    sid = engine.create()
    build = (
        "import zipfile, base64, hashlib\n"
        "files = {'mem0_tiny/__init__.py': b'VALUE = 42\\n',\n"
        "         'mem0_tiny-1.0.dist-info/METADATA': b'Metadata-Version: 2.1\\nName: mem0-tiny\\nVersion: 1.0\\n',\n"
        "         'mem0_tiny-1.0.dist-info/WHEEL': b'Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\n"
        "Tag: py3-none-any\\n'}\n"
        "rec = []\n"
        "with zipfile.ZipFile('/workspace/mem0_tiny-1.0-py3-none-any.whl', 'w') as z:\n"
        "    for name, data in files.items():\n"
        "        z.writestr(name, data)\n"
        "        h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()\n"
        "        rec.append(f'{name},sha256={h},{len(data)}')\n"
        "    rec.append('mem0_tiny-1.0.dist-info/RECORD,,')\n"
        "    z.writestr('mem0_tiny-1.0.dist-info/RECORD', '\\n'.join(rec) + '\\n')\n"
    )
    engine.ok(sid, build)
    # pip itself from the interpreter's bundled wheel, into the user's site (the workspace), as a user would
    boot = command(engine, sid, ["python3", "-m", "ensurepip", "--user", "--default-pip"], timeout_s=120)
    assert boot.exit.exit_code == 0, boot.stderr[-1000:]
    res = command(engine, sid, ["python3", "-m", "pip", "install", "--user", "--no-index", "--no-cache-dir",
                                "/workspace/mem0_tiny-1.0-py3-none-any.whl"], timeout_s=120)
    assert res.exit.exit_code == 0, res.stderr[-1000:]
    assert command(engine, sid, ["python3", "-c", "import mem0_tiny; print(mem0_tiny.VALUE)"]).stdout == "42\n"
    where = "import sys\nsys.path.insert(0, f'/home/sandbox/.local/lib/python{sys.version_info[0]}.{sys.version_info[1]}"\
            "/site-packages')\nimport mem0_tiny\nprint(mem0_tiny.VALUE)"
    assert engine.ok(sid, where) == "42\n"  # the interpreter sees the installed package too


def test_many_short_commands_leave_nothing_behind(engine):
    sid = engine.create()
    for i in range(30):
        assert command(engine, sid, ["echo", str(i)]).stdout == f"{i}\n"
    time.sleep(0.1)
    assert engine.client.command_list(engine.agent_id, sandbox_id=sid) == []


def test_a_command_the_pids_limit_refuses_fails_with_the_reason(engine):
    sid = engine.create(limits=Limits(pids=6))
    sleepers = []
    for _ in range(6):
        eid = start(engine, sid, ["sleep", "30"], background=True, timeout_s=30)
        sleepers.append(eid)
        if engine.client.output(eid, block_ms=0):  # this one could not start: the limit is reached
            break
    res = command(engine, sid, ["true"])
    assert (res.exit.status, res.exit.exit_code) == ("failed", None)
    assert res.exit.limit == "pids" or "fork" in res.stderr.lower() or "resource" in res.stderr.lower(), res
    for eid in sleepers:
        try:
            engine.client.command_signal(engine.agent_id, sandbox_id=sid, execution_id=eid, signal="SIGKILL")
        except EngineError:
            pass
    assert engine.ok(sid, "print('alive')") == "alive\n"


def test_a_bad_environment_in_the_interpreter_fails_the_command_not_the_sandbox(engine):
    sid = engine.create()
    engine.ok(sid, "import os\nos.environ.__dict__['_data'][b'BAD'] = b'a\\x00b'")
    res = command(engine, sid, ["true"])
    assert res.exit.status == "failed" and "cannot start" in res.stderr
    assert engine.ok(sid, "print('alive')") == "alive\n"


def test_a_runs_timeout_leaves_background_commands_running(engine):
    sid = engine.create()
    eid = start(engine, sid, "sleep 30 & wait; echo never", background=True, timeout_s=30)
    res = engine.run(sid, "import subprocess, time\nsubprocess.Popen(['sleep', '30'])\ntime.sleep(30)", timeout_s=0.5)
    assert res.exit.status == "timeout"
    listed = engine.client.command_list(engine.agent_id, sandbox_id=sid)
    assert [c["execution_id"] for c in listed] == [eid]  # the command and its child outlived the run
    sleeping = engine.ok(sid, "import os\nprint(sum(1 for p in os.listdir('/proc') if p.isdigit()"
                              " and open(f'/proc/{p}/cmdline','rb').read().startswith(b'sleep\\0')))")
    assert sleeping == "1\n"  # the command's sleep; the run's was killed
    engine.client.command_signal(engine.agent_id, sandbox_id=sid, execution_id=eid, signal="SIGKILL")
    assert collect(engine, eid).exit.status == "killed"
