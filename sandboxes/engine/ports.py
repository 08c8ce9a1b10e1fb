"""Exposed ports: the agent relays a TCP connection from the web tier to a port a sandbox listens on.

A sandbox's network namespace has only its loopback (up, so its own processes can talk to each other);
nothing outside reaches it. The agent, which may enter any namespace, makes the socket *inside* the
sandbox's network namespace (in a short-lived thread that joins it, makes the socket, and leaves), connects
it to ``127.0.0.1:<port>`` there, and splices bytes both ways. Only ports the sandbox's owner exposed
(``op_port_expose``) are relayed, only while the sandbox lives.

The web tier reaches the relay over a Unix socket in the agent's state directory (root only, mode 0600):
a connection starts with one line, ``{"sandbox_id": ..., "port": ...}``, answered ``OK`` or
``ERR <code> <message>``; after ``OK`` it is the sandbox's TCP stream. Bounded: connections per sandbox,
an idle timeout per connection, a fixed buffer per direction.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import threading

from . import linux
from .protocol import EngineError

log = logging.getLogger("mem0.engine.ports")

MAX_EXPOSED = 16  # ports per sandbox
MAX_CONNECTIONS = 64  # relayed connections per sandbox at once
IDLE_TIMEOUT_S = 300.0
BUFFER = 64 << 10
HANDSHAKE_MAX = 512


def valid_port(port) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise EngineError("invalid_request", "port must be an integer from 1 to 65535")
    return port


def socket_in_netns(pid: int) -> socket.socket:
    """A TCP socket of the network namespace of process ``pid`` (made by a thread that joins it)."""
    box: dict = {}

    def make() -> None:
        try:
            ns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                linux.setns(ns, linux.CLONE_NEWNET)
            finally:
                os.close(ns)
            box["sock"] = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        # The thread ends here, in the sandbox's namespace: it is never reused.

    t = threading.Thread(target=make, name="mem0-netns", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise EngineError("sandbox_not_running", f"cannot reach the sandbox's network: {box['error']}")
    return box["sock"]


class PortRelay:
    """The agent's relay: exposures per sandbox and the Unix listener the web tier connects to."""

    def __init__(self, state_dir: str, lookup):
        self.path = os.path.join(state_dir, "ports.sock")
        self.lookup = lookup  # sandbox_id -> Sandbox (alive) or raise EngineError
        self.exposed: dict[str, set[int]] = {}
        self.active: dict[str, int] = {}
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None

    def start(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.listener.bind(self.path)
        finally:
            os.umask(old)
        self.listener.listen(128)
        threading.Thread(target=self._accept_loop, name="mem0-ports", daemon=True).start()

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def expose(self, sandbox_id: str, port: int) -> None:
        with self.lock:
            ports = self.exposed.setdefault(sandbox_id, set())
            if port not in ports and len(ports) >= MAX_EXPOSED:
                raise EngineError("conflict", f"a sandbox may expose at most {MAX_EXPOSED} ports")
            ports.add(port)

    def unexpose(self, sandbox_id: str, port: int | None = None) -> None:
        with self.lock:
            if port is None:
                self.exposed.pop(sandbox_id, None)
            else:
                self.exposed.get(sandbox_id, set()).discard(port)

    def _accept_loop(self) -> None:
        while self.listener is not None:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="mem0-port-conn", daemon=True).start()

    def _handshake(self, conn: socket.socket) -> tuple[str, int]:
        conn.settimeout(10)
        line = b""
        while not line.endswith(b"\n"):
            chunk = conn.recv(HANDSHAKE_MAX)
            line += chunk
            if not chunk or len(line) > HANDSHAKE_MAX:
                raise EngineError("invalid_request", "bad relay handshake")
        try:
            msg = json.loads(line)
            sandbox_id, port = msg["sandbox_id"], valid_port(msg["port"])
        except (ValueError, KeyError, TypeError) as exc:
            raise EngineError("invalid_request", "bad relay handshake") from exc
        if not isinstance(sandbox_id, str):
            raise EngineError("invalid_request", "bad relay handshake")
        return sandbox_id, port

    def _serve(self, conn: socket.socket) -> None:
        sandbox_id = None
        try:
            sandbox_id, port = self._handshake(conn)
            sb = self.lookup(sandbox_id)
            with self.lock:
                if port not in self.exposed.get(sandbox_id, ()):
                    raise EngineError("not_found", f"port {port} is not exposed")
                if self.active.get(sandbox_id, 0) >= MAX_CONNECTIONS:
                    raise EngineError("rate_limited", "too many connections to this sandbox's ports")
                self.active[sandbox_id] = self.active.get(sandbox_id, 0) + 1
        except EngineError as exc:
            _answer(conn, f"ERR {exc.code} {exc.message}")
            conn.close()
            return
        except OSError:
            conn.close()
            return
        try:
            inner = socket_in_netns(sb.host_pid)
            try:
                inner.settimeout(5)
                inner.connect(("127.0.0.1", port))
            except OSError as exc:
                inner.close()
                _answer(conn, f"ERR unreachable nothing answers on port {port} in the sandbox ({exc.strerror})")
                return
            _answer(conn, "OK")
            _splice(conn, inner)
        except EngineError as exc:
            _answer(conn, f"ERR {exc.code} {exc.message}")
        except OSError:
            pass
        finally:
            conn.close()
            with self.lock:
                self.active[sandbox_id] = self.active.get(sandbox_id, 1) - 1


def _answer(conn: socket.socket, line: str) -> None:
    try:
        conn.sendall(line.encode()[:HANDSHAKE_MAX] + b"\n")
    except OSError:
        pass


def _splice(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until both directions ended or nothing moved for IDLE_TIMEOUT_S."""
    try:
        a.settimeout(IDLE_TIMEOUT_S)  # a peer that stops reading ends the relay, not holds it forever
        b.settimeout(IDLE_TIMEOUT_S)
        peers = {a: b, b: a}
        open_reads = {a, b}
        while open_reads:
            ready, _, _ = select.select(list(open_reads), [], [], IDLE_TIMEOUT_S)
            if not ready:
                return
            for src in ready:
                data = src.recv(BUFFER)
                if not data:
                    open_reads.discard(src)
                    try:
                        peers[src].shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                peers[src].sendall(data)
    finally:
        b.close()


class PortOps:
    """The agent's port ops (a mixin of ``agent.Agent``; ``self.ports`` is its ``PortRelay``)."""

    def op_port_expose(self, *, sandbox_id: str, port: int) -> dict:
        self._get(sandbox_id)
        self.ports.expose(sandbox_id, valid_port(port))
        return {"relay": f"unix:{self.ports.path}"}

    def op_port_unexpose(self, *, sandbox_id: str, port: int) -> dict:
        self.ports.unexpose(sandbox_id, valid_port(port))
        return {}
