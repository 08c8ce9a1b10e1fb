"""Hostile Go programs: the Go runtime's compiler and programs run with the sandbox's isolation (raw syscalls
refused, socket families allow-listed, limits named), and nothing a Go sandbox does reaches the shared
build cache the next program (of any tenant) is built with."""

import errno

import pytest

from tests.redteam.harness import DENIED, Hostile, MiB, out, table

RAW_SYSCALLS = r"""package main

import (
	"fmt"
	"syscall"
)

func main() {
	calls := []struct {
		label string
		nr    uintptr
		args  [3]uintptr
	}{
		{"unshare_newuser", 272, [3]uintptr{0x10000000}},
		{"mount", 165, [3]uintptr{}},
		{"ptrace_traceme", 101, [3]uintptr{}},
		{"bpf", 321, [3]uintptr{}},
		{"keyctl", 250, [3]uintptr{}},
		{"setns", 308, [3]uintptr{}},
		{"clone3", 435, [3]uintptr{}},
		{"io_uring_setup", 425, [3]uintptr{}},
		{"personality", 135, [3]uintptr{0xffffffff}},
		{"perf_event_open", 298, [3]uintptr{}},
		{"init_module", 175, [3]uintptr{}},
		{"userfaultfd", 323, [3]uintptr{}},
		{"socket_packet", 41, [3]uintptr{17, 3, 0}},
		{"socket_vsock", 41, [3]uintptr{40, 1, 0}},
	}
	for _, c := range calls {
		_, _, e := syscall.RawSyscall(c.nr, c.args[0], c.args[1], c.args[2])
		fmt.Println(c.label, int(e))
	}
}
"""


def go_raw_syscalls_are_refused(arena) -> None:
    """Raw syscalls from a Go program (no libc in between) -> every one refused by seccomp/capabilities."""
    sid = arena.fresh(runtime="go")
    ex = arena.attacker.run(sid, RAW_SYSCALLS, timeout_s=60)
    assert ex["status"] == "succeeded", f"{ex['status']}: {out(ex)[-1500:]!r}"
    got = {}
    for line in ex["stdout"].splitlines():
        label, code = line.split()
        got[label] = errno.errorcode.get(int(code), "OK" if code == "0" else code)
    assert len(got) == 14, got
    bad = {label: name for label, name in got.items() if name not in DENIED | {"EAFNOSUPPORT"}}
    assert not bad, f"not refused: {bad}"


POISON = r"""package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	entries, _ := filepath.Glob("/usr/lib/go-cache/*/*-d")
	fmt.Println("entries", len(entries) > 0)
	for _, path := range entries[:3] {
		fmt.Println("overwrite", os.WriteFile(path, []byte("poison"), 0o644) != nil)
		fmt.Println("remove", os.Remove(path) != nil)
	}
	fmt.Println("plant", os.WriteFile("/usr/lib/go-cache/ff/planted-d", []byte("x"), 0o644) != nil)
	fmt.Println("chmod", os.Chmod("/usr/lib/go-cache", 0o777) != nil)
	goroot, _ := filepath.Glob("/usr/lib/go-*/src/fmt/print.go")
	fmt.Println("stdlib", len(goroot) == 1 && os.WriteFile(goroot[0], []byte("package fmt"), 0o644) != nil)
}
"""


def go_build_cache_cannot_be_poisoned(arena) -> None:
    """Overwrite, remove or plant entries of the shared build cache, or the toolchain's sources -> all
    refused; a program built afterwards, in another sandbox, compiles and runs as before."""
    sid = arena.fresh(runtime="go")
    ex = arena.attacker.run(sid, POISON, timeout_s=60)
    assert ex["status"] == "succeeded", f"{ex['status']}: {out(ex)[-1500:]!r}"
    lines = ex["stdout"].splitlines()
    assert lines[0] == "entries true" and len(lines) == 10, lines
    assert all(line.endswith(" true") for line in lines), lines
    other = arena.fresh(runtime="go")
    ex = arena.attacker.run(other, 'fmt.Println(strings.Repeat("ok", 2))', timeout_s=60)
    assert (ex["status"], ex["stdout"]) == ("succeeded", "okok\n"), ex


def go_thread_and_process_bombs_hit_pids(arena) -> None:
    """OS threads (goroutines locked to threads) and a fork/exec loop from Go -> limit pids; the sandbox
    builds and runs the next program."""
    sid = arena.fresh(runtime="go")
    threads = "for {\n\tgo func() { runtime.LockOSThread(); time.Sleep(time.Hour) }()\n\ttime.Sleep(time.Millisecond)\n}"
    # the processes it started are killed before it exits: the pids they held are free for the next run
    procs = (
        'var started []*exec.Cmd\nfor {\n\tcmd := exec.Command("/bin/sleep", "60")\n'
        "\tif err := cmd.Start(); err != nil {\n\t\tfor _, c := range started { c.Process.Kill(); c.Wait() }\n"
        "\t\tpanic(err)\n\t}\n\tstarted = append(started, cmd)\n}"
    )
    for code in (threads, procs):
        ex = arena.attacker.run(sid, code, timeout_s=30)
        assert ex["limit"] == "pids" and ex["status"] in ("failed", "killed"), (
            f"{ex['status']}/{ex['limit']}: {out(ex)[-500:]!r}"
        )
    ex = arena.attacker.run(sid, "fmt.Println(6 * 7)", timeout_s=60)
    assert (ex["status"], ex["stdout"]) == ("succeeded", "42\n"), ex


def go_memory_bomb_hits_memory(arena) -> None:
    """A Go program allocating without end -> limit memory; the sandbox runs the next program."""
    sid = arena.fresh(runtime="go", limits={"memory_bytes": 256 * MiB})
    code = "var keep [][]byte\nfor {\n\tb := make([]byte, 32<<20)\n\tfor i := range b { b[i] = 1 }\n\tkeep = append(keep, b)\n}"
    ex = arena.attacker.run(sid, code, timeout_s=60)
    assert ex["limit"] == "memory" and ex["status"] in ("failed", "killed"), (
        f"{ex['status']}/{ex['limit']}: {out(ex)[-500:]!r}"
    )
    ex = arena.attacker.run(sid, "fmt.Println(6 * 7)", timeout_s=60)
    assert (ex["status"], ex["stdout"]) == ("succeeded", "42\n"), ex


PROGRAMS = [
    Hostile("go_raw_syscalls", go_raw_syscalls_are_refused.__doc__, attack=go_raw_syscalls_are_refused),
    Hostile(
        "go_cache_poisoning",
        go_build_cache_cannot_be_poisoned.__doc__,
        attack=go_build_cache_cannot_be_poisoned,
    ),
    Hostile(
        "go_pids_bombs",
        go_thread_and_process_bombs_hit_pids.__doc__,
        attack=go_thread_and_process_bombs_hit_pids,
    ),
    Hostile("go_memory_bomb", go_memory_bomb_hits_memory.__doc__, attack=go_memory_bomb_hits_memory),
]


@pytest.mark.parametrize("program", table(PROGRAMS))
def test_go_program(arena, program):
    arena.play(program, "go")
