"""Creating a running sandbox needs `sandboxes:write` by every route: restore needs it as well as snapshots:write."""

from accounts import services as accounts
from sandboxes.models import Sandbox
from tests.conftest import client_for


def test_restore_with_only_snapshot_scopes_is_403_and_creates_nothing(api_pa, pro_a, sandbox):
    org, owner, _ = pro_a
    snap = api_pa.post(f"/api/v1/sandboxes/{sandbox['id']}/snapshots", {}, format="json").json()
    _, snap_only = accounts.apikey_create(
        org=org, name="snap-only", created_by=owner, scopes=["snapshots:read", "snapshots:write"]
    )
    before = Sandbox.objects.filter(organization=org).count()
    r = client_for(snap_only).post(f"/api/v1/snapshots/{snap['id']}/restore", HTTP_IDEMPOTENCY_KEY="r1")
    assert r.status_code == 403, r.content
    assert r.json()["error"]["code"] == "permission_denied"
    assert r.json()["error"]["details"] == {"required_scope": "sandboxes:write"}
    assert Sandbox.objects.filter(organization=org).count() == before

    _, both = accounts.apikey_create(
        org=org, name="both", created_by=owner, scopes=["snapshots:write", "sandboxes:write"]
    )
    r = client_for(both).post(f"/api/v1/snapshots/{snap['id']}/restore", HTTP_IDEMPOTENCY_KEY="r1")
    assert r.status_code == 201, r.content  # the refused call left no idempotency record behind
    api_pa.delete(f"/api/v1/sandboxes/{r.json()['id']}")
