"""Starting and stopping a real Mem0 server (`manage.py rundemo`) in a subprocess for the SDK tests."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 60.0
# Variables that would point the test server at shared services instead of its own temp dir.
SHARED_SERVICE_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "MEM0_BUS_URL",
    "MEM0_AGENT_STATE_DIR",
    "MEM0_BLOCKSTORE_DIR",
    "MEM0_S3_BUCKET",
    "MEM0_API_KEY",
    "MEM0_BASE_URL",
)


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    api_key: str
    var_dir: Path | None = None

    def manage(self, *args: str) -> str:
        """Run a manage.py command against this server's database; returns its stdout."""
        assert self.var_dir is not None, "manage() needs the server started by this fixture"
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=server_env(self.var_dir),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout


def server_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SHARED_SERVICE_VARS}
    env["MEM0_VAR_DIR"] = str(var_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_key(proc: subprocess.Popen, log: Path) -> str:
    """The demo key rundemo writes (stdout is not a terminal here, so into var/demo-api-key, mode 0600),
    failing fast if the server dies."""
    key_file = log.parent / "demo-api-key"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if key_file.exists() and key_file.read_text().startswith("mem0_"):
            return key_file.read_text().strip()
        if proc.poll() is not None:
            pytest.fail(f"rundemo exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)
    pytest.fail(
        f"rundemo printed no key within {STARTUP_TIMEOUT_S:.0f}s:\n{log.read_text(errors='replace')[-4000:]}"
    )


def wait_for_health(proc: subprocess.Popen, base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"rundemo exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(
        f"/healthz not 200 within {STARTUP_TIMEOUT_S:.0f}s:\n{log.read_text(errors='replace')[-4000:]}"
    )


def stop_group(proc: subprocess.Popen) -> None:
    """Stop rundemo, then anything it started that is still in its session (agent, zygotes)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=15)


@contextlib.contextmanager
def rundemo_server(var_dir: Path):
    """A migrated `manage.py rundemo` on a free port with its state in `var_dir`: (server, process)."""
    env = server_env(var_dir)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    port = free_port()
    log = var_dir / "rundemo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "rundemo", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        key = wait_for_key(proc, log)
        wait_for_health(proc, base_url, log)
        yield LiveServer(base_url, key, var_dir), proc
    finally:
        stop_group(proc)
