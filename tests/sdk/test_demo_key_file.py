"""The real `manage.py rundemo` (stdout redirected to a log by the fixture) keeps the demo key out of the log."""

import os
import stat


def test_the_demo_key_is_not_in_the_log_and_its_file_is_0600(mem0_server):
    log = (mem0_server.var_dir / "rundemo.log").read_text(errors="replace")
    assert mem0_server.api_key.startswith("mem0_") and mem0_server.api_key not in log
    key_file = mem0_server.var_dir / "demo-api-key"
    assert str(key_file) in log
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
