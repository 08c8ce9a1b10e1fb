"""Parsing what the server sends: the SSE framing, the error envelope, and resources with extra fields."""

import pytest

from mem0sdk import (
    AgentsUnavailableError,
    AuthenticationError,
    Execution,
    ExitEvent,
    Mem0Error,
    OutputEvent,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitedError,
    Sandbox,
    SandboxNotRunningError,
    Snapshot,
)
from mem0sdk.errors import error_for
from mem0sdk.transport import SSEDecoder, decode_event, may_retry, next_page_params


def decode(text: str) -> tuple[list, SSEDecoder]:
    decoder = SSEDecoder()
    messages = [m for m in (decoder.feed(line) for line in text.split("\n")) if m is not None]
    return messages, decoder


def test_sse_lines_decode_to_output_then_exit_events():
    stream = (
        "retry: 1000\n\n"
        ": keep-alive\n\n"
        'id: 1\nevent: output\ndata: {"seq": 1, "stream": "stdout", "data": "hi\\n"}\n\n'
        'id: 2\nevent: exit\ndata: {"seq": 2, "type": "exit", "status": "succeeded", "exit_code": 0, "limit": null}\n\n'
    )
    decoder = SSEDecoder()
    events = [e for e in (decode_event(decoder, line) for line in stream.split("\n")) if e is not None]
    assert decoder.retry_ms == 1000
    assert events[0] == OutputEvent(seq=1, stream="stdout", data="hi\n")
    assert isinstance(events[1], ExitEvent) and events[1].exit_code == 0 and events[1].status == "succeeded"
    assert len(events) == 2


def test_sse_decoder_keeps_ids_joins_multiline_data_and_tolerates_crlf():
    messages, _ = decode("id: 7\r\nevent: output\r\ndata: a\r\ndata:b\r\n\r\n")
    assert [(m.event, m.id, m.data) for m in messages] == [("output", "7", "a\nb")]


@pytest.mark.parametrize(
    "code,cls",
    [
        ("key_revoked", AuthenticationError),
        ("organization_suspended", PermissionDeniedError),
        ("quota_exceeded", QuotaExceededError),
        ("sandbox_not_running", SandboxNotRunningError),
        ("agents_unavailable", AgentsUnavailableError),
    ],
)
def test_error_codes_map_to_their_classes(code, cls):
    error = error_for(400, {"error": {"code": code, "message": "m", "details": {"limit": 3}}})
    assert type(error) is cls and error.code == code and error.details == {"limit": 3}


def test_unknown_code_maps_to_the_base_class():
    error = error_for(418, {"error": {"code": "teapot", "message": "short and stout"}})
    assert type(error) is Mem0Error and (error.code, error.status, error.message) == (
        "teapot",
        418,
        "short and stout",
    )


def test_rate_limited_carries_retry_after_and_a_body_without_envelope_still_maps():
    limited = error_for(429, {"error": {"code": "rate_limited", "message": "slow down"}}, retry_after="7")
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 7.0
    proxy = error_for(502, "<html>Bad gateway</html>")
    assert type(proxy) is Mem0Error and proxy.status == 502


def test_only_repeatable_calls_are_retried():
    assert may_retry("GET", None) and may_retry("DELETE", None) and may_retry("PUT", None)
    assert not may_retry("POST", None)
    assert may_retry("POST", {"Idempotency-Key": "k1"})


def test_cursor_link_is_reapplied_as_query_parameters():
    assert next_page_params("http://proxy.example/api/v1/sandboxes?cursor=cD0y&limit=2") == {
        "cursor": "cD0y",
        "limit": "2",
    }
    assert next_page_params(None) is None


def test_resources_ignore_fields_they_do_not_know():
    sandbox = Sandbox.from_json(
        {
            "id": "sbx_1",
            "runtime": "python",
            "state": "running",
            "parent_id": None,
            "shiny_new_field": [1],
            "created_at": "2026-11-25T17:00:00.123456Z",
            "env": None,
        }
    )
    assert (sandbox.id, sandbox.state, sandbox.env) == ("sbx_1", "running", {})
    assert sandbox.created_at.year == 2026 and sandbox.raw["shiny_new_field"] == [1]
    execution = Execution.from_json(
        {"id": "exe_1", "status": "succeeded", "exit_code": 0, "stdout": None, "x": 1}
    )
    assert execution.ok and execution.finished and execution.stdout == ""
    snapshot = Snapshot.from_json({"id": "snap_1", "tags": ["v1"], "files": 3, "logical_bytes": 10})
    assert snapshot.tags == ["v1"] and snapshot.logical_bytes == 10
