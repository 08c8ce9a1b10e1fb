"""Live websockets answer to their principal now, not as it was at connect: revoked keys, suspended or re-planned
organisations, and cross-site pages using the console's session cookie (findings 9 and 13)."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts import services as accounts
from accounts.signals import principal_changed
from billing import services as billing
from billing.models import Plan
from billing.selectors import executions_admitted
from mem0web.asgi import application
from sandboxes.models import Execution
from sandboxes.websocket_auth import _tell_sockets

pytestmark = pytest.mark.django_db(transaction=True)


def _socket(sandbox_id: str, key: str | None = None, headers=()) -> WebsocketCommunicator:
    extra = [(b"authorization", f"Bearer {key}".encode())] if key else []
    return WebsocketCommunicator(application, f"/ws/sandboxes/{sandbox_id}/", headers=[*extra, *headers])


async def _run(ws, code: str = "print(6 * 7)", **extra) -> list[dict]:
    await ws.send_json_to({"code": code, **extra})
    messages = [await ws.receive_json_from(15)]
    while "error" not in messages[-1] and messages[-1].get("type") != "exit":
        messages.append(await ws.receive_json_from(15))
    return messages


async def _closed_with(ws) -> int:
    while True:
        out = await ws.receive_output(10)
        if out["type"] == "websocket.close":
            return out["code"]


async def _new_key(org, owner, scopes=None) -> tuple[object, str]:
    return await sync_to_async(accounts.apikey_create)(org=org, name="ws", created_by=owner, scopes=scopes)


async def test_revoking_a_key_closes_its_open_socket_at_once(api_pa, pro_a, sandbox):
    org, owner, _ = pro_a
    key, raw = await _new_key(org, owner)
    ws = _socket(sandbox["id"], raw)
    assert (await ws.connect())[0]
    assert (await _run(ws))[-1]["type"] == "exit"
    r = await sync_to_async(api_pa.delete)(f"/api/v1/keys/{key.pk}")
    assert r.status_code == 200
    refused = await ws.receive_json_from(10)  # no message sent: the revoke itself reached the socket
    assert refused["error"]["code"] == "key_revoked"
    assert await _closed_with(ws) == 4401


async def test_every_message_rechecks_the_key_even_without_the_group_message(api_pa, pro_a, sandbox):
    org, owner, _ = pro_a
    key, raw = await _new_key(org, owner)
    ws = _socket(sandbox["id"], raw)
    assert (await ws.connect())[0]
    principal_changed.disconnect(_tell_sockets)  # as if the channel layer had lost the message
    try:
        assert (await sync_to_async(api_pa.delete)(f"/api/v1/keys/{key.pk}")).status_code == 200
        before = await sync_to_async(Execution.objects.filter(organization=org).count)()
        assert (await _run(ws, "print('after revoke')"))[-1]["error"]["code"] == "key_revoked"
        assert await _closed_with(ws) == 4401
        assert await sync_to_async(Execution.objects.filter(organization=org).count)() == before
    finally:
        principal_changed.connect(_tell_sockets)


async def test_suspension_closes_key_and_session_sockets(pro_a, sandbox):
    org, owner, raw = pro_a
    browser = Client()
    await sync_to_async(browser.force_login)(owner)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    by_key = _socket(sandbox["id"], raw)
    by_session = _socket(sandbox["id"], headers=[(b"cookie", cookie), (b"origin", b"http://testserver")])
    assert (await by_key.connect())[0] and (await by_session.connect())[0]
    await sync_to_async(billing.organization_suspend)(org=org, operator=None)
    for ws in (by_key, by_session):
        assert (await ws.receive_json_from(10))["error"]["code"] == "organization_suspended"
        assert await _closed_with(ws) == 4403


async def test_a_plan_change_reaches_an_open_socket(tenant, engine):
    org, owner, raw = await sync_to_async(tenant)("planned")  # free: runs of at most 30 s
    from tests.conftest import client_for

    api = client_for(raw)
    r = await sync_to_async(api.post)("/api/v1/sandboxes", {"runtime": "python"}, format="json")
    assert r.status_code == 201, r.content
    ws = _socket(r.json()["id"], raw)
    assert (await ws.connect())[0]
    assert (await _run(ws, timeout_s=60))[-1]["error"]["code"] == "quota_exceeded"
    pro = await sync_to_async(Plan.objects.get)(slug="pro")
    await sync_to_async(billing.organization_plan_change)(org=org, plan=pro, operator=None)
    assert (await _run(ws, timeout_s=60))[-1]["type"] == "exit"
    await ws.disconnect()
    await sync_to_async(api.delete)(f"/api/v1/sandboxes/{r.json()['id']}")


@pytest.mark.parametrize(
    "origin,accepted",
    [
        (b"https://evil.example", False),
        (b"http://testserver.evil.example", False),
        (None, False),
        (b"http://testserver", True),
    ],
)
async def test_session_sockets_only_from_allowed_origins(pro_a, sandbox, origin, accepted):
    browser = Client()
    await sync_to_async(browser.force_login)(pro_a[1])
    headers = [(b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())]
    if origin is not None:
        headers.append((b"origin", origin))
    ws = _socket(sandbox["id"], headers=headers)
    connected, _ = await ws.connect()
    assert connected is accepted
    if connected:
        assert (await _run(ws))[-1]["type"] == "exit"
        await ws.disconnect()


async def test_key_sockets_work_from_any_origin_or_none(pro_a, sandbox):
    for headers in ([], [(b"origin", b"https://some-app.example")]):
        ws = _socket(sandbox["id"], pro_a[2], headers=headers)
        assert (await ws.connect())[0]
        assert (await _run(ws))[-1]["type"] == "exit"
        await ws.disconnect()


BAD_MESSAGES = [
    {"code": "print(1)", "timeout_s": "abc"},
    {"code": "print(1)", "timeout_s": -1},
    {"code": "print(1)", "timeout_s": 0},
    {"code": "print(1)", "timeout_s": "NaN"},
    {"code": "print(1)", "timeout_s": [1]},
    {"code": "print(1)", "timeout_s": True},
    {"code": 5},
    [1, 2],
    "just a string",
]


async def test_bad_messages_get_an_error_spend_nothing_and_leave_the_socket_open(pro_a, sandbox):
    org = pro_a[0]
    ws = _socket(sandbox["id"], pro_a[2])
    assert (await ws.connect())[0]
    spent = await sync_to_async(executions_admitted)(org)
    rows = await sync_to_async(Execution.objects.filter(organization=org).count)()
    for message in BAD_MESSAGES:
        await ws.send_json_to(message)
        answer = await ws.receive_json_from(10)
        assert "error" in answer and answer["error"]["code"] == "invalid_request", (message, answer)
    for frame in ("{not json", "[" * 100_000 + "]" * 100_000, '{"code": "' + "x" * 600_000 + '"}'):
        await ws.send_to(text_data=frame)
        answer = await ws.receive_json_from(10)
        assert answer["error"]["code"] in ("invalid_request", "payload_too_large"), answer
    await ws.send_to(bytes_data=b'{"code": "print(1)"}')
    assert (await ws.receive_json_from(10))["error"]["code"] == "invalid_request"
    assert await sync_to_async(executions_admitted)(org) == spent
    assert await sync_to_async(Execution.objects.filter(organization=org).count)() == rows
    assert (await _run(ws))[-2]["data"] == "42\n"  # still open and working
    await ws.disconnect()


async def test_run_messages_draw_on_the_plans_request_rate(pro_a, sandbox):
    from billing.models import PlanOverride

    await sync_to_async(PlanOverride.objects.update_or_create)(
        organization=pro_a[0], defaults={"request_burst": 2, "requests_per_minute": 1}
    )
    ws = _socket(sandbox["id"], pro_a[2])
    assert (await ws.connect())[0]
    codes = []
    for _ in range(4):
        await ws.send_json_to(
            {"code": "print(1)", "timeout_s": "bad"}
        )  # refused by validation, after the rate
        codes.append((await ws.receive_json_from(10))["error"]["code"])
    assert codes == ["invalid_request", "invalid_request", "rate_limited", "rate_limited"]
    await ws.disconnect()


async def test_signing_out_ends_the_sessions_sockets_at_their_next_message(pro_a, sandbox):
    browser = Client()
    await sync_to_async(browser.force_login)(pro_a[1])
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    ws = _socket(sandbox["id"], headers=[(b"cookie", cookie), (b"origin", b"http://testserver")])
    assert (await ws.connect())[0]
    assert (await _run(ws))[-1]["type"] == "exit"
    await sync_to_async(browser.logout)()
    assert (await _run(ws))[-1]["error"]["code"] == "authentication_failed"
    assert await _closed_with(ws) == 4401
