"""The fork-agent: owns the zygotes, warm pools and live sandboxes of one host and serves ops
from the bus (create, run, fork, kill, files, stats, snapshot, restore, sandbox_ids).

Start it as a daemon::

    python -m sandboxes.engine.agent --redis-url redis://127.0.0.1:6379/0 --agent-id host-a \\
        --state-dir /var/lib/mem0/agent --capacity 200

or embedded (in-process transport, threads in the caller's process; zygotes are child
processes)::

    bus = make_bus(None); handle = start_embedded_agent(bus, state_dir="/var/lib/mem0/agent")

Threads: one op consumer, a pool of op workers, one I/O hub (all sandbox descriptors, run
deadlines, output publishing), one heartbeat, one refill thread per warm pool. The agent must
run as root (namespaces, cgroups, mounts); it never imports Django.
"""

from __future__ import annotations

import argparse
import base64
import errno
import itertools
import logging
import os
import shutil
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from . import cgroups, isolation
from .files import Workspace
from .iohub import PRIORITY_CONTROL, PRIORITY_OUTPUT, PRIORITY_REAPER, IOHub
from .pool import WarmPool
from .protocol import (
    HEARTBEAT_INTERVAL,
    AgentInfo,
    EngineError,
    ExitEvent,
    Limits,
    OpReply,
    OpRequest,
    OutputEvent,
)
from .runtimes import Runtime, builtin_runtimes
from .sandbox import Lineage, Run, Sandbox, find_host_pid
from .transport import Bus
from .zygote import ZygoteProcess

log = logging.getLogger("mem0.engine.agent")

UID_BASE = 0x40000000  # host uids from here up are never used by host accounts
UID_SLOTS = 16384
INTERRUPT_GRACE_S = 1.0  # after SIGINT on timeout/output cap, kill the sandbox if still running
DEATH_REPORT_WAIT_S = 0.5
MAX_CODE_BYTES = 4 << 20
MAX_ENV_BYTES = 64 << 10
POOL_WORKSPACE_BYTES = Limits().workspace_bytes  # resized at hand-over when a plan differs


