"""What per-organisation block store scopes cost and what they keep, on bench/snapshots.py's data.

Prints a table: (1) the same workspace snapshotted by N organisations into one shared store (the
old global dedup) and into N scopes (each organisation stores its own copy); (2) dedup inside one scope
over a series of snapshots with ~1 % of files changed each (what scoping keeps); (3) the time of the
charge recount (`BlockStore.referenced_bytes` over every live snapshot of the series), which snapshot
create and delete run. Not a test.

Usage: python bench/tenant_scopes.py [--dir /var/tmp/mem0-bench-scopes] [--tenants 3] [--snapshots 20]
"""

import argparse
import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.snapshots import build_workspace, mutate_workspace  # noqa: E402
from sandboxes.engine.blockstore import BlockStore  # noqa: E402

MB = 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/var/tmp/mem0-bench-scopes")
    ap.add_argument("--tenants", type=int, default=3)
    ap.add_argument("--snapshots", type=int, default=20)
    args = ap.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    ws = os.path.join(args.dir, "ws")
    files = build_workspace(ws)

    with BlockStore(os.path.join(args.dir, "shared")) as shared:
        shared_stored = sum(shared.snapshot_tree(ws).stored_bytes for _ in range(args.tenants))
    with BlockStore(os.path.join(args.dir, "scoped")) as base:
        scoped_stored = sum(
            base.scoped(f"org-{i}").snapshot_tree(ws).stored_bytes for i in range(args.tenants)
        )

    with BlockStore(os.path.join(args.dir, "series")) as base:
        org = base.scoped("org-1")
        results, index = [], None
        for step in range(args.snapshots):
            if step:
                mutate_workspace(ws, files, step)
            res = org.snapshot_tree(ws, previous_index=index)
            index = res.index
            results.append(res)
        logical = sum(r.logical_bytes for r in results)
        stored = sum(r.stored_bytes for r in results)
        digests = [r.digest for r in results]
        times = []
        for _ in range(5):
            t = time.perf_counter()
            held = org.referenced_bytes(digests)
            times.append(time.perf_counter() - t)

    print(f"| {args.tenants} organisations, same {results[0].logical_bytes / MB:.0f} MB workspace | stored |")
    print("|---|---|")
    print(f"| one shared store (cross-tenant dedup, the old behaviour) | {shared_stored / MB:.1f} MB |")
    print(f"| one scope per organisation (this code) | {scoped_stored / MB:.1f} MB |")
    print()
    print(f"| {args.snapshots} snapshots in one scope, ~1 % changed each | figure |")
    print("|---|---|")
    print(f"| logical / stored | {logical / MB:.0f} MB / {stored / MB:.1f} MB = {logical / stored:.0f}x |")
    print(f"| charged (referenced, uncompressed, shared chunks once) | {held / MB:.1f} MB |")
    print(
        f"| recount over all {args.snapshots} live snapshots, median of 5 | {statistics.median(times) * 1000:.1f} ms |"
    )
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
