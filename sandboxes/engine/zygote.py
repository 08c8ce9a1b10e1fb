"""Warm zygotes: one long-lived, single-threaded root process per runtime template that has the
runtime's modules imported and clones ready-isolated sandboxes on request.

Process tree of one sandbox:  zygote --clone(new user/pid/mnt/net/ipc/uts ns)--> R (PID 1)
--fork--> K (interpreter, runs user code); R then runs the init steps and execs the compiled
reaper (``reaper.py``). The zygote also owns every mount the sandboxes use (template roots,
workspace layers) in its private mount namespace, so nothing leaks into the host's mount
table and everything is gone when the zygote exits.

Performance decisions (measured on the 2-vCPU dev VM, shared with other work):
  * one clone() with all namespace flags instead of fork+unshare+fork: a fork of the
    zygote costs ~1.1 ms here (page tables), clone into 6 namespaces ~1.5-2 ms;
  * the seccomp program is compiled once (``seccomp.compile_seccomp``): 0.2 ms per
    sandbox instead of 0.3-9 ms for libseccomp's load();
  * glibc heaps are THP-backed (GLIBC_TUNABLES below): forking a 117 MB heap 1.64 -> 0.35 ms;
  * spawning runs at nice 5 and the pool waits 10 ms after a hand-over, so a user's first
    run does not compete with the refill it triggered;
  * ``gc.freeze()`` after preloading: the collector does not touch (copy) shared objects.

Started by ``ZygoteProcess`` through ``zygote_root``, which builds the zygote's root (only the
runtime's files, at neutral paths) and execs ``python3`` inside it; it serves JSON requests
(with descriptors) on the SOCK_SEQPACKET socket (fd 3) and exits at EOF.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import traceback

from . import forkmounts, isolation, linux, seccomp, zygote_root
from .go_runtime import GoKernel
from .kernel import Kernel
from .layers import LayerStore
from .node_runtime import NodeKernel
from .reaper import exec_reaper, reap_forever
from .runtimes import Runtime

# The zygote's private tmpfs (inside its own root): template root, workspace layers.
STATE_DIR = "/run/z"
TMP_BYTES = 64 << 20
# Rlimits set before hand-over; ``configure`` lowers them to the sandbox's limits.
POOL_RLIMITS = {"nofile": 4096, "nproc": 4096, "fsize": 16 << 30}
MAX_REQUEST = 1 << 20
POOL_NICE = 5


class ZygoteServer:
    def __init__(self, runtime: Runtime, fd: int, reaper_fd: int = -1):
        self.runtime = runtime
        self.reaper_fd = reaper_fd
        self.sock = socket.socket(fileno=fd)
        self.base = STATE_DIR
        self.root = f"{STATE_DIR}/root"

    def setup(self) -> None:
        """In the root ``zygote_root`` built (already its own mount namespace): preload, then the
        template root and the workspace layers on a private tmpfs at ``STATE_DIR``."""
        # Spawning is background work: at nice 5 it yields the CPU to running sandboxes (a
        # first run right after a create competed with the pool refill it triggered: 4-15 ms
        # instead of ~1 ms) without starving when the host is busy (nice 10 did, under load).
        # New sandboxes inherit it; hand-over puts the interpreter back at 0.
        os.nice(POOL_NICE)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)  # stdin was the pipe that carried the program
        os.close(null)
        flags = linux.MS_NOSUID | linux.MS_NODEV
        # compile_seccomp's scratch, and the config and font cache directory of a preloaded matplotlib
        linux.mount("tmpfs", "/tmp", "tmpfs", flags, "mode=0700,size=1m")
        for name in self.runtime.preload:
            importlib.import_module(name)
        linux.mount("tmpfs", self.base, "tmpfs", flags, "mode=0700,size=16m")
        os.makedirs(self.root)
        isolation.build_rootfs(self.root)
        self.layers = LayerStore(self.base)
        self.own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        self.seccomp_program = seccomp.compile_seccomp()
        isolation.prepare_zygote_process(POOL_RLIMITS["nofile"], POOL_RLIMITS["nproc"], POOL_RLIMITS["fsize"])
        os.chdir("/")
        # Objects created so far are shared copy-on-write with every sandbox: keep the cyclic
        # GC from touching (and so copying) them in each child.
        gc.collect()
        gc.freeze()

    def serve(self) -> None:
        self.sock.sendall(json.dumps({"ok": True, "pid": os.getpid(), "base": self.base}).encode())
        while True:
            self._reap()
            try:
                data, anc, _, _ = self.sock.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(16 * 4))
            except InterruptedError:
                continue
            except ConnectionResetError:
                return
            if not data:
                return
            fds: list[int] = []
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += list(struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) // 4 * 4]))
            try:
                reply = self.handle(json.loads(data), fds)
            except Exception as exc:
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            finally:
                for fd in fds:
                    os.close(fd)
            self.sock.sendall(json.dumps(reply).encode())

    def _reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def handle(self, req: dict, fds: list[int]) -> dict:
        op = req["op"]
        if op == "spawn":
            return self.spawn(req, fds)
        if op == "fork_workspace":
            self.layers.fork(
                req["parent"],
                req["parent_pid"],
                req["child"],
                req["child_pid"],
                req["uid"],
                req["parent_bytes"],
                req["child_bytes"],
            )
            return {"ok": True}
        if op == "fork_mounts":
            forkmounts.install(int(req["parent_pid"]), int(req["child_pid"]), TMP_BYTES, self.own_pidns)
            return {"ok": True}
        if op == "resize":
            self.layers.resize(req["slot"], int(req["bytes"]))
            return {"ok": True}
        if op == "release":
            self.layers.release(req["slot"])
            return {"ok": True}
        return {"ok": False, "error": f"unknown zygote op {op!r}"}

    def spawn(self, req: dict, fds: list[int]) -> dict:
        """Clone a sandbox init and map its user namespace. The init then waits on ``sync`` (a
        pipe whose write end the agent holds) until the agent has put it in its cgroups: joining
        a v1 cgroup can wait ~10 ms for an RCU grace period, and the zygote serves the next
        spawn meanwhile."""
        ctl, out, err, py, page, reaper, sync = fds
        uid_base = int(req["uid_base"])
        workspace = self.layers.create(req["slot"], uid_base + isolation.SANDBOX_UID, int(req["ws_bytes"]))
        pid = linux.clone_process(isolation.SANDBOX_CLONE_FLAGS)
        if pid == 0:
            self._become_sandbox(sync, workspace, ctl, out, err, py, page, reaper)
        try:
            isolation.map_user_namespace(pid, uid_base)
        except Exception:
            os.kill(pid, 9)
            self.layers.release(req["slot"])
            raise
        return {"ok": True, "pid": pid}

    def _become_sandbox(self, sync_r, workspace, ctl, out, err, py, page, reaper) -> None:
        """In the clone (PID 1 of the new namespaces): fork the interpreter first, then run the
        init steps while it waits, release it, and become the reaper.

        Forking before the init steps keeps the Python work of those steps out of the
        interpreter's memory (pages dirtied there would be private copies in every sandbox);
        pivot_root moves the root of every process of the mount namespace, the waiting
        interpreter's included. If a step fails, the interpreter sees EOF and exits.
        """
        try:
            os.close(self.sock.detach())
            isolation.close_inherited_fds(keep={sync_r, ctl, out, err, py, page, reaper, self.reaper_fd})
            # Not before the agent has put us in the sandbox's cgroups: the interpreter must be
            # born inside them.
            isolation.wait_for_host(sync_r)
            go_r, go_w = os.pipe()
            if os.fork() == 0:
                os.close(go_w)
                if os.read(go_r, 1) != b"1":
                    os._exit(71)
                os.close(go_r)
                isolation.run_interpreter_steps(
                    {out: 1, err: 2, ctl: 3, py: 4, page: 5},
                    POOL_RLIMITS["nofile"],
                    POOL_RLIMITS["nproc"],
                    POOL_RLIMITS["fsize"],
                    self.seccomp_program,
                )
                kernel_class(self.runtime.language)().serve(self.runtime.warmup)
                os._exit(0)
            os.close(go_r)
            isolation.run_init_steps(self.root, workspace, TMP_BYTES)
            os.write(go_w, b"1")
            os.close(go_w)
            for fd in (ctl, out, err, py, page):
                os.close(fd)
            if self.reaper_fd >= 0:
                exec_reaper(self.reaper_fd, reaper)
            reap_forever(reaper)
        except BaseException:
            try:
                os.write(reaper, f"fail {traceback.format_exc(limit=3)!r}\n".encode())
            finally:
                os._exit(70)


def kernel_class(language: str) -> type[Kernel]:
    """The in-sandbox control loop of a runtime's language."""
    return {"go": GoKernel, "node": NodeKernel}.get(language, Kernel)


