"""Snapshot benchmark: Mem0's block store against restic and borg on the same data, in the same run.

Workloads:
  (a) runtime   a virtualenv with numpy, pandas and django installed (pip; falls back to copying them
                from this interpreter's site-packages when PyPI is unreachable)
  (b) workspace ~100 MB of mixed source/data/binary files, 50 successive snapshots, ~1% of files
                changed before each (appends, in-place edits, rewrites)
  (c) dupes     a tree where most files are copies of a few others

For each tool: logical bytes, stored bytes (apparent size of every file the repository holds), dedup ratio
(logical / unique bytes before compression), total ratio (logical / stored), snapshot and restore wall
time, MB/s, and CPU seconds (user+sys; the host is shared, so CPU shows cost when wall time is noisy).
restic runs with repository v2 and its default compression (auto = zstd); borg with zstd,3 and no
encryption; Mem0 with zstd-3 (and mem0-lz4, its hot-path codec). Every tool reads from a warm page cache; (a) and (c) show the median of
--repeats runs into fresh repositories. Not a test: prints a table.

Usage: python bench/snapshots.py [--dir /var/tmp/mem0-bench] [--snapshots 50] [--only mem0]
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
import venv

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sandboxes.engine.blockstore import BlockStore  # noqa: E402

MB = 1e6
TOOL_ENV = {
    "RESTIC_PASSWORD": "bench",
    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
    "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
}


# -- data -------------------------------------------------------------------------------------------


def build_runtime(path: str) -> str:
    """A venv with numpy, pandas and django; built once and reused across runs."""
    marker = os.path.join(path, ".complete")
    if os.path.exists(marker):
        return path
    shutil.rmtree(path, ignore_errors=True)
    venv.EnvBuilder(with_pip=True, symlinks=True).create(path)
    pip = [os.path.join(path, "bin", "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if subprocess.run([*pip, "numpy", "pandas", "django"]).returncode != 0:
        print("pip install failed; copying numpy, pandas, django from this interpreter's site-packages")
        here = sysconfig.get_paths()["purelib"]
        there = sysconfig.get_paths(vars={"base": path, "platbase": path})["purelib"]
        for name in os.listdir(here):
            if name.split("-")[0].split(".")[0].lower() in {
                "numpy",
                "pandas",
                "django",
                "dateutil",
                "python_dateutil",
                "pytz",
                "tzdata",
                "six",
                "asgiref",
                "sqlparse",
                "numpy.libs",
                "pandas.libs",
            }:
                src = os.path.join(here, name)
                (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, os.path.join(there, name))
    open(marker, "w").close()
    return path


_WORDS = b"def class return import self value data result error index None True False for in if else".split()


def _text(rng: random.Random, n: int) -> bytes:
    out, size = [], 0
    while size < n:
        line = b" ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 12))) + b"\n"
        out.append(line)
        size += len(line)
    return b"".join(out)[:n]


def _content(rng: random.Random, kind: str, n: int) -> bytes:
    if kind == "text":
        return _text(rng, n)
    if kind == "csv":
        return b"".join(
            b"%d,%d,%.4f,%s\n" % (i, rng.randint(0, 10**6), rng.random(), rng.choice(_WORDS))
            for i in range(n // 24)
        )[:n]
    return rng.randbytes(n)


def build_workspace(path: str, seed: int = 7) -> list:
    """~100 MB in ~600 files; returns [(relpath, kind)] so mutations can pick files."""
    shutil.rmtree(path, ignore_errors=True)
    rng = random.Random(seed)
    files = []
    for i in range(600):
        kind = rng.choices(["text", "csv", "bin"], weights=[6, 2, 2])[0]
        size = int(min(4_000_000, rng.lognormvariate(10.5, 1.3)))
        rel = os.path.join(f"d{i % 17}", f"s{i % 5}", f"f{i:04d}.{kind}")
        os.makedirs(os.path.join(path, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(path, rel), "wb") as f:
            f.write(_content(rng, kind, size))
        files.append((rel, kind))
    return files


def mutate_workspace(path: str, files: list, step: int) -> None:
    """Change ~1% of the files: an append, an in-place edit, or a rewrite each."""
    rng = random.Random(1000 + step)
    for rel, kind in rng.sample(files, max(1, len(files) // 100)):
        p = os.path.join(path, rel)
        how = rng.choice(["append", "edit", "rewrite"])
        if how == "append":
            with open(p, "ab") as f:
                f.write(_content(rng, kind, rng.randint(100, 20_000)))
        elif how == "edit":
            size = os.path.getsize(p)
            with open(p, "r+b") as f:
                f.seek(rng.randint(0, max(0, size - 4096)))
                f.write(_content(rng, kind, 4096))
        else:
            with open(p, "wb") as f:
                f.write(_content(rng, kind, rng.randint(1000, 300_000)))


def build_dupes(path: str, seed: int = 11) -> str:
    marker = os.path.join(path, ".complete")
    if os.path.exists(marker):
        return path
    shutil.rmtree(path, ignore_errors=True)
    rng = random.Random(seed)
    originals = [
        _content(rng, rng.choice(["text", "bin", "csv"]), rng.randint(10_000, 3_000_000)) for _ in range(30)
    ]
    for copy in range(12):
        for i, data in enumerate(originals):
            p = os.path.join(path, f"copy{copy}", f"sub{i % 4}", f"file{i}.dat")
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
    os.makedirs(os.path.join(path, "unique"), exist_ok=True)
    for i in range(20):
        with open(os.path.join(path, "unique", f"u{i}"), "wb") as f:
            f.write(_content(rng, "bin", 500_000))
    open(marker, "w").close()
    return path


def tree_bytes(path: str) -> int:
    total = 0
    for dirpath, _dirs, names in os.walk(path):
        for n in names:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                total += os.lstat(p).st_size
    return total


# -- tools ------------------------------------------------------------------------------------------


class Clock:
    """Wall time plus CPU seconds of this process and its children."""

    def __enter__(self):
        self.t, self.c = time.perf_counter(), os.times()
        return self

    def __exit__(self, *exc):
        e = os.times()
        self.wall = time.perf_counter() - self.t
        self.cpu = (e.user - self.c.user) + (e.system - self.c.system)
        self.cpu += (e.children_user - self.c.children_user) + (e.children_system - self.c.children_system)


def _run(cmd, cwd=None) -> str:
    r = subprocess.run(cmd, cwd=cwd, env={**os.environ, **TOOL_ENV}, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {r.stderr.strip()[-500:]}")
    return r.stdout


class Mem0:
    name = "mem0"
    codec = "zstd"

    def __init__(self, repo: str) -> None:
        self.store = BlockStore(repo)
        self.repo, self.index, self.last = repo, None, None
        self.unique = 0

    def snapshot(self, src: str) -> None:
        res = self.store.snapshot_tree(src, previous_index=self.index, codec=self.codec)
        self.index, self.last = res.index, res.digest
        self.unique += res.new_bytes

    def restore(self, dest: str) -> None:
        self.store.restore_tree(self.last, dest)

    def unique_bytes(self) -> int:
        return self.unique

    def close(self) -> None:
        self.store.close()


class Mem0Lz4(Mem0):
    """The hot-path codec: what a snapshot taken on the critical path (e.g. before a fork) costs."""

    name = "mem0-lz4"
    codec = "lz4"


class Restic:
    name = "restic"

    def __init__(self, repo: str) -> None:
        self.repo = repo
        _run(["restic", "init", "-q", "--repository-version", "2", "-r", repo])

    def snapshot(self, src: str) -> None:
        _run(["restic", "-q", "-r", self.repo, "backup", "--host", "bench", src])

    def restore(self, dest: str) -> None:
        _run(["restic", "-q", "-r", self.repo, "restore", "latest", "--target", dest])

    def unique_bytes(self) -> int:
        """Uncompressed size of the repository's unique data blobs, summed from its index files."""
        total = 0
        for index_id in _run(["restic", "-q", "-r", self.repo, "list", "index"]).split():
            index = json.loads(_run(["restic", "-q", "-r", self.repo, "cat", "index", index_id]))
            for pack in index["packs"]:
                for blob in pack["blobs"]:
                    if blob["type"] == "data":
                        total += blob.get("uncompressed_length") or blob["length"]
        return total

    def close(self) -> None:
        pass


