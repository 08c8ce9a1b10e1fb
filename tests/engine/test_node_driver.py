"""The Node.js driver's protocol, with the driver run directly (our code only, outside a sandbox): requests
on fd 3, framed output on fd 4, run ends on fd 5."""

from __future__ import annotations

import os
import select
import struct

import pytest

from sandboxes.engine import node_runtime, wire
from sandboxes.engine.kernel import FRAME_HEADER, FRAME_MARK, STDERR_ID, STDOUT_ID


class Driver:
    def __init__(self):
        node = node_runtime.find_node()
        assert node, "node is not installed (Debian package nodejs)"
        req_r, self.requests = os.pipe()
        self.output, out_w = os.pipe()
        self.replies, rep_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        self.pid = os.posix_spawn(
            node,
            ["node", node_runtime.DRIVER_SOURCE],
            {"PATH": "/usr/bin:/bin"},
            file_actions=[
                (os.POSIX_SPAWN_DUP2, null, 0),
                (os.POSIX_SPAWN_DUP2, req_r, 3),
                (os.POSIX_SPAWN_DUP2, out_w, 4),
                (os.POSIX_SPAWN_DUP2, rep_w, 5),
            ],
        )
        for fd in (req_r, out_w, rep_w, null):
            os.close(fd)
        assert self.reply() == (0, 0)  # ready

    def send(self, msg: dict) -> None:
        os.write(self.requests, wire.encode(msg))

    def reply(self, timeout: float = 20.0) -> tuple[int, int]:
        assert select.select([self.replies], [], [], timeout)[0], "no reply from the driver"
        return struct.unpack(">Ii", os.read(self.replies, 8))

    def frames(self) -> list[tuple[int, bytes]]:
        data = b""
        while select.select([self.output], [], [], 0.2)[0]:
            data += os.read(self.output, 1 << 16)
        out = []
        while data:
            assert data[0] == FRAME_MARK
            size = int.from_bytes(data[2:4], "big")
            out.append((data[1], data[FRAME_HEADER : FRAME_HEADER + size]))
            data = data[FRAME_HEADER + size :]
        return out

    def run(self, seq: int, code: str, **extra) -> tuple[int, list[tuple[int, bytes]]]:
        self.send({"op": "run", "seq": seq, "code": code, **extra})
        got, exit_code = self.reply()
        assert got == seq
        return exit_code, self.frames()

    def close(self) -> None:
        os.close(self.requests)  # the driver exits at the end of its requests
        os.waitpid(self.pid, 0)
        for fd in (self.output, self.replies):
            os.close(fd)


@pytest.fixture
def driver():
    d = Driver()
    yield d
    d.close()


def test_a_run_given_stdin_reads_it_then_end_of_file(driver):
    code = (
        "const rl = require('readline').createInterface({input: process.stdin});"
        "for await (const line of rl) console.log(line.toUpperCase()); console.error('eof')"
    )
    assert driver.run(1, code, stdin="hello\nworld\n") == (
        0,
        [(STDOUT_ID, b"HELLO\n"), (STDOUT_ID, b"WORLD\n"), (STDERR_ID, b"eof\n")],
    )
    # the next run without stdin reads node's own (/dev/null here): end of file at once
    assert driver.run(2, "let n = 0; for await (const c of process.stdin) n += c.length; console.log(n)") == (
        0,
        [(STDOUT_ID, b"0\n")],
    )


def test_environment_from_configure_and_the_run_numbers_echoed(driver):
    driver.send({"op": "configure", "env": {"GREETING": "hi"}})
    assert driver.run(7, "console.log(process.env.GREETING)") == (0, [(STDOUT_ID, b"hi\n")])
    assert driver.run(8, "process.exit(5)") == (5, [])
    assert driver.run(9, "console.log('still here')") == (0, [(STDOUT_ID, b"still here\n")])
