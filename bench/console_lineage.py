"""The lineage page at scale: seed an organisation with chains of snapshots, forks and restores, then load
/snapshots?limit in headless Chromium and print the page's own figures (API fetch, dagre layout + first
render) and GET /api/v1/lineage's time.

    .venv/bin/python bench/console_lineage.py [--snapshots 700]

With 700 snapshots a page of the default 500 holds 500 snapshots and their sandboxes; `--page 2000` (the
API's largest page) loads them all at once.
"""

import argparse
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selenium.webdriver.common.by import By  # noqa: E402

from tests.console.browser import chromium, wait  # noqa: E402
from tests.sdk.live_server import rundemo_server  # noqa: E402

SEED = """
from datetime import timedelta
from django.utils import timezone
from accounts import services
from sandboxes.models import Sandbox, Snapshot
org, user, _ = services.tenant_signup(username="bench", email="bench@example.com", password="bench-password-42",
                                      org_name="bench", org_slug="bench", plan="enterprise")
now, made = timezone.now(), 0
while made < {n}:
    root = Sandbox.objects.create(organization=org, runtime="python", state="stopped")
    parent = None
    for step in range(10):
        made += 1
        snap = Snapshot.objects.create(organization=org, sandbox=root, parent=parent, digest="ab" * 32,
                                       runtime="python", created_at=now - timedelta(seconds={n} - made))
        if step % 3 == 2:
            restored = Sandbox.objects.create(organization=org, runtime="python", state="stopped",
                                              source_snapshot=snap)
            Sandbox.objects.create(organization=org, runtime="python", state="stopped", parent=restored)
        parent = snap
print("seeded", made)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshots", type=int, default=700)
    parser.add_argument("--page", type=int, default=2000)
    args = parser.parse_args()
    with TemporaryDirectory() as tmp, rundemo_server(Path(tmp)) as (server, _):
        print(server.manage("shell", "-c", SEED.replace("{n}", str(args.snapshots))).strip())
        with chromium() as driver:
            driver.get(f"{server.base_url}/login")
            driver.find_element(By.NAME, "username").send_keys("bench")
            driver.find_element(By.NAME, "password").send_keys("bench-password-42")
            driver.find_element(By.CSS_SELECTOR, "main form button").click()
            wait(driver, lambda d: "/login" not in d.current_url)
            for attempt in range(3):
                start = time.perf_counter()
                driver.get(f"{server.base_url}/snapshots?limit={args.page}")
                wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "lineage",
                     timeout=300)
                total = (time.perf_counter() - start) * 1000
                timing = driver.execute_script("return window.mem0LineageTiming")
                print(f"run {attempt + 1}: {timing['nodes']} nodes; API fetch {timing['fetch_ms']:.0f} ms, "
                      f"layout + render {timing['layout_ms']:.0f} ms, page load to ready {total:.0f} ms")


if __name__ == "__main__":
    main()
