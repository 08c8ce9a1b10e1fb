"""The fork-agent: owns the zygotes, warm pools and live sandboxes of one host and serves ops
from the bus (create, run, fork, kill, files, stats, snapshot, restore, sandbox_ids).

Start it as a daemon::

    python -m sandboxes.engine.agent --redis-url redis://127.0.0.1:6379/0 --agent-id host-a \\
        --state-dir /var/lib/mem0/agent --capacity 200

or embedded (in-process transport, threads in the caller's process; zygotes are child
processes)::

    bus = make_bus(None); handle = start_embedded_agent(bus, state_dir="/var/lib/mem0/agent")

Threads: one op consumer, a pool of op workers, the supervisor's I/O hub (all sandbox
descriptors, run deadlines, output publishing), a heartbeat, two refillers per warm pool, a
cleaner. The agent must run as root (namespaces, cgroups, mounts); it never imports Django.
Modules: ``factory`` makes and releases sandboxes, ``supervisor`` watches them run, ``pool``
keeps them warm, ``files`` and the block store serve the workspace.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import resource
import shutil
import signal
import socket
import stat
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from . import cgroups, go_toolchain, node_runtime
from .command_ops import CommandOps
from .factory import SandboxFactory
from .files import Workspace
from .pause_ops import PauseOps
from .pool import WarmPool
from .ports import PortOps, PortRelay
from .protocol import HEARTBEAT_INTERVAL, AgentInfo, EngineError, Limits, OpReply, OpRequest
from .runtime_info import runtime_version, template_info
from .runtimes import Runtime, builtin_runtimes
from .sandbox import Run, Sandbox
from .supervisor import Supervisor
from .transport import Bus
from .watch import WatchHub
from .workspace_ops import WorkspaceOps
from .zygote import TMP_BYTES

log = logging.getLogger("mem0.engine.agent")

MAX_CODE_BYTES = 4 << 20
MAX_STDIN_BYTES = 1 << 20
REVIVE_WAIT_S = 30.0  # an op on a sandbox whose interpreter is being replaced waits this long for it
CANCEL_WAIT_S = 3.0  # the cancel op answers once the run has ended, or after this
MAX_ENV_BYTES = 64 << 10
ENDED_CPU_KEPT = 10_000  # ended sandboxes whose lifetime CPU the agent still answers for (kill op)
GIL_SWITCH_INTERVAL_S = 0.0005
# Ops answered on the consumer thread itself (never block on a process or the disk).
INLINE_OPS = frozenset({"run", "stats", "sandbox_ids", "command_stdin", "command_signal", "command_list"})
# Ops that go to the op workers (snapshot, restore, fork, files, kill, a create that must spawn)
# can take seconds; one organisation may hold this many of the 16 at once, so it can never starve
# the others. Over it the op is refused at once with ``rate_limited`` (the API's 429).
OP_WORKERS = 16
OPS_PER_OWNER = 4
UNCAPPED_OPS = frozenset({"kill", "cancel"})  # quick, and how an owner frees what it holds: never refused


class Agent(WorkspaceOps, PauseOps, PortOps, CommandOps):
    def __init__(
        self,
        bus: Bus,
        *,
        agent_id: str = "local",
        host: str | None = None,
        capacity: int = 100,
        state_dir: str,
        runtimes: dict[str, Runtime] | None = None,
        pool_min: int = 2,
        pool_max: int = 32,
        templates: list[str] | None = None,
        blockstore=None,
        blockstore_dir: str | None = None,
        go_cache_dir: str = go_toolchain.DEFAULT_CACHE_DIR,
    ):
        self.bus = bus
        self.agent_id = agent_id
        self.host = host or socket.gethostname()
        self.capacity = capacity
        self.state_dir = os.path.abspath(state_dir)
        all_runtimes = runtimes or builtin_runtimes()
        self.runtimes = {k: v for k, v in all_runtimes.items() if templates is None or k in templates}
        self.pool_min, self.pool_max = pool_min, pool_max
        self.sandboxes: dict[str, Sandbox] = {}  # sandbox_id -> live, handed-over sandbox
        # Lifetime CPU metering: the cgroup's CPU at hand-over (the pool's warm-up is nobody's), and the
        # lifetime CPU (ms) of sandboxes that ended, until the Django side asks (``op_kill``).
        self.cpu_base: dict[str, int] = {}
        self.ended_cpu: OrderedDict[str, float] = OrderedDict()
        self.cpu_lock = threading.Lock()
        self.pools: dict[str, WarmPool] = {}
        self.stop_event = threading.Event()
        self.executor = ThreadPoolExecutor(max_workers=OP_WORKERS, thread_name_prefix="mem0-op")
        self.owner_ops: dict[str, int] = {}  # owner -> ops of theirs on the workers or queued for them
        self.owner_lock = threading.Lock()
        self.cleaner = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mem0-cleanup")
        self.supervisor = Supervisor(bus, self._on_dead, self._restartable)
        self.watch_hub = WatchHub(bus)
        self.versions: dict[str, str] = {}
        # Sandboxes whose interpreter died and is being replaced (``_revive``): id -> set when done.
        self.reviving: dict[str, threading.Event] = {}
        self.cpu_carried: dict[str, float] = {}  # lifetime CPU (ms) of a sandbox's earlier interpreters
        self.revive_lock = threading.Lock()
        self._blockstore = blockstore  # a configured BlockStore (S3 tier...), or a local one made lazily
        self.blockstore_dir = blockstore_dir or os.path.join(self.state_dir, "blocks")
        self.go_cache_dir = go_cache_dir

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Agent:
        if os.geteuid() != 0:
            raise EngineError("internal_error", "the agent must run as root (namespaces, cgroups, mounts)")
        os.makedirs(self.state_dir, exist_ok=True)
        self.cg_plan = cgroups.detect_cgroups(self.agent_id)
        stale = cgroups.remove_dead_agents(self.cg_plan, self.agent_id)
        if stale:
            log.warning("event=stale_sandboxes_killed agent=%s count=%d", self.agent_id, stale)
        self.supervisor.start()
        toolchains = self._prepare_toolchains()
        self.watch_hub.start()
        self.factory = SandboxFactory(
            runtimes=self.runtimes,
            state_dir=self.state_dir,
            cg_plan=self.cg_plan,
            supervisor=self.supervisor,
            executor=self.executor,
            toolchains=toolchains,
        )
        self.factory.start()
        self.ports = PortRelay(self.state_dir, self._get)
        self.ports.start()
        for name, rt in self.runtimes.items():
            pool = WarmPool(
                name,
                lambda rt=rt: self.factory.spawn(rt),
                self.supervisor.kill,
                min_size=self.pool_min,
                max_size=self.pool_max,
            )
            self.pools[name] = pool
            pool.start()
        self.versions = {name: runtime_version(rt) for name, rt in self.runtimes.items()}
        self._heartbeat()
        threading.Thread(target=self._heartbeat_loop, name="mem0-heartbeat", daemon=True).start()
        self.consumer = threading.Thread(
            target=self.bus.serve_ops,
            name="mem0-ops",
            args=(self.agent_id, self._submit, self.stop_event),
            daemon=True,
        )
        self.consumer.start()
        log.info(
            "event=agent_started agent=%s cgroups=%s controls=%s",
            self.agent_id,
            self.cg_plan.mode,
            ",".join(self.cg_plan.controls),
        )
        return self

    def _prepare_toolchains(self) -> dict[str, dict]:
        """Host directories of runtimes that bring programs of their own: Go's toolchain with its shared
        build cache built first (``go_toolchain``), Node.js's program (``node_runtime``). A runtime whose
        program is missing or fails is not served (not advertised)."""
        out: dict[str, dict] = {}
        for name, rt in list(self.runtimes.items()):
            if rt.language not in ("go", "node"):
                continue
            try:
                if rt.language == "node":
                    out[name] = node_runtime.root_dirs(self.state_dir)
                    continue
                toolchain = go_toolchain.find_toolchain()
                if toolchain is None:
                    raise RuntimeError("no go command on the system PATH (Debian package golang)")
                log.info("event=go_cache_prepare dir=%s version=%s", self.go_cache_dir, toolchain.version)
                go_toolchain.prepare_cache(toolchain, self.go_cache_dir)  # ~0.5 s warm; minutes the first time
                out[name] = go_toolchain.root_dirs(toolchain, self.go_cache_dir)
            except Exception as exc:
                log.error("event=runtime_unavailable runtime=%s detail=%r", name, str(exc)[:500])
                del self.runtimes[name]
        return out

    def stop(self) -> None:
        self.stop_event.set()
        wake = getattr(self.bus, "wake", None)
        if wake:
            wake(self.agent_id)
        self.bus.unregister_agent(self.agent_id)
        for pool in self.pools.values():
            for sb in pool.stop():
                self.supervisor.kill(sb)
        for sb in list(self.sandboxes.values()):
            self.supervisor.kill(sb)
        self.watch_hub.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)
        deadline = time.monotonic() + 10
        while self.factory.live and time.monotonic() < deadline:  # deaths seen, resources released
            time.sleep(0.01)
        self.supervisor.stop()
        self.ports.stop()
        self.cleaner.shutdown(wait=True)
        self.factory.stop()
        for base in self.cg_plan.bases.values():
            for name in os.listdir(base):
                if os.path.isdir(f"{base}/{name}"):
                    cgroups.Cgroup(self.cg_plan, name).destroy()
        time.sleep(0.05)  # parked inits exit once their last sandbox is gone
        cgroups.remove_plan(self.cg_plan)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until every pool holds at least one warm sandbox (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while any(p.size() < 1 for p in self.pools.values()):
            if time.monotonic() > deadline:
                raise EngineError("agent_timeout", "warm pools did not fill")
            time.sleep(0.01)

    def _heartbeat(self) -> None:
        self.bus.register_agent(
            AgentInfo(
                id=self.agent_id,
                host=self.host,
                capacity=self.capacity,
                runtimes=sorted(self.runtimes),
                load=len(self.sandboxes),
                last_heartbeat=time.time(),
                alive=True,
                templates=[
                    template_info(rt, self.versions.get(name, "unknown"), self.pools[name].size())
                    for name, rt in sorted(self.runtimes.items())
                    if name in self.pools
                ],
            )
        )

    def _heartbeat_loop(self) -> None:
        while not self.stop_event.wait(HEARTBEAT_INTERVAL):
            try:
                self._heartbeat()
            except Exception:
                log.exception("event=heartbeat_failed")

    def _restartable(self, sb: Sandbox) -> bool:
        """Supervisor callback (hub thread): may a handed-over sandbox whose interpreter died get a fresh
        one? Yes unless the agent is stopping; its id is held (ops wait) until ``_revive`` is done."""
        sid = sb.sandbox_id
        if not sid or self.sandboxes.get(sid) is not sb or self.stop_event.is_set():
            return False
        self.reviving.setdefault(sid, threading.Event())
        return True

    def _on_dead(self, sb: Sandbox) -> None:
        """Supervisor callback (hub thread): the sandbox's interpreter is gone. Its lifetime CPU is kept
        (the cgroup goes with the release) for the Django side to meter."""
        if sb.restarting:
            try:
                self.executor.submit(self._revive, sb)
                return
            except RuntimeError:  # agent stopping
                self._revived(sb.sandbox_id)
        if sb.sandbox_id and sb.sandbox_id in self.cpu_base:
            self._remember_cpu(sb)
        if sb.sandbox_id and self.sandboxes.get(sb.sandbox_id) is sb:
            self.sandboxes.pop(sb.sandbox_id, None)
            self.ports.unexpose(sb.sandbox_id)
        if sb.sandbox_id:
            self.watch_hub.end_sandbox(sb.sandbox_id)
        for pool in self.pools.values():
            pool.discard(sb)
        try:
            self.cleaner.submit(self.factory.release, sb)
        except RuntimeError:  # agent stopping: release inline
            self.factory.release(sb)

    # ------------------------------------------------------------------ ops dispatch

    def _submit(self, req: OpRequest) -> None:
        if req.deadline and time.time() > req.deadline:
            return  # the caller has given up; an answer would go nowhere
        reviving = isinstance(req.args, dict) and req.args.get("sandbox_id") in self.reviving
        if (req.op in INLINE_OPS and not reviving) or (req.op == "create" and self._pool_ready(req.args)):
            self._handle(req)  # sub-millisecond: a thread hop would cost more than the op
        elif not req.owner or req.op in UNCAPPED_OPS:
            self.executor.submit(self._handle, req)
        elif self._owner_take(req.owner):
            self.executor.submit(self._handle_for_owner, req)
        else:
            self._reply(
                req,
                OpReply(
                    req.request_id,
                    False,
                    None,
                    "rate_limited",
                    f"this organisation already has {OPS_PER_OWNER} sandbox operations in progress on this "
                    "host; retry when one has finished",
                    {"limit": OPS_PER_OWNER},
                ),
            )

    def _owner_take(self, owner: str) -> bool:
        with self.owner_lock:
            if self.owner_ops.get(owner, 0) >= OPS_PER_OWNER:
                return False
            self.owner_ops[owner] = self.owner_ops.get(owner, 0) + 1
            return True

    def _handle_for_owner(self, req: OpRequest) -> None:
        try:
            self._handle(req)
        finally:
            with self.owner_lock:
                left = self.owner_ops[req.owner] - 1
                if left:
                    self.owner_ops[req.owner] = left
                else:
                    del self.owner_ops[req.owner]

    def _pool_ready(self, args) -> bool:
        pool = self.pools.get(args.get("runtime")) if isinstance(args, dict) else None
        return pool is not None and pool.size() > 0

    def _handle(self, req: OpRequest) -> None:
        handler = getattr(self, f"op_{req.op}", None)
        try:
            if handler is None:
                raise EngineError("invalid_request", f"unknown op {req.op!r}")
            if not isinstance(req.args, dict):
                raise EngineError("invalid_request", "args must be an object")
            reply = OpReply(req.request_id, True, handler(**req.args))
        except EngineError as exc:
            reply = OpReply(req.request_id, False, None, exc.code, exc.message, exc.details)
        except TypeError as exc:
            reply = OpReply(req.request_id, False, None, "invalid_request", str(exc))
        except Exception as exc:
            log.exception("event=op_failed op=%s", req.op)
            reply = OpReply(req.request_id, False, None, "internal_error", f"{type(exc).__name__}: {exc}")
        self._reply(req, reply)

    def _reply(self, req: OpRequest, reply: OpReply) -> None:
        try:
            self.bus.reply(req, reply)
        except Exception:
            log.exception("event=reply_failed op=%s request=%s", req.op, req.request_id)

    def _revive(self, dead: Sandbox) -> None:
        """A fresh interpreter for a sandbox whose interpreter died: a warm sandbox of the same runtime
        takes over its id, environment, limits and a copy of its workspace; memory is ``lost``. Processes
        the old one left running are gone with it (its cgroup is killed before the copy)."""
        sid = dead.sandbox_id
        try:
            dead.cgroup.kill_all(exclude={dead.lineage.init_pid})
            cpu = self._lifetime_cpu_ms(dead)
            fresh = self._take(dead.runtime.name)
            try:
                self.factory.resize_workspace(fresh, dead.limits.workspace_bytes)  # room for the copy
                _copy_workspace(self._workspace(dead), self._workspace(fresh))
                fresh.memory = "lost"
                with (
                    self.revive_lock
                ):  # a kill op meanwhile either came first (no hand-over) or sees ``fresh``
                    if self.sandboxes.get(sid) is not dead:
                        raise EngineError("sandbox_not_running", "killed while restarting")
                    self.cpu_carried[sid] = cpu
                    self._hand_over(fresh, sid, dead.env, dead.limits)  # replaces ``dead`` under its id
            except Exception:
                self.supervisor.kill(fresh)
                raise
            log.info("event=interpreter_restarted sandbox=%s", sid)
        except Exception as exc:
            log.warning("event=interpreter_restart_failed sandbox=%s error=%r", sid, str(exc)[:200])
            if self.sandboxes.get(sid) is dead:
                self.sandboxes.pop(sid, None)
                self._remember_cpu(dead)
        finally:
            self._revived(sid)
            dead.restarting = False
            self.factory.release(dead)

    def _revived(self, sandbox_id: str) -> None:
        event = self.reviving.pop(sandbox_id, None)
        if event is not None:
            event.set()

    def _get(self, sandbox_id: str) -> Sandbox:
        reviving = self.reviving.get(sandbox_id)
        if reviving is not None:
            reviving.wait(REVIVE_WAIT_S)
        sb = self.sandboxes.get(sandbox_id)
        if sb is None or not sb.alive:
            raise EngineError(
                "sandbox_not_running", f"sandbox {sandbox_id} is not running on {self.agent_id}"
            )
        return sb

    def _take(self, runtime_name: str) -> Sandbox:
        runtime = self.runtimes.get(runtime_name)
        if runtime is None:
            raise EngineError("unknown_runtime", f"runtime {runtime_name!r} is not served by {self.agent_id}")
        pool = self.pools[runtime_name]
        for _ in range(3):
            sb = pool.take() or self.factory.spawn(runtime)
            if sb.alive:
                return sb
        raise EngineError("internal_error", "could not obtain a live sandbox")

    def _hand_over(self, sb: Sandbox, sandbox_id: str, env: dict, limits: Limits) -> dict:
        """Give a pooled (or forked) sandbox its id, environment and limits. Memory: the cgroup holds
        the processes *and* the workspace, /tmp and /dev/shm tmpfs pages, so it is sized for all of
        them and the interpreter's RLIMIT_DATA is the plan's memory (see ``cgroups`` docstring)."""
        sb.sandbox_id = sandbox_id
        sb.env = dict(env)
        sb.limits = limits
        sb.cgroup.set_limits(
            memory_bytes=cgroups.memory_limit(limits.memory_bytes, limits.workspace_bytes, 2 * TMP_BYTES),
            pids=limits.pids,
            cpu_cores=limits.cpu_cores,
        )
        # Set from the host (prlimit), so it holds before any code runs; the interpreter's forks inherit it.
        if sb.host_pid <= 0:  # prlimit(0) would be the agent's own limit
            raise EngineError("internal_error", "sandbox interpreter pid unknown")
        resource.prlimit(sb.host_pid, resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes))
        self.factory.resize_workspace(sb, limits.workspace_bytes)
        if sb.memory in ("fresh", "lost"):
            os.setpriority(os.PRIO_PROCESS, sb.host_pid, 0)  # pooled sandboxes idle at the zygote's nice
            for tid in sb.resident_threads():  # node, started in the pool (nice is per thread)
                os.setpriority(os.PRIO_PROCESS, tid, 0)
        sb.send(
            {
                "op": "configure",
                "env": env,
                "nofile": 1024,
                "nproc": limits.pids + 16,  # backstop only: the pids cgroup hits first
                # A backstop on sparse files; one page over the workspace so that a file filling the
                # workspace meets the tmpfs's ENOSPC (a full disk) first, not EFBIG.
                "fsize": limits.workspace_bytes + 4096,
                "data": limits.memory_bytes,
            }
        )
        sb.state = "running"
        self.cpu_base[sandbox_id] = sb.cgroup.cpu_ns()
        self.sandboxes[sandbox_id] = sb
        return {
            "sandbox_id": sandbox_id,
            "runtime": sb.runtime.name,
            "pid": sb.host_pid,
            "agent_id": self.agent_id,
            "memory": sb.memory,
        }

    def _check_new(self, sandbox_id, env, limits) -> tuple[dict, Limits]:
        if not isinstance(sandbox_id, str) or not 0 < len(sandbox_id) <= 128:
            raise EngineError("invalid_request", "sandbox_id must be a non-empty string")
        if sandbox_id in self.sandboxes:
            raise EngineError("invalid_request", f"sandbox {sandbox_id} already exists")
        if len(self.sandboxes) >= self.capacity:
            raise EngineError("agents_unavailable", f"agent {self.agent_id} is at capacity")
        env = env or {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise EngineError("invalid_request", "env must map strings to strings")
        if any("=" in k or "\x00" in k or "\x00" in v or not k for k, v in env.items()):
            raise EngineError("invalid_request", "invalid environment variable")
        if sum(len(k) + len(v) for k, v in env.items()) > MAX_ENV_BYTES:
            raise EngineError("payload_too_large", "environment too large")
        limits = limits if isinstance(limits, Limits) else Limits.from_dict(limits)
        if limits.network:
            raise EngineError("invalid_request", "network egress is not available on this agent")
        return env, limits

    def _workspace(self, sb: Sandbox) -> Workspace:
        return Workspace(sb.zygote.workspace_path(sb.slot), sb.owner_uid)

    # ------------------------------------------------------------------ ops

    def op_create(
        self, *, sandbox_id: str, runtime: str, env: dict | None = None, limits: dict | None = None
    ) -> dict:
        env, lim = self._check_new(sandbox_id, env, limits)
        return self._hand_over(self._take(runtime), sandbox_id, env, lim)

    def op_run(
        self,
        *,
        sandbox_id: str,
        execution_id: str,
        code: str,
        timeout_s: float | None = None,
        owner: str | None = None,
        stdin: str | None = None,
    ) -> dict:
        """Start a run. ``owner`` (the organisation, from the Django side) is whose output budget on
        the bus the run's output counts against; without one, the sandbox's. ``stdin``: what the run's
        ``sys.stdin`` reads, then end of file (at most ``MAX_STDIN_BYTES``)."""
        if not isinstance(code, str):
            raise EngineError("invalid_request", "code must be a string")
        if len(code) > MAX_CODE_BYTES:
            raise EngineError("payload_too_large", "code too large")
        if stdin is not None and not isinstance(stdin, str):
            raise EngineError("invalid_request", "stdin must be a string")
        if stdin is not None and len(stdin.encode("utf-8", "surrogatepass")) > MAX_STDIN_BYTES:
            raise EngineError("payload_too_large", f"stdin is over {MAX_STDIN_BYTES} bytes")
        if not isinstance(execution_id, str) or not execution_id:
            raise EngineError("invalid_request", "execution_id must be a non-empty string")
        if owner is not None and (not isinstance(owner, str) or not 0 < len(owner) <= 128):
            raise EngineError("invalid_request", "owner must be a non-empty string")
        sb = self._get(sandbox_id)
        with sb.lock:
            self._refuse_if_paused(sb)
            if sb.run is not None:
                raise EngineError(
                    "sandbox_busy",
                    "a run is already active in this sandbox",
                    {"execution_id": sb.run.execution_id},
                )
            limit_s = sb.limits.run_timeout_s
            timeout = min(float(timeout_s), limit_s) if timeout_s else limit_s
            now = time.monotonic()
            run = Run(
                execution_id=execution_id,
                started=now,
                deadline=now + timeout,
                counters=sb.cgroup.begin_run(),
                output_cap=sb.limits.output_bytes,
            )
            self.bus.output_open(execution_id, owner or f"sandbox:{sandbox_id}")
            self.supervisor.begin_run(sb, run, code, stdin)
        return {"execution_id": execution_id}

    def op_cancel(self, *, sandbox_id: str, execution_id: str) -> dict:
        """Interrupt a run and keep the sandbox: SIGINT to the interpreter (``KeyboardInterrupt``), every
        other process of the sandbox killed; an interpreter that has not stopped within the grace is
        ended and restarted (memory ``lost``). Answers once the run has ended (or after
        ``CANCEL_WAIT_S``): ``{"cancelled": false}`` when the run is not the sandbox's current one."""
        sb = self._get(sandbox_id)
        if not self.supervisor.cancel(sb, execution_id):
            return {"cancelled": False}
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            current = self.sandboxes.get(sandbox_id)
            run = current.run if current is not None else None
            if (run is None or run.execution_id != execution_id) and sandbox_id not in self.reviving:
                break
            time.sleep(0.005)
        return {"cancelled": True}

    def op_fork(self, *, sandbox_id: str, new_sandbox_id: str, limits: dict | None = None) -> dict:
        parent = self._get(sandbox_id)
        env, lim = self._check_new(new_sandbox_id, parent.env, limits)
        with parent.lock:
            if parent.run is not None:
                raise EngineError("invalid_request", "sandbox is running code; fork between runs")
            if not parent.runtime.can_fork:
                return self._fork_fresh(parent, new_sandbox_id, env, lim)
            # A paused parent runs for the clone (its interpreter makes it) and is paused again.
            was_paused = parent.cgroup.resume()
            try:
                child = self.factory.fork(parent, lim)
            finally:
                if was_paused:
                    parent.cgroup.pause()
        return self._hand_over(child, new_sandbox_id, env, lim)

    def _fork_fresh(self, parent: Sandbox, new_id: str, env: dict, lim: Limits) -> dict:
        """Fork for runtimes without memory fork: a fresh sandbox with a copy of the workspace."""
        child = self._take(parent.runtime.name)
        try:
            parent.cgroup.freeze()
            try:
                _copy_workspace(self._workspace(parent), self._workspace(child))
            finally:
                parent.cgroup.thaw()
        except OSError as exc:
            self.supervisor.kill(child)
            raise EngineError(
                "payload_too_large" if exc.errno == errno.ENOSPC else "internal_error", str(exc)
            ) from exc
        child.memory = "fresh"
        return self._hand_over(child, new_id, env, lim)

    def _lifetime_cpu_ms(self, sb: Sandbox) -> float:
        """CPU (ms) the sandbox's cgroup used since hand-over: every process, in runs or between them."""
        base = self.cpu_base.get(sb.sandbox_id, 0)
        carried = self.cpu_carried.get(sb.sandbox_id, 0.0) if sb.memory == "lost" else 0.0
        return round(max(0, sb.cgroup.cpu_ns() - base) / 1e6 + carried, 3)

    def _remember_cpu(self, sb: Sandbox) -> float:
        """Keep the sandbox's lifetime CPU (the kill op and the death both call this: the larger wins,
        a cgroup already released reads 0)."""
        cpu = self._lifetime_cpu_ms(sb)
        with self.cpu_lock:
            cpu = max(cpu, self.ended_cpu.get(sb.sandbox_id, 0.0))
            self.ended_cpu[sb.sandbox_id] = cpu
            self.ended_cpu.move_to_end(sb.sandbox_id)
            while len(self.ended_cpu) > ENDED_CPU_KEPT:
                forgotten, _ = self.ended_cpu.popitem(last=False)
                self.cpu_base.pop(forgotten, None)
        return cpu

    def op_kill(self, *, sandbox_id: str) -> dict:
        """Kill the sandbox; ``cpu_ms`` is its lifetime CPU (also for one that already ended by itself,
        while the agent remembers it; ``None`` if it does not), which the Django side meters once."""
        with self.revive_lock:
            sb = self.sandboxes.pop(sandbox_id, None)
        self.ports.unexpose(sandbox_id)
        if sb is not None:
            self.supervisor.kill(sb)  # SIGKILL: no CPU is used after this reading
            return {"killed": True, "cpu_ms": self._remember_cpu(sb)}
        return {"killed": False, "cpu_ms": self.ended_cpu.get(sandbox_id)}

    def op_sandboxes_cpu(self) -> dict[str, float]:
        """Lifetime CPU (ms) of every live sandbox, for metering long-lived ones between runs."""
        return {sid: self._lifetime_cpu_ms(sb) for sid, sb in list(self.sandboxes.items()) if sb.alive}

    def op_sandbox_ids(self) -> list[str]:
        alive = {sid for sid, sb in list(self.sandboxes.items()) if sb.alive}
        return sorted(alive | set(self.reviving))

    def op_stats(self) -> dict:
        return {
            "agent_id": self.agent_id,
            "host": self.host,
            "capacity": self.capacity,
            "load": len(self.sandboxes),
            "sandboxes": len(self.sandboxes),
            "active_runs": len(self.supervisor.active_runs),
            "pools": {
                name: {"idle": p.size(), "target": p.target(), "demand_per_s": round(p.demand.value(), 3)}
                for name, p in self.pools.items()
            },
            "cgroup": {"mode": self.cg_plan.mode, "controls": list(self.cg_plan.controls)},
            "zygotes": {name: z.pid for name, z in self.factory.zygotes.items()},
            "runtimes": sorted(self.runtimes),
            "init": "compiled" if self.factory.reaper else "python",
        }


