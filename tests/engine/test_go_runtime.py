"""The Go runtime on a live agent: each run compiles (inside the sandbox) and runs a main package; how
runs end; the sandbox's isolation and limits hold for the compiler and the program; caches."""

from __future__ import annotations

import json

import pytest

from sandboxes.engine.go_toolchain import GOCACHE_PATH
from sandboxes.engine.protocol import Limits

pytestmark = pytest.mark.usefixtures("go_served")

HELLO = 'package main\nimport "fmt"\nfunc main() { fmt.Println(6 * 7) }'


@pytest.fixture
def go_served(engine):
    assert "go" in engine.agent.runtimes, "the Go toolchain (Debian package golang) must be installed"


def test_hello_world_compiles_and_runs(engine):
    sid = engine.create("go")
    res = engine.run(sid, HELLO, timeout_s=60)
    assert (res.exit.status, res.exit.exit_code, res.stdout) == ("succeeded", 0, "42\n"), res
    assert res.exit.cpu_ms > 0  # the compiler's CPU is the run's


def test_a_snippet_is_wrapped_with_the_packages_it_uses(engine):
    sid = engine.create("go")
    code = 'type P struct{ X int }\nfunc (p P) Twice() int { return 2 * p.X }\nfmt.Println(strings.ToUpper("go"), P{21}.Twice())'
    assert engine.ok(sid, code, timeout_s=60) == "GO 42\n"


def test_compile_error_is_its_own_status_with_the_compilers_messages(engine):
    sid = engine.create("go")
    res = engine.run(sid, "package main\nfunc main() { undefined() }", timeout_s=60)
    assert res.exit.status == "compile_error" and res.exit.limit is None, res
    assert "main.go:2:15: undefined: undefined" in res.stderr
    # a snippet's messages point at the line the user wrote, and no build path shows
    res = engine.run(sid, 'x := 1\n\nfmt.Println("a" + 1)\n_ = x', timeout_s=60)
    assert res.exit.status == "compile_error"
    assert "main.go:3:" in res.stderr and "/tmp" not in res.stderr, res.stderr
    res = engine.run(sid, "package lib\nfunc F() {}", timeout_s=60)
    assert res.exit.status == "compile_error" and "main package" in res.stderr
    assert engine.ok(sid, HELLO, timeout_s=60) == "42\n"  # the sandbox is fine


def test_a_panic_fails_the_run_with_the_panic_text(engine):
    sid = engine.create("go")
    res = engine.run(sid, 'package main\nfunc main() {\n\tpanic("boom")\n}', timeout_s=60)
    assert (res.exit.status, res.exit.exit_code) == ("failed", 2), res
    assert "panic: boom" in res.stderr and "main.go:3" in res.stderr


def test_os_exit_code_is_the_runs_exit_code(engine):
    sid = engine.create("go")
    res = engine.run(sid, 'import "os"\nos.Exit(3)', timeout_s=60)
    assert (res.exit.status, res.exit.exit_code) == ("failed", 3), res


def test_output_streams_and_stdout_stderr_both_arrive(engine):
    sid = engine.create("go")
    res = engine.run(
        sid, 'fmt.Println("out")\nfmt.Fprintln(os.Stderr, "err")\nfmt.Println(os.Getwd())', timeout_s=60
    )
    assert res.stdout == "out\n/home/sandbox <nil>\n" and res.stderr == "err\n", res


def test_output_is_streamed_as_the_program_writes_it(engine):
    sid = engine.create("go")
    res = engine.run(
        sid, "for i := 0; i < 3; i++ {\n\tfmt.Println(i)\n\ttime.Sleep(300 * time.Millisecond)\n}", 60
    )
    chunks = [e.data for e in res.events if getattr(e, "stream", None) == "stdout"]
    assert chunks == ["0\n", "1\n", "2\n"], chunks  # one event per write, not one at the end


def test_output_past_the_cap_ends_the_run(engine):
    sid = engine.create("go", limits=Limits(output_bytes=64 << 10))
    res = engine.run(sid, 'for {\n\tfmt.Println("spam spam spam")\n}', timeout_s=60)
    assert (res.exit.status, res.exit.limit) == ("killed", "output"), res.exit
    assert len(res.stdout.encode()) + len(res.stderr.encode()) <= 64 << 10
    assert engine.ok(sid, HELLO, timeout_s=60) == "42\n"


