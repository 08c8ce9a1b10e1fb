"""The console in headless Chromium against a live `rundemo` server with a real fork-agent: sign up, run code
and watch a line arrive before the run ends, stop a run, fork, snapshot, restore, the lineage graph, files,
revoke a key; every page at 1440 and 375 px with no severe browser-console errors."""

import uuid

import pytest
from django.urls import resolve
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.console.browser import (
    browser_available,
    chromium,
    page_overflows,
    screenshot_both_widths,
    severe_console_errors,
    wait,
)
from tests.sdk.live_server import rundemo_server

pytestmark = pytest.mark.skipif(not browser_available(), reason="needs chromium and chromium-driver: make sysdeps")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with rundemo_server(tmp_path_factory.mktemp("console-var")) as (live, _):
        yield live


@pytest.fixture(scope="module")
def driver(server):
    with chromium() as d:
        yield d


@pytest.fixture(scope="module")
def signed_up(server, driver):
    """A new user signed up through the form; the quickstart page it lands on, as text."""
    name = f"ada{uuid.uuid4().hex[:8]}"
    driver.get(f"{server.base_url}/signup")
    driver.find_element(By.NAME, "username").send_keys(name)
    driver.find_element(By.NAME, "email").send_keys(f"{name}@example.com")
    driver.find_element(By.NAME, "password").send_keys("correct-horse-battery-42")
    driver.find_element(By.NAME, "organization").send_keys(f"Org {name}")
    driver.find_element(By.CSS_SELECTOR, "form.card button").click()
    wait(driver, lambda d: "/quickstart" in d.current_url)
    return driver.find_element(By.TAG_NAME, "main").text


@pytest.fixture(scope="module")
def ids():
    """Ids the flow made (fork parent and child, snapshot, restored sandbox) for the later checks."""
    return {}


def by_id(driver, element_id: str):
    return driver.find_element(By.ID, element_id)


def open_playground(server, driver):
    driver.get(f"{server.base_url}/playground")
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "playground")


def set_code(driver, code: str) -> None:
    driver.execute_script("window.mem0Playground.editor.setCode(arguments[0])", code)


def run_code(driver, code: str) -> str:
    """Run `code` with the Run button and wait for its end; the output pane's text."""
    set_code(driver, code)
    by_id(driver, "run").click()
    wait(driver, lambda d: by_id(d, "run").is_enabled() and by_id(d, "status").text not in ("queued", "running"))
    return by_id(driver, "output").text


def current_sandbox(driver) -> str:
    return by_id(driver, "sandbox-id").text


def alert_text(driver) -> str:
    return by_id(driver, "alert").text


def test_landing_page_tells_a_visitor_what_mem0_is(server, driver):
    driver.get(f"{server.base_url}/")
    text = driver.find_element(By.TAG_NAME, "main").text
    assert "isolated sandboxes" in text and "Sign up" in text
    assert not page_overflows(driver)
    screenshot_both_widths(driver, "landing")
    assert severe_console_errors(driver) == []
    for page in ("signup", "login"):
        driver.get(f"{server.base_url}/{page}")
        assert not page_overflows(driver)
        screenshot_both_widths(driver, page)
        assert severe_console_errors(driver) == []


def test_signup_lands_on_a_quickstart_with_the_new_key(signed_up, driver):
    key = by_id(driver, "new-key").text
    assert key.startswith("mem0_")
    assert f"Bearer {key}" in signed_up and "MEM0_API_KEY=" + key in signed_up
    screenshot_both_widths(driver, "quickstart")
    assert severe_console_errors(driver) == []


def test_the_dashboard_runs_the_demo_box(server, driver, signed_up):
    driver.get(f"{server.base_url}/")
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "dashboard")
    driver.find_element(By.CSS_SELECTOR, "#demo-run button").click()
    wait(driver, lambda d: "Hello from 3." in by_id(d, "demo-output").text)
    assert severe_console_errors(driver) == []


def test_playground_streams_a_line_before_the_run_ends(server, driver, signed_up):
    open_playground(server, driver)
    set_code(driver, 'import time\nprint("first line", flush=True)\ntime.sleep(4)\nprint("last line")\n')
    by_id(driver, "run").click()
    wait(driver, lambda d: "first line" in by_id(d, "output").text)
    assert "last line" not in by_id(driver, "output").text
    assert by_id(driver, "status").text == "running"
    wait(driver, lambda d: by_id(d, "status").text == "succeeded")
    assert "last line" in by_id(driver, "output").text
    assert "ms wall" in by_id(driver, "timings").text
    assert current_sandbox(driver).startswith("sbx_")
    screenshot_both_widths(driver, "playground")
    assert severe_console_errors(driver) == []