def _copy_workspace(src: Workspace, dst: Workspace) -> None:
    """A sandbox's workspace into another's (a fresh fork, a restarted interpreter), owned by the new one."""
    shutil.copytree(src.root, dst.root, symlinks=True, dirs_exist_ok=True, copy_function=_copy_regular)
    dst.chown_tree()


def _copy_regular(src: str, dst: str) -> None:
    """Copy a regular file of a workspace the sandbox wrote; anything else it may have made there (a FIFO
    would block the copy forever, a socket or device node means nothing outside its sandbox) is left out."""
    if stat.S_ISREG(os.lstat(src).st_mode):
        shutil.copy2(src, dst, follow_symlinks=False)


def start_embedded_agent(
    bus: Bus, *, agent_id: str = "local", state_dir: str, capacity: int = 100, **options
) -> Agent:
    """Run an agent as threads of this process (zygotes are child processes); ``.stop()`` ends it.

    ``options``: pool_min, pool_max, templates (runtime names to serve), blockstore (a configured
    ``BlockStore``, e.g. with the S3 tier) or blockstore_dir (default ``{state_dir}/blocks``),
    go_cache_dir (the Go runtime's shared build cache, default ``go_toolchain.DEFAULT_CACHE_DIR``).
    """
    return Agent(bus, agent_id=agent_id, state_dir=state_dir, capacity=capacity, **options).start()


