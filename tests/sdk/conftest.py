"""A real Mem0 server for the SDK tests: `manage.py migrate` + `manage.py rundemo` on a free port.

The server gets its own MEM0_VAR_DIR (fresh SQLite database, in-process agent, block store) and no
DATABASE_URL/REDIS_URL, so it never touches the developer's data. Nothing here uses the Django test
database: the SDK only speaks HTTP to the subprocess.

To run the same tests against a server that is already running, set MEM0_SDK_TEST_BASE_URL and
MEM0_SDK_TEST_API_KEY (the key must belong to an organisation on a plan with room to create sandboxes).
"""

import os

import pytest

from mem0sdk import AsyncMem0, Mem0
from tests.sdk.live_server import LiveServer, rundemo_server


@pytest.fixture(scope="session")
def mem0_server(tmp_path_factory) -> LiveServer:
    if os.environ.get("MEM0_SDK_TEST_BASE_URL"):
        yield LiveServer(
            os.environ["MEM0_SDK_TEST_BASE_URL"].rstrip("/"), os.environ["MEM0_SDK_TEST_API_KEY"]
        )
        return
    with rundemo_server(tmp_path_factory.mktemp("mem0-var")) as (server, _):
        yield server


@pytest.fixture
def client(mem0_server):
    with Mem0(api_key=mem0_server.api_key, base_url=mem0_server.base_url, timeout=30) as c:
        yield c


@pytest.fixture
async def aclient(mem0_server):
    async with AsyncMem0(api_key=mem0_server.api_key, base_url=mem0_server.base_url, timeout=30) as c:
        yield c