class Agent:
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
    ):
        self.bus = bus
        self.agent_id = agent_id
        self.host = host or socket.gethostname()
        self.capacity = capacity
        self.state_dir = os.path.abspath(state_dir)
        all_runtimes = runtimes or builtin_runtimes()
        self.runtimes = {k: v for k, v in all_runtimes.items() if templates is None or k in templates}
        self.pool_min, self.pool_max = pool_min, pool_max
        self.sandboxes: dict[str, Sandbox] = {}  # sandbox_id -> live sandbox
        self.zygotes: dict[str, ZygoteProcess] = {}
        self.pools: dict[str, WarmPool] = {}
        self.active_runs: set[Sandbox] = set()
        self.dying: set[Sandbox] = set()
        self.pending_events: dict[str, list] = {}
        self.lock = threading.Lock()
        self.slot_counter = itertools.count(1)
        self.free_uids = list(range(UID_SLOTS))
        self.stop_event = threading.Event()
        self.hub = IOHub(self._tick, self._flush)
        self.executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="mem0-op")
        self.cleaner = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mem0-cleanup")
        self._blockstore = blockstore  # a configured BlockStore (S3 tier...), or a local one made lazily
        self.blockstore_dir = blockstore_dir or os.path.join(self.state_dir, "blocks")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Agent:
        if os.geteuid() != 0:
            raise EngineError("internal_error", "the agent must run as root (namespaces, cgroups, mounts)")
        os.makedirs(self.state_dir, exist_ok=True)
        self.cg_plan = cgroups.detect_cgroups(self.agent_id)
        stale = cgroups.remove_dead_agents(self.cg_plan, self.agent_id)
        if stale:
            log.warning("event=stale_sandboxes_killed agent=%s count=%d", self.agent_id, stale)
        self.hub.start()
        for name, rt in self.runtimes.items():
            self.zygotes[name] = ZygoteProcess(rt, self.state_dir)
            pool = WarmPool(
                name,
                lambda rt=rt: self._spawn(rt),
                self._retire,
                min_size=self.pool_min,
                max_size=self.pool_max,
            )
            self.pools[name] = pool
            pool.start()
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

    def stop(self) -> None:
        self.stop_event.set()
        wake = getattr(self.bus, "wake", None)
        if wake:
            wake(self.agent_id)
        self.bus.unregister_agent(self.agent_id)
        for pool in self.pools.values():
            for sb in pool.stop():
                self._kill_sandbox(sb)
        for sb in list(self.sandboxes.values()):
            self._kill_sandbox(sb)
        self.executor.shutdown(wait=True, cancel_futures=True)
        deadline = time.monotonic() + 3
        while (self.dying or self.active_runs) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.cleaner.shutdown(wait=True)
        for z in self.zygotes.values():
            z.stop()
        self.hub.stop()
        self.hub.join(timeout=5)
        self._remove_own_cgroups()

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until every pool holds at least one warm sandbox (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while any(p.size() < 1 for p in self.pools.values()):
            if time.monotonic() > deadline:
                raise EngineError("agent_timeout", "warm pools did not fill")
            time.sleep(0.01)

    def _remove_own_cgroups(self) -> None:
        for base in self.cg_plan.bases.values():
            for name in os.listdir(base):
                if os.path.isdir(f"{base}/{name}"):
                    cgroups.Cgroup(self.cg_plan, name).destroy()
        time.sleep(0.05)  # parked inits exit once their last sandbox is gone
        cgroups.remove_plan(self.cg_plan)

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
            )
        )

    def _heartbeat_loop(self) -> None:
        while not self.stop_event.wait(HEARTBEAT_INTERVAL):
            try:
                self._heartbeat()
            except Exception:
                log.exception("event=heartbeat_failed")

    # ------------------------------------------------------------------ ops dispatch

    def _submit(self, req: OpRequest) -> None:
        if req.deadline and time.time() > req.deadline:
            return  # the caller has given up; an answer would go nowhere
        self.executor.submit(self._handle, req)

    def _handle(self, req: OpRequest) -> None:
        handler = getattr(self, f"op_{req.op}", None)
        try:
            if handler is None:
                raise EngineError("invalid_request", f"unknown op {req.op!r}")
            if not isinstance(req.args, dict):
                raise EngineError("invalid_request", "args must be an object")
            result = handler(**req.args)
            reply = OpReply(req.request_id, True, result)
        except EngineError as exc:
            reply = OpReply(req.request_id, False, None, exc.code, exc.message)
        except TypeError as exc:
            reply = OpReply(req.request_id, False, None, "invalid_request", str(exc))
        except Exception as exc:
            log.exception("event=op_failed op=%s", req.op)
            reply = OpReply(req.request_id, False, None, "internal_error", f"{type(exc).__name__}: {exc}")
        self.bus.reply(req, reply)

    def _get(self, sandbox_id: str) -> Sandbox:
        sb = self.sandboxes.get(sandbox_id)
        if sb is None or not sb.alive:
            raise EngineError(
                "sandbox_not_running", f"sandbox {sandbox_id} is not running on {self.agent_id}"
            )
        return sb

    # ------------------------------------------------------------------ spawning

    def _zygote(self, runtime: Runtime) -> ZygoteProcess:
        """The runtime's zygote, restarted if it died (its sandboxes live on; their workspaces
        are reachable only while the old zygote's mount namespace exists, i.e. until they end)."""
        with self.lock:
            z = self.zygotes[runtime.name]
            if not z.alive() and not self.stop_event.is_set():
                log.error("event=zygote_died runtime=%s pid=%d", runtime.name, z.pid)
                z = self.zygotes[runtime.name] = ZygoteProcess(runtime, self.state_dir)
            return z

    def _spawn(self, runtime: Runtime) -> Sandbox:
        z = self._zygote(runtime)
        slot = f"s{next(self.slot_counter)}"
        with self.lock:
            if not self.free_uids:
                raise EngineError("agents_unavailable", "no free uid ranges")
            uid_slot = self.free_uids.pop()
        uid_base = UID_BASE + uid_slot * 65536
        cg = self.cg_plan.new(slot)
        ctl, ctl_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        reap_r, reap_w = os.pipe2(os.O_CLOEXEC)
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        try:
            rep = z.request(
                {"op": "spawn", "slot": slot, "uid_base": uid_base, "ws_bytes": POOL_WORKSPACE_BYTES},
                [ctl_theirs.fileno(), out_w, err_w, reap_w, sync_r],
            )
            isolation.release_sandbox_init(rep["pid"], cg.procs_files(), sync_w)
        except Exception:
            for fd in (out_r, err_r, reap_r):
                os.close(fd)
            ctl.close()
            cg.destroy()
            try:
                z.request({"op": "release", "slot": slot})
            except Exception:
                pass
            with self.lock:
                self.free_uids.append(uid_slot)
            raise
        finally:
            ctl_theirs.close()
            for fd in (out_w, err_w, reap_w, sync_r, sync_w):
                os.close(fd)
        lineage = Lineage(init_pid=rep["pid"], uid_base=uid_base, reaper_fd=reap_r)
        sb = Sandbox(
            slot=slot,
            runtime=runtime,
            zygote=z,
            cgroup=cg,
            lineage=lineage,
            ctl=ctl,
            out_fd=out_r,
            err_fd=err_r,
        )
        sb.workspace_bytes = POOL_WORKSPACE_BYTES
        self._watch(sb)
        self.hub.add(reap_r, lambda: self._on_reaper(lineage), PRIORITY_REAPER)
        try:
            hello = sb.wait_reply("hello", 10)
        except EngineError:
            self._kill_sandbox(sb)
            raise
        sb.inside_pid = int(hello["pid"])
        lineage.members[sb.inside_pid] = sb
        sb.host_pid = find_host_pid(cg.pids(), sb.inside_pid)
        # The init (reaper) leaves the sandbox's cgroup: killing this sandbox must not kill
        # the init that its forks need.
        cgroups.park(self.cg_plan, lineage.init_pid)
        sb.state = "pooled"
        return sb

    def _watch(self, sb: Sandbox) -> None:
        self.hub.add(sb.out_fd, lambda: self._on_pipe(sb, sb.out_fd, "stdout"), PRIORITY_OUTPUT)
        self.hub.add(sb.err_fd, lambda: self._on_pipe(sb, sb.err_fd, "stderr"), PRIORITY_OUTPUT)
        self.hub.add(sb.ctl.fileno(), lambda: self._on_ctl(sb), PRIORITY_CONTROL)

    def _retire(self, sb: Sandbox) -> None:
        self._kill_sandbox(sb)

    def _take(self, runtime_name: str) -> Sandbox:
        runtime = self.runtimes.get(runtime_name)
        if runtime is None:
            raise EngineError("unknown_runtime", f"runtime {runtime_name!r} is not served by {self.agent_id}")
        pool = self.pools[runtime_name]
        for _ in range(3):
            sb = pool.take() or self._spawn(runtime)
            if sb.alive:
                return sb
        raise EngineError("internal_error", "could not obtain a live sandbox")

    def _hand_over(self, sb: Sandbox, sandbox_id: str, env: dict, limits: Limits) -> dict:
        sb.sandbox_id = sandbox_id
        sb.env = dict(env)
        sb.limits = limits
        sb.cgroup.set_limits(memory_bytes=limits.memory_bytes, pids=limits.pids, cpu_cores=limits.cpu_cores)
        if limits.workspace_bytes != sb.workspace_bytes:
            sb.zygote.request({"op": "resize", "slot": sb.slot, "bytes": limits.workspace_bytes})
            sb.workspace_bytes = limits.workspace_bytes
        sb.send(
            {
                "op": "configure",
                "env": env,
                "nofile": 1024,
                "nproc": limits.pids + 16,  # backstop: the cgroup limit hits first
                "fsize": limits.workspace_bytes,
            }
        )
        sb.state = "running"
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

    # ------------------------------------------------------------------ ops

    def op_create(
        self, *, sandbox_id: str, runtime: str, env: dict | None = None, limits: dict | None = None
    ) -> dict:
        env, lim = self._check_new(sandbox_id, env, limits)
        return self._hand_over(self._take(runtime), sandbox_id, env, lim)

    def op_run(
        self, *, sandbox_id: str, execution_id: str, code: str, timeout_s: float | None = None
    ) -> dict:
        if not isinstance(code, str):
            raise EngineError("invalid_request", "code must be a string")
        if len(code) > MAX_CODE_BYTES:
            raise EngineError("payload_too_large", "code too large")
        if not isinstance(execution_id, str) or not execution_id:
            raise EngineError("invalid_request", "execution_id must be a non-empty string")
        sb = self._get(sandbox_id)
        with sb.lock:
            if sb.run is not None:
                raise EngineError("invalid_request", "a run is already active in this sandbox")
            limit_s = sb.limits.run_timeout_s
            timeout = min(float(timeout_s), limit_s) if timeout_s else limit_s
            now = time.monotonic()
            sb.run = Run(
                execution_id=execution_id,
                started=now,
                deadline=now + timeout,
                counters=sb.cgroup.begin_run(),
                output_cap=sb.limits.output_bytes,
            )
            self.active_runs.add(sb)
            try:
                sb.send({"op": "run", "id": execution_id, "code": code})
            except EngineError:
                self.hub.call(lambda: self._finish_dead(sb))
                raise
        return {"execution_id": execution_id}

    def op_fork(self, *, sandbox_id: str, new_sandbox_id: str, limits: dict | None = None) -> dict:
        parent = self._get(sandbox_id)
        env, lim = self._check_new(new_sandbox_id, parent.env, limits)
        with parent.lock:
            if parent.run is not None:
                raise EngineError("invalid_request", "sandbox is running code; fork between runs")
            if not parent.runtime.can_fork:
                return self._fork_fresh(parent, new_sandbox_id, env, lim)
            return self._fork(parent, new_sandbox_id, env, lim)

    def _fork_fresh(self, parent: Sandbox, new_id: str, env: dict, lim: Limits) -> dict:
        """Fork for runtimes without memory fork: a fresh sandbox with a copy of the workspace."""
        child = self._take(parent.runtime.name)
        try:
            src, dst = self._workspace(parent), self._workspace(child)
            parent.cgroup.freeze()
            try:
                shutil.copytree(src.root, dst.root, symlinks=True, dirs_exist_ok=True)
            finally:
                parent.cgroup.thaw()
            dst.chown_tree()
        except OSError as exc:
            self._kill_sandbox(child)
            raise EngineError(
                "payload_too_large" if exc.errno == errno.ENOSPC else "internal_error", str(exc)
            ) from exc
        child.memory = "fresh"
        return self._hand_over(child, new_id, env, lim)

    def _fork(self, parent: Sandbox, new_id: str, env: dict, lim: Limits) -> dict:
        slot = f"s{next(self.slot_counter)}"
        cg = self.cg_plan.new(slot)
        cg.set_limits(memory_bytes=lim.memory_bytes, pids=lim.pids, cpu_cores=lim.cpu_cores)
        ctl, ctl_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        child = Sandbox(
            slot=slot,
            runtime=parent.runtime,
            zygote=parent.zygote,
            cgroup=cg,
            lineage=parent.lineage,
            ctl=ctl,
            out_fd=out_r,
            err_fd=err_r,
        )
        child.workspace_bytes = lim.workspace_bytes
        self._watch(child)
        try:
            parent.send({"op": "fork"}, [ctl_theirs.fileno(), out_w, err_w])
        finally:
            ctl_theirs.close()
            os.close(out_w)
            os.close(err_w)
        try:
            inside = int(parent.wait_reply("forked")["child_pid"])
            child.wait_reply("hello")
            child.inside_pid = inside
            child.host_pid = find_host_pid(parent.cgroup.pids(), inside)
            if not child.host_pid:
                raise EngineError("internal_error", "forked process not found")
            parent.lineage.members[inside] = child
            # Joining a v1 cgroup waits for an RCU grace period (1-15 ms measured here): done
            # while the zygote swaps the workspaces. No freeze is needed for the swap: the
            # parent's layer is remounted read-only atomically (open writers make it fail).
            mover = self.executor.submit(cg.add_pid, child.host_pid)
            try:
                parent.zygote.request(
                    {
                        "op": "fork_workspace",
                        "parent": parent.slot,
                        "parent_pid": parent.host_pid,
                        "child": slot,
                        "child_pid": child.host_pid,
                        "uid": parent.owner_uid,
                        "parent_bytes": parent.limits.workspace_bytes,
                        "child_bytes": lim.workspace_bytes,
                    }
                )
            finally:
                mover.result(timeout=30)
        except Exception as exc:
            self._kill_sandbox(child)
            if isinstance(exc, EngineError):
                raise
            raise EngineError("invalid_request", f"fork failed: {exc}") from exc
        # Both interpreters chdir back into their new /workspace before reading any later op.
        parent.send({"op": "resume"})
        child.send({"op": "resume"})
        child.memory = "copied"
        child.snapshot_index = parent.snapshot_index
        return self._hand_over(child, new_id, env, lim)

    def op_kill(self, *, sandbox_id: str) -> dict:
        sb = self.sandboxes.pop(sandbox_id, None)
        if sb is not None:
            self._kill_sandbox(sb)
        return {"killed": sb is not None}

    def op_sandbox_ids(self) -> list[str]:
        return sorted(sid for sid, sb in self.sandboxes.items() if sb.alive)

    def op_stats(self) -> dict:
        return {
            "agent_id": self.agent_id,
            "host": self.host,
            "capacity": self.capacity,
            "load": len(self.sandboxes),
            "sandboxes": len(self.sandboxes),
            "active_runs": len(self.active_runs),
            "pools": {
                name: {"idle": p.size(), "target": p.target(), "demand_per_s": round(p.demand.value(), 3)}
                for name, p in self.pools.items()
            },
            "cgroup": {"mode": self.cg_plan.mode, "controls": list(self.cg_plan.controls)},
            "zygotes": {name: z.pid for name, z in self.zygotes.items()},
            "runtimes": sorted(self.runtimes),
        }

    def _workspace(self, sb: Sandbox) -> Workspace:
        return Workspace(sb.zygote.workspace_path(sb.slot), sb.owner_uid)

    def op_files_list(self, *, sandbox_id: str, path: str = "") -> list[dict]:
        return self._workspace(self._get(sandbox_id)).list(path)

    def op_file_read(self, *, sandbox_id: str, path: str) -> dict:
        data = self._workspace(self._get(sandbox_id)).read(path)
        return {"data": base64.b64encode(data).decode()}

    def op_file_write(self, *, sandbox_id: str, path: str, data: str) -> dict:
        try:
            raw = base64.b64decode(data, validate=True)
        except (ValueError, TypeError) as exc:
            raise EngineError("invalid_request", "data must be base64") from exc
        self._workspace(self._get(sandbox_id)).write(path, raw)
        return {"size": len(raw)}

    def op_file_delete(self, *, sandbox_id: str, path: str) -> dict:
        self._workspace(self._get(sandbox_id)).delete(path)
        return {}

    def _store(self):
        if self._blockstore is None:
            try:
                from .blockstore import BlockStore
            except ImportError as exc:
                raise EngineError("internal_error", "block store is not available") from exc
            self._blockstore = BlockStore(self.blockstore_dir)
        return self._blockstore

    def op_snapshot(self, *, sandbox_id: str) -> dict:
        sb = self._get(sandbox_id)
        store = self._store()
        with sb.lock:
            sb.cgroup.freeze()  # a consistent tree even while a run writes
            try:
                res = store.snapshot_tree(sb.zygote.workspace_path(sb.slot), previous_index=sb.snapshot_index)
            except Exception as exc:
                raise _blockstore_error(exc, "") from exc
            finally:
                sb.cgroup.thaw()
            sb.snapshot_index = res.index
        return {
            "digest": res.digest,
            "logical_bytes": res.logical_bytes,
            "new_bytes": res.new_bytes,
            "stored_bytes": res.stored_bytes,
            "files": res.files,
        }

    def op_restore(
        self,
        *,
        digest: str,
        new_sandbox_id: str,
        runtime: str,
        env: dict | None = None,
        limits: dict | None = None,
    ) -> dict:
        env, lim = self._check_new(new_sandbox_id, env, limits)
        if not isinstance(digest, str) or not digest:
            raise EngineError("invalid_request", "digest must be a non-empty string")
        store = self._store()
        sb = self._take(runtime)
        try:
            ws = self._workspace(sb)
            store.restore_tree(digest, ws.root)  # into the still-empty workspace, before hand-over
            ws.chown_tree()
        except BaseException as exc:
            self._kill_sandbox(sb)
            raise _blockstore_error(exc, digest) from exc
        return self._hand_over(sb, new_sandbox_id, env, lim)

    # ------------------------------------------------------------------ killing and cleanup

    def _kill_sandbox(self, sb: Sandbox) -> None:
        """Kill the sandbox's whole process tree (its cgroup); its forks live on."""
        if sb.sandbox_id and self.sandboxes.get(sb.sandbox_id) is sb:
            self.sandboxes.pop(sb.sandbox_id, None)
        if sb.state == "dead":
            return
        sb.kill_requested = True
        sb.state = "dead"
        sb.cgroup.kill_all(exclude={sb.lineage.init_pid})
        # The interpreter's death closes the control socket; the hub then finishes any run
        # (status "killed") and cleans up. If it never started, clean up from here.
        if not sb.inside_pid:
            self.hub.call(lambda: self._finish_dead(sb))

    def _on_ctl(self, sb: Sandbox) -> None:
        try:
            data = sb.ctl.recv(1 << 16, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._on_eof(sb)
            return
        try:
            msgs = sb.reader.feed(data)
        except ValueError:
            log.warning("event=bad_frame sandbox=%s", sb.sandbox_id)
            self._kill_sandbox(sb)
            return
        for msg in msgs:
            if msg.get("ev") == "result":
                self._on_result(sb, msg)
            else:
                sb.replies.put(msg)

    def _on_pipe(self, sb: Sandbox, fd: int, stream: str) -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.hub.remove(fd, lambda: os.close(fd))
            return
        run = sb.run
        if run is None or run.killed:
            return  # output of background processes between runs is discarded
        room = run.output_cap - run.out_bytes
        if room <= 0:
            return
        chunk = data[:room]
        run.out_bytes += len(chunk)
        text = run.decoders[stream].decode(chunk)
        if text:
            self._emit(run, OutputEvent(run.next_seq(), stream, text))
        if len(data) > room and run.limit is None:
            run.limit = "output"
            run.interrupted_at = time.monotonic()
            sb.interrupt()

    def _emit(self, run: Run, event) -> None:
        self.pending_events.setdefault(run.execution_id, []).append(event)

    def _flush(self) -> None:
        if not self.pending_events:
            return
        batch, self.pending_events = self.pending_events, {}
        for execution_id, events in batch.items():
            try:
                self.bus.publish(execution_id, events)
            except Exception:
                log.exception("event=publish_failed execution=%s", execution_id)

    def _on_result(self, sb: Sandbox, msg: dict) -> None:
        run = sb.run
        if run is None or msg.get("id") != run.execution_id:
            return
        status = msg.get("status") if msg.get("status") in ("succeeded", "failed") else "failed"
        code = msg.get("exit_code")
        self._finish_run(sb, status, code if isinstance(code, int) else 1, alive=True)

    def _on_eof(self, sb: Sandbox) -> None:
        self.hub.remove(sb.ctl.fileno(), sb.ctl.close)
        sb.state = "dead"
        sb.died_at = time.monotonic()
        sb.replies.put({"ev": "eof"})
        if sb.run is not None and sb.exit_status is None:
            self.dying.add(sb)  # wait briefly for the init's report of how it died
        else:
            self._finish_dead(sb)

    def _on_reaper(self, lineage: Lineage) -> None:
        try:
            data = os.read(lineage.reaper_fd, 1 << 16)
        except OSError:
            data = b""
        if not data:
            self.hub.remove(lineage.reaper_fd, lambda: os.close(lineage.reaper_fd))
            return
        lineage.buf += data
        *lines, lineage.buf = lineage.buf.split(b"\n")
        for line in lines:
            parts = line.split()
            if len(parts) == 3 and parts[0] == b"exit":
                sb = lineage.members.get(int(parts[1]))
                if sb is not None:
                    sb.exit_status = int(parts[2])
                    if sb in self.dying:
                        self.dying.discard(sb)
                        self._finish_dead(sb)
            elif parts and parts[0] == b"fail":
                log.error("event=sandbox_init_failed detail=%s", line[:2000])

    def _finish_dead(self, sb: Sandbox) -> None:
        """The interpreter is gone: end its run, kill what is left, release its resources."""
        self.dying.discard(sb)
        sb.state = "dead"
        if sb.run is not None:
            code = None
            status = "failed"
            if sb.exit_status is not None:
                code = os.waitstatus_to_exitcode(sb.exit_status)
                status = "succeeded" if code == 0 else "failed"
            self._finish_run(sb, status, code, alive=False)
        if sb.sandbox_id and self.sandboxes.get(sb.sandbox_id) is sb:
            self.sandboxes.pop(sb.sandbox_id, None)
        for pool in self.pools.values():
            pool.discard(sb)
        if sb.ctl.fileno() >= 0:
            self.hub.remove(sb.ctl.fileno(), sb.ctl.close)
        try:
            self.cleaner.submit(self._release, sb)
        except RuntimeError:  # agent stopping: release inline
            self._release(sb)

    def _release(self, sb: Sandbox) -> None:
        try:
            sb.cgroup.kill_all(exclude={sb.lineage.init_pid})
            lineage = sb.lineage
            lineage.members.pop(sb.inside_pid, None)
            if not lineage.members:
                with self.lock:
                    self.free_uids.append((lineage.uid_base - UID_BASE) // 65536)
            try:
                sb.zygote.request({"op": "release", "slot": sb.slot})
            except Exception:
                pass
            sb.cgroup.destroy()
        except Exception:
            log.exception("event=release_failed slot=%s", sb.slot)

    def _finish_run(self, sb: Sandbox, status: str, exit_code: int | None, *, alive: bool) -> None:
        run = sb.run
        if run is None:
            return
        sb.run = None
        self.active_runs.discard(sb)
        for stream, dec in run.decoders.items():
            tail = dec.decode(b"", final=True)
            if tail:
                self._emit(run, OutputEvent(run.next_seq(), stream, tail))
        cg = sb.cgroup
        cpu_ms = max(0.0, (cg.cpu_ns() - run.counters["cpu_ns"]) / 1e6)
        oom = cg.oom_kills() > run.counters["oom"]
        pids_hit = cg.pids_max_hits() > run.counters["pids"]
        limit = run.limit
        if limit is None and oom:
            limit = "memory"
        elif limit is None and pids_hit:
            limit = "pids"
        elif limit is None and status == "failed" and self._workspace_full(sb):
            limit = "disk"
        if run.killed or sb.kill_requested and limit is None:
            status = "killed"
        elif limit == "timeout":
            status = "timeout"
        elif limit in ("output", "memory") and (not alive or run.interrupted_at or limit == "output"):
            status = "killed"
        self._emit(
            run,
            ExitEvent(
                seq=run.next_seq(),
                status=status,
                exit_code=exit_code,
                limit=limit,
                wall_ms=round((time.monotonic() - run.started) * 1000, 3),
                cpu_ms=round(cpu_ms, 3),
                peak_memory_bytes=cg.peak_memory(),
                sandbox_alive=alive and sb.alive,
            ),
        )
        self._flush()

    def _workspace_full(self, sb: Sandbox) -> bool:
        try:
            st = os.statvfs(sb.zygote.workspace_path(sb.slot))
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < (64 << 10)

    def _tick(self) -> None:
        now = time.monotonic()
        for sb in list(self.active_runs):
            run = sb.run
            if run is None:
                self.active_runs.discard(sb)
                continue
            if run.interrupted_at is None and now >= run.deadline:
                run.limit = "timeout"
                run.interrupted_at = now
                sb.interrupt()
            elif run.interrupted_at is not None and now - run.interrupted_at > INTERRUPT_GRACE_S and sb.alive:
                # Interrupt ignored (signal handler replaced, stuck in C code): kill the sandbox.
                sb.state = "dead"
                sb.cgroup.kill_all(exclude={sb.lineage.init_pid})
        for sb in list(self.dying):
            if sb.died_at is not None and now - sb.died_at > DEATH_REPORT_WAIT_S:
                self._finish_dead(sb)


def _blockstore_error(exc: BaseException, digest: str) -> BaseException:
    """Block store failures as engine errors (the block store is imported lazily)."""
    if isinstance(exc, EngineError) or not isinstance(exc, Exception):
        return exc
    code = getattr(exc, "code", "")
    if code in ("chunk_missing", "not_a_snapshot") or isinstance(exc, (KeyError, FileNotFoundError)):
        return EngineError("not_found", f"snapshot {digest} not found")
    if isinstance(exc, ValueError):
        return EngineError("invalid_request", f"bad digest {digest!r}")
    if code == "chunk_archived":
        return EngineError(
            "invalid_request", f"snapshot {digest} is archived; restore it from cold storage first"
        )
    return EngineError("internal_error", f"block store: {type(exc).__name__}: {exc}")


def start_embedded_agent(
    bus: Bus, *, agent_id: str = "local", state_dir: str, capacity: int = 100, **options
) -> Agent:
    """Run an agent as threads of this process (zygotes are child processes); ``.stop()`` ends it.

    ``options``: pool_min, pool_max, templates (runtime names to serve), blockstore (a configured
    ``BlockStore``, e.g. with the S3 tier) or blockstore_dir (default ``{state_dir}/blocks``).
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
    args = parser.parse_args(argv)
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
    ).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    agent.stop()


if __name__ == "__main__":
    main()
