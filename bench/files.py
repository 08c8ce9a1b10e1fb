"""File ops benchmark: agent-side latency of stat, make_dir, move, a recursive list and a watch's delivery
(a write by code in the sandbox to its event on the bus), through the in-process bus with a real agent.

Run from the repo root as root: ``.venv/bin/python bench/files.py [--n 200]``. Not a test: it only prints.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sandboxes.engine.agent import start_embedded_agent  # noqa: E402
from sandboxes.engine.client import EngineClient  # noqa: E402
from sandboxes.engine.protocol import ExitEvent, Limits  # noqa: E402
from sandboxes.engine.transport import make_bus  # noqa: E402

AGENT = "bench-files"


def timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1000)
    return out


def row(name: str, samples: list[float]) -> None:
    s = sorted(samples)
    p99 = s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]
    print(f"| {name:<44} | {statistics.median(s):8.3f} | {p99:8.3f} | {len(s):5d} |", flush=True)


def run(c: EngineClient, sid: str, code: str) -> None:
    eid = f"x-{uuid.uuid4().hex}"
    c.run(AGENT, sandbox_id=sid, execution_id=eid, code=code, timeout_s=30)
    assert c.wait(eid, timeout=60).status == "succeeded"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    n = parser.parse_args().n
    state = tempfile.mkdtemp(prefix="mem0-bench-files-")
    bus = make_bus(None, prefix=f"bench-{uuid.uuid4().hex[:6]}")
    agent = start_embedded_agent(bus, agent_id=AGENT, state_dir=state, pool_min=1, pool_max=2)
    try:
        agent.wait_ready()
        c = EngineClient(bus)
        sid = "bench-" + uuid.uuid4().hex[:8]
        c.create(AGENT, sandbox_id=sid, runtime="python", env={}, limits=Limits())
        run(
            c,
            sid,
            "import os\nfor i in range(10):\n    for j in range(10):\n"
            "        os.makedirs(f't/d{i}/e{j}')\n        open(f't/d{i}/e{j}/f', 'w').write('x')",
        )
        c.file_write(AGENT, sandbox_id=sid, path="m0", data=b"m")
        print(f"| {'op (agent, in-process bus)':<44} | {'p50 ms':>8} | {'p99 ms':>8} | {'n':>5} |")
        print(f"|{'-' * 46}|{'-' * 10}|{'-' * 10}|{'-' * 7}|")
        row("stat", timed(lambda i: c.file_stat(AGENT, sandbox_id=sid, path="t/d1/e1/f"), n))
        row(
            "make_dir a/b/c (parents)",
            timed(lambda i: c.file_mkdir(AGENT, sandbox_id=sid, path=f"mk/{i}/b/c"), n),
        )
        row(
            "move",
            timed(lambda i: c.file_move(AGENT, sandbox_id=sid, source=f"m{i}", destination=f"m{i + 1}"), n),
        )
        row(
            "list depth=3 (210 entries)",
            timed(lambda i: c.files_list(AGENT, sandbox_id=sid, path="t", depth=3), n),
        )
        c.file_mkdir(AGENT, sandbox_id=sid, path="w")
        started = c.files_watch(AGENT, sandbox_id=sid, path="w")
        seq, delivery = 0, []
        for i in range(min(n, 50)):
            time.sleep(0.1)  # an isolated change (a burst is published once per watch.FLUSH_S window)
            t = time.perf_counter()
            c.file_write(AGENT, sandbox_id=sid, path=f"w/f{i}", data=b"x")
            while True:
                events = c.output(started["stream"], after_seq=seq, block_ms=2000)
                seq = events[-1].seq if events else seq
                if any(
                    not isinstance(e, ExitEvent) and json.loads(e.data).get("path") == f"w/f{i}"
                    for e in events
                ):
                    break
            delivery.append((time.perf_counter() - t) * 1000)
        row("watch: file_write -> its event read (isolated)", delivery)
        c.kill(AGENT, sandbox_id=sid)
    finally:
        agent.stop()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
