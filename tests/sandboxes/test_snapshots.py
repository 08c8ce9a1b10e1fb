from accounts.models import AuditEvent
from tests.sandboxes.conftest import run

TREE = ("import os, random\nrandom.seed(3)\nos.makedirs('/workspace/d/e', exist_ok=True)\n"
        "os.makedirs('/workspace/empty')\n"
        "open('/workspace/d/big.bin','wb').write(random.randbytes(3_000_000))\n"
        "open('/workspace/d/e/t.txt','w').write('v1')\nos.symlink('e/t.txt','/workspace/d/link')\n"
        "os.chmod('/workspace/d/e/t.txt', 0o640)\nprint('ok')")
CHECK = ("import os, stat, hashlib\nprint(open('/workspace/d/e/t.txt').read(), os.readlink('/workspace/d/link'), "
         "oct(stat.S_IMODE(os.stat('/workspace/d/e/t.txt').st_mode)), os.path.isdir('/workspace/empty'), "
         "hashlib.sha256(open('/workspace/d/big.bin','rb').read()).hexdigest()[:16])")


def test_snapshot_restore_is_exact_and_lineage_links_everything(api_pa, sandbox, pro_a):
    sid = sandbox["id"]
    assert run(api_pa, sid, TREE)["stdout"].strip() == "ok"
    expected = run(api_pa, sid, CHECK)["stdout"]
    r = api_pa.post(f"/api/v1/sandboxes/{sid}/snapshots", {"name": "v1"}, format="json")
    assert r.status_code == 201, r.content
    s1 = r.json()
    assert s1["logical_bytes"] >= 3_000_000 and s1["stored_bytes"] > 0 and s1["digest"] and s1["tier"] == "hot"
    run(api_pa, sid, "open('/workspace/d/e/t.txt','w').write('v2')")
    s2 = api_pa.post(f"/api/v1/sandboxes/{sid}/snapshots", {}, format="json").json()
    assert s2["parent_id"] == s1["id"]
    assert s2["stored_bytes"] < 100_000, "an unchanged 3 MB file was stored again"

    r = api_pa.post(f"/api/v1/snapshots/{s1['id']}/restore")
    assert r.status_code == 201
    restored = r.json()
    assert restored["source_snapshot_id"] == s1["id"]
    assert run(api_pa, restored["id"], CHECK)["stdout"] == expected

    s3 = api_pa.post(f"/api/v1/sandboxes/{restored['id']}/snapshots", {}, format="json").json()
    assert s3["parent_id"] == s1["id"]
    lin = api_pa.get(f"/api/v1/snapshots/{s2['id']}/lineage").json()
    ids = {n["id"] for n in lin["nodes"]}
    assert {s1["id"], s2["id"], s3["id"], sid, restored["id"]} <= ids
    edges = {(e["from"], e["to"], e["kind"]) for e in lin["edges"]}
    assert (s1["id"], s2["id"], "parent") in edges and (s1["id"], restored["id"], "restore") in edges
    assert (sid, s1["id"], "snapshot") in edges
    actions = set(AuditEvent.objects.filter(organization=pro_a[0]).values_list("action", flat=True))
    assert {"snapshot.create", "sandbox.restore"} <= actions
    api_pa.delete(f"/api/v1/sandboxes/{restored['id']}")


def test_tags_point_to_one_snapshot_per_org(api_pa, sandbox):
    sid = sandbox["id"]
    a = api_pa.post(f"/api/v1/sandboxes/{sid}/snapshots", {}, format="json").json()
    b = api_pa.post(f"/api/v1/sandboxes/{sid}/snapshots", {}, format="json").json()
    assert api_pa.put(f"/api/v1/snapshots/{a['id']}/tags/production-v1").json()["tags"] == ["production-v1"]
    assert api_pa.put(f"/api/v1/snapshots/{b['id']}/tags/production-v1").json()["tags"] == ["production-v1"]
    assert api_pa.get(f"/api/v1/snapshots/{a['id']}").json()["tags"] == []
    tagged = api_pa.get("/api/v1/snapshots?tag=production-v1").json()["results"]
    assert [s["id"] for s in tagged] == [b["id"]]
    r = api_pa.put(f"/api/v1/snapshots/{a['id']}/tags/bad tag!")
    assert r.status_code in (400, 404)


def test_deleting_a_parent_keeps_children_restorable(api_pa, sandbox):
    sid = sandbox["id"]
    run(api_pa, sid, "open('/workspace/keep.txt','w').write('kept')")
    parent = api_pa.post(f"/api/v1/sandboxes/{sid}/snapshots", {}, format="json").json()
    run(api_pa, sid, "open('/workspace/more.txt','w').write('more')")
    child = api_pa.post(f"/api/v1/sandboxes/{sid}/snapshots", {}, format="json").json()
    assert api_pa.delete(f"/api/v1/snapshots/{parent['id']}").status_code == 204
    assert api_pa.get(f"/api/v1/snapshots/{parent['id']}").status_code == 404
    from sandboxes.storage import chunks_collect

    swept = chunks_collect(grace_seconds=0)
    assert swept
    restored = api_pa.post(f"/api/v1/snapshots/{child['id']}/restore").json()
    out = run(api_pa, restored["id"], "print(open('/workspace/keep.txt').read(), open('/workspace/more.txt').read())")
    assert out["stdout"].split() == ["kept", "more"]
    api_pa.delete(f"/api/v1/sandboxes/{restored['id']}")


def test_other_tenants_snapshots_are_404(api_pa, api_pb, sandbox):
    snap = api_pa.post(f"/api/v1/sandboxes/{sandbox['id']}/snapshots", {}, format="json").json()
    for method, path in (("get", f"/api/v1/snapshots/{snap['id']}"), ("delete", f"/api/v1/snapshots/{snap['id']}"),
                         ("post", f"/api/v1/snapshots/{snap['id']}/restore"),
                         ("put", f"/api/v1/snapshots/{snap['id']}/tags/x"),
                         ("get", f"/api/v1/snapshots/{snap['id']}/lineage")):
        r = getattr(api_pb, method)(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, path)
    assert api_pb.get("/api/v1/snapshots").json()["results"] == []
    assert api_pa.get(f"/api/v1/snapshots/{snap['id']}").status_code == 200
