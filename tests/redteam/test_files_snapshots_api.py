"""Hostile use of the files and snapshot APIs (and the sandbox list's metadata filter): paths and symlinks
never leave /workspace, reads are capped on the bytes actually moved, snapshots store links as links, and
no tenant reaches another's sandboxes or snapshots."""

import time

import pytest

from tests.redteam.harness import Hostile, MiB, error_code, out, table

HOST_PASSWD = (
    b"daemon:x:1:1",
    b"nobody:x:65534",
)  # lines of the host's /etc/passwd, absent from the sandbox's
FILE_CAP = 64 * MiB  # the largest read cap in the stack (the agent's); the web tier's is smaller


def refused(r, what: str) -> None:
    assert 400 <= r.status_code < 500 and error_code(r), f"{what}: {r.status_code} {r.content[:200]!r}"
    assert not any(line in r.content for line in HOST_PASSWD), f"{what}: host /etc/passwd in the answer"


def run_ok(arena, sid: str, code: str, timeout_s: float = 5.0) -> str:
    ex = arena.attacker.run(sid, code, timeout_s)
    assert ex["status"] == "succeeded", f"{ex['status']}/{ex['limit']}: {out(ex)[-500:]!r}"
    return ex["stdout"]


def path_traversal(arena) -> None:
    """../, encoded ../, absolute paths, NUL and over-long paths on GET/PUT/DELETE/list -> 4xx, nothing of the host."""
    sid = arena.reusable("files-api")
    http = arena.attacker.http
    for path in (
        "%2e%2e/%2e%2e/etc/passwd",
        "..%2f..%2f..%2fetc%2fpasswd",
        "%2fetc%2fpasswd",
        "a/%2e%2e/%2e%2e/etc/passwd",
        "ok%00/%2e%2e/%2e%2e/etc/passwd",
        "x" * 5000,
        "/".join(["d"] * 2000),
    ):
        refused(http.get(f"/sandboxes/{sid}/files/{path}"), f"GET {path[:60]}")
        refused(http.put(f"/sandboxes/{sid}/files/{path}", content=b"x"), f"PUT {path[:60]}")
        refused(http.delete(f"/sandboxes/{sid}/files/{path}"), f"DELETE {path[:60]}")
    for path in ("../..", "/etc", "%2e%2e", "/proc/self"):
        refused(http.get(f"/sandboxes/{sid}/files", params={"path": path}), f"list {path}")


def symlinks_to_proc(arena) -> None:
    """Symlinks to /proc/self/environ, /proc/self/fd/3, /proc/1/mem, /dev/zero, /dev/urandom -> 4xx through the API."""
    sid = arena.reusable("files-api")
    run_ok(
        arena,
        sid,
        "import os\nfor name, target in (('env', '/proc/self/environ'), ('fd3', '/proc/self/fd/3'),"
        " ('mem', '/proc/1/mem'), ('zero', '/dev/zero'), ('urandom', '/dev/urandom'),"
        " ('procroot', '/proc/1/root')):\n    if not os.path.lexists(f'/workspace/{name}'):\n"
        "        os.symlink(target, f'/workspace/{name}')",
    )
    for path in ("env", "fd3", "mem", "zero", "urandom", "procroot/etc/passwd"):
        r = arena.attacker.http.get(f"/sandboxes/{sid}/files/{path}", timeout=20)
        refused(r, f"GET {path}")
        assert b"MEM0_" not in r.content and b"DATABASE_URL" not in r.content


def delete_through_symlink(arena) -> None:
    """DELETE through a symlinked directory, and of the link itself -> the target outside /workspace is untouched."""
    sid = arena.fresh()
    run_ok(
        arena,
        sid,
        "import os\nos.makedirs('/tmp/victim')\nopen('/tmp/victim/file', 'w').write('keep')\n"
        "os.symlink('/tmp/victim', '/workspace/link')",
    )
    refused(arena.attacker.http.delete(f"/sandboxes/{sid}/files/link/file"), "DELETE link/file")
    r = arena.attacker.http.delete(f"/sandboxes/{sid}/files/link")
    assert r.status_code in (204, 400, 403, 404, 409), f"DELETE link: {r.status_code} {r.text[:200]}"
    assert run_ok(arena, sid, "print(open('/tmp/victim/file').read())") == "keep\n"