class ZygoteError(RuntimeError):
    pass


class ZygoteProcess:
    """Agent-side handle: starts the zygote and sends it requests (thread-safe)."""

    def __init__(
        self, runtime: Runtime, state_dir: str, reaper: str | None = None, toolchain: dict | None = None
    ):
        self.runtime = runtime
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The launcher (host interpreter) builds the zygote's root and execs the zygote inside
        # it: its own argv, which names host paths, is gone with that exec (``zygote_root``).
        self.proc = subprocess.Popen(
            zygote_root.launcher_argv(runtime, state_dir, theirs.fileno(), reaper, toolchain),
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
            pass_fds=[theirs.fileno()],
            cwd="/",
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.sock = mine
        self.lock = threading.Lock()
        mine.settimeout(120)
        hello = json.loads(mine.recv(65536) or b"{}")
        if not hello.get("ok"):
            raise ZygoteError(f"zygote {runtime.name} failed to start")
        mine.settimeout(30)
        self.pid = hello["pid"]
        self.base = hello["base"]

    def request(self, msg: dict, fds: list[int] = ()) -> dict:
        data = json.dumps(msg).encode()
        with self.lock:
            if fds:
                self.sock.sendmsg(
                    [data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
                )
            else:
                self.sock.send(data)
            reply = self.sock.recv(MAX_REQUEST)
        if not reply:
            raise ZygoteError("zygote exited")
        out = json.loads(reply)
        if not out.get("ok"):
            raise ZygoteError(out.get("error", "zygote error"))
        return out

    def workspace_path(self, slot: str) -> str:
        """Host path of a sandbox's merged workspace (through the zygote's mount namespace)."""
        return f"/proc/{self.pid}/root{self.base}/ws/{slot}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        try:
            self.sock.close()
        finally:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main() -> None:
    """Entry point inside the zygote's root (the program ``zygote_root`` feeds on stdin): the
    socket is fd 3, the template's description arrives on fd 4, the compiled init is fd 5."""
    with os.fdopen(zygote_root.CONFIG_FD, "rb") as f:
        config = json.loads(f.read())
    if "" in sys.path:
        sys.path.remove("")  # the program came on stdin: no working directory on the import path
    reaper_fd = zygote_root.REAPER_FD if config["reaper"] else -1
    if reaper_fd >= 0:
        os.set_inheritable(reaper_fd, False)
    server = ZygoteServer(Runtime.from_dict(config["runtime"]), zygote_root.SOCK_FD, reaper_fd)
    try:
        server.setup()
    except Exception:
        traceback.print_exc()
        server.sock.sendall(json.dumps({"ok": False}).encode())
        sys.exit(1)
    server.serve()


if __name__ == "__main__":
    main()
