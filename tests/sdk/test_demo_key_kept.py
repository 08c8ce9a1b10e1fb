"""`make run` keeps one demo key across restarts: the key in var/demo-api-key is reused while it still works."""

from accounts import services
from sandboxes.management.commands.rundemo import demo_key_path, kept_demo_key
from tests.conftest import ensure_plans


def test_the_kept_key_is_reused_only_while_it_works_for_the_demo_org(db, settings, tmp_path):
    ensure_plans()
    settings.VAR_DIR = str(tmp_path)
    demo, _, raw = services.tenant_signup(username="demo", email="demo@example.com", password=None,
                                          org_name="Demo", org_slug="demo", plan="pro")
    assert kept_demo_key(demo) is None  # no file yet
    demo_key_path().write_text(raw + "\n")
    assert kept_demo_key(demo) == raw
    other, _, other_raw = services.tenant_signup(username="other", email="o@example.com", password=None,
                                                 org_name="Other", org_slug="other", plan="free")
    demo_key_path().write_text(other_raw)
    assert kept_demo_key(demo) is None  # a key of another organisation is never taken
    demo_key_path().write_text("mem0_garbage")
    assert kept_demo_key(demo) is None
    demo_key_path().write_text(raw)
    services.apikey_revoke(key=demo.api_keys.get())
    assert kept_demo_key(demo) is None  # revoked: the next start mints a new one
