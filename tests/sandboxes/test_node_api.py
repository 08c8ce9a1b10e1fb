"""Node.js sandboxes through the REST API: state and top-level await across runs, fork with memory fresh."""

from tests.sandboxes.conftest import run


def test_node_sandbox_keeps_state_and_forks_fresh(api_pa, engine):
    r = api_pa.post("/api/v1/sandboxes", {"runtime": "node"}, format="json")
    assert r.status_code == 201, r.content
    sid = r.json()["id"]
    assert r.json()["runtime"] == "node"
    try:
        first = run(api_pa, sid, "let n = 20; const f = x => x + 1; async function g() { return 21 }")
        assert first["status"] == "succeeded", first
        out = run(
            api_pa, sid, "console.log(f(n) + await g()); require('fs').writeFileSync('kept.txt', 'file')"
        )
        assert (out["status"], out["stdout"]) == ("succeeded", "42\n")
        failed = run(api_pa, sid, "null.x")
        assert failed["status"] == "failed" and failed["stderr"].startswith("Uncaught TypeError"), failed
        r = api_pa.post(f"/api/v1/sandboxes/{sid}/fork")
        assert r.status_code == 201, r.content
        fork = r.json()
        assert (fork["memory"], fork["parent_id"], fork["runtime"]) == ("fresh", sid, "node")
        out = run(api_pa, fork["id"], "console.log(typeof f, require('fs').readFileSync('kept.txt', 'utf8'))")
        assert out["stdout"] == "undefined file\n", out
        api_pa.delete(f"/api/v1/sandboxes/{fork['id']}")
    finally:
        api_pa.delete(f"/api/v1/sandboxes/{sid}")
