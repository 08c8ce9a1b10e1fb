"""Per-sandbox cgroups: memory, pids and CPU limits, accounting, freeze and kill-all.

The host may run cgroup v1 (one hierarchy per controller), v2 (unified) or a hybrid (v1
controllers plus an empty v2 mount). ``detect_cgroups`` decides once at agent start; the
agent reports ``mode`` and ``controls`` (what is really enforced) in ``stats``. A missing
controller is reported, never silently assumed.

Memory: a sandbox's workspace, /tmp and /dev/shm are tmpfs, and tmpfs pages are charged to the memory
cgroup of the process that wrote them. Were the cgroup limit the plan's memory, a full workspace would
leave the processes nothing and a write past it would OOM-kill the whole sandbox (issue 12 #6). So two
limits, each bounding one thing:
  * the cgroup limit is ``memory_limit()``: memory + workspace + tmp sizes. The files can never take
    more than their tmpfs ``size=`` (writers get ENOSPC), so whatever they hold, the processes keep at
    least the plan's memory, and the sandbox as a whole never holds more than this sum;
  * RLIMIT_DATA = the plan's memory, set by the agent on the interpreter (inherited by every process
    it starts): a process whose private writable memory (heap, anonymous mmap, thread stacks; counted
    as address space, and including the runtime's own baseline: ~12 MB python, ~78 MB python-ml) would
    pass it gets ENOMEM (Python: MemoryError) instead of an OOM kill.
Residual: several processes of one sandbox may together use more than the plan's memory, up to the
cgroup limit less what the files hold (then the OOM killer acts and the run ends ``limit: memory``);
shared memory is bounded by the /dev/shm size.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field

ROOT = "/sys/fs/cgroup"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _own_paths() -> dict[str, str]:
    """Controller name (or "" for v2) -> this process's cgroup path."""
    out: dict[str, str] = {}
    for line in _read("/proc/self/cgroup").splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else [""]:
            out[c] = path
    return out


@dataclass
class CgroupPlan:
    """Where this agent's sandbox cgroups live and which controls are enforced."""

    mode: str  # "v1", "v2" or "none"
    bases: dict[str, str] = field(default_factory=dict)  # controller -> directory holding sandbox cgroups
    controls: list[str] = field(default_factory=list)

    def new(self, name: str) -> Cgroup:
        cg = Cgroup(self, name)
        cg.create()
        return cg


def memory_limit(memory_bytes: int, workspace_bytes: int, tmp_bytes: int) -> int:
    """The memory cgroup limit of a sandbox: its processes' memory plus the most its tmpfs files can hold."""
    return memory_bytes + workspace_bytes + tmp_bytes


def detect_cgroups(agent_id: str) -> CgroupPlan:
    """Create this agent's parent cgroups and report which limits can be enforced.

    The parent is ``mem0-{agent_id}-{pid}``: two agents with the same id on one host (a dev
    server and a test run) never touch each other's sandboxes; ``remove_dead_agents`` cleans
    up after agents that died without stopping.
    """
    own = _own_paths()
    leaf = f"mem0-{agent_id}-{os.getpid()}"
    if os.path.exists(f"{ROOT}/cgroup.controllers"):
        return _detect_v2(f"{ROOT}{own.get('', '/')}", leaf)
    if os.path.isdir(f"{ROOT}/memory"):
        plan = CgroupPlan("v1")
        for ctrl, control in (
            ("memory", "memory"),
            ("pids", "pids"),
            ("cpu", "cpu"),
            ("cpuacct", "cpuacct"),
            ("freezer", "freezer"),
        ):
            mnt = f"{ROOT}/{ctrl}"
            if not os.path.isdir(mnt):
                continue
            base = f"{mnt}{own.get(ctrl, '/')}".rstrip("/") + "/" + leaf
            try:
                os.makedirs(base, exist_ok=True)
            except OSError:
                continue
            plan.bases[ctrl] = base
            plan.controls.append(control)
        return plan
    return CgroupPlan("none")


def _detect_v2(own_dir: str, leaf: str) -> CgroupPlan:
    plan = CgroupPlan("v2")
    base = f"{own_dir.rstrip('/')}/{leaf}"
    try:
        os.makedirs(base, exist_ok=True)
        available = _read(f"{base}/cgroup.controllers").split()
        for ctrl in ("memory", "pids", "cpu"):
            if ctrl in available:
                try:
                    _write(f"{base}/cgroup.subtree_control", f"+{ctrl}")
                    plan.controls.append(ctrl)
                except OSError:
                    pass
    except OSError:
        return CgroupPlan("none")
    plan.bases["unified"] = base
    plan.controls += ["freezer", "kill"]
    return plan


