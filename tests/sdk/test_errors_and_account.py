"""The SDK against a live server, without sandboxes: identity, configuration and typed errors."""

import subprocess
import sys

import httpx
import pytest

from mem0sdk import (
    AsyncMem0,
    AuthenticationError,
    InvalidRequestError,
    Mem0,
    Mem0ConnectionError,
    Mem0Error,
    NotFoundError,
    PermissionDeniedError,
)
from tests.sdk.live_server import ROOT, free_port


def unknown_key(real_key: str) -> str:
    """A well-formed key whose prefix no organisation has."""
    _, prefix, secret = real_key.split("_")
    return f"mem0_{'z' * len(prefix)}_{secret}"


def test_me_returns_the_keys_organisation_and_scopes(client):
    me = client.me()
    assert me["organization"]["slug"]
    assert "sandboxes:write" in me["key"]["scopes"]
    assert me["limits"]["concurrent_sandboxes"] > 0


def test_usage_reports_used_and_limit_per_metric(client):
    usage = client.usage()
    assert usage["period"]
    for metric in ("executions", "cpu_ms", "sandbox_seconds", "storage_bytes", "concurrent_sandboxes"):
        assert {"used", "limit"} <= set(usage[metric])


def test_api_key_and_base_url_come_from_the_environment(mem0_server, monkeypatch):
    monkeypatch.setenv("MEM0_API_KEY", mem0_server.api_key)
    monkeypatch.setenv("MEM0_BASE_URL", mem0_server.base_url + "/")
    with Mem0() as c:
        assert c.settings.base_url == mem0_server.base_url
        assert c.me()["key"]["prefix"] == mem0_server.api_key.split("_")[1]


def test_missing_key_fails_before_any_request(monkeypatch):
    monkeypatch.delenv("MEM0_API_KEY", raising=False)
    with pytest.raises(AuthenticationError) as exc:
        Mem0(base_url="http://127.0.0.1:1")
    assert exc.value.code == "authentication_failed"


def test_malformed_key_raises_authentication_error_key_malformed(mem0_server):
    with (
        Mem0(api_key="mem0_not-a-key", base_url=mem0_server.base_url) as c,
        pytest.raises(AuthenticationError) as exc,
    ):
        c.me()
    assert (exc.value.code, exc.value.status) == ("key_malformed", 401)


def test_unknown_key_raises_authentication_error_key_unknown(mem0_server):
    with Mem0(api_key=unknown_key(mem0_server.api_key), base_url=mem0_server.base_url) as c:
        with pytest.raises(AuthenticationError) as exc:
            c.sandboxes.get("sbx_whatever")
    assert (exc.value.code, exc.value.status) == ("key_unknown", 401)


def test_key_without_write_scope_raises_permission_denied(mem0_server, client):
    # Keys are not part of the SDK's surface: make a read-only one with a plain HTTP call.
    created = httpx.post(
        f"{mem0_server.base_url}/api/v1/keys",
        json={"name": "sdk read-only", "scopes": ["sandboxes:read"]},
        headers={"Authorization": f"Bearer {mem0_server.api_key}"},
    )
    assert created.status_code == 201, created.text
    with Mem0(api_key=created.json()["key"], base_url=mem0_server.base_url) as read_only:
        assert list(read_only.sandboxes.list(metadata={"suite": "never-used-label"})) == []
        with pytest.raises(PermissionDeniedError) as exc:
            read_only.sandboxes.create()
    assert (exc.value.code, exc.value.status) == ("permission_denied", 403)
    assert exc.value.details["required_scope"] == "sandboxes:write"


def test_missing_sandbox_raises_not_found(client):
    with pytest.raises(NotFoundError) as exc:
        client.sandboxes.get("sbx_does_not_exist")
    assert exc.value.status == 404 and exc.value.code == "not_found"


def test_missing_snapshot_and_execution_raise_not_found(client):
    with pytest.raises(NotFoundError):
        client.snapshots.get("snap_does_not_exist")
    with pytest.raises(NotFoundError):
        client.executions.get("exe_does_not_exist")


def test_unknown_runtime_raises_invalid_request_naming_the_runtimes(client):
    with pytest.raises(InvalidRequestError) as exc:
        client.sandboxes.create(runtime="cobol")
    assert (exc.value.code, exc.value.status) == ("unknown_runtime", 400)
    assert "python" in exc.value.details["runtimes"]


def test_invalid_field_raises_invalid_request_with_field_details(client):
    with pytest.raises(InvalidRequestError) as exc:
        client.sandboxes.create(runtime="python", timeout_s=0)
    assert exc.value.code == "invalid_request"
    assert "timeout_s" in exc.value.details["fields"]


def test_unreachable_server_raises_connection_error_after_retries():
    with Mem0(api_key="mem0_x", base_url=f"http://127.0.0.1:{free_port()}", max_retries=1) as c:
        with pytest.raises(Mem0ConnectionError) as exc:
            c.me()
    assert exc.value.code == "connection_error" and exc.value.status is None
    assert isinstance(exc.value, Mem0Error)


def test_empty_lists_iterate_to_nothing_on_a_fresh_filter(client):
    assert list(client.sandboxes.list(metadata={"suite": "never-used-label"})) == []
    assert list(client.snapshots.list(tag="never-used-tag")) == []


async def test_async_client_has_the_same_errors(mem0_server, aclient):
    me = await aclient.me()
    assert me["organization"]["slug"]
    with pytest.raises(NotFoundError):
        await aclient.sandboxes.get("sbx_does_not_exist")
    with pytest.raises(InvalidRequestError) as exc:
        await aclient.sandboxes.create(runtime="cobol")
    assert exc.value.code == "unknown_runtime"
    async with AsyncMem0(api_key=unknown_key(mem0_server.api_key), base_url=mem0_server.base_url) as bad:
        with pytest.raises(AuthenticationError) as auth:
            await bad.me()
    assert auth.value.code == "key_unknown"


def test_sdk_imports_without_django():
    code = (
        "import sys, mem0sdk, mem0sdk.cli; "
        "bad = [m for m in sys.modules if m.split('.')[0] in {'django', 'rest_framework', 'accounts', "
        "'billing', 'sandboxes', 'mem0web'}]; print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
