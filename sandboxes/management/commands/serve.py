"""`manage.py serve`: the web tier for PostgreSQL + Redis deployments, N Daphne processes on one socket.

One Python process runs Python on one core at a time (the GIL), and each Daphne process's event loop and
request threads contend for it: two per core served 14 % more runs/s than one per core with 16 clients on
this 2-core host (interleaved A/B, 4 rounds each; three per core no better), so that is the default.
The socket is bound here and inherited by every worker (`daphne --fd`); the kernel spreads the
connections. A worker that dies is started again. Embedded mode (no REDIS_URL) runs the in-process agent
and channel layer, which cannot be shared between processes: there `serve` runs one worker.
"""

import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

RESTART_DELAY_S = 1.0


class Command(BaseCommand):
    help = "Serve HTTP and websockets with Daphne processes (two per core) sharing one listening socket."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT to listen on.")
        parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))

    def handle(self, bind, workers, **options):
        host, _, port = bind.rpartition(":")
        if not host or not port.isdigit():
            raise CommandError("--bind takes HOST:PORT, e.g. 0.0.0.0:8000.")
        if settings.MEM0_EMBEDDED_AGENT and workers > 1:
            self.stderr.write("embedded mode (no REDIS_URL): one worker, the in-process agent cannot be shared")
            workers = 1
        if ":" in host:
            raise CommandError("--bind takes an IPv4 address (Twisted adopts inherited sockets as AF_INET).")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(1024)
        command = [sys.executable, "-m", "daphne", "--fd", str(sock.fileno()), "mem0web.asgi:application"]
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
        procs = [subprocess.Popen(command, pass_fds=[sock.fileno()]) for _ in range(workers)]
        self.stdout.write(f"serving on http://{bind} with {workers} worker(s)")
        while not stopping:
            time.sleep(0.2)
            for i, proc in enumerate(procs):
                if proc.poll() is not None and not stopping:
                    self.stderr.write(f"worker {proc.pid} exited with {proc.returncode}; starting another")
                    time.sleep(RESTART_DELAY_S)
                    procs[i] = subprocess.Popen(command, pass_fds=[sock.fileno()])
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
