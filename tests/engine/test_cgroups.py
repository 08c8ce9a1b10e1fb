"""Per-sandbox cgroups on the host's real hierarchies: v1 here, and v2 through the hybrid
host's unified mount (which has no controllers, but freeze, kill and cpu.stat)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from sandboxes.engine import cgroups


def _sleepers(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen(["sleep", "100"]) for _ in range(n)]


def _all_dead(procs: list[subprocess.Popen], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.poll() is not None for p in procs):
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def root_only():
    if os.geteuid() != 0:
        pytest.skip("cgroups need root")


def test_detected_plan_enforces_and_kills(root_only):
    plan = cgroups.detect_cgroups("cgtest")
    if plan.mode == "none":
        pytest.skip("no cgroups")
    assert {"memory", "pids"} <= set(plan.controls)
    cg = plan.new("one")
    procs = _sleepers(3)
    try:
        for p in procs:
            cg.add_pid(p.pid)
        cg.set_limits(memory_bytes=64 << 20, pids=16, cpu_cores=0.5)
        assert sorted(cg.pids()) == sorted(p.pid for p in procs)
        assert cg.memory_current() >= 0  # v1 does not move existing charges with a task
        counters = cg.begin_run()
        assert set(counters) == {"cpu_ns", "oom", "pids"}
        cg.kill_all()
        assert _all_dead(procs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        cg.destroy()
        cgroups.remove_plan(plan)
    assert not os.path.exists(cg.dirs[next(iter(cg.dirs))])


def test_v2_freeze_and_kill_through_the_unified_mount(root_only):
    unified = "/sys/fs/cgroup/unified"
    if not os.path.exists(f"{unified}/cgroup.procs"):
        pytest.skip("no unified cgroup2 mount")
    base = f"{unified}/mem0-cgtest-{os.getpid()}"
    os.makedirs(base, exist_ok=True)
    plan = cgroups.CgroupPlan("v2", {"unified": base}, ["freezer", "kill"])
    cg = plan.new("one")
    procs = _sleepers(2)
    try:
        for p in procs:
            cg.add_pid(p.pid)
        assert sorted(cg.pids()) == sorted(p.pid for p in procs)
        cg.freeze()
        with open(f"{cg.dirs['unified']}/cgroup.events") as f:
            assert "frozen 1" in f.read()
        cg.thaw()
        assert cg.cpu_ns() >= 0
        cg.kill_all()
        assert _all_dead(procs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        cg.destroy()
        os.rmdir(base)