def read_race(arena) -> None:
    """A thread flips a file between 60 MiB and 300 MiB while the API reads it -> never more than the cap."""
    sid = arena.fresh()
    run_ok(
        arena,
        sid,
        "import os, threading, time\nfd = os.open('/workspace/grow.bin', os.O_CREAT | os.O_RDWR)\n"
        "stop = False\ndef flip():\n    while not stop:\n        os.ftruncate(fd, 60 << 20)\n"
        "        time.sleep(0.03)\n        os.ftruncate(fd, 300 << 20)\n        time.sleep(0.15)\n"
        "threading.Thread(target=flip, daemon=True).start()",
    )
    try:
        for _ in range(15):
            with arena.attacker.http.stream("GET", f"/sandboxes/{sid}/files/grow.bin", timeout=60) as r:
                got = 0
                for chunk in r.iter_bytes():
                    got += len(chunk)
                    if got > FILE_CAP + 1:
                        break
            assert got <= FILE_CAP + 1, f"read {got} bytes of a file capped at {FILE_CAP}"
            assert r.status_code in (200, 413), f"{r.status_code}"
    finally:
        arena.attacker.run(sid, "stop = True")


def huge_sparse_file(arena) -> None:
    """A 1.5 GiB sparse file -> 413 payload_too_large, not read."""
    sid = arena.fresh()
    run_ok(
        arena,
        sid,
        "import os\nfd = os.open('/workspace/huge', os.O_CREAT | os.O_RDWR)\nos.ftruncate(fd, 3 << 29)",
    )
    r = arena.attacker.http.get(f"/sandboxes/{sid}/files/huge")
    assert r.status_code == 413 and error_code(r) == "payload_too_large", f"{r.status_code} {r.text[:200]}"


def fifo_and_socket_files(arena) -> None:
    """A FIFO with no writer and a listening unix socket file in /workspace -> 4xx at once, no hang."""
    sid = arena.reusable("files-api")
    run_ok(
        arena,
        sid,
        "import os, socket\nif not os.path.exists('/workspace/fifo'):\n    os.mkfifo('/workspace/fifo')\n"
        "    s = socket.socket(socket.AF_UNIX)\n    s.bind('/workspace/sock')\n    s.listen()",
    )
    for path in ("fifo", "sock"):
        refused(arena.attacker.http.get(f"/sandboxes/{sid}/files/{path}", timeout=10), f"GET {path}")


def snapshot_symlink_farm(arena) -> None:
    """Snapshot 300 symlinks to /, /etc/passwd, /proc/self/environ, /dev/zero, /usr, loops -> stored as links
    (a small snapshot), restored as links that resolve inside the restored sandbox."""
    sid = arena.fresh()
    run_ok(
        arena,
        sid,
        "import os\nos.makedirs('/workspace/farm')\n"
        "targets = ['/', '/etc/passwd', '/proc/self/environ', '/dev/zero', '/usr', '/proc/1/root', 'loop_b',"
        " '../../../../etc/passwd']\nfor i in range(300):\n"
        "    os.symlink(targets[i % len(targets)], f'/workspace/farm/l{i}')\n"
        "os.symlink('loop_b', '/workspace/farm/loop_a')\nos.symlink('loop_a', '/workspace/farm/loop_b')\n"
        "os.symlink('/etc/passwd', '/workspace/farm/passwd')",
        timeout_s=10,
    )
    r = arena.attacker.http.post(f"/sandboxes/{sid}/snapshots", json={"name": "farm"}, timeout=60)
    assert r.status_code == 201, f"snapshot: {r.status_code} {r.text[:300]}"
    snap = r.json()
    assert snap["logical_bytes"] < MiB, f"the snapshot followed the links: {snap['logical_bytes']} bytes"
    r = arena.attacker.http.post(f"/snapshots/{snap['id']}/restore", timeout=60)
    assert r.status_code == 201, f"restore: {r.status_code} {r.text[:300]}"
    restored = r.json()["id"]
    arena.made.append(restored)
    got = run_ok(
        arena,
        restored,
        "import os\nprint(os.readlink('/workspace/farm/l0'), os.readlink('/workspace/farm/passwd'),"
        " len(os.listdir('/workspace/farm')))\nprint(open('/workspace/farm/passwd').read())",
    )
    assert got.startswith("/ /etc/passwd 303\n"), got
    assert "daemon:x:1:1" not in got, "the restored link reads the host's /etc/passwd"
    arena.attacker.http.delete(f"/snapshots/{snap['id']}")


