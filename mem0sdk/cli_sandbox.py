"""`mem0` subcommands for sandboxes, snapshots, files and runtimes (cli.py wires them in).

    mem0 create [--runtime R] [--env K=V]... [--metadata K=V]... [--timeout S] [--json]   print the new sandbox's id
    mem0 fork ID [--json]                                  fork a sandbox; print the child's id and its memory
    mem0 snapshot ID [--name N] [--json]                   snapshot a sandbox's workspace; print the snapshot id
    mem0 restore SNAPSHOT [--json]                         a new sandbox from a snapshot; print its id
    mem0 lineage SNAPSHOT [--json]                         the snapshot's lineage graph, one edge a line
    mem0 runtimes [--json]                                 runtimes with version, fork memory and warm pool
    mem0 files ls ID [PATH] [--depth N] [--json]           list a directory (recursive with --depth)
    mem0 files read ID PATH [--text]                       write the file to stdout
    mem0 files write ID PATH [SOURCE|-]                    upload a local file (or stdin)
    mem0 files rm ID PATH [--no-recursive]                 delete a file or directory
    mem0 files mkdir ID PATH [--no-parents]                make a directory
    mem0 files mv ID SOURCE DEST [--overwrite]             move within the workspace
    mem0 files stat ID PATH [--json]                       type, size, mode, mtime (exit 1 when missing)
    mem0 files watch ID [PATH] [--no-recursive] [--timeout S]   print each change as a JSON line until it ends

`--json` prints the server's objects as JSON (one object a line for lists).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from mem0sdk.client import Mem0
from mem0sdk.models import FileEntry


def _pairs(items: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"mem0: {what} must be KEY=VALUE, got {item!r}", file=sys.stderr)
            raise SystemExit(2)
        out[key] = value
    return out


def _emit(args: argparse.Namespace, raw: dict, text: str) -> int:
    print(json.dumps(raw) if args.json else text)
    return 0


def cmd_create(client: Mem0, args: argparse.Namespace) -> int:
    sandbox = client.sandboxes.create(
        runtime=args.runtime,
        env=_pairs(args.env, "--env"),
        metadata=_pairs(args.metadata, "--metadata"),
        timeout_s=args.timeout,
    )
    return _emit(args, sandbox.raw, sandbox.id)


def cmd_fork(client: Mem0, args: argparse.Namespace) -> int:
    child = client.sandboxes.fork(args.sandbox_id)
    return _emit(args, child.raw, f"{child.id} memory={child.memory or '-'}")


def cmd_snapshot(client: Mem0, args: argparse.Namespace) -> int:
    snap = client.sandboxes.snapshot(args.sandbox_id, name=args.name)
    return _emit(args, snap.raw, snap.id)


def cmd_restore(client: Mem0, args: argparse.Namespace) -> int:
    sandbox = client.snapshots.restore(args.snapshot_id)
    return _emit(args, sandbox.raw, sandbox.id)


def cmd_lineage(client: Mem0, args: argparse.Namespace) -> int:
    graph = client.snapshots.lineage(args.snapshot_id)
    if args.json:
        print(json.dumps({"nodes": graph.nodes, "edges": graph.edges}))
        return 0
    for node in graph.nodes:
        print(f"{node.get('kind', '?')} {node.get('id')}")
    for edge in graph.edges:
        print(f"{edge.get('from')} -{edge.get('kind', '')}-> {edge.get('to')}")
    return 0


def cmd_runtimes(client: Mem0, args: argparse.Namespace) -> int:
    from mem0sdk.cli import print_table

    runtimes = client.runtimes()
    if args.json:
        for rt in runtimes:
            print(json.dumps(rt.raw))
        return 0
    print_table(
        [
            [
                r.name,
                r.language or "-",
                r.version or "-",
                r.fork_memory or "-",
                str(r.pool_size or 0),
                "yes" if r.available else "no",
            ]
            for r in runtimes
        ],
        ["NAME", "LANGUAGE", "VERSION", "FORK MEMORY", "POOL", "AVAILABLE"],
    )
    return 0


def _entry_line(entry: FileEntry) -> str:
    when = datetime.fromtimestamp(entry.mtime, UTC).strftime("%Y-%m-%d %H:%M:%S") if entry.mtime else "-"
    return f"{entry.type or '-':7}  {entry.size or 0:>10}  {when}  {entry.path or entry.name}"


def cmd_files_ls(client: Mem0, args: argparse.Namespace) -> int:
    for entry in client.sandboxes.files(args.sandbox_id).list(args.path, depth=args.depth):
        print(json.dumps(entry.raw) if args.json else _entry_line(entry))
    return 0


def cmd_files_read(client: Mem0, args: argparse.Namespace) -> int:
    files = client.sandboxes.files(args.sandbox_id)
    if args.text:
        sys.stdout.write(files.read_text(args.path))
        sys.stdout.flush()
    else:
        sys.stdout.buffer.write(files.read(args.path))
        sys.stdout.buffer.flush()
    return 0


def cmd_files_write(client: Mem0, args: argparse.Namespace) -> int:
    if args.source == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(args.source, "rb") as f:
            data = f.read()
    size = client.sandboxes.files(args.sandbox_id).write(args.path, data)
    print(f"{args.path} {size}")
    return 0


def cmd_files_rm(client: Mem0, args: argparse.Namespace) -> int:
    client.sandboxes.files(args.sandbox_id).delete(args.path, recursive=args.recursive)
    return 0


def cmd_files_mkdir(client: Mem0, args: argparse.Namespace) -> int:
    entry = client.sandboxes.files(args.sandbox_id).make_dir(args.path, parents=args.parents)
    print(entry.path)
    return 0


def cmd_files_mv(client: Mem0, args: argparse.Namespace) -> int:
    entry = client.sandboxes.files(args.sandbox_id).rename(
        args.source, args.destination, overwrite=args.overwrite
    )
    print(entry.path)
    return 0


def cmd_files_stat(client: Mem0, args: argparse.Namespace) -> int:
    entry = client.sandboxes.files(args.sandbox_id).stat(args.path)
    return _emit(args, entry.raw, _entry_line(entry))


def cmd_files_watch(client: Mem0, args: argparse.Namespace) -> int:
    watch = client.sandboxes.files(args.sandbox_id).watch(
        args.path, recursive=args.recursive, timeout_s=args.timeout
    )
    for event in watch:
        print(json.dumps(event.raw), flush=True)
    return 0


def add_commands(commands, connection: argparse.ArgumentParser) -> None:
    """Add the subcommands above to the `mem0` parser's subparsers."""

    def command(name: str, handler, help_: str, json_option: bool = True) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=[connection], help=help_)
        if json_option:
            parser.add_argument("--json", action="store_true", help="print the server's JSON")
        parser.set_defaults(handler=handler)
        return parser

    create = command("create", cmd_create, "start a sandbox and print its id")
    create.add_argument("--runtime", default="python")
    create.add_argument("--env", action="append", metavar="KEY=VALUE")
    create.add_argument("--metadata", action="append", metavar="KEY=VALUE")
    create.add_argument("--timeout", type=float, default=None, help="lifetime in seconds")
    command("fork", cmd_fork, "fork a sandbox").add_argument("sandbox_id", metavar="ID")
    snapshot = command("snapshot", cmd_snapshot, "snapshot a sandbox's workspace")
    snapshot.add_argument("sandbox_id", metavar="ID")
    snapshot.add_argument("--name", default=None)
    command("restore", cmd_restore, "a new sandbox from a snapshot").add_argument(
        "snapshot_id", metavar="SNAPSHOT"
    )
    command("lineage", cmd_lineage, "a snapshot's lineage graph").add_argument(
        "snapshot_id", metavar="SNAPSHOT"
    )
    command("runtimes", cmd_runtimes, "list runtimes")

    files = commands.add_parser("files", help="a sandbox's workspace files")
    actions = files.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, handler, help_: str, json_option: bool = False) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, parents=[connection], help=help_)
        parser.add_argument("sandbox_id", metavar="ID")
        if json_option:
            parser.add_argument("--json", action="store_true", help="print the server's JSON")
        parser.set_defaults(handler=handler)
        return parser

    ls = action("ls", cmd_files_ls, "list a directory", json_option=True)
    ls.add_argument("path", nargs="?", default="")
    ls.add_argument("--depth", type=int, default=1, help="levels to list (1: the directory's own entries)")
    read = action("read", cmd_files_read, "print a file")
    read.add_argument("path")
    read.add_argument("--text", action="store_true", help="as UTF-8 text (an error if it is not)")
    write = action("write", cmd_files_write, "upload a file")
    write.add_argument("path")
    write.add_argument("source", nargs="?", default="-", help="local file, or - for stdin (default)")
    rm = action("rm", cmd_files_rm, "delete a file or directory")
    rm.add_argument("path")
    rm.add_argument(
        "--no-recursive",
        dest="recursive",
        action="store_false",
        help="refuse to delete a non-empty directory",
    )
    mkdir = action("mkdir", cmd_files_mkdir, "make a directory")
    mkdir.add_argument("path")
    mkdir.add_argument("--no-parents", dest="parents", action="store_false")
    mv = action("mv", cmd_files_mv, "move within the workspace")
    mv.add_argument("source")
    mv.add_argument("destination")
    mv.add_argument("--overwrite", action="store_true")
    stat = action("stat", cmd_files_stat, "a path's type, size, mode and mtime", json_option=True)
    stat.add_argument("path")
    watch = action("watch", cmd_files_watch, "print changes as JSON lines")
    watch.add_argument("path", nargs="?", default="")
    watch.add_argument("--no-recursive", dest="recursive", action="store_false")
    watch.add_argument("--timeout", type=int, default=None, help="stop after this many seconds")
