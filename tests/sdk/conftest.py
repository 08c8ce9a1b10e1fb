"""A real Mem0 server for the SDK tests: `manage.py migrate` + `manage.py rundemo` on a free port.

The server gets its own MEM0_VAR_DIR (fresh SQLite database, in-process agent, block store) and no
DATABASE_URL/REDIS_URL, so it never touches the developer's data. Nothing here uses the Django test
database: the SDK only speaks HTTP to the subprocess.

To run the same tests against a server that is already running, set MEM0_SDK_TEST_BASE_URL and
MEM0_SDK_TEST_API_KEY (the key must belong to an organisation on a plan with room to create sandboxes).
"""

import os
import subprocess
import sys

import pytest

from mem0sdk import AsyncMem0, Mem0
from tests.sdk.live_server import (
    ROOT,
    LiveServer,
    free_port,
    server_env,
    stop_group,
    wait_for_health,
    wait_for_key,
)


@pytest.fixture(scope="session")
def mem0_server(tmp_path_factory) -> LiveServer:
    if os.environ.get("MEM0_SDK_TEST_BASE_URL"):
        yield LiveServer(
            os.environ["MEM0_SDK_TEST_BASE_URL"].rstrip("/"), os.environ["MEM0_SDK_TEST_API_KEY"]
        )
        return
    var_dir = tmp_path_factory.mktemp("mem0-var")
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
        yield LiveServer(base_url, key, var_dir)
    finally:
        stop_group(proc)


@pytest.fixture
def client(mem0_server):
    with Mem0(api_key=mem0_server.api_key, base_url=mem0_server.base_url, timeout=30) as c:
        yield c


@pytest.fixture
async def aclient(mem0_server):
    async with AsyncMem0(api_key=mem0_server.api_key, base_url=mem0_server.base_url, timeout=30) as c:
        yield c