class Borg:
    name = "borg"

    def __init__(self, repo: str) -> None:
        self.repo, self.n = repo, 0
        _run(["borg", "init", "-e", "none", repo])

    def snapshot(self, src: str) -> None:
        self.n += 1
        _run(["borg", "create", "--compression", "zstd,3", f"{self.repo}::s{self.n}", src])

    def restore(self, dest: str) -> None:
        os.makedirs(dest, exist_ok=True)
        _run(["borg", "extract", f"{self.repo}::s{self.n}"], cwd=dest)

    def unique_bytes(self) -> int:
        return json.loads(_run(["borg", "info", "--json", self.repo]))["cache"]["stats"]["unique_size"]

    def close(self) -> None:
        pass


def available_tools(only: set | None) -> list:
    tools = [Mem0, Mem0Lz4]
    for cls, binary in ((Restic, "restic"), (Borg, "borg")):
        if shutil.which(binary):
            tools.append(cls)
        else:
            print(
                f"NOTE: {binary} not found (apt-get install -y {'borgbackup' if binary == 'borg' else binary});"
                " its column is skipped"
            )
    return [t for t in tools if not only or t.name in only]


# -- runs -------------------------------------------------------------------------------------------


def settle(src: str | None = None) -> None:
    """Flush dirty pages (one tool's writeback must not bill the next) and warm ``src`` in the page cache."""
    os.sync()
    if src:
        for dirpath, _dirs, names in os.walk(src):
            for n in names:
                p = os.path.join(dirpath, n)
                if not os.path.islink(p):
                    with open(p, "rb") as f:
                        while f.read(1 << 20):
                            pass
    time.sleep(1)


