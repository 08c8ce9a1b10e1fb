"""The sandbox has no channel it can forge (issue 12, item 1): user code cannot end its run
with a made-up result, grow the agent's memory, wedge its channel, or poison metering. Each
test fails on 426d6cf, where fd 3 in user code's process was the agent's control socket."""

from __future__ import annotations

import psutil

from sandboxes.engine.status import INT32_MAX

FIND_EXECUTION = """
import sys, json, struct, os, time
def find_id():
    f = sys._getframe(0)
    while f is not None:
        for v in list(f.f_locals.values()):
            if isinstance(v, dict) and v.get('op') == 'run':
                return v.get('id'), v.get('seq')
        f = f.f_back
    return None, None
eid, seq = find_id()
"""


def test_no_descriptor_reaches_the_status_page(engine, witness):
    sid = engine.create()
    code = (
        "import os\nlinks = []\nfor f in range(64):\n"
        "    try: links.append(os.readlink(f'/proc/self/fd/{f}'))\n"
        "    except OSError: pass\nprint(links)\n"
    )
    out = engine.ok(sid, code)
    assert "memfd" not in out and "socket" in out


def test_writes_on_the_request_socket_fail_and_change_nothing(engine, witness):
    sid = engine.create()
    res = engine.run(
        sid,
        "import os\ntry:\n    os.write(3, b'\\x00\\x00\\x00\\x05{nope')\nexcept OSError as e:\n    print(e.errno)\n",
    )
    assert (res.exit.status, res.stdout) == ("succeeded", "32\n")  # EPIPE: the agent never hears it
    assert engine.ok(sid, "print('alive')") == "alive\n"


def test_forged_results_on_every_descriptor_do_not_end_the_run(engine, witness):
    sid = engine.create()
    code = FIND_EXECUTION + (
        "for fd in range(3, 64):\n"
        "    for ev in ({'ev': 'result', 'id': eid, 'status': 'succeeded', 'exit_code': 2**70},"
        " {'ev': 'result', 'seq': seq, 'exit_code': 0}):\n"
        "        body = json.dumps(ev).encode()\n"
        "        for frame in (struct.pack('>I', len(body)) + body, b'\\xfe\\x03\\x00\\x00' * 50):\n"
        "            try: os.write(fd, frame)\n"
        "            except OSError: pass\n"
        "t = time.time()\nwhile time.time() - t < 3: pass\nprint('ran to the end')\n"
    )
    res = engine.run(sid, code, timeout_s=1.5)
    assert (res.exit.status, res.exit.limit) == ("timeout", "timeout")
    assert res.exit.wall_ms >= 1400
    assert res.exit.cpu_ms > 300  # the burn is metered, not a forged 6 ms
    assert engine.ok(sid, "print(5)") == "5\n"


def test_idle_frames_while_the_main_thread_works_are_ignored(engine, witness):
    sid = engine.create()
    res = engine.run(
        sid,
        "import os, time\nt = time.time()\nwhile time.time() - t < 2:\n    os.write(4, b'\\xfe\\x03\\x00\\x00')\n",
        timeout_s=1,
    )
    assert (res.exit.status, res.exit.limit) == ("timeout", "timeout")
    assert res.exit.wall_ms >= 900


def test_huge_frames_do_not_grow_the_agent(engine, witness):
    """Finding 1: 6 MB frames of `[]` grew the agent's memory 23x through a queue nothing drained."""
    sid = engine.create()
    before = psutil.Process().memory_info().rss
    code = (
        "import os, struct\nbody = b'{\"ev\":\"x\",\"a\":[' + b'[],' * 1999999 + b'[]]}'\n"
        "frame = struct.pack('>I', len(body)) + body\nsent = 0\n"
        "for fd in (3, 4, 5, 6):\n"
        "    for _ in range(3):\n"
        "        try: sent += os.write(fd, frame)\n"
        "        except OSError: pass\n"
        "print('sent', sent)\n"
    )
    res = engine.run(sid, code, timeout_s=20)
    grown = psutil.Process().memory_info().rss - before
    assert grown < 64 << 20, f"agent grew {grown >> 20} MiB"
    assert res.exit.limit in (None, "output")
    assert engine.ok(sid, "print('alive')") == "alive\n"