def main(argv: list[str] | None = None) -> None:
    from .transport import make_bus

    parser = argparse.ArgumentParser(prog="python -m sandboxes.engine.agent")
    parser.add_argument("--redis-url", default=None, help="Redis URL; omit for the in-process bus")
    parser.add_argument("--prefix", default="mem0")
    parser.add_argument("--agent-id", default=socket.gethostname())
    parser.add_argument("--host", default=socket.gethostname())
    parser.add_argument("--capacity", type=int, default=100)
    parser.add_argument("--state-dir", default="/var/lib/mem0/agent")
    parser.add_argument("--pool-min", type=int, default=2)
    parser.add_argument("--pool-max", type=int, default=32)
    parser.add_argument(
        "--blockstore-dir", default=None, help="snapshot chunk store (default STATE_DIR/blocks)"
    )
    parser.add_argument(
        "--go-cache-dir",
        default=go_toolchain.DEFAULT_CACHE_DIR,
        help="shared read-only build cache of Go sandboxes (the standard library, built at start)",
    )
    args = parser.parse_args(argv)
    # Op, I/O-hub and refill threads share the GIL: a 0.5 ms switch interval (default 5 ms)
    # keeps a refill thread's Python work from delaying a run's output by milliseconds.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    bus = make_bus(args.redis_url, args.prefix)
    agent = Agent(
        bus,
        agent_id=args.agent_id,
        host=args.host,
        capacity=args.capacity,
        state_dir=args.state_dir,
        pool_min=args.pool_min,
        pool_max=args.pool_max,
        blockstore_dir=args.blockstore_dir,
        go_cache_dir=args.go_cache_dir,
    ).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    agent.stop()


if __name__ == "__main__":
    main()
