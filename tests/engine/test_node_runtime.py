"""The Node.js runtime on a live agent: state across runs, output, how runs end, limits, fork, isolation."""

from __future__ import annotations

import uuid

from sandboxes.engine.protocol import ExitEvent, Limits


def node(engine, **kw) -> str:
    return engine.create(runtime="node", **kw)


def test_let_const_function_class_and_top_level_await_persist_across_runs(engine):
    sid = node(engine)
    engine.ok(
        sid,
        "let n = 20; const f = x => x + 1; async function g() { return 21 }; class P { hi() { return 'hi' } }",
    )
    assert engine.ok(sid, "console.log(f(n) + await g(), new P().hi())") == "42 hi\n"
    engine.ok(sid, "const later = await new Promise(r => setTimeout(() => r('awaited'), 10)); n += 1")
    assert engine.ok(sid, "console.log(later, n)") == "awaited 21\n"
    engine.ok(sid, "let n2 = 1")
    engine.ok(sid, "let n2 = 2")  # V8's REPL mode: a later run may declare a let again
    assert engine.ok(sid, "console.log(n2)") == "2\n"


def test_console_goes_to_stdout_and_stderr_in_order(engine):
    sid = node(engine, env={"GREETING": "hello"})
    res = engine.run(
        sid,
        "console.log('out 1'); console.error('err 1'); process.stdout.write('out 2\\n');"
        "console.warn('err 2'); console.log(process.env.GREETING, process.cwd(), {a: [1]})",
    )
    assert res.exit.status == "succeeded", res
    events = [(e.stream, e.data) for e in res.events if not isinstance(e, ExitEvent)]
    assert events == [
        ("stdout", "out 1\n"),
        ("stderr", "err 1\n"),
        ("stdout", "out 2\n"),
        ("stderr", "err 2\n"),
        ("stdout", "hello /home/sandbox { a: [ 1 ] }\n"),
    ]


def test_output_streams_before_the_run_ends(engine):
    """The run waits for a file the test writes only after it has read the first line."""
    sid = node(engine)
    eid = f"ex-{uuid.uuid4().hex}"
    engine.client.run(
        engine.agent_id,
        sandbox_id=sid,
        execution_id=eid,
        timeout_s=20,
        code="const fs = require('fs'); console.log('first');"
        "while (!fs.existsSync('/workspace/go')) await new Promise(r => setTimeout(r, 5));"
        "console.log('second')",
    )
    first = engine.client.output(eid, block_ms=10_000)
    assert [(e.stream, e.data) for e in first] == [("stdout", "first\n")]
    engine.client.file_write(engine.agent_id, sandbox_id=sid, path="go", data=b"")
    exit_event = engine.client.wait(eid, timeout=20)
    rest = engine.client.output(eid, after_seq=first[-1].seq)
    assert [e.data for e in rest if not isinstance(e, ExitEvent)] == ["second\n"]
    assert exit_event.status == "succeeded"


def test_syntax_error_exception_and_rejection_fail_the_run_not_the_sandbox(engine):
    sid = node(engine)
    engine.ok(sid, "const kept = 'state'")
    res = engine.run(sid, "let (")
    assert (res.exit.status, res.exit.exit_code) == ("failed", 1)
    assert res.stderr == "Uncaught SyntaxError: Unexpected end of input\n"
    res = engine.run(sid, "function boom() { throw new TypeError('bad value') }\nboom()")
    assert (res.exit.status, res.exit.exit_code) == ("failed", 1)
    assert res.stderr.startswith("Uncaught TypeError: bad value\n    at boom (<anonymous>:1:25)")
    assert "node:inspector" not in res.stderr and "driver" not in res.stderr
    res = engine.run(sid, "await Promise.reject(new RangeError('nope'))")
    assert res.exit.status == "failed" and res.stderr.startswith("Uncaught RangeError: nope"), res
    res = engine.run(sid, "Promise.reject(new Error('unhandled')); await new Promise(r => setTimeout(r, 50))")
    assert res.exit.status == "failed" and res.stderr.startswith("Uncaught (in promise) Error: unhandled"), (
        res
    )
    res = engine.run(
        sid,
        "setTimeout(() => { throw new Error('in a timer') }, 1); await new Promise(r => setTimeout(r, 50))",
    )
    assert res.exit.status == "failed" and res.stderr.startswith("Uncaught Error: in a timer"), res
    assert not res.exit.memory_lost
    assert engine.ok(sid, "console.log(kept)") == "state\n"


