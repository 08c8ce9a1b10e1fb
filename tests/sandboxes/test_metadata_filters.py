"""`?metadata.KEY=value` filters on exact values of validated keys: request text never becomes an ORM lookup."""

import pytest

from sandboxes.models import Sandbox


@pytest.fixture
def labelled(org_a):
    """Two of org A's sandboxes (rows only: filtering needs no agent)."""
    org = org_a[0]
    return (
        Sandbox.objects.create(organization=org, runtime="python", metadata={"a": "aaaa!", "team.x": "ml"}),
        Sandbox.objects.create(organization=org, runtime="python", metadata={"a": "b"}),
    )


@pytest.mark.parametrize(
    "key",
    [
        "a__regex",
        "a__iregex",
        "a__contains",
        "a__gt",
        "a__isnull",
        "a__startswith",
        "a__in",
        "a__",
        "__a",
        "a b",
        "a%00",
        "a/b",
        "a$",
        "a\n",
        "",
    ],
)
def test_a_key_carrying_a_lookup_or_odd_characters_is_400(api_a, labelled, key):
    r = api_a.get("/api/v1/sandboxes", {f"metadata.{key}": "^a"})
    assert r.status_code == 400, (key, r.status_code, r.content[:200])
    assert r.json()["error"]["code"] == "invalid_request"


def test_a_regex_lookup_never_matches_by_pattern(api_a, labelled):
    """On 426d6cf `metadata.a__regex=^(a+)+$` ran the pattern (a ReDoS under the GIL on SQLite)."""
    r = api_a.get("/api/v1/sandboxes", {"metadata.a__regex": "^(a+)+!$"})
    assert r.status_code == 400


def test_exact_values_of_valid_keys_still_filter(api_a, labelled):
    first, second = labelled
    ids = lambda r: {s["id"] for s in r.json()["results"]}  # noqa: E731
    assert ids(api_a.get("/api/v1/sandboxes", {"metadata.a": "b"})) == {second.pk}
    assert ids(api_a.get("/api/v1/sandboxes", {"metadata.team.x": "ml"})) == {first.pk}
    assert ids(api_a.get("/api/v1/sandboxes", {"metadata.a": "aaaa"})) == set()  # exact, not a prefix
    assert ids(api_a.get("/api/v1/sandboxes", {"metadata.team.x": "ml", "metadata.a": "b"})) == set()


def test_a_filter_never_sees_another_tenant(api_b, labelled):
    assert api_b.get("/api/v1/sandboxes", {"metadata.a": "b"}).json()["results"] == []


@pytest.mark.parametrize(
    "metadata", [{"k\u0000": "v"}, {"k": "v\u0000"}, {"a__regex": "v"}, {"a b": "v"}, {"": "v"}]
)
def test_metadata_keys_are_filterable_names_and_values_carry_no_nul(api_a, metadata):
    """Every key a sandbox can be given can be filtered on; NUL is refused (PostgreSQL's jsonb cannot hold it)."""
    before = Sandbox.objects.count()
    r = api_a.post("/api/v1/sandboxes", {"runtime": "python", "metadata": metadata}, format="json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", r.content[:300]
    assert Sandbox.objects.count() == before


@pytest.mark.parametrize(
    "query",
    [
        {"cursor": "garbage"},
        {"cursor": "cD1ub3RhZGF0ZQ=="},
        {"limit": "abc"},
        {"limit": "-1"},
        {"ordering": "organization__name"},
        {"state": "x\u0000"},
        {"runtime": "x\u0000"},
        {"tag": "x\u0000"},
        {"sandbox_id": "x\u0000"},
        {"action": "x\u0000"},
        {"action": "key.\u0000"},
        {"metadata.a": "x\u0000"},
    ],
)
def test_other_list_parameters_never_give_a_500(api_a, labelled, query):
    """cD1ub3RhZGF0ZQ== is base64 of `p=notadate`: a position that is not a timestamp."""
    for path in ("/api/v1/sandboxes", "/api/v1/keys", "/api/v1/snapshots", "/api/v1/audit"):
        r = api_a.get(path, query)
        assert r.status_code in (200, 400, 404), (path, query, r.status_code, r.content[:200])
        if r.status_code != 200:
            assert r.json()["error"]["code"] in ("invalid_request", "not_found")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/sandboxes/sbx_1%00",
        "/api/v1/executions/exe_1%00",
        "/api/v1/snapshots/snp_1%00",
        "/api/v1/executions/exe_1%00/events",
    ],
)
def test_an_id_with_a_nul_is_404_not_500(api_a, path):
    r = api_a.get(path)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_filtered_list_follows_its_cursor(api_a, org_a):
    rows = [
        Sandbox.objects.create(organization=org_a[0], runtime="python", metadata={"batch": "b1"})
        for _ in range(3)
    ]
    Sandbox.objects.create(organization=org_a[0], runtime="python", metadata={"batch": "b2"})
    seen, url = [], "/api/v1/sandboxes?metadata.batch=b1&limit=1"
    while url:
        r = api_a.get(url)
        assert r.status_code == 200, r.content[:300]
        seen += [s["id"] for s in r.json()["results"]]
        url = r.json()["next"]
    assert seen == [s.pk for s in reversed(rows)]
