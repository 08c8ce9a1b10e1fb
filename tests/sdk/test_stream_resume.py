"""A dropped event stream resumes from the last sequence received, with nothing lost or repeated.

The drop is real: a TCP relay between the SDK and the live server cuts the first connection right after
it has carried the first output event; the SDK must reconnect with `after=<seq>` on a new one.
"""

import socket
import threading

from mem0sdk import ExitEvent, Mem0, OutputEvent

CODE = "import time\nfor i in range(4):\n    print('line', i, flush=True)\n    time.sleep(0.4)\n"


class CuttingRelay:
    """Relays 127.0.0.1:<port> to the server; the first connection is closed after one output event."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            cut = self.connections == 1
            threading.Thread(target=self.pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client, cut), daemon=True).start()

    @staticmethod
    def pump(src: socket.socket, dst: socket.socket, cut_after_first_event: bool) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                if cut_after_first_event and b"event: output" in data:
                    break
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.listener.close()


def test_event_stream_resumes_after_a_dropped_connection(mem0_server, client):
    relay = CuttingRelay(int(mem0_server.base_url.rsplit(":", 1)[1]))
    with client.sandboxes.create() as sandbox:
        execution = client.sandboxes.start(sandbox.id, CODE)
        with Mem0(api_key=mem0_server.api_key, base_url=f"http://127.0.0.1:{relay.port}") as relayed:
            events = list(relayed.executions.events(execution.id))
    relay.close()
    assert relay.connections >= 2, "the relay never had to reconnect"
    *outputs, end = events
    assert isinstance(end, ExitEvent) and end.status == "succeeded"
    assert all(isinstance(e, OutputEvent) for e in outputs)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert "".join(e.data for e in outputs) == "".join(f"line {i}\n" for i in range(4))
