"""Console pages rendered by Django (no browser): landing, quickstart, 404s, sandboxes pages and their tenant
scoping, the paged lineage API the graph reads, and the vendored JavaScript's checksums."""

import importlib.util
from datetime import timedelta
from pathlib import Path

from django.utils import timezone

from sandboxes.lineage import lineage
from sandboxes.models import Execution, Sandbox, Snapshot, SnapshotTag
from tests.conftest import client_for

ROOT = Path(__file__).resolve().parents[2]


def signed_in(client, org_a):
    client.force_login(org_a[1])
    return client


def make_sandbox(org, **fields) -> Sandbox:
    return Sandbox.objects.create(**{"organization": org, "runtime": "python", "state": Sandbox.State.STOPPED,
                                     **fields})


def make_snapshot(org, sandbox, *, minutes_ago: int, parent=None) -> Snapshot:
    return Snapshot.objects.create(organization=org, sandbox=sandbox, parent=parent, digest="ab" * 32,
                                   runtime="python", created_at=timezone.now() - timedelta(minutes=minutes_ago))


def test_a_visitor_gets_the_landing_page_with_sign_up_and_sign_in(client, db):
    page = client.get("/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "isolated sandboxes" in html and 'href="/signup"' in html and 'href="/login"' in html


def test_signup_lands_on_the_quickstart_which_shows_the_key_once(client, db):
    r = client.post("/signup", {"username": "grace", "email": "grace@example.com", "password": "correct-horse-42",
                                "organization": "Compilers"})
    assert r.status_code == 302 and r["Location"] == "/quickstart"
    page = client.get("/quickstart").content.decode()
    raw = page.split('<code id="new-key">')[1].split("</code>")[0]
    assert f"Authorization: Bearer {raw}" in page and f"MEM0_API_KEY={raw}" in page
    assert client_for(raw).get("/api/v1/me").json()["organization"]["name"] == "Compilers"
    assert '<code id="new-key">' not in client.get("/quickstart").content.decode()


def test_unknown_console_url_is_a_styled_404_with_navigation(client, org_a):
    page = signed_in(client, org_a).get("/no/such/page")
    assert page.status_code == 404
    html = page.content.decode()
    assert "Page not found" in html and 'href="/playground"' in html and "mem0.css" in html


def test_unknown_api_url_stays_a_json_404_for_every_method(client, org_a):
    signed_in(client, org_a)
    for method in ("get", "post", "put", "delete"):
        r = getattr(client, method)("/api/v1/no-such-thing")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_console_pages_need_a_sign_in(client, db):
    for path in ("/playground", "/sandboxes", "/snapshots", "/quickstart", "/sandboxes/sbx_x"):
        r = client.get(path)
        assert r.status_code == 302 and r["Location"].startswith("/login?next=")


def test_sandboxes_page_lists_and_filters_the_orgs_sandboxes_only(client, org_a, org_b):
    mine = make_sandbox(org_a[0], metadata={"team": "ml"})
    running = make_sandbox(org_a[0], state=Sandbox.State.RUNNING)
    theirs = make_sandbox(org_b[0])
    signed_in(client, org_a)
    html = client.get("/sandboxes").content.decode()
    assert mine.pk in html and running.pk in html and theirs.pk not in html
    assert "Kill all (1)" in html
    html = client.get("/sandboxes?state=running").content.decode()
    assert running.pk in html and mine.pk not in html
    html = client.get("/sandboxes?metadata=team%3Dml").content.decode()
    assert mine.pk in html and running.pk not in html
    bad = client.get("/sandboxes?metadata=" + "k" * 300 + "%3Dv")
    assert bad.status_code == 200 and 'role="alert"' in bad.content.decode()


def test_sandbox_page_shows_limits_history_forks_and_snapshots(client, org_a):
    org = org_a[0]
    parent = make_sandbox(org, limits={"memory_bytes": 268435456, "run_timeout_s": 30})
    fork = make_sandbox(org, parent=parent, memory="copied")
    Execution.objects.create(organization=org, sandbox=parent, code="print('hi')", status="succeeded",
                             exit_code=0, stdout="hi\n", stderr="oops <b>\n", wall_ms=12.5)
    snap = make_snapshot(org, parent, minutes_ago=1)
    html = signed_in(client, org_a).get(f"/sandboxes/{parent.pk}").content.decode()
    assert "memory_bytes" in html and "268435456" in html
    assert fork.pk in html and snap.pk in html
    assert '<span class="stdout">hi\n</span>' in html
    assert '<span class="stderr">oops &lt;b&gt;\n</span>' in html  # sandbox output is escaped text


def test_another_tenants_sandbox_is_404_on_the_page_and_kill(client, org_a, org_b):
    theirs = make_sandbox(org_b[0], state=Sandbox.State.RUNNING)
    signed_in(client, org_a)
    assert client.get(f"/sandboxes/{theirs.pk}").status_code == 404
    assert client.post(f"/sandboxes/{theirs.pk}/kill").status_code == 404
    theirs.refresh_from_db()
    assert theirs.state == Sandbox.State.RUNNING


def test_kill_all_leaves_other_tenants_alone(client, org_a, org_b):
    theirs = make_sandbox(org_b[0], state=Sandbox.State.RUNNING)
    r = signed_in(client, org_a).post("/sandboxes/kill-all")
    assert r.status_code == 302
    theirs.refresh_from_db()
    assert theirs.state == Sandbox.State.RUNNING


def test_lineage_api_pages_newest_first_with_edges_inside_the_page(org_a, org_b):
    org, _, key = org_a
    box = make_sandbox(org)
    chain = []
    for minutes in (50, 40, 30, 20, 10):
        chain.append(make_snapshot(org, box, minutes_ago=minutes, parent=chain[-1] if chain else None))
    restored = make_sandbox(org, source_snapshot=chain[-1])
    fork = make_sandbox(org, parent=restored)
    make_snapshot(org_b[0], make_sandbox(org_b[0]), minutes_ago=5)
    api = client_for(key)
    first = api.get("/api/v1/lineage?limit=2").json()
    ids = {n["id"] for n in first["nodes"]}
    assert {chain[4].pk, chain[3].pk, box.pk, restored.pk, fork.pk} == ids
    edges = {(e["from"], e["to"], e["kind"]) for e in first["edges"]}
    assert (chain[3].pk, chain[4].pk, "parent") in edges
    assert (chain[4].pk, restored.pk, "restore") in edges
    assert (restored.pk, fork.pk, "fork") in edges
    assert (box.pk, chain[4].pk, "snapshot") in edges
    assert all(e["from"] in ids and e["to"] in ids for e in first["edges"])
    assert first["next"] == chain[3].pk
    second = api.get(f"/api/v1/lineage?limit=2&before={first['next']}").json()
    assert {n["id"] for n in second["nodes"] if n["kind"] == "snapshot"} == {chain[2].pk, chain[1].pk}
    third = api.get(f"/api/v1/lineage?limit=2&before={second['next']}").json()
    assert [n["id"] for n in third["nodes"] if n["kind"] == "snapshot"] == [chain[0].pk]
    assert third["next"] is None


def test_lineage_api_filters_by_tag_and_refuses_bad_parameters(org_a, org_b):
    org, _, key = org_a
    box = make_sandbox(org)
    tagged, plain = make_snapshot(org, box, minutes_ago=2), make_snapshot(org, box, minutes_ago=1)
    SnapshotTag.objects.create(organization=org, snapshot=tagged, name="golden")
    api = client_for(key)
    nodes = api.get("/api/v1/lineage?tag=golden").json()["nodes"]
    assert [n["id"] for n in nodes if n["kind"] == "snapshot"] == [tagged.pk]
    assert plain.pk not in {n["id"] for n in nodes}
    for bad in ("0", "2001", "ten", "-1"):
        r = api.get(f"/api/v1/lineage?limit={bad}")
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    other = make_snapshot(org_b[0], make_sandbox(org_b[0]), minutes_ago=1)
    r = api.get(f"/api/v1/lineage?before={other.pk}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_vendored_javascript_matches_its_pinned_checksums():
    spec = importlib.util.spec_from_file_location("vendor_js", ROOT / "scripts" / "vendor_js.py")
    vendor_js = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vendor_js)
    assert vendor_js.check() == []
    assert {"codemirror.js", "cytoscape.min.js", "dagre.min.js", "cytoscape-dagre.js", "xterm.mjs", "xterm.css"} <= {
        p.name for p in (ROOT / "static" / "vendor").iterdir()}


def test_console_pages_load_no_script_from_another_origin(client, org_a):
    signed_in(client, org_a)
    for path in ("/", "/playground", "/sandboxes", "/snapshots", "/keys"):
        html = client.get(path).content.decode()
        assert "src=\"http" not in html and "href=\"http" not in html.replace('href="http://testserver', "")


def test_lineage_around_a_snapshot_walks_only_its_own_graph_level_by_level(org_a, org_b,
                                                                          django_assert_max_num_queries):
    org, _, key = org_a
    box = make_sandbox(org)
    first = make_snapshot(org, box, minutes_ago=9)
    second = make_snapshot(org, box, minutes_ago=8, parent=first)
    restored = make_sandbox(org, source_snapshot=second)
    fork = make_sandbox(org, parent=restored)
    other_chain = make_snapshot(org, make_sandbox(org), minutes_ago=7)
    make_snapshot(org_b[0], make_sandbox(org_b[0]), minutes_ago=1)
    api = client_for(key)
    whole = api.get(f"/api/v1/snapshots/{first.pk}/lineage").json()
    assert {n["id"] for n in whole["nodes"]} == {box.pk, first.pk, second.pk, restored.pk, fork.pk}
    assert other_chain.pk not in {n["id"] for n in whole["nodes"]} and whole["truncated"] is False
    assert {(e["from"], e["to"], e["kind"]) for e in whole["edges"]} == {
        (first.pk, second.pk, "parent"), (box.pk, first.pk, "snapshot"), (box.pk, second.pk, "snapshot"),
        (second.pk, restored.pk, "restore"), (restored.pk, fork.pk, "fork")}
    near = api.get(f"/api/v1/snapshots/{first.pk}/lineage?depth=1").json()
    assert {n["id"] for n in near["nodes"]} == {first.pk, second.pk, box.pk}
    assert api.get(f"/api/v1/snapshots/{first.pk}/lineage?depth=0").status_code == 400
    with django_assert_max_num_queries(2 + 4 * 2):  # the walk: two queries and a tag prefetch per level
        lineage(org, Snapshot.objects.get(pk=first.pk), depth=2)
