"""Workspace file operations from the host side, and the escapes they must refuse."""

from __future__ import annotations

import os
import stat

import pytest

from sandboxes.engine.files import MAX_FILE_BYTES
from sandboxes.engine.protocol import EngineError, Limits


def test_write_read_list_delete(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    c.file_write(a, sandbox_id=sid, path="data/in.csv", data=b"a,b\n1,2\n")
    assert c.file_read(a, sandbox_id=sid, path="data/in.csv") == b"a,b\n1,2\n"
    (entry,) = c.files_list(a, sandbox_id=sid, path="data")
    assert (entry["name"], entry["path"], entry["type"], entry["size"]) == (
        "in.csv",
        "data/in.csv",
        "file",
        8,
    )
    assert [e["type"] for e in c.files_list(a, sandbox_id=sid)] == ["dir"]
    # the sandbox sees and owns what the host wrote
    assert (
        engine.ok(
            sid, "print(open('data/in.csv').read().split()[1])\nopen('data/in.csv', 'a').write('3,4\\n')"
        )
        == "1,2\n"
    )
    assert c.file_read(a, sandbox_id=sid, path="data/in.csv").endswith(b"3,4\n")
    engine.ok(sid, "open('/workspace/out.bin', 'wb').write(bytes(range(256)))")
    assert c.file_read(a, sandbox_id=sid, path="out.bin") == bytes(range(256))
    c.file_delete(a, sandbox_id=sid, path="data")
    assert [e["name"] for e in c.files_list(a, sandbox_id=sid)] == ["out.bin"]
    with pytest.raises(EngineError) as err:
        c.file_read(a, sandbox_id=sid, path="data/in.csv")
    assert err.value.code == "not_found"


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../../etc/passwd", "a/../../x", "", "link", "linkdir/passwd", "up/etc/passwd"]
)
def test_escapes_are_refused(engine, path):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    engine.ok(
        sid,
        "import os\nos.symlink('/etc/passwd', 'link')\nos.symlink('/etc', 'linkdir')\nos.symlink('..', 'up')",
    )
    with pytest.raises(EngineError) as err:
        c.file_read(a, sandbox_id=sid, path=path)
    assert err.value.code == "invalid_request"
    with pytest.raises(EngineError) as err:
        c.file_write(a, sandbox_id=sid, path=path or "x/..", data=b"pwned")
    assert err.value.code in ("invalid_request", "not_found")
    with open("/etc/passwd", "rb") as f:
        assert b"pwned" not in f.read()


def test_symlinks_are_listed_not_followed(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    engine.ok(sid, "import os\nos.symlink('/etc', 'etc-link')")
    (entry,) = c.files_list(a, sandbox_id=sid)
    assert entry["type"] == "symlink"
    with pytest.raises(EngineError) as err:
        c.files_list(a, sandbox_id=sid, path="etc-link")
    assert err.value.code == "invalid_request"


def test_write_beyond_workspace_size_is_payload_too_large(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create(limits=Limits(workspace_bytes=2 << 20))
    with pytest.raises(EngineError) as err:
        c.file_write(a, sandbox_id=sid, path="big", data=b"x" * (4 << 20))
    assert err.value.code == "payload_too_large"


def test_a_file_grown_between_size_check_and_read_is_refused_not_read_whole(engine, monkeypatch):
    """Finding 2: the sandbox grows the file (a sparse ftruncate) after the agent checked its size.

    Deterministic: the file grows inside the agent's own fstat, i.e. exactly between check and read."""
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    engine.ok(sid, "open('grow.bin', 'wb').write(b'x' * 1000)")
    real_fstat = os.fstat

    def fstat_then_grow(fd):
        st = real_fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_size == 1000:
            os.truncate(f"/proc/self/fd/{fd}", MAX_FILE_BYTES + (8 << 20))
        return st

    monkeypatch.setattr(os, "fstat", fstat_then_grow)
    with pytest.raises(EngineError) as err:
        c.file_read(a, sandbox_id=sid, path="grow.bin")
    assert err.value.code == "payload_too_large"
    monkeypatch.undo()
    engine.ok(sid, "import os; os.truncate('grow.bin', 1000)")
    monkeypatch.setattr(os, "fstat", fstat_then_grow)
    with pytest.raises(EngineError) as err:  # a caller's smaller cap holds the same way
        c.file_read(a, sandbox_id=sid, path="grow.bin", max_bytes=4096)
    assert err.value.code == "payload_too_large"


def test_read_cap_is_exact(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    engine.ok(sid, "open('f', 'wb').write(b'y' * 4096)")
    assert c.file_read(a, sandbox_id=sid, path="f", max_bytes=4096) == b"y" * 4096
    with pytest.raises(EngineError) as err:
        c.file_read(a, sandbox_id=sid, path="f", max_bytes=4095)
    assert err.value.code == "payload_too_large"


def test_files_of_unknown_sandbox(engine):
    with pytest.raises(EngineError) as err:
        engine.client.files_list(engine.agent_id, sandbox_id="nope")
    assert err.value.code == "sandbox_not_running"


def test_fifos_and_other_special_files_are_refused_without_hanging(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    engine.ok(sid, "import os\nos.mkfifo('pipe')")
    for call in (
        lambda: c.file_read(a, sandbox_id=sid, path="pipe", timeout=5),
        lambda: c.file_write(a, sandbox_id=sid, path="pipe", data=b"x", timeout=5),
    ):
        with pytest.raises(EngineError) as err:
            call()
        assert err.value.code == "invalid_request"