def test_playground_tells_stdout_from_stderr_and_runs_on_ctrl_enter(server, driver, signed_up):
    open_playground(server, driver)
    set_code(driver, 'import sys\nprint("to out")\nprint("to err", file=sys.stderr)\n')
    driver.find_element(By.CSS_SELECTOR, "#editor .cm-content").send_keys(Keys.CONTROL, Keys.ENTER)
    wait(driver, lambda d: by_id(d, "status").text in ("succeeded", "failed"))
    stdout = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#output .stdout")]
    stderr = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#output .stderr")]
    assert any("to out" in t for t in stdout) and not any("to err" in t for t in stdout)
    assert any("to err" in t for t in stderr)


def test_the_sandbox_survives_a_page_reload(server, driver, signed_up):
    open_playground(server, driver)
    before = current_sandbox(driver)
    run_code(driver, "kept = 41")
    driver.refresh()
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "playground")
    assert current_sandbox(driver) == before
    assert "42" in run_code(driver, "print(kept + 1)")


def test_stop_cancels_the_run_or_shows_the_apis_error(server, driver, signed_up):
    """POST /api/v1/executions/{id}/cancel is built on another branch: where it exists the run must end as
    cancelled and the sandbox keep running; until then the button must show the API's error."""
    open_playground(server, driver)
    set_code(driver, 'import time\nprint("waiting", flush=True)\ntime.sleep(15)\n')
    by_id(driver, "run").click()
    wait(driver, lambda d: "waiting" in by_id(d, "output").text)
    sandbox = current_sandbox(driver)
    by_id(driver, "stop").click()
    has_cancel = resolve("/api/v1/executions/exe_x/cancel").func.__name__ != "api_not_found"
    if has_cancel:
        wait(driver, lambda d: by_id(d, "run").is_enabled())
        assert by_id(driver, "status").text not in ("running", "succeeded")
        assert current_sandbox(driver) == sandbox
        assert "1" in run_code(driver, "print(1)")
        assert severe_console_errors(driver) == []
    else:
        wait(driver, lambda d: "Could not stop the run" in alert_text(d))
        assert "not_found" in alert_text(driver)
        assert all("/cancel" in e for e in severe_console_errors(driver))  # the browser logs the 404 itself
        wait(driver, lambda d: by_id(d, "run").is_enabled(), timeout=90)


def test_fork_carries_memory_into_a_new_sandbox(server, driver, signed_up, ids):
    open_playground(server, driver)
    run_code(driver, "secret = 'from the parent'")
    parent = current_sandbox(driver)
    by_id(driver, "fork").click()
    wait(driver, lambda d: current_sandbox(d) != parent)
    assert f"Forked {parent} into {current_sandbox(driver)}" in alert_text(driver)
    assert "from the parent" in run_code(driver, "print(secret)")
    ids.update(fork_parent=parent, fork_child=current_sandbox(driver))


def test_snapshot_then_restore_brings_the_workspace_back(server, driver, signed_up, ids):
    open_playground(server, driver)
    run_code(driver, "open('notes.txt', 'w').write('kept in the snapshot')")
    source = current_sandbox(driver)
    by_id(driver, "snapshot").click()
    wait(driver, lambda d: "Snapshot snp_" in alert_text(d) or "Could not" in alert_text(d))
    snapshot_id = alert_text(driver).split()[1]
    assert snapshot_id.startswith("snp_")
    wait(driver, lambda d: by_id(d, "restore").is_enabled())
    by_id(driver, "restore").click()
    wait(driver, lambda d: current_sandbox(d) != source)
    restored = current_sandbox(driver)
    assert f"Restored {snapshot_id}" in alert_text(driver)
    assert "kept in the snapshot" in run_code(driver, "print(open('notes.txt').read())")
    ids.update(source=source, snapshot=snapshot_id, restored=restored)


def test_workspace_files_upload_list_and_delete(server, driver, signed_up, tmp_path):
    open_playground(server, driver)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#files tr[data-path='notes.txt']"))
    upload = tmp_path / "upload-me.csv"
    upload.write_text("a,b\n1,2\n")
    by_id(driver, "upload").send_keys(str(upload))
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#files tr[data-path='upload-me.csv']"))
    assert "a,b" in run_code(driver, "print(open('upload-me.csv').read())")
    delete = "#files tr[data-path='upload-me.csv'] button.danger"
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, delete).click() or True)
    driver.switch_to.alert.accept()
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "#files tr[data-path='upload-me.csv']"))
    assert severe_console_errors(driver) == []


