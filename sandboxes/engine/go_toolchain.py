"""The Go toolchain on the host (Debian's ``golang``) and the shared, read-only build cache of Go sandboxes.

Go sandboxes compile inside their own isolation (``go_runtime.py``) with the toolchain bound read-only
into the zygote's root at the distribution's own paths (/usr/lib/go-1.XX and the /usr/share/go-1.XX its
entries link to) and ``/usr/bin/go``. Building the standard library for a first program costs ~30 s of
CPU here, so the agent builds it once at start, on the host, outside any sandbox, with exactly the flags
and settings sandboxes use (``BUILD_ENV``, ``STD_FLAGS``: cache keys depend on them), into a cache
directory that sandboxes see read-only at ``GOCACHE_PATH``: no sandbox can write it, so none can poison
another's build. The standard library is the toolchain's own code, the one thing built outside a sandbox.
Warm, this step costs ~0.5 s at agent start (the go command hashes the sources); it also refreshes the
entries' use times, so Go's own trimming (entries unused for 5 days) never empties it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger("mem0.engine.go")

DEFAULT_CACHE_DIR = "/var/cache/mem0/go-build"
GOCACHE_PATH = "/usr/lib/go-cache"  # where sandboxes see the shared cache (read-only)
GO_BINARY = "/usr/bin/go"  # inside the root: a link to the toolchain's go command
PREPARE_TIMEOUT_S = 900
# Settings of every build, on the host and in sandboxes: no network (GOPROXY=off), no toolchain
# download, no cgo (no C compiler in sandboxes; static binaries), no user or workspace go.env/go.work.
# The module index of a sandbox's build directory is never written to the read-only
# cache because the build files carry a future mtime (Go indexes only files older than 2 s).
BUILD_ENV = {
    "CGO_ENABLED": "0",
    "GO111MODULE": "on",
    "GOENV": "off",
    "GOFLAGS": "-mod=mod",
    "GOPROXY": "off",
    "GOSUMDB": "off",
    "GOTELEMETRY": "off",
    "GOTOOLCHAIN": "local",
    "GOWORK": "off",
}
STD_FLAGS = ("-trimpath",)  # affect the standard library's cache keys: the same on both sides
PROGRAM_FLAGS = (*STD_FLAGS, "-buildvcs=false", "-ldflags=-s -w")  # -s -w: ~30% less link time


@dataclass(frozen=True)
class GoToolchain:
    goroot: str  # e.g. /usr/lib/go-1.19
    linked_dirs: tuple[str, ...]  # directories GOROOT's entries link into (Debian: /usr/share/go-1.19)
    version: str  # e.g. go1.19.8


def find_toolchain() -> GoToolchain | None:
    """The Go toolchain of ``go`` on the system PATH, or None when there is none."""
    go = shutil.which("go", path="/usr/bin:/bin")
    if go is None:
        return None
    goroot = os.path.dirname(os.path.dirname(os.path.realpath(go)))
    try:
        with open(os.path.join(goroot, "VERSION")) as f:
            version = f.readline().strip()
    except OSError:
        return None
    linked = set()
    for name in os.listdir(goroot):
        path = os.path.join(goroot, name)
        if os.path.islink(path):
            target = os.path.realpath(path)
            if not target.startswith(goroot + "/") and target.startswith("/usr/"):
                linked.add(os.path.dirname(target) if os.path.isdir(target) else target)
    # Only whole toolchain directories (/usr/share/go-1.19), not e.g. /usr/share/doc.
    dirs = tuple(sorted(d for d in linked if os.path.basename(d) == os.path.basename(goroot)))
    return GoToolchain(goroot=goroot, linked_dirs=dirs, version=version)


def build_env(goroot: str, home: str, gocache: str) -> dict[str, str]:
    """The environment of a ``go`` command of ours (nothing else of the caller's)."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "GOROOT": goroot,
        "GOCACHE": gocache,
        "GOPATH": os.path.join(home, "gopath"),
        **BUILD_ENV,
    }


def prepare_cache(toolchain: GoToolchain, cache_dir: str) -> None:
    """Build the standard library into ``cache_dir`` (host side; serialised between agents by a lock
    file; world-readable files, as sandboxes read them under their own uids). Raises
    ``RuntimeError`` with the go command's message if the build fails."""
    os.makedirs(cache_dir, mode=0o755, exist_ok=True)
    work = os.path.join(os.path.dirname(cache_dir), "go-build-home")
    os.makedirs(work, mode=0o700, exist_ok=True)
    with open(os.path.join(work, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(
            [os.path.join(toolchain.goroot, "bin", "go"), "build", *STD_FLAGS, "std"],
            cwd=work,
            env=build_env(toolchain.goroot, work, cache_dir),
            capture_output=True,
            timeout=PREPARE_TIMEOUT_S,
            umask=0o022,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"go build std failed: {proc.stderr.decode(errors='replace')[-2000:]}")


def root_dirs(toolchain: GoToolchain, cache_dir: str) -> dict:
    """What ``zygote_root`` puts in a Go zygote's root: host directory -> path inside, read-only."""
    binds = {toolchain.goroot: toolchain.goroot, cache_dir: GOCACHE_PATH}
    binds.update({d: d for d in toolchain.linked_dirs})
    return {"binds": binds, "links": {GO_BINARY: os.path.join(toolchain.goroot, "bin", "go")}}