def test_infinite_loop_times_out_and_the_sandbox_lives_on(engine):
    sid = engine.create("go")
    engine.ok(sid, HELLO, timeout_s=60)  # compiled before: the timeout below is the loop's
    res = engine.run(sid, "package main\nfunc main() { for {} }", timeout_s=3)
    assert res.exit.status == "timeout" and res.exit.limit == "timeout", res
    assert engine.agent.sandboxes[sid].cgroup.pids() == [engine.agent.sandboxes[sid].host_pid]
    assert engine.ok(sid, HELLO, timeout_s=60) == "42\n"


def test_memory_bomb_hits_the_memory_limit(engine):
    sid = engine.create("go", limits=Limits(memory_bytes=192 << 20))
    code = "var keep [][]byte\nfor {\n\tb := make([]byte, 16<<20)\n\tfor i := range b { b[i] = 1 }\n\tkeep = append(keep, b)\n}"
    res = engine.run(sid, code, timeout_s=60)
    assert res.exit.status in ("failed", "killed") and res.exit.limit == "memory", (
        res.exit,
        res.stderr[-500:],
    )
    assert engine.ok(sid, HELLO, timeout_s=60) == "42\n"


def test_a_build_short_of_memory_is_a_memory_limit_not_a_compile_error(engine):
    sid = engine.create("go", limits=Limits(memory_bytes=32 << 20))
    res = engine.run(sid, HELLO, timeout_s=60)
    assert (res.exit.status, res.exit.limit) == ("failed", "memory"), (res.exit, res.stderr[-500:])


def test_a_small_program_builds_within_64_mib(engine):
    sid = engine.create("go", limits=Limits(memory_bytes=64 << 20))
    assert engine.ok(sid, HELLO, timeout_s=60) == "42\n"


def test_os_threads_are_bounded_by_the_pids_limit(engine):
    sid = engine.create("go", limits=Limits(pids=32))
    code = (
        "for i := 0; i < 200; i++ {\n\tgo func() { runtime.LockOSThread(); time.Sleep(time.Hour) }()\n}\n"
        'time.Sleep(5 * time.Second)\nfmt.Println("not reached")'
    )
    res = engine.run(sid, code, timeout_s=30)
    assert res.exit.limit == "pids" and "not reached" not in res.stdout, (res.exit, res.stderr[-500:])
    assert "failed to create new OS thread" in res.stderr  # the program's threads, not the compiler's
    assert engine.ok(sid, HELLO, timeout_s=60) == "42\n"


INSPECT = r"""
status, _ := os.ReadFile("/proc/self/status")
mounts, _ := os.ReadFile("/proc/self/mountinfo")
cmdline, _ := os.ReadFile("/proc/1/cmdline")
cgroup, _ := os.ReadFile("/proc/self/cgroup")
_, meminfoErr := os.Stat("/proc/meminfo")
caps := map[string]string{}
for _, line := range strings.Split(string(status), "\n") {
	if strings.HasPrefix(line, "Cap") {
		f := strings.Fields(line)
		caps[strings.TrimSuffix(f[0], ":")] = f[1]
	}
}
_, dialErr := net.DialTimeout("tcp", "1.1.1.1:53", time.Second)
_, loErr := net.DialTimeout("tcp", "127.0.0.1:22", time.Second)
writeErr := os.WriteFile(GOCACHE + "/planted", []byte("x"), 0o644)
entries, _ := os.ReadDir(GOCACHE + "/00")
var touchErr, removeErr error
if len(entries) > 0 {
	touchErr = os.Chtimes(GOCACHE+"/00/"+entries[0].Name(), time.Now(), time.Now())
	removeErr = os.Remove(GOCACHE + "/00/" + entries[0].Name())
}
report := map[string]any{
	"caps": caps, "mounts": string(mounts), "init": string(cmdline), "env": os.Environ(),
	"cgroup": string(cgroup), "meminfo": fmt.Sprint(meminfoErr),
	"uid": os.Getuid(), "dial": fmt.Sprint(dialErr), "lo": fmt.Sprint(loErr), "cached": len(entries),
	"write": fmt.Sprint(writeErr), "touch": fmt.Sprint(touchErr), "remove": fmt.Sprint(removeErr),
}
out, _ := json.Marshal(report)
fmt.Println(string(out))
"""


