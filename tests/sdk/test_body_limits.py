"""Request bodies and websocket messages are refused at their cap by the real server (Daphne), before they are
read: a 50 MB body gets its 413 while the client has sent only the headers and a little of it (finding 12)."""

import json
import select
import socket
import urllib.parse

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

JSON_CAP = 1024 * 1024  # MEM0_MAX_JSON_BYTES's default
FIFTY_MB = 50 * 1024 * 1024


def _address(base_url: str) -> tuple[str, int]:
    url = urllib.parse.urlsplit(base_url)
    return url.hostname, url.port


def _response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split(b" ", 2)[1]), json.loads(body)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _send_until_answered(sock: socket.socket, head: bytes, chunks) -> int:
    """Send `head` then `chunks` until the server answers (or cuts the connection); returns body bytes sent."""
    sock.sendall(head)
    sent = 0
    for chunk in chunks:
        if select.select([sock], [], [], 0)[0]:
            break
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(chunk)
    return sent


def _post_head(path: str, key: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_a_declared_50_mb_json_body_is_refused_before_it_is_sent(mem0_server):
    with socket.create_connection(_address(mem0_server.base_url), timeout=30) as sock:
        head = _post_head("/api/v1/sandboxes", mem0_server.api_key, f"Content-Length: {FIFTY_MB}\r\n")
        sock.sendall(head + b'{"runtime": "python", "metadata": {"a": "' + b"x" * 65536)
        status, body = _response(sock)  # answered with 49.9 MB still unsent
    assert status == 413
    assert body["error"]["code"] == "payload_too_large" and body["error"]["details"] == {"limit": JSON_CAP}


def test_a_chunked_json_body_is_cut_off_at_its_cap(mem0_server):
    piece = b"x" * 65536
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    with socket.create_connection(_address(mem0_server.base_url), timeout=30) as sock:
        head = _post_head("/api/v1/sandboxes", mem0_server.api_key, "Transfer-Encoding: chunked\r\n")
        sent = _send_until_answered(sock, head, (chunk for _ in range(FIFTY_MB // len(chunk))))
        status, body = _response(sock)
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert sent < FIFTY_MB // 4, f"the server let {sent} bytes in before refusing"


def test_uploads_have_their_own_larger_cap(mem0_server):
    h = {"Authorization": f"Bearer {mem0_server.api_key}"}
    sandbox = httpx.post(
        f"{mem0_server.base_url}/api/v1/sandboxes", json={"runtime": "python"}, headers=h, timeout=60
    ).json()
    try:
        r = httpx.put(
            f"{mem0_server.base_url}/api/v1/sandboxes/{sandbox['id']}/files/two.bin",
            content=b"y" * (2 * JSON_CAP),
            headers=h,
            timeout=60,
        )
        assert r.status_code == 201, r.text  # over the JSON cap, under MEM0_MAX_FILE_BYTES
        with socket.create_connection(_address(mem0_server.base_url), timeout=30) as sock:
            sock.sendall(
                (
                    f"PUT /api/v1/sandboxes/{sandbox['id']}/files/big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {mem0_server.api_key}\r\nContent-Length: {FIFTY_MB}\r\n\r\n"
                ).encode()
            )
            status, body = _response(sock)
        assert status == 413 and body["error"]["details"] == {"limit": 32 * 1024 * 1024}
    finally:
        httpx.delete(f"{mem0_server.base_url}/api/v1/sandboxes/{sandbox['id']}", headers=h, timeout=60)


def test_a_websocket_message_over_the_cap_closes_the_socket_1009(mem0_server):
    h = {"Authorization": f"Bearer {mem0_server.api_key}"}
    sandbox = httpx.post(
        f"{mem0_server.base_url}/api/v1/sandboxes", json={"runtime": "python"}, headers=h, timeout=60
    ).json()
    ws_url = mem0_server.base_url.replace("http://", "ws://") + f"/ws/sandboxes/{sandbox['id']}/"
    try:
        with connect(ws_url, additional_headers=h, max_size=None) as ws:
            ws.send(json.dumps({"code": "print(6 * 7)"}))
            assert json.loads(ws.recv(timeout=30))["type"] == "started"
            ws.send("x" * (4 * JSON_CAP))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    finally:
        httpx.delete(f"{mem0_server.base_url}/api/v1/sandboxes/{sandbox['id']}", headers=h, timeout=60)
