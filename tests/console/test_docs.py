"""The user guide under docs/ builds with MkDocs Material in strict mode (broken links or nav fail)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_user_guide_builds_strictly(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "snapshots" / "index.html").exists()
    assert "lineage" in (tmp_path / "snapshots" / "index.html").read_text()