def test_lineage_graph_shows_the_snapshot_fork_and_restore(server, driver, signed_up, ids):
    driver.get(f"{server.base_url}/snapshots")
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "lineage")
    nodes = set(driver.execute_script("return window.mem0Lineage.nodes().map(n => n.id())"))
    edges = {tuple(e) for e in driver.execute_script(
        "return window.mem0Lineage.edges().map(e => [e.data('source'), e.data('target'), e.data('kind')])")}
    assert {ids["snapshot"], ids["source"], ids["restored"]} <= nodes
    assert (ids["source"], ids["snapshot"], "snapshot") in edges
    assert (ids["snapshot"], ids["restored"], "restore") in edges
    assert (ids["fork_parent"], ids["fork_child"], "fork") in edges or ids["fork_child"] == ids["source"]
    driver.execute_script("window.mem0Lineage.getElementById(arguments[0]).emit('tap')", ids["snapshot"])
    wait(driver, lambda d: ids["snapshot"] in by_id(d, "node-details").text)
    details = by_id(driver, "node-details")
    details.find_element(By.CSS_SELECTOR, "input").send_keys("golden")
    details.find_element(By.CSS_SELECTOR, "form button").click()
    wait(driver, lambda d: "golden" in by_id(d, "node-details").text)
    by_id(driver, "tag").send_keys("golden", Keys.ENTER)
    wait(driver, lambda d: "1 snapshot tagged golden" in by_id(d, "summary").text)
    screenshot_both_widths(driver, "snapshots")
    assert severe_console_errors(driver) == []


def test_a_sandbox_opens_in_the_playground_from_its_page(server, driver, signed_up, ids):
    driver.get(f"{server.base_url}/sandboxes/{ids['fork_child']}")
    driver.find_element(By.CSS_SELECTOR, "[data-open-playground]").click()
    wait(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "playground")
    assert current_sandbox(driver) == ids["fork_child"]
    assert "from the parent" in run_code(driver, "print(secret)")


def test_sandboxes_list_filters_and_sandbox_page_shows_history(server, driver, signed_up, ids):
    driver.get(f"{server.base_url}/sandboxes?state=running")
    rows = driver.find_elements(By.CSS_SELECTOR, "#sandboxes tr[data-sandbox]")
    assert ids["restored"] in {r.get_attribute("data-sandbox") for r in rows}
    assert all("running" in r.text for r in rows)
    screenshot_both_widths(driver, "sandboxes")
    driver.get(f"{server.base_url}/sandboxes/{ids['source']}")
    page = driver.page_source  # older runs are folded (<details>): their code is in the page, not shown
    assert "open('notes.txt', 'w')" in page and ids["snapshot"] in page and "memory_bytes" in page
    screenshot_both_widths(driver, "sandbox")
    driver.find_element(By.CSS_SELECTOR, "form[data-confirm] button.danger").click()
    driver.switch_to.alert.accept()
    wait(driver, lambda d: "killed" in d.find_element(By.TAG_NAME, "main").text)
    assert "stopped" in driver.find_element(By.CSS_SELECTOR, "main .state").text
    assert severe_console_errors(driver) == []


def test_revoking_a_key_asks_first_then_revokes(server, driver, signed_up):
    driver.get(f"{server.base_url}/keys")
    button = driver.find_element(By.CSS_SELECTOR, "#keys form[data-confirm] button")
    button.click()
    driver.switch_to.alert.dismiss()
    assert "revoked" not in driver.find_element(By.ID, "keys").text
    driver.find_element(By.CSS_SELECTOR, "#keys form[data-confirm] button").click()
    driver.switch_to.alert.accept()
    wait(driver, lambda d: "revoked" in d.find_element(By.ID, "keys").text)
    screenshot_both_widths(driver, "keys")
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - no dialog is left open
    assert severe_console_errors(driver) == []


@pytest.mark.parametrize("path", ["/", "/playground", "/sandboxes", "/snapshots", "/keys", "/audit", "/members",
                                  "/no-such-page"])
def test_every_page_fits_both_widths_without_console_errors(server, driver, signed_up, path):
    driver.get(f"{server.base_url}{path}")
    if path in ("/", "/playground", "/snapshots"):
        wait(driver, lambda d: d.execute_script("return document.body.dataset.ready"))
    for width in (1440, 375):
        driver.set_window_size(width, 900)
        # the graph's canvas follows the window on its resize event: wait for the page to settle
        wait(driver, lambda d: not page_overflows(d), timeout=10, message=f"{path} is wider than {width} px")
    name = path.strip("/").replace("/", "-") or "dashboard"
    screenshot_both_widths(driver, name)
    if path == "/no-such-page":
        assert "Page not found" in driver.find_element(By.TAG_NAME, "h1").text
        assert driver.find_elements(By.CSS_SELECTOR, "main a[href='/playground']")
    errors = [e for e in severe_console_errors(driver) if not (path == "/no-such-page" and "404" in e)]
    assert errors == []