def test_deeply_nested_frame_and_trickle_do_not_wedge_the_sandbox(engine, witness):
    """Finding 10: a frame nested 2,000 deep re-parsed on every byte, flooding the log."""
    sid = engine.create()
    code = (
        "import os, struct, time\nn = 1 << 20\n"
        "for fd in (3, 4):\n"
        "    try: os.write(fd, struct.pack('>I', n) + b'[' * 2000 + b' ' * 1000)\n"
        "    except OSError: pass\n"
        "t = time.time()\n"
        "while time.time() - t < 1:\n"
        "    for fd in (3, 4):\n"
        "        try: os.write(fd, b' ')\n"
        "        except OSError: pass\n"
        "print('done')\n"
    )
    res = engine.run(sid, code, timeout_s=10)
    # The bytes are the run's stderr: it ends normally, or at the output cap on a fast host; either
    # way the sandbox lives, and nothing was parsed.
    assert (res.exit.status, res.exit.limit) in (("succeeded", None), ("killed", "output")), res.exit
    assert res.exit.sandbox_alive
    if res.exit.status == "succeeded":
        assert res.stdout.endswith("done\n")
    assert engine.ok(sid, "print('alive')") == "alive\n"


def test_a_forged_status_page_ends_only_that_sandbox_with_a_clear_status(engine, witness):
    sid = engine.create()
    code = (
        "import mmap, os, struct\n"
        "maps = open('/proc/self/maps').read().splitlines()\n"
        "line = [m for m in maps if 'mem0-status' in m][0]\n"
        "start = int(line.split('-')[0], 16)\n"
        "import ctypes\n"
        "ctypes.memmove(start, struct.pack('<Q', 1 << 62), 8)\n"
        "os.write(4, b'\\xfe\\x03\\x00\\x00')\n"
        "import time; time.sleep(5)\n"
    )
    res = engine.run(sid, code, timeout_s=10)
    assert (res.exit.status, res.exit.sandbox_alive) == ("killed", False)
    assert "protocol violation" in res.stderr
    assert not engine.alive(sid)


def test_exit_codes_are_bounded(engine, witness):
    """Finding 6: an exit code of 2**70 poisoned recording and the dead-agent sweep."""
    sid = engine.create()
    res = engine.run(sid, "raise SystemExit(2**70)")
    assert (res.exit.status, res.exit.exit_code) == ("failed", INT32_MAX)
    res = engine.run(sid, "raise SystemExit(-(2**70))")
    assert res.exit.status == "failed" and res.exit.exit_code == -(2**31)
    assert engine.ok(sid, "print('alive')") == "alive\n"


def test_raw_stderr_flood_hits_the_output_cap_at_once(engine, witness):
    """os.write(2, …) in 64 KiB blocks filled the cap exactly and then ran to the timeout."""
    sid = engine.create()
    res = engine.run(sid, "import os\nwhile True:\n    os.write(2, b'B' * 65536)", timeout_s=8)
    assert (res.exit.status, res.exit.limit) == ("killed", "output")
    assert res.exit.wall_ms < 2000
    assert len(res.stderr) <= 1 << 20
    assert engine.ok(sid, "print('alive')") == "alive\n"


def test_garbage_on_the_framed_pipe_counts_against_the_output_cap(engine, witness):
    sid = engine.create()
    res = engine.run(sid, "import os\nwhile True:\n    os.write(4, b'\\x00' * 65536)", timeout_s=8)
    assert (res.exit.status, res.exit.limit) == ("killed", "output")
    assert res.exit.wall_ms < 2000


def test_bytes_written_on_the_framed_pipe_are_stderr_and_later_prints_arrive(engine, witness):
    sid = engine.create()
    res = engine.run(sid, "import os\nos.write(4, b'\\x07\\xff\\xff' + b'junk')\nprint('finished')")
    assert (res.exit.status, res.stdout) == ("succeeded", "finished\n")
    assert "junk" in res.stderr
