"""Snapshot storage through the API: charged for what the organisation keeps referenced (finding 7), and
no cross-tenant dedup oracle (finding 8). Real agents, real block store."""

import random

from billing.models import PlanOverride
from sandboxes.engine.blockstore.chunking import _cdc
from sandboxes.models import Snapshot
from tests.sandboxes.conftest import run

MB = 1_000_000
RANDOM_20MB = "import os; open('/workspace/r.bin','wb').write(os.urandom(20_000_000)); print('ok')"
SHA = "import hashlib; print(hashlib.sha256(open('/workspace/r.bin','rb').read()).hexdigest())"


def used(api) -> int:
    return api.get("/api/v1/usage").json()["storage_bytes"]["used"]


def snapshot(api, sandbox_id: str):
    return api.post(f"/api/v1/sandboxes/{sandbox_id}/snapshots", {}, format="json")


def test_deleting_the_first_of_two_identical_snapshots_keeps_the_charge(api_pa, sandbox):
    sid = sandbox["id"]
    assert run(api_pa, sid, RANDOM_20MB)["stdout"].strip() == "ok"
    digest = run(api_pa, sid, SHA)["stdout"]
    s1 = snapshot(api_pa, sid).json()
    s2 = snapshot(api_pa, sid).json()
    assert s2["stored_bytes"] < 100_000  # the second added (almost) nothing: dedup within the tenant holds
    assert 20 * MB <= used(api_pa) < 20.2 * MB
    assert api_pa.delete(f"/api/v1/snapshots/{s1['id']}").status_code == 204
    assert 20 * MB <= used(api_pa) < 20.2 * MB, "S2 still keeps the 20 MB: it must still be charged"
    restored = api_pa.post(f"/api/v1/snapshots/{s2['id']}/restore").json()
    assert run(api_pa, restored["id"], SHA)["stdout"] == digest
    api_pa.delete(f"/api/v1/sandboxes/{restored['id']}")
    assert api_pa.delete(f"/api/v1/snapshots/{s2['id']}").status_code == 204
    assert used(api_pa) == 0


def test_a_snapshot_that_would_pass_the_plan_is_refused_and_not_recorded(api_pa, pro_a, sandbox):
    PlanOverride.objects.create(organization=pro_a[0], snapshot_storage_bytes=30 * MB)
    sid = sandbox["id"]
    run(api_pa, sid, RANDOM_20MB)
    first = snapshot(api_pa, sid)
    assert first.status_code == 201
    before = used(api_pa)
    run(api_pa, sid, "import os; open('/workspace/more.bin','wb').write(os.urandom(15_000_000))")
    r = snapshot(api_pa, sid)
    assert r.status_code == 429, r.content
    error = r.json()["error"]
    assert error["code"] == "quota_exceeded" and error["details"]["limit_name"] == "snapshot_storage_bytes"
    assert error["details"]["used"] > 30 * MB and error["details"]["limit"] == 30 * MB
    assert Snapshot.objects.filter(organization=pro_a[0]).count() == 1
    assert used(api_pa) == before
    # the 20 MB stay charged while the first snapshot keeps them, even once the file is gone
    run(api_pa, sid, "import os; os.remove('/workspace/r.bin')")
    assert snapshot(api_pa, sid).status_code == 429
    # deleting that snapshot makes room
    assert api_pa.delete(f"/api/v1/snapshots/{first.json()['id']}").status_code == 204
    assert snapshot(api_pa, sid).status_code == 201
    assert 15 * MB <= used(api_pa) < 15.2 * MB


def test_another_tenants_file_costs_the_same_as_a_wrong_guess(api_pa, api_pb, sandbox, engine):
    random.seed(8)
    # one chunk, so the wrong guess (last byte flipped) shares no chunk with the right one in A's own store
    assert len(list(_cdc.cut_buf(random.randbytes(40_000)))) == 1
    secret = "import random; random.seed(8); data = random.randbytes(40_000)\n"
    write_right = secret + "open('/workspace/secret.bin','wb').write(data)"
    write_wrong = secret + "open('/workspace/secret.bin','wb').write(data[:-1] + bytes([data[-1] ^ 1]))"
    victim = api_pb.post("/api/v1/sandboxes", {"runtime": "python"}, format="json").json()
    right_box = sandbox
    wrong_box = api_pa.post("/api/v1/sandboxes", {"runtime": "python"}, format="json").json()
    try:
        run(api_pb, victim["id"], write_right)
        assert snapshot(api_pb, victim["id"]).status_code == 201
        run(api_pa, right_box["id"], write_right)
        run(api_pa, wrong_box["id"], write_wrong)
        right = snapshot(api_pa, right_box["id"]).json()
        wrong = snapshot(api_pa, wrong_box["id"]).json()
    finally:
        api_pb.delete(f"/api/v1/sandboxes/{victim['id']}")
        api_pa.delete(f"/api/v1/sandboxes/{wrong_box['id']}")
    assert right["new_bytes"] == wrong["new_bytes"] >= 40_000
    assert abs(right["stored_bytes"] - wrong["stored_bytes"]) < 16 and right["stored_bytes"] >= 40_000
