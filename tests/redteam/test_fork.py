"""Hostile programs across a fork: a fork is a sandbox of its own (own PID namespace, own /tmp and /dev/shm,
copy-on-write from the parent at fork time), so neither a parent nor its fork can see, signal or read the other."""

import pytest

from tests.redteam.harness import Hostile, out, table

# Count, then signal with `sig`, every process but init and ourselves that this sandbox can see.
OTHERS = (
    "import os, signal\n"
    "others = [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, os.getpid())]\n"
)


def fork(arena, sid: str) -> str:
    r = arena.attacker.http.post(f"/sandboxes/{sid}/fork")
    assert r.status_code == 201, f"fork: {r.status_code} {r.text[:300]}"
    child = r.json()["id"]
    arena.made.append(child)
    return child


def run_ok(arena, sid: str, code: str) -> str:
    ex = arena.attacker.run(sid, code)
    assert ex["status"] == "succeeded", f"{ex['status']}/{ex['limit']}: {out(ex)[-500:]!r}"
    return ex["stdout"]


def shared_dir_is_private(directory: str):
    def attack(arena) -> None:
        parent = arena.fresh()
        run_ok(arena, parent, f"open('{directory}/before', 'w').write('b')")
        child = fork(arena, parent)
        run_ok(arena, parent, f"open('{directory}/after', 'w').write('secret written after the fork')")
        run_ok(arena, child, f"open('{directory}/from_child', 'w').write('c')")
        seen_by_child = run_ok(arena, child, f"import os\nprint(sorted(os.listdir('{directory}')))")
        seen_by_parent = run_ok(arena, parent, f"import os\nprint(sorted(os.listdir('{directory}')))")
        assert seen_by_child == "['before', 'from_child']\n", (
            f"the fork sees {seen_by_child!r} in {directory}"
        )
        assert seen_by_parent == "['after', 'before']\n", f"the parent sees {seen_by_parent!r} in {directory}"

    return attack


# Start a sleeping helper whose command line carries `mine`; print whether a process carrying `mine` and one
# carrying `theirs` are visible in /proc (command lines are world-readable, so visibility is what is tested).
SEES = (
    "import os, subprocess\n"
    "helper = subprocess.Popen([os.readlink('/proc/self/exe'), '-c', 'import time; time.sleep(60)', '{mine}'])\n"
    "def visible(marker):\n    for p in os.listdir('/proc'):\n        try:\n"
    "            if p.isdigit() and marker.encode() in open(f'/proc/{{p}}/cmdline', 'rb').read():\n"
    "                return True\n        except OSError:\n            pass\n    return False\n"
    "print('own', visible('{mine}'), 'other', visible('{theirs}'))"
)


def fork_does_not_see_its_parent(arena) -> None:
    """Each side starts a marked helper process after the fork -> the fork sees its own helper, not the
    parent's. (The parent does see and can signal its fork's processes: issue 12's open part, README.)"""
    parent = arena.fresh()
    run_ok(arena, parent, "kept = 1")
    child = fork(arena, parent)
    run_ok(arena, parent, SEES.format(mine="parent-marker", theirs="fork-marker"))
    in_child = run_ok(arena, child, SEES.format(mine="fork-marker", theirs="parent-marker"))
    assert in_child == "own True other False\n", f"the fork: {in_child!r}"


def fork_cannot_signal_parent(arena) -> None:
    """The fork SIGSTOPs every pid it can see and kill(-1, SIGSTOP) -> the parent's next run still succeeds."""
    parent = arena.fresh()
    run_ok(arena, parent, "kept = 'parent state'")
    child = fork(arena, parent)
    arena.attacker.run(
        child,
        OTHERS + "for p in others:\n    try:\n        os.kill(p, signal.SIGSTOP)\n"
        "    except OSError:\n        pass\ntry:\n    os.kill(-1, signal.SIGSTOP)\n"
        "except OSError:\n    pass\nprint(len(others))",
    )
    assert run_ok(arena, parent, "print(kept)") == "parent state\n"


