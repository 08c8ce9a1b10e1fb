"""`manage.py rundemo`: the embedded stack of `make run` — demo tenant, in-process agent, Daphne on :8000."""

import logging
import os
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts import services
from accounts.models import Organization
from sandboxes.dispatch import engine

log = logging.getLogger("mem0.rundemo")


def demo_key_path() -> Path:
    return Path(settings.VAR_DIR) / "demo-api-key"


def run_periodic_tasks(stop: threading.Event) -> None:
    """Celery beat for the embedded default: run each scheduled task in-process at its interval."""
    from celery import current_app

    current_app.loader.import_default_modules()  # autodiscovery: registers sandboxes/billing tasks
    due = {name: 0.0 for name in settings.CELERY_BEAT_SCHEDULE}
    while not stop.wait(1.0):
        now = time.monotonic()
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
            if now >= due[name]:
                due[name] = now + float(entry["schedule"])
                try:
                    current_app.tasks[entry["task"]].apply()
                except KeyError:
                    log.warning("periodic_task_missing task=%s", entry["task"])
                except Exception:
                    log.exception("periodic_task_failed task=%s", entry["task"])


def kept_demo_key(org) -> str | None:
    """The key an earlier `make run` wrote to var/demo-api-key, while it still works for the demo organisation:
    one demo key across restarts, not a new one each start."""
    from accounts.authentication import KeyAuthFailed, principal_for_key

    try:
        raw = demo_key_path().read_text().strip()
        principal = principal_for_key(raw)
    except (OSError, KeyAuthFailed):
        return None
    return raw if principal.org.pk == org.pk else None


class Command(BaseCommand):
    help = "Run the embedded Mem0 stack on one machine and print a demo organisation's key."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def show_key(self, raw: str) -> None:
        """The demo key is kept in a file only its owner can read (0600), reused by the next start; it is
        printed to a terminal only (a redirected stdout, a log file, is often world-readable: it gets the path)."""
        path = demo_key_path()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a file left by an earlier run keeps its old mode through O_CREAT
        with os.fdopen(fd, "w") as fh:
            fh.write(raw + "\n")
        if self.stdout.isatty():
            self.stdout.write(f"Demo organisation 'demo'; its API key (kept in {path}):")
            self.stdout.write(raw)
            return
        self.stdout.write(f"Demo organisation 'demo'; its API key is in {path} (mode 0600).")

    def handle(self, host, port, **options):
        from daphne.server import Server

        from mem0web.asgi import application

        org = Organization.objects.filter(slug="demo").first()
        if org is None:
            org, _, raw = services.tenant_signup(username="demo", email="demo@example.com", password=None,
                                                 org_name="Demo", org_slug="demo", plan="pro")
        else:
            raw = kept_demo_key(org) or services.apikey_create(org=org, name="make run")[1]
        # The embedded agent's threads share the GIL with the web threads; a 0.5 ms switch interval (the
        # default is 5 ms) lets a run's reply through without waiting out another thread's slice.
        sys.setswitchinterval(0.0005)
        engine()  # start the embedded agent and its warm pools before the first request
        stop = threading.Event()
        threading.Thread(target=run_periodic_tasks, args=(stop,), name="mem0-beat", daemon=True).start()
        self.stdout.write(f"Mem0 console: http://{host}:{port}/  (API docs: http://{host}:{port}/api/docs/)")
        self.show_key(raw)
        self.stdout.flush()
        try:
            Server(application=application, endpoints=[f"tcp:port={port}:interface={host}"]).run()
        finally:
            stop.set()
