"""Files as agents need them (issue 14 item 6): stat, make_dir, move, recursive list, directory delete and
watch, against a live agent, and the escapes each must refuse."""

from __future__ import annotations

import json
import os
import tempfile
import time

import pytest

from sandboxes.engine import watch as watch_mod
from sandboxes.engine.files import MAX_LIST_DEPTH
from sandboxes.engine.protocol import EngineError, ExitEvent


def refused(call, *codes):
    with pytest.raises(EngineError) as err:
        call()
    assert err.value.code in codes, err.value
    return err.value


def test_stat_reports_type_size_and_missing_is_not_found(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    engine.ok(
        sid, "import os\nos.makedirs('d/e')\nopen('d/f.txt', 'w').write('hello')\nos.symlink('/etc', 'l')"
    )
    f = c.file_stat(a, sandbox_id=sid, path="d/f.txt")
    assert (f["name"], f["path"], f["type"], f["size"]) == ("f.txt", "d/f.txt", "file", 5)
    assert f["mtime"] > 0 and f["mode"] == 0o644
    assert c.file_stat(a, sandbox_id=sid, path="d")["type"] == "dir"
    assert c.file_stat(a, sandbox_id=sid, path="")["type"] == "dir"
    assert c.file_stat(a, sandbox_id=sid, path="l")["type"] == "symlink"  # the link, never /etc
    refused(lambda: c.file_stat(a, sandbox_id=sid, path="d/missing"), "not_found")
    refused(lambda: c.file_stat(a, sandbox_id=sid, path="l/passwd"), "invalid_request")


def test_make_dir_with_and_without_parents(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    made = c.file_mkdir(a, sandbox_id=sid, path="a/b/c")
    assert (made["path"], made["type"]) == ("a/b/c", "dir")
    c.file_mkdir(a, sandbox_id=sid, path="a/b/c")  # like mkdir -p: already there is fine
    refused(lambda: c.file_mkdir(a, sandbox_id=sid, path="a/b/c", parents=False), "conflict")
    refused(lambda: c.file_mkdir(a, sandbox_id=sid, path="x/y", parents=False), "not_found")
    c.file_write(a, sandbox_id=sid, path="file", data=b"1")
    refused(lambda: c.file_mkdir(a, sandbox_id=sid, path="file/sub"), "conflict")
    # the sandbox user owns it and can write in it
    engine.ok(sid, "open('a/b/c/in.txt', 'w').write('ok')")
    assert c.file_read(a, sandbox_id=sid, path="a/b/c/in.txt") == b"ok"


def test_move_renames_and_refuses_to_overwrite_unless_asked(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    c.file_write(a, sandbox_id=sid, path="src.txt", data=b"one")
    c.file_write(a, sandbox_id=sid, path="dst.txt", data=b"two")
    c.file_mkdir(a, sandbox_id=sid, path="dir")
    refused(lambda: c.file_move(a, sandbox_id=sid, source="src.txt", destination="dst.txt"), "conflict")
    moved = c.file_move(a, sandbox_id=sid, source="src.txt", destination="dst.txt", overwrite=True)
    assert (moved["path"], moved["size"]) == ("dst.txt", 3)
    assert c.file_read(a, sandbox_id=sid, path="dst.txt") == b"one"
    c.file_move(a, sandbox_id=sid, source="dst.txt", destination="dir/moved.txt")
    assert [e["path"] for e in c.files_list(a, sandbox_id=sid, path="dir")] == ["dir/moved.txt"]
    refused(lambda: c.file_move(a, sandbox_id=sid, source="nope", destination="x"), "not_found")
    refused(lambda: c.file_move(a, sandbox_id=sid, source="dir", destination="no/such/dir"), "not_found")
    refused(lambda: c.file_move(a, sandbox_id=sid, source="dir", destination="dir/inner"), "invalid_request")
    c.file_move(a, sandbox_id=sid, source="dir", destination="renamed")
    assert engine.ok(sid, "print(open('renamed/moved.txt').read())") == "one\n"


def test_recursive_list_goes_depth_levels_and_never_through_links(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    engine.ok(
        sid,
        "import os\nos.makedirs('p/q/r/s')\nopen('p/q/r/s/deep.txt', 'w').write('x')\n"
        "open('p/top.txt', 'w').write('x')\nos.symlink('/etc', 'p/etc')",
    )
    one = [e["path"] for e in c.files_list(a, sandbox_id=sid, path="p")]
    assert one == ["p/etc", "p/q", "p/top.txt"]
    two = [e["path"] for e in c.files_list(a, sandbox_id=sid, path="p", depth=2)]
    assert two == ["p/etc", "p/q", "p/q/r", "p/top.txt"]
    everything = [e["path"] for e in c.files_list(a, sandbox_id=sid, depth=MAX_LIST_DEPTH)]
    assert "p/q/r/s/deep.txt" in everything
    assert not any(p.startswith("p/etc/") for p in everything)
    refused(lambda: c.files_list(a, sandbox_id=sid, depth=0), "invalid_request")
    refused(lambda: c.files_list(a, sandbox_id=sid, depth=MAX_LIST_DEPTH + 1), "invalid_request")


def test_recursive_list_is_capped(engine, monkeypatch):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    engine.ok(sid, "import os\nfor i in range(30):\n    os.makedirs(f'd{i}/e')\n")
    monkeypatch.setattr("sandboxes.engine.files.MAX_LIST_ENTRIES", 40)
    assert len(c.files_list(a, sandbox_id=sid)) == 30
    refused(lambda: c.files_list(a, sandbox_id=sid, depth=2), "payload_too_large")


def test_directory_delete_needs_recursive_when_not_empty(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    c.file_write(a, sandbox_id=sid, path="full/f", data=b"1")
    c.file_mkdir(a, sandbox_id=sid, path="empty")
    refused(lambda: c.file_delete(a, sandbox_id=sid, path="full", recursive=False), "conflict")
    c.file_delete(a, sandbox_id=sid, path="empty", recursive=False)
    c.file_delete(a, sandbox_id=sid, path="full", recursive=True)
    assert c.files_list(a, sandbox_id=sid) == []


@pytest.fixture
def host_dir():
    """A host directory the sandbox points links at: nothing in it may change."""
    path = tempfile.mkdtemp(prefix="mem0-host-")
    with open(os.path.join(path, "secret"), "w") as f:
        f.write("host")
    yield path
    assert sorted(os.listdir(path)) == ["secret"]
    with open(os.path.join(path, "secret")) as f:
        assert f.read() == "host"


@pytest.mark.parametrize("target", ["HOST", "/proc/self/root", "/proc/self/cwd", ".."])
def test_new_ops_refuse_paths_through_links_dotdot_and_absolute(engine, host_dir, target):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    target = host_dir if target == "HOST" else target
    engine.ok(sid, f"import os\nos.symlink({target!r}, 'link')\nopen('mine', 'w').write('m')")
    for bad in ("link/secret", "../secret", "/tmp/secret", "a/../../secret"):
        refused(lambda bad=bad: c.file_stat(a, sandbox_id=sid, path=bad), "invalid_request", "not_found")
        refused(
            lambda bad=bad: c.file_mkdir(a, sandbox_id=sid, path=f"{bad}/x"), "invalid_request", "not_found"
        )
        refused(
            lambda bad=bad: c.file_move(a, sandbox_id=sid, source="mine", destination=bad),
            "invalid_request",
            "not_found",
        )
        refused(
            lambda bad=bad: c.file_move(a, sandbox_id=sid, source=bad, destination="got"),
            "invalid_request",
            "not_found",
        )
        refused(
            lambda bad=bad: c.files_list(a, sandbox_id=sid, path=bad, depth=3), "invalid_request", "not_found"
        )
        refused(lambda bad=bad: c.file_delete(a, sandbox_id=sid, path=bad), "invalid_request", "not_found")
        refused(lambda bad=bad: c.files_watch(a, sandbox_id=sid, path=bad), "invalid_request", "not_found")
    refused(lambda: c.files_list(a, sandbox_id=sid, path="link", depth=2), "invalid_request")
    # moving or deleting the link itself is fine: it is a name in the workspace, never its target
    c.file_move(a, sandbox_id=sid, source="link", destination="link2")
    c.file_delete(a, sandbox_id=sid, path="link2")


def test_a_component_swapped_for_a_link_mid_op_never_reaches_the_host(engine, host_dir):
    """The sandbox flips `d` between a directory and a link to a host directory as fast as it can
    while the agent makes, moves, stats, lists and deletes below it."""
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    flipper = (
        "import os, time\nos.makedirs('old', exist_ok=True)\nend, n = time.time() + 8, 0\n"
        "while time.time() < end:\n"
        "    n += 1\n"
        "    try:\n"
        f"        os.symlink({host_dir!r}, 'tmp'); os.rename('tmp', 'd')\n"
        "        os.unlink('d'); os.mkdir('d')\n"
        "        try:\n"
        "            os.rmdir('d')\n"  # empty: gone (kept ones would fill the workspace's inodes on a fast host)
        "        except OSError:\n"
        "            os.rename('d', f'old/{n}')\n"
        "    except OSError:\n"
        "        for name in ('tmp', 'd'):\n"
        "            try:\n"
        "                os.unlink(name)\n"
        "            except OSError:\n"
        "                try:\n"
        "                    os.rename(name, f'old/x{n}')\n"
        "                except OSError:\n"
        "                    pass\n"
        "print(n)\n"
    )
    eid = "race-" + sid
    c.run(a, sandbox_id=sid, execution_id=eid, code=flipper, timeout_s=20)
    outcomes: dict[str, int] = {}
    deadline, i = time.monotonic() + 6, 0
    while time.monotonic() < deadline:
        i += 1
        c.file_write(a, sandbox_id=sid, path=f"src{i}", data=b"s")
        for call in (
            lambda: c.file_mkdir(a, sandbox_id=sid, path="d/new"),
            lambda i=i: c.file_move(a, sandbox_id=sid, source=f"src{i}", destination=f"d/src{i}"),
            lambda: c.file_move(a, sandbox_id=sid, source="d/secret", destination="stolen"),
            lambda: c.file_stat(a, sandbox_id=sid, path="d/secret"),
            lambda: c.files_list(a, sandbox_id=sid, path="d", depth=2),
            lambda: c.file_delete(a, sandbox_id=sid, path="d/secret"),
        ):
            try:
                call()
                outcomes["ok"] = outcomes.get("ok", 0) + 1
            except EngineError as exc:
                assert exc.code in ("invalid_request", "not_found", "conflict"), exc
                outcomes[exc.code] = outcomes.get(exc.code, 0) + 1
    c.wait(eid, timeout=30)
    assert "stolen" not in {e["name"] for e in c.files_list(a, sandbox_id=sid)}
    # both states were met: some ops went through (a real directory), some were refused (a link)
    assert outcomes.get("ok") and outcomes.get("invalid_request"), outcomes


def watch_events(engine, stream: str, until, timeout: float = 20.0) -> list[dict]:
    """The watch's events read from the bus until `until(events)` holds or the stream ends."""
    events, seq = [], 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in engine.client.output(stream, after_seq=seq, block_ms=500):
            seq = event.seq
            if isinstance(event, ExitEvent):
                return events
            events.append(json.loads(event.data))
        if until(events):
            return events
    raise AssertionError(f"no such events in time: {events}")


def test_watch_sees_what_code_in_the_sandbox_does(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    c.file_mkdir(a, sandbox_id=sid, path="w/sub")
    started = c.files_watch(a, sandbox_id=sid, path="w")
    engine.ok(
        sid,
        "import os\nopen('w/a.txt', 'w').write('1')\nos.mkdir('w/new')\nopen('w/new/b.txt', 'w').write('2')\n"
        "open('w/sub/c.txt', 'w').write('3')\nos.rename('w/a.txt', 'w/sub/a2.txt')\n"
        "open('outside.txt', 'w').write('not watched')",
    )
    want = {
        ("created", "w/a.txt"),
        ("created", "w/new"),
        ("created", "w/new/b.txt"),
        ("created", "w/sub/c.txt"),
        ("moved", "w/a.txt"),
    }
    events = watch_events(
        engine, started["stream"], lambda ev: want <= {(e["type"], e.get("path")) for e in ev}
    )
    engine.ok(sid, "import os\nopen('w/new/b.txt', 'a').write('more')\nos.remove('w/new/b.txt')")
    events += watch_events(
        engine,
        started["stream"],
        lambda ev: ("deleted", "w/new/b.txt") in {(e["type"], e.get("path")) for e in ev},
    )
    assert ("modified", "w/new/b.txt") in {(e["type"], e.get("path")) for e in events}
    moved = next(e for e in events if e["type"] == "moved")
    assert moved["dest"] == "w/sub/a2.txt"
    assert not any(e.get("path") == "outside.txt" for e in events)
    # the sandbox ends: so does the watch
    engine.kill(sid)
    tail = watch_events(engine, started["stream"], lambda ev: False)
    assert tail[-1] == {"type": "end", "reason": "sandbox_ended"}
    assert engine.agent.watch_hub.count(sid) == 0


def test_watches_are_bounded_per_sandbox_and_stop_on_request(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    ids = [c.files_watch(a, sandbox_id=sid)["watch_id"] for _ in range(watch_mod.MAX_WATCHES_PER_SANDBOX)]
    refused(lambda: c.files_watch(a, sandbox_id=sid), "rate_limited")
    other = engine.create()
    assert not c.files_unwatch(a, sandbox_id=other, watch_id=ids[0])["stopped"]  # not its watch
    assert c.files_unwatch(a, sandbox_id=sid, watch_id=ids[0])["stopped"]
    events = watch_events(engine, watch_mod.watch_stream(ids[0]), lambda ev: False)
    assert events[-1] == {"type": "end", "reason": "stopped"}
    c.files_watch(a, sandbox_id=sid)


def test_a_burst_of_changes_is_coalesced_and_capped(engine, monkeypatch):
    c, a = engine.client, engine.agent_id
    monkeypatch.setattr(watch_mod, "MAX_EVENTS_PER_FLUSH", 8)
    sid = engine.create()
    started = c.files_watch(a, sandbox_id=sid, recursive=False)
    engine.ok(sid, "f = open('big.log', 'w')\nfor i in range(5000):\n    f.write('x'); f.flush()\nf.close()")
    engine.ok(sid, "for i in range(2000):\n    open(f'f{i}', 'w').close()")
    events = watch_events(engine, started["stream"], lambda ev: any(e["type"] == "overflow" for e in ev))
    assert sum(e.get("path") == "big.log" and e["type"] == "modified" for e in events) < 100
    assert len(events) < 2000 + 100
    # after the storm (the watch was paused while over its window's events) a single change is told again
    engine.ok(sid, "import time\ntime.sleep(0.2)\nopen('after-storm', 'w').close()")
    events = watch_events(
        engine, started["stream"], lambda ev: any(e.get("path") == "after-storm" for e in ev)
    )
    assert any(e.get("path") == "after-storm" for e in events)


def test_watch_of_a_deleted_directory_ends(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    c.file_mkdir(a, sandbox_id=sid, path="gone")
    started = c.files_watch(a, sandbox_id=sid, path="gone")
    engine.ok(sid, "import os\nos.rmdir('gone')")
    events = watch_events(engine, started["stream"], lambda ev: False)
    assert events[-1] == {"type": "end", "reason": "deleted"}


def test_a_watch_follows_at_most_max_dirs_directories(engine, monkeypatch):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    monkeypatch.setattr(watch_mod, "MAX_DIRS", 3)
    engine.ok(sid, "import os\nos.makedirs('t/a/b')")
    started = c.files_watch(a, sandbox_id=sid, path="t")
    watch = engine.agent.watch_hub.watches[started["watch_id"]]
    assert sorted(watch.dirs.values()) == ["t", "t/a", "t/a/b"]
    engine.ok(sid, "import os\nfor i in range(20):\n    os.mkdir(f't/n{i}')")
    events = watch_events(engine, started["stream"], lambda ev: sum(e["type"] == "created" for e in ev) >= 20)
    assert sum(e["type"] == "overflow" for e in events) == 1
    assert len(watch.dirs) == 3


def test_a_very_deep_tree_is_watched_to_max_depth_and_the_hub_survives(engine):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    engine.ok(
        sid,
        "import os\nos.mkdir('deep')\nos.chdir('deep')\nfor _ in range(1500):\n    os.mkdir('a'); os.chdir('a')\nos.chdir('/workspace')",
    )
    started = c.files_watch(a, sandbox_id=sid, path="deep")
    watch = engine.agent.watch_hub.watches[started["watch_id"]]
    assert len(watch.dirs) == watch_mod.MAX_DEPTH + 1
    # the same tree moved in under a watched directory is met by the hub thread, not the op
    c.file_mkdir(a, sandbox_id=sid, path="w")
    second = c.files_watch(a, sandbox_id=sid, path="w")
    engine.ok(sid, "import os\nos.rename('deep/a', 'w/moved')\nopen('w/after', 'w').close()")
    events = watch_events(engine, second["stream"], lambda ev: any(e.get("path") == "w/after" for e in ev))
    assert sum(e["type"] == "overflow" for e in events) == 1
    assert len(engine.agent.watch_hub.watches[second["watch_id"]].dirs) <= watch_mod.MAX_DEPTH + 1
    assert engine.agent.watch_hub.thread.is_alive()


def test_deleting_a_deep_tree_with_links_removes_it_and_nothing_they_point_at(engine, host_dir):
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    engine.ok(
        sid,
        "import os\nos.mkdir('deep')\nos.chdir('deep')\nfor i in range(1500):\n    os.mkdir('a')\n"
        f"    if i % 100 == 0:\n        os.symlink({host_dir!r}, 'link'); open('f', 'w').write('x')\n"
        "    os.chdir('a')\nos.chdir('/workspace')\nopen('keep', 'w').close()",
    )
    c.file_delete(a, sandbox_id=sid, path="deep")
    assert [e["name"] for e in c.files_list(a, sandbox_id=sid)] == ["keep"]


def test_directories_from_before_a_fork_are_deleted_and_refused_a_move_clearly(engine):
    """After a fork the parent's files are a shared lower overlay layer: a directory there cannot be
    renamed (EXDEV), so move says so (409), and delete still removes it."""
    c, a = engine.client, engine.agent_id
    sid = engine.create()
    engine.ok(sid, "import os\nos.makedirs('old/sub/deeper')\nopen('old/sub/f', 'w').write('x')")
    child = engine.fork(sid)["sandbox_id"]
    err = refused(lambda: c.file_move(a, sandbox_id=sid, source="old", destination="new"), "conflict")
    assert "forked" in err.message
    c.file_delete(a, sandbox_id=sid, path="old")
    assert c.files_list(a, sandbox_id=sid) == []
    assert [e["path"] for e in c.files_list(a, sandbox_id=child, depth=3)] == [
        "old",
        "old/sub",
        "old/sub/deeper",
        "old/sub/f",
    ]
