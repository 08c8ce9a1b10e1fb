"""`mem0`: the command line over the SDK.

    mem0 run FILE [--runtime python] [--keep] [--timeout S]   run a file in a new sandbox, streaming its output
    mem0 exec ID CODE|-                                       run code (or stdin) in an existing sandbox
    mem0 exec ID --cmd 'SHELL COMMAND' [--cwd DIR]            run a shell command in an existing sandbox
    mem0 sandboxes ls [--state S] [--runtime R] [--json]      list sandboxes
    mem0 sandboxes rm ID...                                   kill sandboxes
    mem0 snapshots ls [--json]                                list snapshots
    mem0 create | fork | snapshot | restore | lineage | runtimes | files ...   see cli_sandbox.py

The key comes from --api-key or $MEM0_API_KEY, the server from --base-url or $MEM0_BASE_URL.
`run` and `exec` exit with the code's exit status (124 when it hit its time limit, 128+N when killed by
signal N); API failures print `error: <code>: <message>` and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence

from mem0sdk import cli_sandbox
from mem0sdk.client import Mem0
from mem0sdk.errors import Mem0Error
from mem0sdk.models import Execution, OutputEvent, ResultEvent

EXIT_API_ERROR = 1
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130


def exit_status(execution: Execution) -> int:
    """A shell-style exit status for a finished run."""
    if execution.status == "timeout" or execution.limit == "timeout":
        return EXIT_TIMEOUT
    if execution.exit_code is None:
        return 0 if execution.ok else 1
    if execution.exit_code < 0:
        return 128 + min(-execution.exit_code, 127)
    return min(execution.exit_code, 255)


def stream_to_terminal(events: Iterable[OutputEvent | ResultEvent | Execution]) -> int:
    """Write stdout/stderr chunks as they arrive; report how the run ended; return its exit status."""
    for item in events:
        if isinstance(item, OutputEvent):
            out = sys.stderr if item.stream == "stderr" else sys.stdout
            out.write(item.data)
            out.flush()
            continue
        if isinstance(item, ResultEvent):  # a rich result: its text form in a terminal
            if item.result.text is not None:
                print(item.result.text, flush=True)
            continue
        if item.status not in ("succeeded", "failed") or item.limit:
            limit = f" (limit: {item.limit})" if item.limit else ""
            print(f"mem0: execution {item.id} ended {item.status}{limit}", file=sys.stderr)
        if item.truncated:
            print("mem0: output was truncated by the server's cap", file=sys.stderr)
        return exit_status(item)
    print("mem0: the output stream ended without a result", file=sys.stderr)
    return EXIT_API_ERROR


def cmd_run(client: Mem0, args: argparse.Namespace) -> int:
    with open(args.file, encoding="utf-8") as f:
        code = f.read()
    sandbox = client.sandboxes.create(runtime=args.runtime)
    try:
        return stream_to_terminal(sandbox.stream(code, timeout_s=args.timeout))
    finally:
        if args.keep:
            print(f"mem0: kept sandbox {sandbox.id}", file=sys.stderr)
        else:
            sandbox.kill()


def cmd_exec(client: Mem0, args: argparse.Namespace) -> int:
    if args.cmd is not None:
        if args.code is not None:
            print("mem0 exec: give CODE or --cmd, not both", file=sys.stderr)
            return 2
        return command_to_terminal(client, args)
    if args.code is None:
        print("mem0 exec: CODE (or -) or --cmd is required", file=sys.stderr)
        return 2
    code = sys.stdin.read() if args.code == "-" else args.code
    return stream_to_terminal(client.sandboxes.stream(args.sandbox_id, code, timeout_s=args.timeout))


def command_to_terminal(client: Mem0, args: argparse.Namespace) -> int:
    """`exec --cmd`: run a shell command, its stdout/stderr to ours as they come; its exit status."""
    from mem0sdk.commands import SandboxCommands

    def write(stream):
        def out(data: str) -> None:
            stream.write(data)
            stream.flush()

        return out

    result = SandboxCommands(client, args.sandbox_id).run(
        args.cmd, on_stdout=write(sys.stdout), on_stderr=write(sys.stderr), cwd=args.cwd, timeout_s=args.timeout
    )
    if result.status not in ("succeeded", "failed") or result.limit:
        limit = f" (limit: {result.limit})" if result.limit else ""
        print(f"mem0: command {result.id} ended {result.status}{limit}", file=sys.stderr)
    return exit_status(result)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def cmd_sandboxes_ls(client: Mem0, args: argparse.Namespace) -> int:
    sandboxes = list(client.sandboxes.list(state=args.state, runtime=args.runtime))
    if args.json:
        for s in sandboxes:
            print(json.dumps(s.raw))
        return 0
    print_table(
        [[s.id, s.runtime, s.state, s.parent_id or "-", _when(s.created_at)] for s in sandboxes],
        ["ID", "RUNTIME", "STATE", "PARENT", "CREATED"],
    )
    return 0


def cmd_sandboxes_rm(client: Mem0, args: argparse.Namespace) -> int:
    status = 0
    for sandbox_id in args.sandbox_ids:
        try:
            sandbox = client.sandboxes.kill(sandbox_id)
        except Mem0Error as exc:
            print(f"error: {exc.code}: {sandbox_id}: {exc.message}", file=sys.stderr)
            status = EXIT_API_ERROR
        else:
            print(f"{sandbox.id} {sandbox.state}")
    return status


def cmd_snapshots_ls(client: Mem0, args: argparse.Namespace) -> int:
    snapshots = list(client.snapshots.list())
    if args.json:
        for s in snapshots:
            print(json.dumps(s.raw))
        return 0
    print_table(
        [
            [
                s.id,
                s.name or "-",
                ",".join(s.tags) or "-",
                s.sandbox_id or "-",
                str(s.logical_bytes or 0),
                _when(s.created_at),
            ]
            for s in snapshots
        ],
        ["ID", "NAME", "TAGS", "SANDBOX", "BYTES", "CREATED"],
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    # The connection options are accepted before or after the subcommand (SUPPRESS keeps the later
    # position from overwriting the earlier one with its default).
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--api-key", default=argparse.SUPPRESS, help="API key (default: $MEM0_API_KEY)")
    connection.add_argument(
        "--base-url", default=argparse.SUPPRESS, help="server URL (default: $MEM0_BASE_URL)"
    )

    parser = argparse.ArgumentParser(
        prog="mem0", description="Run code in Mem0 sandboxes.", parents=[connection]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", parents=[connection], help="run a file in a new sandbox, streaming its output"
    )
    run.add_argument("file")
    run.add_argument("--runtime", default="python")
    run.add_argument("--keep", action="store_true", help="leave the sandbox running and print its id")
    run.add_argument("--timeout", type=float, default=None, help="run time limit in seconds")
    run.set_defaults(handler=cmd_run)

    exec_ = commands.add_parser("exec", parents=[connection], help="run code in an existing sandbox")
    exec_.add_argument("sandbox_id", metavar="ID")
    exec_.add_argument("code", metavar="CODE", nargs="?", help="the code, or - to read it from stdin")
    exec_.add_argument("--cmd", default=None, help="a shell command to run instead of code (sh -c)")
    exec_.add_argument("--cwd", default=None, help="--cmd's working directory (default /workspace)")
    exec_.add_argument("--timeout", type=float, default=None)
    exec_.set_defaults(handler=cmd_exec)

    sandboxes = commands.add_parser("sandboxes", help="list or kill sandboxes")
    sandbox_commands = sandboxes.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = sandbox_commands.add_parser("ls", parents=[connection], help="list sandboxes")
    ls.add_argument("--state", choices=["starting", "running", "stopped", "lost"])
    ls.add_argument("--runtime")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    ls.set_defaults(handler=cmd_sandboxes_ls)
    rm = sandbox_commands.add_parser("rm", parents=[connection], help="kill sandboxes")
    rm.add_argument("sandbox_ids", nargs="+", metavar="ID")
    rm.set_defaults(handler=cmd_sandboxes_rm)

    snapshots = commands.add_parser("snapshots", help="list snapshots")
    snapshot_commands = snapshots.add_subparsers(dest="action", required=True, metavar="ACTION")
    snap_ls = snapshot_commands.add_parser("ls", parents=[connection], help="list snapshots")
    snap_ls.add_argument("--json", action="store_true", help="one JSON object per line")
    snap_ls.set_defaults(handler=cmd_snapshots_ls)
    cli_sandbox.add_commands(commands, connection)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with Mem0(api_key=getattr(args, "api_key", None), base_url=getattr(args, "base_url", None)) as client:
            return args.handler(client, args)
    except Mem0Error as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_API_ERROR
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_API_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
