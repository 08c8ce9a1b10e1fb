"""Interleaved A/B of two source trees on this host: the way to tell whether a change helps while the host's
speed drifts (by up to 40 % between runs of bench/api.py on 2026-11-25).

    .venv/bin/python bench/ab.py A_TREE B_TREE {warm,create,conc} [--a-workers 2] [--b-workers 2]

Each tree gets its own complete stack: database (`mem0ab_a`, `mem0ab_b`), Redis database (10, 11), bus
prefix, agent and web tier (`manage.py serve`), run from that tree with this virtualenv. A worktree makes a
tree of any commit: `git worktree add /tmp/base HEAD~1`. Then the requests alternate between the stacks in
blocks, so drift hits both alike:
- warm: runs of `x = 1` in one sandbox, 10 blocks of 40 per stack, p50 / p90 ms;
- create: create + run `print(1)` (then delete, untimed), 10 blocks of 40 per stack, p50 / p90 ms;
- conc: 16 clients running `print(1)`, 4 rounds of 5 s per stack, runs/s.
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import uuid

import api
import psycopg

BLOCKS, BLOCK = 10, 40


def stack(root: str, tmp: str, db: str, redis_url: str, workers: int):
    with psycopg.connect(f"{api.PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db}")
        conn.execute(f"CREATE DATABASE {db}")
    prefix = f"ab-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "DATABASE_URL": f"{api.PG}/{db}", "REDIS_URL": redis_url, "MEM0_BUS_PREFIX": prefix,
           "MEM0_VAR_DIR": tmp, "LOG_LEVEL": "WARNING", "PYTHONPATH": root}
    subprocess.run([api.PY, "manage.py", "migrate", "-v0"], cwd=root, env=env, check=True)
    out = subprocess.run([api.PY, "manage.py", "createtenant", "bench", "--email", "b@example.com", "--plan",
                          "enterprise"], cwd=root, env=env, check=True, capture_output=True, text=True).stdout
    key = out.strip().splitlines()[-1]
    port = api.free_port()
    procs = [
        subprocess.Popen([api.PY, "-m", "sandboxes.engine.agent", "--redis-url", redis_url, "--prefix", prefix,
                          "--agent-id", "ab-agent", "--state-dir", f"{tmp}/agent", "--capacity", "200"],
                         cwd=root, env=env, start_new_session=True, stderr=open(f"{tmp}/agent.log", "w")),
        subprocess.Popen([api.PY, "manage.py", "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
                         cwd=root, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=open(f"{tmp}/web.log", "w")),
    ]
    base = f"http://127.0.0.1:{port}"
    api.wait_http(f"{base}/healthz")
    api.wait_agent(base, key)
    api.wait_settled(procs)
    # An organisation's first sandbox makes its rows; the code before 2026-11-25 raced on that.
    client = api.Api(base, key)
    client.delete("/api/v1/sandboxes/" + client.post("/api/v1/sandboxes", {"runtime": "python"}).json()["id"])
    return procs, base, key


def one(client, mode: str) -> float:
    t = time.perf_counter()
    if mode == "warm":
        r = client.post(f"/api/v1/sandboxes/{client.sandbox}/executions", {"code": "x = 1"})
        elapsed = time.perf_counter() - t
    else:
        sid = client.post("/api/v1/sandboxes", {"runtime": "python"}).json()["id"]
        r = client.post(f"/api/v1/sandboxes/{sid}/executions", {"code": "print(1)"})
        elapsed = time.perf_counter() - t
        client.delete(f"/api/v1/sandboxes/{sid}")
    if r.status_code != 200:
        raise RuntimeError(r.text[:300])
    return elapsed * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("mode", choices=["warm", "create", "conc"])
    ap.add_argument("--a-workers", type=int, default=2)
    ap.add_argument("--b-workers", type=int, default=2)
    args = ap.parse_args()
    stacks = {"A": stack(args.a, tempfile.mkdtemp(), "mem0ab_a", "redis://127.0.0.1:6379/10", args.a_workers),
              "B": stack(args.b, tempfile.mkdtemp(), "mem0ab_b", "redis://127.0.0.1:6379/11", args.b_workers)}
    try:
        if args.mode == "conc":
            rates = {"A": [], "B": []}
            for rnd in range(4):
                for name in ("A", "B") if rnd % 2 == 0 else ("B", "A"):
                    _, base, key = stacks[name]
                    api.wait_host_idle()
                    rates[name].append(api.bench_concurrent(base, key, 16, 5))
            for name, xs in rates.items():
                print(f"{name} ({getattr(args, name.lower())}) runs/s {[round(x) for x in xs]} mean "
                      f"{statistics.mean(xs):.1f}")
            return
        clients, times = {}, {"A": [], "B": []}
        for name, (_, base, key) in stacks.items():
            clients[name] = api.Api(base, key)
            clients[name].sandbox = clients[name].post("/api/v1/sandboxes", {"runtime": "python"}).json()["id"]
        for block in range(BLOCKS):
            for name in ("A", "B") if block % 2 == 0 else ("B", "A"):
                times[name] += [one(clients[name], args.mode) for _ in range(BLOCK)]
        for name, xs in times.items():
            print(f"{name} ({getattr(args, name.lower())}) {args.mode}: p50 {statistics.median(xs):.2f} ms, "
                  f"p90 {api.pct(xs, 90):.2f} ms, n {len(xs)}")
    finally:
        for procs, _, _ in stacks.values():
            api.stop(procs)


if __name__ == "__main__":
    main()