class Cgroup:
    """One sandbox's cgroup(s). All methods tolerate a controller that is absent."""

    def __init__(self, plan: CgroupPlan, name: str):
        self.plan = plan
        self.name = name
        self.dirs = {c: f"{b}/{name}" for c, b in plan.bases.items()}
        self._baseline: dict[str, int] = {}
        # Freezing is shared: short holds (a fork's copy, a snapshot, a kill) nest inside a pause,
        # and the cgroup thaws only when the last hold ends and no pause is on.
        self._freeze_lock = threading.Lock()
        self._holds = 0
        self.paused = False

    def _path(self, ctrl: str, file: str) -> str | None:
        d = self.dirs.get("unified" if self.plan.mode == "v2" else ctrl)
        return f"{d}/{file}" if d else None

    def _try_write(self, ctrl: str, file: str, value: str) -> None:
        p = self._path(ctrl, file)
        if p:
            _write(p, value)

    def _try_read(self, ctrl: str, file: str) -> str | None:
        p = self._path(ctrl, file)
        try:
            return _read(p) if p else None
        except OSError:
            return None

    def create(self) -> None:
        for d in self.dirs.values():
            os.makedirs(d, exist_ok=True)

    def procs_files(self) -> list[str]:
        return [f"{d}/cgroup.procs" for d in self.dirs.values()]

    def add_pid(self, pid: int) -> None:
        for f in self.procs_files():
            _write(f, str(pid))

    def set_limits(self, *, memory_bytes: int, pids: int, cpu_cores: float) -> None:
        period = 100_000
        quota = max(1000, int(cpu_cores * period))
        if self.plan.mode == "v2":
            self._try_write("memory", "memory.max", str(memory_bytes))
            swap = self._path("memory", "memory.swap.max")
            if swap and os.path.exists(swap):
                _write(swap, "0")  # no swap: the memory limit is the real limit
            self._try_write("pids", "pids.max", str(pids))
            self._try_write("cpu", "cpu.max", f"{quota} {period}")
        else:
            self._try_write("memory", "memory.limit_in_bytes", str(memory_bytes))
            self._try_write("pids", "pids.max", str(pids))
            self._try_write("cpu", "cpu.cfs_period_us", str(period))
            self._try_write("cpu", "cpu.cfs_quota_us", str(quota))

    def _counter(self, ctrl: str, file: str, key: str) -> int:
        text = self._try_read(ctrl, file) or ""
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == key:
                return int(parts[1])
        return 0

    def cpu_ns(self) -> int:
        if self.plan.mode == "v2":
            return self._counter("cpu", "cpu.stat", "usage_usec") * 1000
        text = self._try_read("cpuacct", "cpuacct.usage")
        return int(text) if text else 0

    def memory_current(self) -> int:
        text = self._try_read(
            "memory", "memory.current" if self.plan.mode == "v2" else "memory.usage_in_bytes"
        )
        return int(text) if text else 0

    def peak_memory(self) -> int:
        text = self._try_read(
            "memory", "memory.peak" if self.plan.mode == "v2" else "memory.max_usage_in_bytes"
        )
        return int(text) if text else 0

    def oom_kills(self) -> int:
        if self.plan.mode == "v2":
            return self._counter("memory", "memory.events", "oom_kill")
        return self._counter("memory", "memory.oom_control", "oom_kill")

    def pids_max_hits(self) -> int:
        return self._counter("pids", "pids.events", "max")

    def pids_at_max(self) -> bool:
        """Whether the cgroup holds as many tasks as its pids limit allows (a fork bomb still running): a
        fork refused by the limit is not always counted in pids.events, e.g. when a process limit of the
        same size refused it first."""
        current, limit = self._try_read("pids", "pids.current"), self._try_read("pids", "pids.max")
        try:
            return limit is not None and limit.strip() != "max" and int(current) >= int(limit)
        except (TypeError, ValueError):
            return False

    def begin_run(self) -> dict[str, int]:
        """Reset the peak-memory watermark and return counters to diff at the end of a run."""
        try:
            self._try_write(
                "memory", "memory.peak" if self.plan.mode == "v2" else "memory.max_usage_in_bytes", "0"
            )
        except OSError:
            pass
        return {"cpu_ns": self.cpu_ns(), "oom": self.oom_kills(), "pids": self.pids_max_hits()}

    def pids(self) -> list[int]:
        ctrl = "freezer" if "freezer" in self.dirs else next(iter(self.dirs), "")
        text = self._try_read(ctrl, "cgroup.procs") or ""
        return [int(x) for x in text.split()]

    @property
    def can_freeze(self) -> bool:
        return "freezer" in self.dirs or (self.plan.mode == "v2" and "unified" in self.dirs)

    def freeze(self) -> None:
        """Stop every task until the matching ``thaw`` (holds nest; see ``pause``)."""
        with self._freeze_lock:
            self._holds += 1
            if self._holds == 1 and not self.paused:
                self._set_frozen(True)

    def thaw(self) -> None:
        with self._freeze_lock:
            self._holds = max(0, self._holds - 1)
            if self._holds == 0 and not self.paused:
                self._set_frozen(False)

    def pause(self) -> bool:
        """Freeze until ``resume``, whatever holds come and go meanwhile; False if already paused."""
        with self._freeze_lock:
            if self.paused:
                return False
            if self._holds == 0:
                self._set_frozen(True)
            self.paused = True
            return True

    def resume(self) -> bool:
        with self._freeze_lock:
            if not self.paused:
                return False
            self.paused = False
            if self._holds == 0:
                self._set_frozen(False)
            return True

    def frozen(self) -> bool:
        """What the kernel says (not what was asked)."""
        if self.plan.mode == "v2":
            return "frozen 1" in (self._try_read("freezer", "cgroup.events") or "")
        return (self._try_read("freezer", "freezer.state") or "").strip() == "FROZEN"

    def _set_frozen(self, frozen: bool) -> None:
        if self.plan.mode == "v2":
            self._try_write("freezer", "cgroup.freeze", "1" if frozen else "0")
            for _ in range(2000 if frozen else 0):  # freezing is asynchronous: wait until every task stopped
                if "frozen 1" in (self._try_read("freezer", "cgroup.events") or "frozen 1"):
                    break
                time.sleep(0.0005)
        elif "freezer" in self.dirs:
            self._try_write("freezer", "freezer.state", "FROZEN" if frozen else "THAWED")
            for _ in range(2000 if frozen else 0):
                if (self._try_read("freezer", "freezer.state") or "").strip() != "FREEZING":
                    break
                time.sleep(0.0005)

    def kill_all(self, exclude: set[int] = frozenset(), *, fast: bool = False) -> None:
        """SIGKILL every process in the cgroup (except ``exclude``), frozen first so none can fork away.

        ``fast``: a lone process is killed without the freeze (~1 ms saved); a child it forked in
        that instant survives until the caller's later full ``kill_all``/``destroy``.
        """
        if fast:
            victims = [p for p in self.pids() if p not in exclude]
            if len(victims) <= 1:
                for pid in victims:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return
        if self.plan.mode == "v2" and not exclude:
            try:
                self._try_write("freezer", "cgroup.kill", "1")
                return
            except OSError:
                pass
        with self._freeze_lock:
            self.paused = False  # a frozen task may not die until thawed: the kill ends a pause
        self.freeze()
        try:
            for _ in range(3):
                victims = [p for p in self.pids() if p not in exclude]
                if not victims:
                    break
                for pid in victims:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        finally:
            self.thaw()

    def destroy(self) -> None:
        """Kill everything left and remove the directories (retrying while the kernel reaps)."""
        if self.pids():
            self.kill_all()
        for d in self.dirs.values():
            for _ in range(200):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)


