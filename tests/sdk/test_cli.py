"""The `mem0` command line against a live server, in-process through main() and as a subprocess."""

import io
import os
import subprocess
import sys

import pytest

from mem0sdk.cli import main
from tests.sdk.live_server import ROOT


@pytest.fixture
def cli_env(mem0_server, monkeypatch):
    monkeypatch.setenv("MEM0_API_KEY", mem0_server.api_key)
    monkeypatch.setenv("MEM0_BASE_URL", mem0_server.base_url)
    return mem0_server


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "job.py"
    path.write_text("import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\nsys.exit(7)\n")
    return path


def test_run_prints_the_output_and_exits_with_the_runs_code(cli_env, script, capsys):
    assert main(["run", str(script)]) == 7
    out, err = capsys.readouterr()
    assert out == "to stdout\n"
    assert "to stderr\n" in err


def test_run_kills_its_sandbox_unless_keep(cli_env, client, script, capsys):
    assert main(["run", str(script), "--keep"]) == 7
    err = capsys.readouterr().err
    kept = err.split("kept sandbox ")[1].split()[0]
    assert client.sandboxes.get(kept).state == "running"
    assert main(["exec", kept, "print('again')"]) == 0
    assert capsys.readouterr().out == "again\n"
    assert main(["sandboxes", "ls", "--state", "running"]) == 0
    assert kept in capsys.readouterr().out
    assert main(["sandboxes", "rm", kept]) == 0
    assert capsys.readouterr().out.strip() == f"{kept} stopped"
    before = {s.id for s in client.sandboxes.list(state="running")}
    assert main(["run", str(script)]) == 7
    assert {s.id for s in client.sandboxes.list(state="running")} == before


def test_exec_reads_code_from_stdin(cli_env, client, capsys, monkeypatch):
    sandbox = client.sandboxes.create()
    try:
        monkeypatch.setattr(sys, "stdin", io.StringIO("x = 6 * 7\nprint(x)\n"))
        assert main(["exec", sandbox.id, "-"]) == 0
        assert capsys.readouterr().out == "42\n"
    finally:
        sandbox.kill()


def test_api_errors_print_code_and_message_and_exit_1(cli_env, capsys):
    assert main(["sandboxes", "rm", "sbx_missing"]) == 1
    assert capsys.readouterr().err.startswith("error: not_found: ")
    assert main(["--api-key", "mem0_nope", "sandboxes", "ls"]) == 1
    assert capsys.readouterr().err.startswith("error: key_malformed: ")


def test_run_with_unknown_runtime_reports_unknown_runtime(cli_env, script, capsys):
    assert main(["run", str(script), "--runtime", "cobol"]) == 1
    assert capsys.readouterr().err.startswith("error: unknown_runtime: ")


def test_snapshots_ls_lists_a_new_snapshot(cli_env, client, capsys):
    with client.sandboxes.create() as sandbox:
        sandbox.files.write("f.txt", "x")
        snapshot = sandbox.snapshot(name="cli-ls")
    assert main(["snapshots", "ls"]) == 0
    assert any(
        line.startswith(snapshot.id) and "cli-ls" in line for line in capsys.readouterr().out.splitlines()
    )


def test_cli_as_a_subprocess_streams_and_returns_the_exit_code(mem0_server, tmp_path):
    path = tmp_path / "slow.py"
    path.write_text(
        "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.4)\nraise SystemExit(4)\n"
    )
    env = {**os.environ, "MEM0_API_KEY": mem0_server.api_key, "MEM0_BASE_URL": mem0_server.base_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mem0sdk", "run", str(path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first_line = proc.stdout.readline()
    still_running = proc.poll() is None
    rest, err = proc.communicate(timeout=60)
    assert first_line == "0\n" and still_running, err
    assert rest == "1\n2\n" and proc.returncode == 4
