"""A live stack for the red-team suite: `manage.py rundemo` (Daphne + the embedded fork-agent with real
isolation) on a free port with its own MEM0_VAR_DIR, and two pro tenants made with `manage.py createtenant`:
the attacker, and a bystander whose long-lived sandbox holds state that every program must leave intact."""

import logging

import pytest

from tests.redteam.harness import Arena, Tenant, new_secret
from tests.sdk.live_server import LiveServer, rundemo_server

logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns the failures


@pytest.fixture(scope="session")
def redteam_stack(tmp_path_factory):
    """The live server (its pid is the process that hosts the web tier and the embedded agent)."""
    with rundemo_server(tmp_path_factory.mktemp("redteam-var")) as (server, proc):
        yield server, proc.pid


def _pro_tenant(server: LiveServer, slug: str) -> Tenant:
    printed = server.manage("createtenant", slug, "--email", f"{slug}@example.com", "--plan", "pro")
    return Tenant(server.base_url, printed.strip().splitlines()[-1], slug)


@pytest.fixture(scope="session")
def redteam_session(redteam_stack):
    server, pid = redteam_stack
    attacker = Tenant(server.base_url, server.api_key, "demo")  # rundemo's organisation is on the pro plan
    bystander = _pro_tenant(server, "redteam-bystander")
    secret = new_secret()
    sid = bystander.create(metadata={"role": "bystander"})["id"]
    ex = bystander.run(sid, f"secret = {secret!r}\nopen('/workspace/state.txt', 'w').write('kept')")
    assert ex["status"] == "succeeded", ex
    arena = Arena(server.base_url, pid, attacker, bystander, sid, secret)
    yield arena
    for shared in arena.shared.values():
        attacker.delete(shared)


@pytest.fixture
def arena(redteam_session) -> Arena:
    return redteam_session
