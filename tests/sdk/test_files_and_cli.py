"""SDK file methods (issue 14 item 6) and the CLI's create, fork, snapshot, restore, lineage, runtimes and files
commands (item 7), against a live server: in-process through main() and as a subprocess."""

import asyncio
import json
import os
import subprocess
import sys
import threading

import pytest

from mem0sdk import ConflictError, Mem0Error, NotFoundError
from mem0sdk.cli import main
from tests.sdk.live_server import ROOT


def test_files_stat_exists_make_dir_rename_list_text_and_delete(client):
    with client.sandboxes.create() as sandbox:
        files = sandbox.files
        made = files.make_dir("proj/src")
        assert made.path == "proj/src" and made.is_dir
        files.write("proj/src/main.py", "print('hi')\n")
        info = files.stat("proj/src/main.py")
        assert (info.type, info.size, info.mode) == ("file", 12, 0o644) and info.mtime > 0
        assert files.exists("proj/src") and not files.exists("proj/nope")
        with pytest.raises(NotFoundError):
            files.stat("proj/nope")
        assert files.read_text("proj/src/main.py") == "print('hi')\n"
        files.write("blob", b"\x80\x81")
        with pytest.raises(Mem0Error) as err:
            files.read_text("blob")
        assert err.value.code == "not_text" and err.value.status == 422
        with pytest.raises(ConflictError):
            files.rename("proj/src/main.py", "blob")
        assert files.rename("proj/src/main.py", "proj/app.py").path == "proj/app.py"
        assert [e.path for e in files.list("proj", depth=2)] == ["proj/app.py", "proj/src"]
        with pytest.raises(ConflictError):
            files.delete("proj", recursive=False)
        files.delete("proj")
        assert [e.path for e in files.list()] == ["blob"]


def test_watch_yields_changes_made_by_code_in_the_sandbox(client):
    sandbox = client.sandboxes.create()
    sandbox.files.make_dir("data")
    events, ready = [], threading.Event()

    def follow():
        for event in sandbox.files.watch("data"):
            events.append(event)
            ready.set()

    # The watch is in place once the server answered the request: start it, then make the changes.
    watcher = threading.Thread(target=follow, daemon=True)
    watcher.start()
    for _ in range(50):
        sandbox.files.write("data/probe", "p")
        if ready.wait(0.2):
            break
    sandbox.run(
        "import os\nos.makedirs('data/out')\nopen('data/out/r.csv', 'w').write('a,b')\nos.remove('data/probe')"
    )
    sandbox.kill()
    watcher.join(30)
    assert not watcher.is_alive()
    seen = {(e.type, e.path) for e in events}
    assert {("created", "data/out"), ("created", "data/out/r.csv"), ("deleted", "data/probe")} <= seen
    assert events[-1].type == "end" and events[-1].reason == "sandbox_ended"


def test_runtimes_report_version_fork_memory_and_pool(client):
    python = {r.name: r for r in client.runtimes()}["python"]
    assert python.version and python.version[0].isdigit()
    assert python.fork_memory == "carried" and python.available and python.pool_size >= 0


@pytest.fixture
def cli_env(mem0_server, monkeypatch):
    monkeypatch.setenv("MEM0_API_KEY", mem0_server.api_key)
    monkeypatch.setenv("MEM0_BASE_URL", mem0_server.base_url)
    return mem0_server