def other_tenant_objects(arena) -> None:
    """Each tenant addresses the other's snapshot and sandbox on every route -> 404 not_found, nothing changes."""
    sid = arena.fresh()
    run_ok(arena, sid, "open('/workspace/mine', 'w').write('attacker')")
    r = arena.attacker.http.post(f"/sandboxes/{sid}/snapshots", json={}, timeout=60)
    assert r.status_code == 201, r.text
    snap = r.json()["id"]
    by = arena.bystander.http
    for method, path in (
        ("GET", f"/snapshots/{snap}"),
        ("POST", f"/snapshots/{snap}/restore"),
        ("GET", f"/snapshots/{snap}/lineage"),
        ("PUT", f"/snapshots/{snap}/tags/stolen"),
        ("DELETE", f"/snapshots/{snap}"),
        ("GET", f"/sandboxes/{sid}/files/mine"),
    ):
        r = by.request(method, path)
        assert r.status_code == 404 and error_code(r) == "not_found", (
            f"bystander {method} {path}: {r.status_code}"
        )
    victim = arena.bystander_sandbox
    at = arena.attacker.http
    for method, path, body in (
        ("GET", f"/sandboxes/{victim}", None),
        ("GET", f"/sandboxes/{victim}/files", None),
        ("GET", f"/sandboxes/{victim}/files/state.txt", None),
        ("PUT", f"/sandboxes/{victim}/files/state.txt", b"stolen"),
        ("POST", f"/sandboxes/{victim}/executions", {"code": "secret = 'stolen'"}),
        ("POST", f"/sandboxes/{victim}/fork", None),
        ("POST", f"/sandboxes/{victim}/snapshots", {}),
        ("DELETE", f"/sandboxes/{victim}", None),
    ):
        kwargs = {"content": body} if isinstance(body, bytes) else {"json": body} if body is not None else {}
        r = at.request(method, path, **kwargs)
        assert r.status_code == 404 and error_code(r) == "not_found", (
            f"attacker {method} {path}: {r.status_code}"
        )
    arena.attacker.http.delete(f"/snapshots/{snap}")


def metadata_regex(arena) -> None:
    """?metadata.a__regex=^(a+)+$ against the attacker's own 22-a value (a ReDoS under the GIL) -> 400."""
    sb = arena.attacker.create(metadata={"a": "a" * 22 + "!"})
    arena.made.append(sb["id"])
    started = time.monotonic()
    r = arena.attacker.http.get("/sandboxes", params={"metadata.a__regex": "^(a+)+$"})
    assert r.status_code == 400 and error_code(r) == "invalid_request", (
        f"{r.status_code} after {time.monotonic() - started:.2f}s: {r.text[:200]}"
    )


def metadata_lookups(arena) -> None:
    """Other ORM lookups smuggled in metadata keys (contains, isnull, gt, iregex, nested) -> 400, never 500."""
    for key, value in (
        ("a__contains", "x"),
        ("a__isnull", "false"),
        ("a__gt", ""),
        ("a__iregex", "."),
        ("a__b__c", "x"),
        ("__class__", "x"),
    ):
        r = arena.attacker.http.get("/sandboxes", params={f"metadata.{key}": value})
        assert r.status_code == 400 and error_code(r) == "invalid_request", (
            f"metadata.{key}: {r.status_code} {r.text[:200]}"
        )


PROGRAMS = [
    Hostile(
        "base_files_path_traversal",
        "../, encoded, absolute, NUL, over-long paths on every files route -> 4xx",
        attack=path_traversal,
    ),
    Hostile(
        "base_files_symlinks_to_proc_and_dev",
        "symlinks to /proc/self/environ, fds, /dev/zero read via the API -> 4xx",
        attack=symlinks_to_proc,
    ),
    Hostile(
        "base_files_delete_through_symlink",
        "DELETE through and of a symlinked directory -> target untouched",
        attack=delete_through_symlink,
    ),
    Hostile(
        "item9_file_read_race",
        "grow a file past the cap while the API reads it -> never more than the cap",
        attack=read_race,
    ),
    Hostile(
        "item9_huge_sparse_file", "a 1.5 GiB sparse file -> 413 payload_too_large", attack=huge_sparse_file
    ),
    Hostile(
        "base_files_fifo_and_socket",
        "GET a FIFO and a unix socket file -> 4xx without hanging",
        attack=fifo_and_socket_files,
    ),
    Hostile(
        "base_snapshot_symlink_farm",
        "snapshot and restore a symlink farm -> links stay links, no host data",
        attack=snapshot_symlink_farm,
    ),
    Hostile(
        "base_other_tenant_snapshot_and_sandbox",
        "every route on the other tenant's objects -> 404",
        attack=other_tenant_objects,
    ),
    Hostile(
        "finding3_metadata_regex_injection",
        "?metadata.a__regex= ReDoS -> 400 invalid_request",
        attack=metadata_regex,
    ),
    Hostile(
        "finding3_metadata_lookup_injection",
        "?metadata.a__contains= and other lookups -> 400, never 500",
        attack=metadata_lookups,
    ),
]


@pytest.mark.parametrize("program", table(PROGRAMS))
def test_files_and_snapshot_apis(program, arena):
    arena.play(program, "files-api")
