"""The Go runtime through the REST API: compile and run, compile_error as an execution status, fork
with the workspace and fresh memory, the runtime in the catalog."""

from tests.sandboxes.conftest import run

HELLO = 'package main\nimport "fmt"\nfunc main() { fmt.Println(6 * 7) }'


def test_go_runs_compile_errors_and_forks_over_http(api_pa, engine):
    r = api_pa.post("/api/v1/sandboxes", {"runtime": "go"}, format="json")
    assert r.status_code == 201, r.content
    sb = r.json()
    ex = run(api_pa, sb["id"], HELLO)
    assert (ex["status"], ex["exit_code"], ex["stdout"]) == ("succeeded", 0, "42\n"), ex
    ex = run(api_pa, sb["id"], "package main\nfunc main() { undefined() }")
    assert ex["status"] == "compile_error" and "undefined: undefined" in ex["stderr"], ex
    assert api_pa.get(f"/api/v1/executions/{ex['id']}").json()["status"] == "compile_error"
    run(api_pa, sb["id"], 'os.WriteFile("f.txt", []byte("parent"), 0o644)')
    r = api_pa.post(f"/api/v1/sandboxes/{sb['id']}/fork")
    assert r.status_code == 201, r.content
    fork = r.json()
    assert fork["memory"] == "fresh" and fork["runtime"] == "go" and fork["parent_id"] == sb["id"]
    ex = run(api_pa, fork["id"], 'b, _ := os.ReadFile("f.txt")\nfmt.Println(string(b))')
    assert ex["stdout"] == "parent\n", ex
    for sid in (sb["id"], fork["id"]):
        api_pa.delete(f"/api/v1/sandboxes/{sid}")