def test_process_exit_ends_the_run_with_its_code_and_keeps_the_state(engine):
    sid = node(engine)
    engine.ok(sid, "var kept = 7")
    res = engine.run(sid, "console.log('bye'); process.exit(3); console.log('not reached')")
    assert (res.exit.status, res.exit.exit_code, res.stdout) == ("failed", 3, "bye\n")
    assert engine.run(sid, "process.exit()").exit.status == "succeeded"
    assert engine.ok(sid, "console.log(kept)") == "7\n"


def test_timeout_stops_the_run_kills_its_processes_and_keeps_the_state(engine, witness):
    sid = node(engine)
    engine.ok(
        sid, "var kept = 1; const cp = require('child_process'); const bg = cp.spawn('sleep', ['1000'])"
    )
    res = engine.run(sid, "kept += 1; while (true) {}", timeout_s=1)
    assert (res.exit.status, res.exit.limit, res.exit.exit_code) == ("timeout", "timeout", 130), res
    assert res.exit.sandbox_alive and not res.exit.memory_lost
    assert "interrupted by `SIGINT`" in res.stderr
    out = engine.ok(
        sid,
        "console.log(kept, (() => { try { process.kill(bg.pid, 0); return 'alive' } catch (e) { return e.code } })())",
    )
    assert out == "2 ESRCH\n"  # the state is kept; what the run started is gone
    res = engine.run(sid, "await new Promise(() => {})", timeout_s=1)  # never settles: abandoned
    assert (res.exit.status, res.exit.limit, res.exit.memory_lost) == ("timeout", "timeout", False), res
    assert engine.ok(sid, "console.log(kept)") == "2\n"


def test_output_flood_hits_the_cap_and_node_writes_normally_afterwards(engine):
    """Stopped in the middle of a console.log, the console must still work in the next run."""
    sid = node(engine, limits=Limits(output_bytes=256 << 10))
    engine.ok(sid, "var kept = 'state'")
    res = engine.run(sid, "const line = 'x'.repeat(4000); while (true) console.log(line)")
    assert (res.exit.status, res.exit.limit) == ("killed", "output")
    assert len(res.stdout) <= 256 << 10
    assert engine.ok(sid, "console.log(kept); console.error('err')") == "state\n"


def test_a_wedged_node_is_replaced_with_the_workspace_kept(engine, witness):
    sid = node(engine)
    engine.ok(sid, "var lost = 1; require('fs').writeFileSync('/workspace/kept.txt', 'on disk')")
    res = engine.run(sid, "await null; while (true) {}", timeout_s=1)  # a loop SIGINT cannot reach
    assert (res.exit.status, res.exit.limit) == ("timeout", "timeout")
    assert res.exit.sandbox_alive and res.exit.memory_lost
    assert "variables and functions of earlier runs are gone" in res.stderr
    out = engine.ok(
        sid, "console.log(typeof lost, require('fs').readFileSync('/workspace/kept.txt', 'utf8'))"
    )
    assert out == "undefined on disk\n"


def test_heap_blowup_is_a_memory_limit_and_the_sandbox_lives_on(engine, witness):
    sid = node(engine, limits=Limits(memory_bytes=192 << 20))
    res = engine.run(sid, "const hog = []; while (true) hog.push(new Array(1e5).fill(1))", timeout_s=30)
    assert (res.exit.status, res.exit.limit) == ("failed", "memory"), res
    assert res.exit.sandbox_alive and res.exit.memory_lost
    assert "heap out of memory" in res.stderr or "ran out of memory" in res.stderr
    assert engine.ok(sid, "console.log(typeof hog)") == "undefined\n"
    res = engine.run(sid, "const bufs = []; while (true) bufs.push(Buffer.alloc(8 << 20, 1))", timeout_s=30)
    assert res.exit.limit == "memory" and res.exit.memory_lost, res
    assert engine.ok(sid, "console.log('after')") == "after\n"