def remove_dead_agents(plan: CgroupPlan, agent_id: str) -> int:
    """Kill the sandboxes left by earlier agents with this id whose process is gone; returns how many."""
    removed = 0
    for ctrl, base in plan.bases.items():
        parent = os.path.dirname(base)
        prefix = f"mem0-{agent_id}-"
        for name in os.listdir(parent):
            pid = name[len(prefix) :]
            if not name.startswith(prefix) or not pid.isdigit() or os.path.exists(f"/proc/{pid}"):
                continue
            stale = CgroupPlan(plan.mode, {ctrl: f"{parent}/{name}"}, plan.controls)
            try:
                children = os.listdir(f"{parent}/{name}")
            except FileNotFoundError:  # another agent with this id, starting too, removed it first
                continue
            for child in children:
                if os.path.isdir(f"{parent}/{name}/{child}"):
                    Cgroup(stale, child).destroy()
                    removed += 1
            try:
                os.rmdir(f"{parent}/{name}")
            except OSError:
                pass
    return removed


def remove_plan(plan: CgroupPlan) -> None:
    """Remove this agent's (empty) parent cgroups at stop."""
    for base in plan.bases.values():
        try:
            os.rmdir(base)
        except OSError:
            pass


def park(plan: CgroupPlan, pid: int) -> None:
    """Move a sandbox's init out of the sandbox cgroup into the agent's parent cgroup (v1).

    Under v2 a parent with controllers enabled may not hold processes, so the init stays and
    ``kill_all`` excludes it instead.
    """
    if plan.mode != "v1":
        return
    for base in plan.bases.values():
        try:
            _write(f"{base}/cgroup.procs", str(pid))
        except OSError:
            pass
