"""Making and unmaking sandboxes on the host: spawn from a zygote, copy-on-write fork of a live
sandbox, release of everything a dead sandbox held (cgroups, workspace layers, uid range).

Fork, step by step (see ``kernel.py`` for what parent and fork share afterwards):
  1. the agent creates the child's cgroup, request socket, status page, output and reaper
     pipes, tells the fork gate to let one clone(CLONE_NEWUSER…) of the parent through, and
     sends the fork request; the parent interpreter clones itself into new user, PID, mount,
     net, IPC and UTS namespaces (``kernel.py``);
  2. the clone C (the fork's PID 1) is the process of the parent's cgroup that waits on the
     child's request socket (``idle.py``): the agent moves it to the fork's cgroup and, with the
     parent frozen, has the zygote freeze the parent's upper layer and give parent and child
     fresh upper layers (``layers.py``), give the child copies of the parent's /tmp and
     /dev/shm and its own /proc, and map its uid (``forkmounts.py``);
  3. on "go" C drops its capabilities and forks the fork's interpreter, which the agent finds
     idle and checks (no capability) before the fork is handed out; both interpreters chdir
     into their new /workspace before reading any later op.
Measured here (bench/engine.py, 2-vCPU VM shared with other work, v1 cgroups): p50 6-7 ms
for parents holding 1 MB, 100 MB or 1 GB of objects (flat in size; p99 16-48 ms from the
cgroup move's RCU grace period, 1-15 ms, overlapped with step 2, and host load).
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import threading
import time

from . import cgroups, idle, isolation, status
from .cgroups import CgroupPlan
from .kernel import FORK_CLONE_FLAGS
from .protocol import EngineError, Limits
from .reaper import build_reaper
from .runtimes import Runtime
from .sandbox import Family, Lineage, Sandbox
from .supervisor import Supervisor
from .zygote import ZygoteProcess

log = logging.getLogger("mem0.engine.factory")

UID_BASE = 0x40000000  # host uids from here up are not used by host accounts
UID_SLOTS = 16384  # 65536 uids each, one range per lineage (a sandbox and its forks)
POOL_WORKSPACE_BYTES = Limits().workspace_bytes
# User and PID namespaces nest at most 32 deep; a sandbox is 1 level below the host, each fork
# one more. Kept below the kernel's limit with room to spare.
MAX_FORK_DEPTH = 24  # resized at hand-over when a plan differs


class SandboxFactory:
    def __init__(
        self,
        *,
        runtimes: dict[str, Runtime],
        state_dir: str,
        cg_plan: CgroupPlan,
        supervisor: Supervisor,
        executor,
        toolchains: dict[str, dict] | None = None,
    ):
        self.runtimes = runtimes
        self.toolchains = toolchains or {}  # runtime name -> its toolchain's host dirs (``go_toolchain``)
        self.state_dir = state_dir
        self.cg_plan = cg_plan
        self.supervisor = supervisor
        self.executor = executor
        self.zygotes: dict[str, ZygoteProcess] = {}
        self.lock = threading.Lock()
        self.slots = itertools.count(1)
        self.free_uids = list(range(UID_SLOTS))
        self.stopping = False
        self.live: set[Sandbox] = set()  # made and not yet released

    def start(self) -> None:
        self.reaper = build_reaper(self.state_dir)
        for name, rt in self.runtimes.items():
            self.zygotes[name] = ZygoteProcess(rt, self.state_dir, self.reaper, self.toolchains.get(name))

    def stop(self) -> None:
        self.stopping = True
        for z in self.zygotes.values():
            z.stop()

    def zygote(self, runtime: Runtime) -> ZygoteProcess:
        """The runtime's zygote, restarted if it died (its sandboxes live on, but their
        workspaces are reachable only through the old zygote's mount namespace: files ops and
        forks on them fail until they end)."""
        with self.lock:
            z = self.zygotes[runtime.name]
            if not z.alive() and not self.stopping:
                log.error("event=zygote_died runtime=%s pid=%d", runtime.name, z.pid)
                z = self.zygotes[runtime.name] = ZygoteProcess(
                    runtime, self.state_dir, self.reaper, self.toolchains.get(runtime.name)
                )
            return z

    def _new_slot(self) -> str:
        return f"s{next(self.slots)}"

    def spawn(self, runtime: Runtime) -> Sandbox:
        """A new idle, fully isolated sandbox (state ``pooled``)."""
        z = self.zygote(runtime)
        slot = self._new_slot()
        with self.lock:
            if not self.free_uids:
                raise EngineError("agents_unavailable", "no free uid ranges")
            uid_slot = self.free_uids.pop()
        uid_base = UID_BASE + uid_slot * 65536
        cg = self.cg_plan.new(slot)
        ctl, ctl_theirs = _request_socket()
        page_fd, page = status.create()
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        py_r, py_w = os.pipe2(os.O_CLOEXEC)
        reap_r, reap_w = os.pipe2(os.O_CLOEXEC)
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        try:
            rep = z.request(
                {"op": "spawn", "slot": slot, "uid_base": uid_base, "ws_bytes": POOL_WORKSPACE_BYTES},
                [ctl_theirs.fileno(), out_w, err_w, py_w, page_fd, reap_w, sync_r],
            )
            isolation.release_sandbox_init(rep["pid"], cg.procs_files(), sync_w)
        except Exception:
            for fd in (out_r, err_r, py_r, reap_r):
                os.close(fd)
            ctl.close()
            page.close()
            cg.destroy()
            try:
                z.request({"op": "release", "slot": slot})
            except Exception:
                pass
            with self.lock:
                self.free_uids.append(uid_slot)
            raise
        finally:
            request_ino = os.fstat(ctl_theirs.fileno()).st_ino
            ctl_theirs.close()
            for fd in (out_w, err_w, py_w, page_fd, reap_w, sync_r, sync_w):
                os.close(fd)
        family = Family(uid_base=uid_base, lineages=1)
        lineage = Lineage(init_pid=rep["pid"], family=family, reaper_fd=reap_r)
        sb = Sandbox(
            slot=slot,
            runtime=runtime,
            zygote=z,
            cgroup=cg,
            lineage=lineage,
            ctl=ctl,
            request_ino=request_ino,
            page=page,
            out_fd=out_r,
            err_fd=err_r,
            py_fd=py_r,
            birth_cgroup=cg,
        )
        sb.workspace_bytes = POOL_WORKSPACE_BYTES
        self.live.add(sb)
        self.supervisor.watch(sb)
        self.supervisor.watch_lineage(lineage)
        try:
            sb.wait_done(0, 10)  # its first idle: warmed up, waiting for requests
        except EngineError:
            self.supervisor.kill(sb)
            raise
        # The init (reaper) leaves the sandbox's cgroup: killing this sandbox must not kill
        # the init that its forks need.
        cgroups.park(self.cg_plan, lineage.init_pid)
        sb.state = "pooled"
        return sb

    def fork(self, parent: Sandbox, lim: Limits) -> Sandbox:
        """A copy-on-write fork of ``parent`` (which must be idle) in namespaces of its own, not
        yet handed over (steps: module docstring and ``kernel.py``)."""
        if parent.lineage.depth >= MAX_FORK_DEPTH:
            raise EngineError("conflict", f"a fork of a fork can nest {MAX_FORK_DEPTH} deep; fork an earlier sandbox")
        slot = self._new_slot()
        cg = self.cg_plan.new(slot)
        cg.set_limits(memory_bytes=lim.memory_bytes, pids=lim.pids, cpu_cores=lim.cpu_cores)
        ctl, ctl_theirs = _request_socket()
        page_fd, page = status.create()
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        py_r, py_w = os.pipe2(os.O_CLOEXEC)
        reap_r, reap_w = os.pipe2(os.O_CLOEXEC)
        family = parent.lineage.family
        with self.lock:
            family.lineages += 1
        lineage = Lineage(init_pid=0, family=family, reaper_fd=reap_r, depth=parent.lineage.depth + 1)
        child = Sandbox(
            slot=slot,
            runtime=parent.runtime,
            zygote=parent.zygote,
            cgroup=cg,
            lineage=lineage,
            ctl=ctl,
            request_ino=os.fstat(ctl_theirs.fileno()).st_ino,
            page=page,
            out_fd=out_r,
            err_fd=err_r,
            py_fd=py_r,
            birth_cgroup=cg,
        )
        child.workspace_bytes = lim.workspace_bytes
        self.live.add(child)
        self.supervisor.watch(child)
        gate = self.supervisor.gate
        gate.expect(parent.host_pid, FORK_CLONE_FLAGS | signal.SIGCHLD)
        pid_refusals = parent.cgroup.pids_max_hits()
        init_binary = [os.open(self.reaper, os.O_RDONLY | os.O_CLOEXEC)] if self.reaper else []
        try:
            seq = parent.send(
                {"op": "fork"}, [ctl_theirs.fileno(), out_w, err_w, py_w, page_fd, reap_w, *init_binary]
            )
        finally:
            ctl_theirs.close()
            for fd in (out_w, err_w, py_w, page_fd, reap_w, *init_binary):
                os.close(fd)
        try:
            parent.wait_done(seq)
            gate.forget(parent.host_pid)
            if parent.cgroup.pids_max_hits() > pid_refusals:
                raise EngineError("conflict", "the sandbox is at its process limit (pids): nothing left to fork")
            init = _wait_for(lambda: idle.find_waiting(parent.cgroup.pids(), child.request_ino))
            if not init:
                raise EngineError("internal_error", "the fork did not start")
            lineage.init_pid = init
            # Joining a v1 cgroup can wait ~10 ms for an RCU grace period: overlapped with the
            # zygote's work, done before "go" (the fork's interpreter must be born inside).
            mover = self.executor.submit(cg.add_pid, init)
            self.supervisor.watch_lineage(lineage)
            parent.cgroup.freeze()  # /tmp and /dev/shm are copied as they are at this instant
            try:
                parent.zygote.request(
                    {
                        "op": "fork_workspace",
                        "parent": parent.slot,
                        "parent_pid": parent.host_pid,
                        "child": slot,
                        "child_pid": init,
                        "uid": parent.owner_uid,
                        "parent_bytes": parent.limits.workspace_bytes,
                        "child_bytes": lim.workspace_bytes,
                    }
                )
                parent.zygote.request({"op": "fork_mounts", "parent_pid": parent.host_pid, "child_pid": init})
            finally:
                parent.cgroup.thaw()
                mover.result(timeout=30)
            child.send({"op": "go"})
            child.wait_done(0)
            if not idle.holds_no_capability(init):
                raise EngineError("internal_error", "the fork's init kept capabilities")
            # The init leaves the fork's cgroup (as a spawned sandbox's does): killing the fork
            # must not kill the init that the fork's own forks need.
            cgroups.park(self.cg_plan, init)
        except Exception as exc:
            gate.forget(parent.host_pid)
            self.supervisor.kill(child)
            if lineage.init_pid:
                _kill_quietly(lineage.init_pid)
            if isinstance(exc, EngineError):
                raise
            raise EngineError("invalid_request", f"fork failed: {exc}") from exc
        parent.send({"op": "resume"})  # ordered before any later request: no need to wait
        child.send({"op": "resume"})
        child.memory = "copied"
        child.snapshot_index = parent.snapshot_index
        return child

    def resize_workspace(self, sb: Sandbox, nbytes: int) -> None:
        """Set the workspace cap. Shrinking waits for the zygote (the smaller cap must hold before any code
        runs); growing goes on in the background (a zygote round trip plus a remount, ~1.5 ms of a create):
        until it lands the sandbox only has the smaller pool cap, never more than its plan allows."""
        if nbytes == sb.workspace_bytes:
            return
        request = {"op": "resize", "slot": sb.slot, "bytes": nbytes}
        if nbytes < sb.workspace_bytes:
            sb.zygote.request(request)
        else:
            self.executor.submit(self._resize_quietly, sb, request)
        sb.workspace_bytes = nbytes

    @staticmethod
    def _resize_quietly(sb: Sandbox, request: dict) -> None:
        try:
            sb.zygote.request(request)
        except Exception:  # the sandbox ended first; its slot is gone with it
            log.warning("event=workspace_resize_failed slot=%s", sb.slot)

    def release(self, sb: Sandbox) -> None:
        """Free what a dead sandbox held: leftover processes, workspace layers, cgroup, uids."""
        try:
            if sb.cgroup.pids():
                sb.cgroup.kill_all(exclude={sb.lineage.init_pid})
            lineage = sb.lineage
            lineage.members.pop(sb.inside_pid, None)
            if not lineage.members:
                family = lineage.family
                with self.lock:
                    family.lineages -= 1
                    last = family.lineages == 0
                    if last:
                        self.free_uids.append((family.uid_base - UID_BASE) // 65536)
                if last:
                    self.supervisor.drop_listener(family)
            try:
                sb.zygote.request({"op": "release", "slot": sb.slot})
            except Exception:
                pass
            sb.cgroup.destroy()
            sb.page.close()
        except Exception:
            log.exception("event=release_failed slot=%s", sb.slot)
        finally:
            self.live.discard(sb)


REQUEST_SEND_TIMEOUT_S = 10.0


def _request_socket() -> tuple[socket.socket, socket.socket]:
    """(agent's end, sandbox's end) of a request socket. The agent's sends time out: a sandbox
    that stops reading must not hold an agent thread forever."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    mine.settimeout(REQUEST_SEND_TIMEOUT_S)
    return mine, theirs


def _wait_for(probe, timeout: float = 5.0) -> int:
    """Poll ``probe`` (a pid, or 0) until it finds something or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    delay = 0.0001
    while True:
        found = probe()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