def test_a_small_sandbox_restarts_node_after_a_heap_blowup(engine):
    """32 MiB: node starts again within it (one V8 worker thread: thread stacks count as data)."""
    sid = node(engine, limits=Limits(memory_bytes=32 << 20))
    res = engine.run(sid, "const hog = []; while (true) hog.push(new Array(1e5).fill(1))", timeout_s=30)
    assert (res.exit.limit, res.exit.memory_lost) == ("memory", True), res
    assert engine.ok(sid, "console.log('up again')", timeout_s=30) == "up again\n"


def test_fork_is_a_fresh_node_with_a_copy_of_the_workspace(engine):
    sid = node(engine, env={"ORIGIN": "parent"})
    engine.ok(sid, "var counter = 10; require('fs').writeFileSync('/workspace/shared.txt', 'before fork')")
    info = engine.fork(sid)
    assert info["memory"] == "fresh" and info["runtime"] == "node"
    child = info["sandbox_id"]
    out = engine.ok(
        child,
        "console.log(typeof counter, require('fs').readFileSync('/workspace/shared.txt', 'utf8'), process.env.ORIGIN)",
    )
    assert out == "undefined before fork parent\n"
    engine.ok(child, "require('fs').writeFileSync('/workspace/shared.txt', 'child')")
    assert engine.ok(
        sid, "console.log(counter, require('fs').readFileSync('/workspace/shared.txt', 'utf8'))"
    ) == ("10 before fork\n")


def test_a_fifo_in_the_workspace_does_not_hang_a_fresh_fork(engine):
    """The copy takes regular files, directories and links; a FIFO (a read would block forever, with the
    parent frozen) is left out."""
    sid = node(engine)
    engine.ok(sid, "const cp = require('child_process'); cp.execFileSync('mkfifo', ['/workspace/pipe']);"
                   "require('fs').writeFileSync('/workspace/kept.txt', 'kept')")
    child = engine.fork(sid)["sandbox_id"]
    out = engine.ok(child, "const fs = require('fs'); console.log(fs.readFileSync('/workspace/kept.txt', 'utf8'),"
                           " fs.existsSync('/workspace/pipe'))")
    assert out == "kept false\n"
    assert engine.ok(sid, "console.log('parent runs')") == "parent runs\n"  # thawed


def test_node_has_the_sandboxs_isolation(engine, witness):
    """node itself, and what it spawns: no capability, the seccomp filter, no host path, no network."""
    sid = node(engine)
    out = engine.ok(
        sid,
        r"""
const fs = require('fs'), cp = require('child_process');
const status = (text) => Object.fromEntries(text.split('\n').filter(l => /^(Cap|Seccomp:|NoNewPrivs|Uid)/.test(l))
  .map(l => l.split(/:\s+/)));
const mine = status(fs.readFileSync('/proc/self/status', 'utf8'));
const child = status(cp.execFileSync('cat', ['/proc/self/status']).toString());
for (const s of [mine, child]) {
  console.log(Object.entries(s).filter(([k]) => k.startsWith('Cap')).every(([, v]) => /^0+$/.test(v)),
              s['Seccomp'], s['NoNewPrivs'], s['Uid'].split('\t')[0]);
}
console.log(fs.readdirSync('/').join(','), process.execPath);
console.log(['/work', '/etc/shadow', '/root/.ssh', '/var', '/sys', '/proc/1/environ'].map(p => {
  try { fs.readFileSync(p); return p + ' read'; } catch (e) { return e.code; }
}).join(','));
const mounts = fs.readFileSync('/proc/self/mounts', 'utf8');
console.log(mounts.split('\n').filter(Boolean).every(l => /^(mem0|tmpfs|overlay|proc) /.test(l)));
""",
    )
    lines = out.splitlines()
    assert lines[0] == "true 2 1 1000" and lines[1] == "true 2 1 1000", out
    assert lines[2] == "bin,dev,etc,home,lib,lib64,proc,root,sbin,tmp,usr,workspace /usr/lib/node/node"
    assert lines[3] == "ENOENT,ENOENT,ENOENT,ENOENT,ENOENT,EACCES", out  # init's environ: not ours
    assert lines[4] == "true", out
    python = engine.create()  # node is in node sandboxes only
    assert engine.ok(
        python, "import os\nprint(os.path.exists('/usr/lib/node'), os.path.exists('/usr/bin/node'))"
    ) == ("False False\n")
    res = engine.run(
        sid,
        """
const net = require('net');
const attempt = (opts) => new Promise(resolve => {
  const s = net.connect(opts); s.setTimeout(2000);
  s.on('connect', () => { s.destroy(); resolve('connected'); });
  s.on('timeout', () => { s.destroy(); resolve('timeout'); });
  s.on('error', e => resolve(e.code));
});
console.log(await attempt({host: '1.1.1.1', port: 80}), await attempt({host: '127.0.0.1', port: 8000}));
console.log(await new Promise(r => require('dns').lookup('example.com', e => r(e ? e.code : 'resolved'))));
""",
        timeout_s=15,
    )
    net_out = res.stdout.split()
    assert res.exit.status == "succeeded", res
    assert net_out[0] in ("ENETUNREACH", "EHOSTUNREACH") and net_out[1] in ("ENETUNREACH", "ECONNREFUSED")
    assert net_out[2] != "resolved"