def test_isolation_holds_for_go_programs(engine):
    sid = engine.create("go")
    out = engine.ok(sid, INSPECT.replace("GOCACHE", json.dumps(GOCACHE_PATH)), timeout_s=60)
    report = json.loads(out)
    assert report["uid"] == 1000
    assert set(report["caps"].values()) == {"0000000000000000"}, report["caps"]
    assert report["dial"] != "<nil>" and report["lo"] != "<nil>"
    # the shared build cache is there (readable) and nobody in a sandbox can change it
    assert report["cached"] > 0
    assert all(report[k] != "<nil>" for k in ("write", "touch", "remove")), report
    # no host path: not the agent's state, the checkout, nor the cache's host directory
    agent = engine.agent
    seen = report["mounts"] + report["init"] + " ".join(report["env"])
    for host_path in (agent.state_dir, agent.go_cache_dir, "/work", "/var/cache", ".venv"):
        assert host_path not in seen, host_path
    sources = {line.split(" - ")[1].split()[1] for line in report["mounts"].splitlines()}
    assert not [s for s in sources if s.startswith("/dev")], sources  # no host device either
    assert report["cgroup"].strip().endswith(":/") and "no such file" in report["meminfo"]


PROGRAMS = """
entries, _ := os.ReadDir("/tmp/.mem0-go/programs")
for _, e := range entries {
	info, _ := e.Info()
	fmt.Println(e.Name(), info.Sys().(*syscall.Stat_t).Ino)
}
"""


def test_a_repeated_program_is_not_built_again(engine):
    sid = engine.create("go")
    built = engine.run(sid, HELLO, timeout_s=60)
    before = engine.ok(sid, PROGRAMS, timeout_s=60)
    again = engine.run(sid, HELLO, timeout_s=60)
    after = engine.ok(sid, PROGRAMS, timeout_s=60)
    assert before == after and len(before.splitlines()) == 2, (before, after)
    # the compiler's CPU is metered to the run that built (the sandbox's cgroup holds the compiler)
    assert built.exit.cpu_ms > 5 * again.exit.cpu_ms, (built.exit, again.exit)


BUILD_X = r"""
dir := "/tmp/probe"
os.MkdirAll(dir, 0o755)
os.WriteFile(dir+"/go.mod", []byte("module probe\n\ngo 1.19\n"), 0o644)
os.WriteFile(dir+"/main.go", []byte("package main\nimport (\"fmt\"; \"net/http\"; \"encoding/json\")\nfunc main() { b, _ := json.Marshal(http.StatusOK); fmt.Println(string(b)) }\n"), 0o644)
cmd := exec.Command("go", "build", "-x", "-trimpath", "-o", dir+"/probe", ".")
cmd.Dir = dir
cmd.Env = ENV
out, err := cmd.CombinedOutput()
fmt.Println(err)
fmt.Println(string(out))
"""


def test_the_standard_library_comes_from_the_shared_cache(engine):
    """Only package main is compiled: fmt, net/http, encoding/json... are cache hits (go build -x)."""
    from sandboxes.engine.go_runtime import WORK
    from sandboxes.engine.go_toolchain import build_env

    env = {k: v for k, v in build_env("", WORK, GOCACHE_PATH).items() if k != "GOROOT"}  # go finds its own
    env["GODEBUG"] = "goindex=0"  # no module index of the probe's directory either (the cache is read-only)
    go_env = "[]string{" + ", ".join(json.dumps(f"{k}={v}") for k, v in env.items()) + "}"
    sid = engine.create("go")
    out = engine.ok(sid, BUILD_X.replace("ENV", go_env), timeout_s=120)
    assert out.startswith("<nil>\n"), out[-2000:]
    compiled = [line for line in out.splitlines() if "/compile " in line]
    assert len(compiled) == 1 and "-p main " in compiled[0], compiled


def test_fork_copies_the_workspace_with_fresh_memory(engine):
    sid = engine.create("go")
    engine.ok(sid, 'os.WriteFile("note.txt", []byte("kept"), 0o644)', timeout_s=60)
    reply = engine.fork(sid)
    assert reply["memory"] == "fresh"
    child = reply["sandbox_id"]
    out = engine.ok(child, 'b, err := os.ReadFile("note.txt")\nfmt.Println(string(b), err)', timeout_s=60)
    assert out == "kept <nil>\n"
    engine.ok(child, 'os.WriteFile("note.txt", []byte("child"), 0o644)', timeout_s=60)
    out = engine.ok(sid, 'b, _ := os.ReadFile("note.txt")\nfmt.Println(string(b))', timeout_s=60)
    assert out == "kept\n"
