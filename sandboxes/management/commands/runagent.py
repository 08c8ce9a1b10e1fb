"""`manage.py runagent`: a fork-agent on the Redis bus, with the block store (and S3 tier) from settings."""

import signal
import socket
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run a fork-agent for this host on the Redis agent bus."

    def add_arguments(self, parser):
        parser.add_argument("--agent-id", default=socket.gethostname())
        parser.add_argument("--capacity", type=int, default=100)
        parser.add_argument("--pool-min", type=int, default=2)
        parser.add_argument("--pool-max", type=int, default=32)

    def handle(self, agent_id, capacity, pool_min, pool_max, **options):
        from sandboxes.engine.agent import Agent
        from sandboxes.engine.transport import make_bus
        from sandboxes.storage import block_store

        if not settings.MEM0_BUS_URL:
            raise CommandError("Set REDIS_URL (or MEM0_BUS_URL): a standalone agent talks to the web over Redis.")
        bus = make_bus(settings.MEM0_BUS_URL, settings.MEM0_BUS_PREFIX)
        agent = Agent(bus, agent_id=agent_id, host=socket.gethostname(), capacity=capacity,
                      state_dir=settings.MEM0_AGENT_STATE_DIR, pool_min=pool_min, pool_max=pool_max,
                      blockstore=block_store()).start()
        self.stdout.write(f"agent {agent_id} serving on {settings.MEM0_BUS_PREFIX}")
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
        done.wait()
        agent.stop()
