"""`manage.py rundemo` shows the demo key on a terminal only; it keeps it in a file only its owner can read (the
next start reuses it)."""

import io
import os
import stat

from sandboxes.management.commands.rundemo import Command, demo_key_path

KEY = "mem0_abcdefghijkl_" + "s" * 40


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_redirected_stdout_gets_a_path_and_the_key_goes_to_a_0600_file(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    demo_key_path().write_text("old")
    os.chmod(demo_key_path(), 0o644)  # left world-readable by an older run
    out = io.StringIO()
    Command(stdout=out).show_key(KEY)
    assert KEY not in out.getvalue() and str(demo_key_path()) in out.getvalue()
    assert demo_key_path().read_text().strip() == KEY
    assert stat.S_IMODE(os.stat(demo_key_path()).st_mode) == 0o600


def test_a_terminal_gets_the_key_and_it_is_kept_in_a_0600_file(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    out = Terminal()
    Command(stdout=out).show_key(KEY)
    assert out.getvalue().splitlines()[-1] == KEY
    assert demo_key_path().read_text().strip() == KEY
    assert stat.S_IMODE(os.stat(demo_key_path()).st_mode) == 0o600