def test_cli_create_files_fork_snapshot_restore_lineage(cli_env, client, capsys, tmp_path):
    assert main(["create", "--env", "GREETING=hi"]) == 0
    sid = capsys.readouterr().out.strip()
    try:
        assert client.sandboxes.get(sid).env == {"GREETING": "hi"}
        assert main(["files", "mkdir", sid, "a/b"]) == 0 and capsys.readouterr().out.strip() == "a/b"
        local = tmp_path / "in.txt"
        local.write_text("from the cli\n")
        assert main(["files", "write", sid, "a/b/in.txt", str(local)]) == 0
        assert capsys.readouterr().out.strip() == "a/b/in.txt 13"
        assert main(["files", "read", sid, "a/b/in.txt", "--text"]) == 0
        assert capsys.readouterr().out == "from the cli\n"
        assert main(["files", "mv", sid, "a/b/in.txt", "a/moved.txt"]) == 0
        capsys.readouterr()
        assert main(["files", "ls", sid, "a", "--depth", "2", "--json"]) == 0
        listed = [json.loads(line)["path"] for line in capsys.readouterr().out.splitlines()]
        assert listed == ["a/b", "a/moved.txt"]
        assert main(["files", "stat", sid, "a/moved.txt", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["size"] == 13
        assert main(["files", "stat", sid, "a/missing"]) == 1
        assert capsys.readouterr().err.startswith("error: not_found: ")
        assert main(["files", "rm", sid, "a", "--no-recursive"]) == 1
        assert capsys.readouterr().err.startswith("error: conflict: ")

        assert main(["fork", sid, "--json"]) == 0
        child = json.loads(capsys.readouterr().out)
        assert child["parent_id"] == sid and child["memory"] in ("copied", "fresh")
        client.sandboxes.kill(child["id"])
        assert main(["snapshot", sid, "--name", "cli"]) == 0
        snap = capsys.readouterr().out.strip()
        assert main(["restore", snap]) == 0
        restored = capsys.readouterr().out.strip()
        assert client.sandboxes.files(restored).read("a/moved.txt") == b"from the cli\n"
        client.sandboxes.kill(restored)
        assert main(["lineage", snap, "--json"]) == 0
        graph = json.loads(capsys.readouterr().out)
        assert snap in {n["id"] for n in graph["nodes"]} and graph["edges"]
        assert main(["lineage", snap]) == 0
        assert f"snapshot {snap}" in capsys.readouterr().out
        assert main(["files", "rm", sid, "a"]) == 0
        assert not client.sandboxes.files(sid).exists("a")
    finally:
        client.sandboxes.kill(sid)


def test_cli_runtimes_and_bad_pairs(cli_env, capsys):
    assert main(["runtimes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "LANGUAGE", "VERSION"]
    assert any(line.split()[0] == "python" and "carried" in line for line in lines[1:])
    with pytest.raises(SystemExit) as exit_:
        main(["create", "--env", "NOEQUALS"])
    assert exit_.value.code == 2


def test_cli_files_as_a_subprocess_with_stdin_and_bytes(mem0_server, client):
    env = {**os.environ, "MEM0_API_KEY": mem0_server.api_key, "MEM0_BASE_URL": mem0_server.base_url}

    def cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "mem0sdk", *args],
            cwd=ROOT,
            env=env,
            input=stdin,
            capture_output=True,
            timeout=60,
        )

    created = cli("create", "--json")
    assert created.returncode == 0, created.stderr
    sid = json.loads(created.stdout)["id"]
    try:
        payload = bytes(range(256))
        assert cli("files", "write", sid, "bin/data", "-", stdin=payload).returncode == 0
        read = cli("files", "read", sid, "bin/data")
        assert read.returncode == 0 and read.stdout == payload
        text = cli("files", "read", sid, "bin/data", "--text")
        assert text.returncode == 1 and text.stderr.startswith(b"error: not_text: ")
        escape = cli("files", "read", sid, "../etc/passwd")
        assert escape.returncode == 1 and b"root:" not in escape.stdout
    finally:
        client.sandboxes.kill(sid)


async def test_async_files_and_watch(aclient):
    sandbox = await aclient.sandboxes.create()
    files = sandbox.files
    assert (await files.make_dir("w")).is_dir
    await files.write("w/a.txt", "a")
    assert (await files.stat("w/a.txt")).size == 1 and await files.exists("w/a.txt")
    assert await files.read_text("w/a.txt") == "a"
    assert (await files.rename("w/a.txt", "w/b.txt")).path == "w/b.txt"
    assert [e.path for e in await files.list("", depth=2)] == ["w", "w/b.txt"]
    with pytest.raises(ConflictError):
        await files.delete("w", recursive=False)
    events = []

    async def follow():
        async for event in files.watch("w"):
            events.append(event)

    watcher = asyncio.create_task(follow())
    while not events:  # the watch is in place once it reports a change
        await files.write("w/probe", "p")
        await asyncio.sleep(0.2)
    await sandbox.run("open('w/from_code.txt', 'w').write('x')")
    await sandbox.kill()
    await asyncio.wait_for(watcher, 30)
    assert ("created", "w/from_code.txt") in {(e.type, e.path) for e in events}
    assert events[-1].type == "end"


def test_watch_with_a_timeout_ends_by_itself_and_the_cli_prints_json_lines(cli_env, client, capsys):
    with client.sandboxes.create() as sandbox:
        events = list(sandbox.files.watch(timeout_s=1))
        assert events[-1].type == "end" and events[-1].reason == "timeout"
        assert main(["files", "watch", sandbox.id, "--timeout", "1"]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert lines[-1] == {"type": "end", "reason": "timeout"}
        with pytest.raises(Mem0Error) as err:
            list(sandbox.files.watch(timeout_s=0))
        assert err.value.code == "invalid_request"
