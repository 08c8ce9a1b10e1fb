"""The bus drops a run's output stream once its execution is recorded; replays then come from the row."""

from sandboxes.engine.protocol import OUTPUT_RECORDED_TTL_S
from sandboxes.engine.transport import make_bus
from tests.sandboxes.conftest import BUS_URL, PREFIX, run


def test_a_recorded_executions_stream_is_dropped_and_replays_come_from_the_row(api_pa, sandbox):
    bus = make_bus(BUS_URL, PREFIX)
    done = run(api_pa, sandbox["id"], "print('kept in the row')")
    assert done["status"] == "succeeded"
    key = f"{PREFIX}:exec:{done['id']}"
    assert 0 < bus.r.ttl(key) <= OUTPUT_RECORDED_TTL_S  # was an hour
    bus.r.delete(key)  # as it is once the grace has passed
    replay = api_pa.get(f"/api/v1/executions/{done['id']}/events").json()
    assert replay["done"] and replay["events"][0]["data"] == "kept in the row\n"


def test_a_killed_sandboxs_open_run_stream_is_dropped(api_pa, sandbox):
    bus = make_bus(BUS_URL, PREFIX)
    started = run(api_pa, sandbox["id"], "print('x', flush=True)\nimport time\ntime.sleep(60)", wait=False)
    key = f"{PREFIX}:exec:{started['id']}"
    assert bus.read_output(started["id"], 0, 10_000, 10)  # it is running and has published
    api_pa.delete(f"/api/v1/sandboxes/{sandbox['id']}")
    assert 0 < bus.r.ttl(key) <= OUTPUT_RECORDED_TTL_S