def test_process_binding_and_child_processes_cannot_escape(engine, witness):
    sid = node(engine)
    out = engine.ok(
        sid,
        r"""
const cp = require('child_process');
const py = (code) => { try { return cp.execFileSync('python3', ['-c', code]).toString().trim(); }
                        catch (e) { return 'error ' + (e.stderr || '').toString().trim().split('\n').pop(); } };
console.log(py("import ctypes; l = ctypes.CDLL(None, use_errno=True); print(l.unshare(0x10000000), ctypes.get_errno())"));
console.log(py("import ctypes; l = ctypes.CDLL(None, use_errno=True); print(l.ptrace(16, 1, 0, 0), ctypes.get_errno())"));
console.log(py("import ctypes; l = ctypes.CDLL(None, use_errno=True); print(l.mount(b'x', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())"));
let spawned;
try { spawned = process.binding('spawn_sync').spawn({file: 'id', args: ['id', '-u'], stdio: [{type: 'pipe', readable: true}, {type: 'pipe', writable: true}, {type: 'pipe', writable: true}]}); }
catch (e) { spawned = e; }
console.log(spawned && spawned.output ? spawned.output[1].toString().trim() : String(spawned));
try { process.dlopen({exports: {}}, '/usr/lib/x86_64-linux-gnu/libc.so.6'); console.log('dlopen ok'); } catch (e) { console.log('dlopen refused'); }
""",
        timeout_s=20,
    )
    lines = out.splitlines()
    assert lines[:3] == ["-1 1", "-1 1", "-1 1"], (
        out
    )  # unshare(CLONE_NEWUSER), ptrace, mount: EPERM (seccomp)
    assert lines[3] == "1000", out  # a raw binding spawns only what the sandbox may, as the sandbox's uid
    assert lines[4] == "dlopen refused"  # libc is no Node addon; addons could do no more than the sandbox may
    assert engine.ok(sid, "console.log('still here')") == "still here\n"


def test_node_leaves_the_pools_background_priority_at_hand_over(engine):
    sid = node(engine)
    nice = "require('fs').readdirSync('/proc/self/task').map(t => require('fs').readFileSync(`/proc/self/task/${t}/stat`, 'utf8').split(' ')[18])"
    assert set(engine.ok(sid, f"console.log([...new Set({nice})].join())").split(",")) == {"0\n"}


def test_snapshot_of_a_node_sandbox_restores_into_a_fresh_node(engine):
    c, a = engine.client, engine.agent_id
    sid = node(engine)
    engine.ok(sid, "var gone = 1; require('fs').writeFileSync('/workspace/app.js', 'module.exports = 6 * 7')")
    snap = c.snapshot(a, sandbox_id=sid)
    restored = f"{sid}-restored"
    info = c.restore(
        a, digest=snap["digest"], new_sandbox_id=restored, runtime="node", env={}, limits=Limits()
    )
    engine.created.append(restored)
    assert info["runtime"] == "node"
    assert engine.ok(restored, "console.log(require('./app.js'), typeof gone)") == "42 undefined\n"
