"""Hostile Node.js programs: node runs with the sandbox's isolation, and what it reaches of the sandbox's own
machinery (its kernel, the pipes to it) can hurt at most its own sandbox."""

import pytest

from tests.redteam.harness import Hostile, ended, error_code, table


def node_run(arena, code: str, timeout_s: float = 5.0, **body) -> tuple[str, dict]:
    sid = arena.fresh(runtime="node", **body)
    return sid, arena.attacker.run(sid, code, timeout_s)


def lines(ex: dict) -> list[str]:
    assert ex["status"] == "succeeded", (
        f"{ex['status']}/{ex['limit']}: {ex['stdout'][-800:]!r} {ex['stderr'][-800:]!r}"
    )
    return ex["stdout"].splitlines()


def kernel_is_out_of_reach(arena) -> None:
    """From node: the kernel's descriptors, memory and root (its request socket, status page) -> refused."""
    _, ex = node_run(
        arena,
        """
const fs = require('fs'), k = process.ppid;
for (const p of [`/proc/${k}/fd/3`, `/proc/${k}/mem`, `/proc/${k}/environ`, `/proc/${k}/root/`, '/proc/1/root/']) {
  try { p.endsWith('/') ? fs.readdirSync(p) : fs.readFileSync(p); console.log(p, 'OK'); }
  catch (e) { console.log(p, e.code); }
}
""",
    )
    got = dict(line.rsplit(" ", 1) for line in lines(ex))
    assert all(v in ("EACCES", "EPERM", "ENOENT") for v in got.values()), got


def forged_framing_and_replies_stay_in_the_sandbox(arena) -> None:
    """Garbage on the framed pipe (fd 4) and on the reply pipe (fd 5) -> shown as output or ignored; the
    sandbox's later runs are its own, and nothing else is touched."""
    sid, ex = node_run(
        arena,
        """
const fs = require('fs');
fs.writeSync(4, Buffer.from([0xfe, 3, 0, 0]));           // an idle frame: only makes the agent look
fs.writeSync(4, Buffer.from('\\xfe\\x09garbage', 'latin1'));
try { fs.writeSync(5, Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 9])); } catch (e) {}
await new Promise(r => setTimeout(r, 200));
console.log('done');
""",
    )
    assert ex["status"] == "succeeded" and "done" in ex["stdout"], ex
    later = arena.attacker.run(sid, "console.log(6 * 7)")
    assert (later["status"], later["stdout"]) == ("succeeded", "42\n"), later


def killing_its_kernel_ends_only_this_sandbox(arena) -> None:
    """SIGKILL to node's parent (the sandbox's kernel) -> this sandbox stops or restarts; nothing else."""
    sid, ex = node_run(
        arena, "process.kill(process.ppid, 'SIGKILL'); await new Promise(r => setTimeout(r, 500))"
    )
    assert ex["status"] in ("failed", "killed"), ex
    r = arena.attacker.start(sid, "console.log('after')")
    assert r.status_code == 200 or error_code(r) == "sandbox_not_running", f"{r.status_code} {r.text[:300]}"


def child_process_fork_bomb(arena) -> None:
    """Spawning sh processes without end from node -> the pids cgroup refuses them; node lives on."""
    sid, ex = node_run(
        arena,
        """
const cp = require('child_process'); const kids = []; let refused = 0;
for (let i = 0; i < 200; i++) {
  try { kids.push(cp.spawn('sleep', ['30'])); } catch (e) { refused++; }
}
await new Promise(r => setTimeout(r, 300));
const alive = kids.filter(k => k.pid && k.exitCode === null && !k.killed).length;
console.log(alive < 200 ? 'bounded' : 'unbounded');
""",
        timeout_s=10,
    )
    assert ex["limit"] in ("pids", None) and "unbounded" not in ex["stdout"], ex
    after = arena.attacker.run(sid, "console.log('usable')", timeout_s=10)
    assert after["stdout"] == "usable\n", after


def output_flood(arena) -> None:
    """console.log without end -> the output cap ends the run; the sandbox answers afterwards."""
    sid, ex = node_run(arena, "const s = 'x'.repeat(4096); while (true) console.log(s)", timeout_s=20)
    ended("killed", "output")(ex)
    after = arena.attacker.run(sid, "console.log('usable')")
    assert after["stdout"] == "usable\n", after


def heap_bomb(arena) -> None:
    """A heap that grows without end -> limit memory, the sandbox restarts node with its workspace."""
    sid, ex = node_run(
        arena,
        "require('fs').writeFileSync('/workspace/k', 'kept'); const h = []; while (true) h.push(new Array(1e5).fill(1))",
        timeout_s=30,
        limits={"memory_bytes": 192 << 20},
    )
    assert ex["limit"] == "memory", ex
    after = arena.attacker.run(sid, "console.log(require('fs').readFileSync('/workspace/k', 'utf8'))")
    assert after["stdout"] == "kept\n", after


def no_network_from_node(arena) -> None:
    """fetch to the metadata address and to the web tier's port -> no route."""
    _, ex = node_run(
        arena,
        """
for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://127.0.0.1:8000/healthz']) {
  try { await fetch(url, {signal: AbortSignal.timeout(2000)}); console.log(url, 'reached'); }
  catch (e) { console.log(url, 'refused'); }
}
""",
        timeout_s=10,
    )
    assert lines(ex) == [
        "http://169.254.169.254/latest/meta-data/ refused",
        "http://127.0.0.1:8000/healthz refused",
    ], ex


PROGRAMS = [
    Hostile(
        "node_kernel_out_of_reach",
        "read the kernel's fds, memory, root -> refused",
        attack=kernel_is_out_of_reach,
    ),
    Hostile(
        "node_forged_frames_and_replies",
        "garbage on the framed and reply pipes -> own sandbox only",
        attack=forged_framing_and_replies_stay_in_the_sandbox,
    ),
    Hostile(
        "node_kills_its_kernel",
        "SIGKILL the kernel -> own sandbox only",
        attack=killing_its_kernel_ends_only_this_sandbox,
    ),
    Hostile("node_fork_bomb", "spawn without end -> pids cgroup", attack=child_process_fork_bomb),
    Hostile("node_output_flood", "console.log without end -> output cap", attack=output_flood),
    Hostile("node_heap_bomb", "heap without end -> memory limit, workspace kept", attack=heap_bomb),
    Hostile("node_no_network", "fetch metadata / web tier -> refused", attack=no_network_from_node),
]


@pytest.mark.parametrize("program", table(PROGRAMS))
def test_node(program, arena):
    arena.play(program, "node")
