"""Hostile programs against the limits: pids, memory, output, workspace, file size, CPU time, wall time,
threads, descriptors, CPU between runs, and per-sandbox limits. Each limit holds at the kernel (or the
agent), the run ends with the limit named, and the sandbox stays usable where the design says it does."""

import time

import pytest

from tests.redteam.harness import Hostile, MiB, each, ended, error_code, out, table

PLAN_OUTPUT = 4 * MiB

# Allocate in 32 MiB steps, touching every page, up to `cap` bytes; print ALLOCATED if it all fit.
MEMORY_BOMB = (
    "blocks = []\nfor _ in range({steps}):\n    blocks.append(bytearray(32 << 20))\nprint('ALLOCATED')"
)


def memory_bomb(cap: int) -> str:
    return MEMORY_BOMB.format(steps=cap // (32 * MiB))


def killed_by_memory(ex: dict) -> None:
    assert ex["limit"] == "memory" and ex["status"] in ("killed", "failed"), (
        f"memory bomb ended {ex['status']}/{ex['limit']}: {out(ex)[-500:]!r}"
    )
    assert "ALLOCATED" not in ex["stdout"]


def capped_output(cap: int):
    def check(ex: dict) -> None:
        ended("killed", "output")(ex)
        assert len(ex["stdout"].encode()) + len(ex["stderr"].encode()) <= cap

    return check


def fork_bomb_then_usable(arena) -> None:
    """The classic fork bomb -> the run ends with limit pids; the sandbox runs the next snippet."""
    sid = arena.fresh()
    arena.attacker.run(sid, "kept = 'state'")
    ex = arena.attacker.run(sid, "import os\nwhile True:\n    os.fork()", timeout_s=10)
    assert ex["limit"] == "pids" and ex["status"] in ("failed", "killed"), (
        f"{ex['status']}/{ex['limit']}: {ex.get('stderr', '')[-400:]!r}"
    )
    ex = arena.attacker.run(sid, "print(kept)")
    assert (ex["status"], ex["stdout"]) == ("succeeded", "state\n"), ex


def fill(mib: int) -> str:
    """Write 1 MiB files into /workspace until an error (one file per MiB, so RLIMIT_FSIZE cannot answer first)."""
    return (
        f"import os\ntry:\n    for n in range({mib}):\n        with open(f'/workspace/fill{{n}}', 'wb') as f:\n"
        f"            f.write(bytes(1 << 20))\n    print('FILLED {mib} MiB')\nexcept OSError as e:\n"
        "    print('errno', e.errno)"
    )


def full_workspace_gives_enospc(arena) -> None:
    """Fill a 64 MiB workspace -> the writer gets ENOSPC (not an OOM kill); the sandbox keeps running."""
    sid = arena.fresh(limits={"workspace_bytes": 64 * MiB})
    ex = arena.attacker.run(
        sid,
        "kept = 'state'\n" + fill(256),
        timeout_s=20,
    )
    assert (ex["status"], ex["stdout"]) == ("succeeded", "errno 28\n"), (
        f"{ex['status']}/{ex['limit']} {out(ex)[-300:]!r}"
    )
    ex = arena.attacker.run(
        sid, "import glob, os\nfor p in glob.glob('/workspace/fill*'):\n    os.unlink(p)\nprint(kept)"
    )
    assert (ex["status"], ex["stdout"]) == ("succeeded", "state\n"), ex


def workspace_and_memory_at_once(arena) -> None:
    """256 MiB of memory and 256 MiB of workspace: a full workspace still leaves the process its memory, and
    the memory cap still holds with the workspace full."""
    sid = arena.fresh(limits={"memory_bytes": 256 * MiB, "workspace_bytes": 256 * MiB})
    ex = arena.attacker.run(
        sid,
        fill(512),
        timeout_s=20,
    )
    assert (ex["status"], ex["stdout"]) == ("succeeded", "errno 28\n"), (
        f"{ex['status']}/{ex['limit']} {out(ex)[-300:]!r}"
    )
    ex = arena.attacker.run(sid, "held = bytearray(128 << 20)\nprint('ALLOCATED')", timeout_s=20)
    assert (ex["status"], ex["stdout"]) == ("succeeded", "ALLOCATED\n"), (
        f"{ex['status']}/{ex['limit']} {out(ex)[-300:]!r}"
    )
    killed_by_memory(arena.attacker.run(sid, "del held\n" + memory_bomb(1024 * MiB), timeout_s=20))


def cpu_between_runs_is_metered(arena) -> None:
    """A thread left burning 2 s of CPU after its run returned -> the tenant's cpu_ms usage rises by >= 1.8 s."""

    def used() -> float:
        r = arena.attacker.http.get("/usage")
        assert r.status_code == 200, r.text
        return r.json()["cpu_ms"]["used"]

    before = used()
    sid = arena.fresh()
    ex = arena.attacker.run(
        sid,
        "import threading, time\ndef burn():\n    while time.thread_time() < 2.0:\n        pass\n"
        "    open('/workspace/burnt', 'w').write('done')\n"
        "threading.Thread(target=burn, daemon=True).start()",
    )
    assert ex["status"] == "succeeded", ex
    assert ex["cpu_ms"] < 1000, "the burn ran inside the run: the test would prove nothing"
    deadline = time.monotonic() + 60
    while arena.attacker.http.get(f"/sandboxes/{sid}/files/burnt").status_code != 200:
        assert time.monotonic() < deadline, "the background thread never finished its 2 s of CPU"
        time.sleep(0.2)
    arena.attacker.delete(sid)
    deadline = time.monotonic() + 10
    while used() - before < 1800 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert used() - before >= 1800, f"2 s of CPU between runs metered as {used() - before:.0f} ms"


def limits_above_plan_refused(arena) -> None:
    """Per-sandbox limits above the plan (memory, pids, workspace, run timeout, output, cores) -> 4xx quota_exceeded."""
    for limits in (
        {"memory_bytes": 64 << 30},
        {"pids": 100_000},
        {"workspace_bytes": 10 << 40},
        {"run_timeout_s": 100_000},
        {"output_bytes": 1 << 40},
        {"cpu_cores": 64},
    ):
        r = arena.attacker.http.post("/sandboxes", json={"runtime": "python", "limits": limits})
        if r.status_code == 201:
            arena.made.append(r.json()["id"])
        assert r.status_code in (400, 403, 422, 429) and error_code(r) == "quota_exceeded", (
            f"limits {limits}: {r.status_code} {r.text[:300]}"
        )


def small_limits_shown_and_enforced(arena) -> None:
    """Create with small limits -> the API shows them, and the kernel enforces the pids and output ones."""
    asked = {
        "memory_bytes": 256 * MiB,
        "pids": 16,
        "output_bytes": 10_000,
        "run_timeout_s": 3.0,
        "workspace_bytes": 64 * MiB,
        "cpu_cores": 0.5,
    }
    sb = arena.attacker.create(limits=asked)
    arena.made.append(sb["id"])
    shown = {k: sb["limits"].get(k) for k in asked}
    assert shown == asked, f"effective limits {sb['limits']} for {asked}"
    ex = arena.attacker.run(
        sb["id"],
        "import os, time\nn = 0\ntry:\n    for n in range(64):\n"
        "        if os.fork() == 0:\n            time.sleep(5)\n            os._exit(0)\n"
        "except OSError as e:\n    print('forks', n, 'errno', e.errno)",
        timeout_s=2,
    )
    assert ex["stdout"].startswith("forks ") and int(ex["stdout"].split()[1]) < 16, (
        f"pids 16: {out(ex)[-300:]!r}"
    )
    ex = arena.attacker.run(sb["id"], "while True:\n    print('x' * 100)", timeout_s=2)
    capped_output(10_000)(ex)


def cpu_cores_quota(arena) -> None:
    """Four processes burn CPU in a sandbox created with cpu_cores=0.5 -> the cgroup gives them at most half a
    core (plus one scheduling period): cpu_ms <= 0.6 x wall_ms + 150."""
    sid = arena.fresh(limits={"cpu_cores": 0.5})
    ex = arena.attacker.run(
        sid,
        "import os, time\npids = []\nfor _ in range(4):\n    pid = os.fork()\n"
        "    if pid == 0:\n        t = time.time()\n        while time.time() - t < 1.5:\n"
        "            pass\n        os._exit(0)\n    pids.append(pid)\nfor pid in pids:\n"
        "    os.waitpid(pid, 0)",
        timeout_s=10,
    )
    assert ex["status"] == "succeeded", ex
    assert ex["cpu_ms"] <= 0.6 * ex["wall_ms"] + 150, (
        f"cpu_ms {ex['cpu_ms']} in {ex['wall_ms']} ms with 0.5 cores"
    )


def busy_sandbox_answers_409(arena) -> None:
    """A second run while one is active -> 409 sandbox_busy naming the running execution."""
    sid = arena.fresh()
    r = arena.attacker.start(sid, "import time\ntime.sleep(3)", timeout_s=10, wait=False)
    assert r.status_code == 202, r.text
    running = r.json()["id"]
    r = arena.attacker.start(sid, "print(1)")
    assert r.status_code == 409 and error_code(r) == "sandbox_busy", f"{r.status_code} {r.text[:300]}"
    assert running in r.text, f"409 does not name the running execution {running}: {r.text[:300]}"


PROGRAMS = [
    Hostile(
        "base_fork_bomb_pids",
        "while True: os.fork() -> limit pids, and the sandbox runs the next snippet",
        attack=fork_bomb_then_usable,
    ),
    Hostile(
        "base_memory_bomb_plan_cap",
        "allocate 3 GiB in 32 MiB blocks under the plan's 2 GiB -> the run ends with limit memory",
        memory_bomb(3072 * MiB),
        killed_by_memory,
        timeout_s=30,
        fresh=True,
    ),
    Hostile(
        "item10_memory_bomb_sandbox_limit",
        "allocate 1 GiB in a sandbox created with memory_bytes=256 MiB -> limit memory, never ALLOCATED",
        memory_bomb(1024 * MiB),
        killed_by_memory,
        timeout_s=20,
        limits={"memory_bytes": 256 * MiB},
    ),
    Hostile(
        "base_print_flood",
        "while True: print('x' * 1000) -> killed with limit output at the 4 MiB cap (not the timeout)",
        "while True:\n    print('x' * 1000)",
        capped_output(PLAN_OUTPUT + 4096),
        timeout_s=10,
        fresh=True,
    ),
    Hostile(
        "item5_raw_stderr_flood",
        "while True: os.write(2, 64 KiB) -> killed with limit output (not the timeout)",
        "while True:\n    os.write(2, b'B' * 65536)",
        capped_output(PLAN_OUTPUT + 65536),
        timeout_s=4,
        fresh=True,
    ),
    Hostile(
        "item5_raw_stdout_flood",
        "while True: os.write(1, 64 KiB) -> killed with limit output (not the timeout)",
        "while True:\n    os.write(1, b'A' * 65536)",
        capped_output(PLAN_OUTPUT + 65536),
        timeout_s=4,
        fresh=True,
    ),
    Hostile(
        "item5_subprocess_flood",
        "a child process writing 64 KiB blocks to its stdout forever -> killed with limit output",
        "import subprocess\nsubprocess.run([os.readlink('/proc/self/exe'), '-c', 'import os\\nwhile True: os.write(1, b\"y\" * 65536)'])",
        capped_output(PLAN_OUTPUT + 65536),
        timeout_s=4,
        fresh=True,
    ),
    Hostile(
        "item5_both_streams_counted_together",
        "alternate 3 MiB on stdout and 3 MiB on stderr (each under the cap) -> limit output: the cap counts both",
        "for _ in range(3):\n    os.write(1, b'o' * (1 << 20))\n    os.write(2, b'e' * (1 << 20))\n"
        "import time\ntime.sleep(10)",
        capped_output(PLAN_OUTPUT + (1 << 20)),
        timeout_s=4,
        fresh=True,
    ),
    Hostile(
        "item6_workspace_full_enospc",
        "fill a 64 MiB workspace -> ENOSPC for the writer, sandbox still usable",
        attack=full_workspace_gives_enospc,
    ),
    Hostile(
        "item6_workspace_and_memory_at_once",
        "fill the workspace, then allocate: memory and workspace limits hold independently",
        attack=workspace_and_memory_at_once,
    ),
    Hostile(
        "base_huge_sparse_file",
        "ftruncate /workspace/huge to 1 TiB and pwrite at 1 TiB -> EFBIG (RLIMIT_FSIZE), no SIGXFSZ death",
        "fd = os.open('/workspace/huge', os.O_CREAT | os.O_RDWR)\nprint('ftruncate', err(os.ftruncate, fd, 1 << 40))\n"
        "print('pwrite', err(os.pwrite, fd, b'x', 1 << 40))\nos.close(fd)\nos.unlink('/workspace/huge')",
        each({"EFBIG", "ENOSPC"}, "ftruncate", "pwrite"),
        fresh=True,
    ),
    Hostile(
        "base_cpu_burn_timeout",
        "while True: pass with timeout_s=1 -> timeout/timeout",
        "while True:\n    pass",
        ended("timeout", "timeout"),
        timeout_s=1,
        fresh=True,
    ),
    Hostile(
        "base_sleep_past_timeout",
        "time.sleep(60) with timeout_s=1 -> timeout/timeout",
        "import time\ntime.sleep(60)",
        ended("timeout", "timeout"),
        timeout_s=1,
        fresh=True,
    ),
    Hostile(
        "base_threads_bomb",
        "start sleeping threads until refused -> refused before 70 (the pids cgroup counts threads)",
        "import threading, time\nn = 0\ntry:\n    for n in range(1000):\n"
        "        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n    print('threads UNBOUNDED')\n"
        "except RuntimeError:\n    print('threads', 'refused' if n < 70 else f'TOO_MANY:{n}')",
        each({"refused"}, "threads"),
        fresh=True,
    ),
    Hostile(
        "base_nofile_exhaustion",
        "open /dev/null until refused -> EMFILE before 100k descriptors; all closed again",
        "fds = []\ntry:\n    while len(fds) < 100_000:\n        fds.append(os.open('/dev/null', os.O_RDONLY))\n"
        "    print('nofile UNBOUNDED')\nexcept OSError as e:\n    print('nofile', _name(e.errno))\nfor fd in fds:\n    os.close(fd)",
        each({"EMFILE"}, "nofile"),
    ),
    Hostile(
        "item7_cpu_between_runs_metered",
        "a thread burns 2 s of CPU after its run -> metered to the tenant",
        attack=cpu_between_runs_is_metered,
    ),
    Hostile(
        "item10_limits_above_plan_refused",
        "ask for limits above the plan -> 4xx quota_exceeded each time",
        attack=limits_above_plan_refused,
    ),
    Hostile(
        "item10_small_limits_shown_and_enforced",
        "ask for small limits -> shown as asked; pids 16 and output 10 kB hold",
        attack=small_limits_shown_and_enforced,
    ),
    Hostile(
        "item10_cpu_cores_quota",
        "four processes burn CPU under cpu_cores=0.5 -> at most half a core of CPU time",
        attack=cpu_cores_quota,
    ),
    Hostile(
        "item10_busy_sandbox_409",
        "run while a run is active -> 409 sandbox_busy with the running id",
        attack=busy_sandbox_answers_409,
    ),
]


@pytest.mark.parametrize("program", table(PROGRAMS))
def test_limits(program, arena):
    arena.play(program, "limits")