def fork_of_fork(arena) -> None:
    """A fork of a fork: it has its parent's copy at fork time, not later writes, and cannot stop either ancestor."""
    grand = arena.fresh()
    run_ok(arena, grand, "level = 'grandparent'\nopen('/tmp/g', 'w').write('g')")
    parent = fork(arena, grand)
    run_ok(arena, parent, "level = 'parent'\nopen('/tmp/p', 'w').write('p')")
    child = fork(arena, parent)
    run_ok(arena, grand, "open('/tmp/g_after', 'w').write('x')")
    run_ok(arena, parent, "open('/tmp/p_after', 'w').write('x')")
    seen = run_ok(arena, child, "import os\nprint(level, sorted(os.listdir('/tmp')))")
    assert seen == "parent ['g', 'p']\n", f"the fork of a fork sees {seen!r}"
    arena.attacker.run(
        child,
        OTHERS + "for p in others:\n    try:\n        os.kill(p, signal.SIGSTOP)\n"
        "    except OSError:\n        pass\ntry:\n    os.kill(-1, signal.SIGSTOP)\n"
        "except OSError:\n    pass",
    )
    assert run_ok(arena, grand, "print(level)") == "grandparent\n"
    assert run_ok(arena, parent, "print(level)") == "parent\n"


def fork_cannot_read_parent_memory(arena) -> None:
    """The fork opens /proc/<pid>/mem, environ, maps of every other pid and process_vm_readv -> nothing readable."""
    parent = arena.fresh()
    run_ok(arena, parent, "secret = 'in parent memory'")
    child = fork(arena, parent)
    got = run_ok(
        arena,
        child,
        OTHERS + "import ctypes\nreadable = 0\nfor p in others + [1]:\n"
        "    for f in ('mem', 'environ', 'maps', 'cmdline'):\n        try:\n"
        "            with open(f'/proc/{p}/{f}', 'rb') as fh:\n"
        "                fh.read(1)\n            readable += f != 'cmdline'\n"
        "        except OSError:\n            pass\nprint('readable', readable)",
    )
    assert got == "readable 0\n", got


def workspace_private(arena) -> None:
    """The fork writes /workspace/x and the parent /workspace/y after the fork -> neither sees the other's file."""
    parent = arena.fresh()
    run_ok(arena, parent, "open('/workspace/shared', 'w').write('s')")
    child = fork(arena, parent)
    run_ok(arena, child, "open('/workspace/x', 'w').write('x')")
    run_ok(arena, parent, "open('/workspace/y', 'w').write('y')")
    assert run_ok(arena, child, "import os\nprint(sorted(os.listdir('/workspace')))") == "['shared', 'x']\n"
    assert run_ok(arena, parent, "import os\nprint(sorted(os.listdir('/workspace')))") == "['shared', 'y']\n"


PROGRAMS = [
    Hostile(
        "item3_fork_tmp_private",
        "parent writes /tmp after the fork -> the fork does not see it, nor vice versa",
        attack=shared_dir_is_private("/tmp"),
    ),
    Hostile(
        "item3_fork_dev_shm_private",
        "the same through /dev/shm -> private on each side",
        attack=shared_dir_is_private("/dev/shm"),
    ),
    Hostile(
        "item3_fork_does_not_see_its_parent",
        "list /proc in the fork -> it sees only its own processes",
        attack=fork_does_not_see_its_parent,
    ),
    Hostile(
        "item3_fork_cannot_signal_parent",
        "the fork SIGSTOPs everything it sees -> the parent still runs",
        attack=fork_cannot_signal_parent,
    ),
    Hostile(
        "item3_fork_of_fork",
        "a fork of a fork: copy at fork time only, cannot stop its ancestors",
        attack=fork_of_fork,
    ),
    Hostile(
        "base_fork_cannot_read_parent_memory",
        "the fork reads /proc/<pid>/mem|environ|maps -> nothing",
        attack=fork_cannot_read_parent_memory,
    ),
    Hostile(
        "base_fork_workspace_private",
        "files written after the fork on either side stay on that side",
        attack=workspace_private,
    ),
]


@pytest.mark.parametrize("program", table(PROGRAMS))
def test_fork(program, arena):
    arena.play(program, "fork")
