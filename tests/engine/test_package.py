"""The engine is plain Python: importing every engine module must not import Django."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = [
    "agent",
    "client",
    "factory",
    "supervisor",
    "pool",
    "zygote",
    "zygote_root",
    "isolation",
    "kernel",
    "go_runtime",
    "go_source",
    "go_toolchain",
    "layers",
    "files",
    "watch",
    "inotify",
    "runtime_info",
    "cgroups",
    "reaper",
    "runtimes",
    "linux",
    "wire",
    "iohub",
    "protocol",
    "sandbox",
    "transport",
    "transport.inprocess",
    "transport.redis_streams",
]


def test_engine_never_imports_django():
    code = (
        "import sys\n"
        + "".join(f"import sandboxes.engine.{m}\n" for m in MODULES)
        + "sys.exit(1 if any(m == 'django' or m.startswith('django.') for m in sys.modules) else 0)"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
