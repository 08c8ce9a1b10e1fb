"""What an agent tells the registry about each runtime it serves: language, version, whether a fork
carries memory, and how many warm sandboxes its pool holds (``GET /api/v1/runtimes`` sums these).

The version is found once per runtime when the agent starts: a template may name it (``version``);
Python runtimes run the agent's own interpreter (the zygote is ``sys.executable``); others are asked
(``node --version``, ``go version``). Only the version number leaves the host, never a path.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess

from .runtimes import Runtime

_VERSION = re.compile(r"(\d+(?:\.\d+){1,2}[0-9A-Za-z.+-]{0,16})")
_PROBES = {"javascript": ("node", "--version"), "node": ("node", "--version"), "go": ("go", "version")}


def runtime_version(runtime: Runtime) -> str:
    """The runtime's version number, or "unknown" when it cannot be told."""
    named = getattr(runtime, "version", None)
    if isinstance(named, str) and named:
        return _clean(named)
    if runtime.language == "python":
        return platform.python_version()
    probe = _PROBES.get(runtime.language)
    binary = getattr(runtime, "binary", None) or (probe and shutil.which(probe[0]))
    if not probe or not binary:
        return "unknown"
    try:
        done = subprocess.run([binary, probe[1]], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return _clean(done.stdout)


def _clean(text: str) -> str:
    found = _VERSION.search(text or "")
    return found.group(1) if found else "unknown"


def template_info(runtime: Runtime, version: str, pool_size: int) -> dict:
    return {
        "name": runtime.name,
        "language": runtime.language,
        "version": version,
        "fork_memory": "carried" if runtime.can_fork else "fresh",
        "pool_size": pool_size,
    }
