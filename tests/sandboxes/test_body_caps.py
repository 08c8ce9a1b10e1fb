"""The body cap in the layers under Daphne: the ASGI handler (any ASGI server) and DRF's parser (WSGI, tests).
The real server, Daphne, is checked end to end in tests/sdk/test_body_limits.py."""

import json

import pytest
from asgiref.testing import ApplicationCommunicator

from accounts.models import APIKey
from mem0web.asgi import application


def _scope(path: str, key: str, headers=()) -> dict:
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "http_version": "1.1",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            *headers,
        ],
    }


@pytest.mark.django_db(transaction=True)
async def test_the_asgi_handler_refuses_a_declared_length_over_the_cap_before_reading(org_a):
    comm = ApplicationCommunicator(
        application, _scope("/api/v1/keys", org_a[2], [(b"content-length", b"52428800")])
    )
    start = await comm.receive_output(10)  # no body was sent at all
    assert start["status"] == 413
    body = await comm.receive_output(10)
    assert json.loads(body["body"])["error"] == {
        "code": "payload_too_large",
        "message": "The request body may be at most 1048576 bytes here.",
        "details": {"limit": 1048576},
    }


@pytest.mark.django_db(transaction=True)
async def test_the_asgi_handler_stops_reading_a_body_at_the_cap(org_a, settings):
    settings.MEM0_MAX_JSON_BYTES = 1000
    comm = ApplicationCommunicator(application, _scope("/api/v1/keys", org_a[2]))
    for _ in range(3):
        await comm.send_input({"type": "http.request", "body": b"x" * 600, "more_body": True})
    start = await comm.receive_output(10)  # answered while the client is still sending
    assert start["status"] == 413


def test_drf_parses_at_most_the_cap(api_a, org_a, settings):
    settings.MEM0_MAX_JSON_BYTES = 1000
    before = APIKey.objects.count()
    r = api_a.post("/api/v1/keys", {"name": "k", "pad": "x" * 2000}, format="json")
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert r.json()["error"]["details"] == {"limit": 1000}
    assert APIKey.objects.count() == before
    assert api_a.post("/api/v1/keys", {"name": "k"}, format="json").status_code == 201