def bench_single(tool_cls, src: str, work: str, label: str, repeats: int) -> dict:
    """First snapshot into an empty repository, then a restore; the median run of ``repeats``."""
    runs = []
    for i in range(repeats):
        repo = os.path.join(work, f"{label}-{tool_cls.name}-repo{i}")
        out = os.path.join(work, f"{label}-{tool_cls.name}-out{i}")
        tool = tool_cls(repo)
        settle(src)
        with Clock() as snap:
            tool.snapshot(src)
        settle()
        with Clock() as rest:
            tool.restore(out)
        tool.close()  # Mem0 folds its catalog's WAL back on close; measure the store at rest
        runs.append(
            {
                "logical": tree_bytes(src),
                "stored": tree_bytes(repo),
                "unique": tool.unique_bytes(),
                "snap_s": snap.wall,
                "snap_cpu": snap.cpu,
                "restore_s": rest.wall,
                "restore_cpu": rest.cpu,
            }
        )
    mid = sorted(runs, key=lambda r: r["snap_s"] + r["restore_s"])[len(runs) // 2]
    return mid


def bench_series(tool_cls, work: str, snapshots: int) -> dict:
    ws = os.path.join(work, f"ws-{tool_cls.name}")
    files = build_workspace(ws)
    repo, out = os.path.join(work, f"ws-{tool_cls.name}-repo"), os.path.join(work, f"ws-{tool_cls.name}-out")
    tool = tool_cls(repo)
    settle(ws)
    times, cpus, logical_total = [], [], 0
    for step in range(snapshots):
        if step:
            mutate_workspace(ws, files, step)
        logical_total += tree_bytes(ws)
        with Clock() as c:
            tool.snapshot(ws)
        times.append(c.wall)
        cpus.append(c.cpu)
    settle()
    with Clock() as rest:
        tool.restore(out)
    tool.close()  # Mem0 folds its catalog's WAL back on close; measure the store at rest
    row = {
        "logical": logical_total,
        "stored": tree_bytes(repo),
        "unique": tool.unique_bytes(),
        "first_s": times[0],
        "incr_median_s": statistics.median(times[1:]),
        "incr_p95_s": sorted(times[1:])[int(0.95 * (len(times) - 2))],
        "incr_cpu_median": statistics.median(cpus[1:]),
        "total_s": sum(times),
        "restore_s": rest.wall,
        "restore_bytes": tree_bytes(ws),
    }
    return row


def fmt_single(title: str, rows: dict) -> None:
    print(f"\n{title}")
    print(
        f"{'tool':8} {'logical MB':>10} {'stored MB':>10} {'dedup':>6} {'total':>6} {'snap s':>7} {'snap MB/s':>9}"
        f" {'cpu s':>6} {'restore s':>9} {'rest MB/s':>9} {'cpu s':>6}"
    )
    for name, r in rows.items():
        print(
            f"{name:8} {r['logical'] / MB:10.1f} {r['stored'] / MB:10.2f} {r['logical'] / max(r['unique'], 1):6.2f}"
            f" {r['logical'] / r['stored']:6.2f} {r['snap_s']:7.2f} {r['logical'] / MB / r['snap_s']:9.0f}"
            f" {r['snap_cpu']:6.2f} {r['restore_s']:9.2f} {r['logical'] / MB / r['restore_s']:9.0f} {r['restore_cpu']:6.2f}"
        )


def fmt_series(title: str, rows: dict) -> None:
    print(f"\n{title}")
    print(
        f"{'tool':8} {'logical MB':>10} {'stored MB':>10} {'dedup':>6} {'total':>7} {'first s':>7}"
        f" {'incr med ms':>11} {'incr p95 ms':>11} {'incr cpu ms':>11} {'all snaps s':>11} {'restore s':>9} {'rest MB/s':>9}"
    )
    for name, r in rows.items():
        print(
            f"{name:8} {r['logical'] / MB:10.1f} {r['stored'] / MB:10.2f} {r['logical'] / max(r['unique'], 1):6.1f}"
            f" {r['logical'] / r['stored']:7.1f} {r['first_s']:7.2f} {r['incr_median_s'] * 1000:11.1f}"
            f" {r['incr_p95_s'] * 1000:11.1f} {r['incr_cpu_median'] * 1000:11.1f} {r['total_s']:11.2f}"
            f" {r['restore_s']:9.2f} {r['restore_bytes'] / MB / r['restore_s']:9.0f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="/var/tmp/mem0-bench", help="data and repositories (kept between runs)")
    ap.add_argument("--snapshots", type=int, default=50)
    ap.add_argument(
        "--repeats", type=int, default=3, help="runs of (a) and (c) per tool; the median is shown"
    )
    ap.add_argument("--only", action="append", help="run only this tool (repeatable)")
    ap.add_argument("--workloads", default="abc")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    tools = available_tools(set(args.only or []))
    runtime = build_runtime(os.path.join(args.dir, "data", "runtime"))
    dupes = build_dupes(os.path.join(args.dir, "data", "dupes"))
    work = os.path.join(args.dir, f"run-{int(time.time())}")
    os.makedirs(work)
    print(f"host: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; work dir {work}")
    try:
        if "a" in args.workloads:
            fmt_single(
                "(a) runtime tree: venv with numpy, pandas, django — first snapshot, then restore from cache",
                {t.name: bench_single(t, runtime, work, "runtime", args.repeats) for t in tools},
            )
        if "b" in args.workloads:
            fmt_series(
                f"(b) ~100 MB workspace, {args.snapshots} snapshots, ~1% of files changed before each",
                {t.name: bench_series(t, work, args.snapshots) for t in tools},
            )
        if "c" in args.workloads:
            fmt_single(
                "(c) many duplicate files",
                {t.name: bench_single(t, dupes, work, "dupes", args.repeats) for t in tools},
            )
    finally:
        print(f"\nload average {os.getloadavg()[0]:.1f} at end")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
