"""A real Mem0 server (`manage.py rundemo` in a subprocess, its own temp dir) for black-box API tests."""

from tests.sdk.conftest import mem0_server  # noqa: F401  (the same fixture the SDK tests use)
