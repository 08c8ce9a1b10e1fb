"""The zygote's own root: a private mount namespace that holds only the runtime's files, at
neutral paths, so nothing the zygote (and so every sandbox it forks) has loaded, imported or
been started with names a host path, a host device or the agent's configuration.

``ZygoteProcess`` starts this module with the host interpreter as a short-lived launcher; it
  1. unshares a mount namespace (private: nothing propagates back to the host);
  2. builds the root on a tmpfs (source ``mem0``):
       /usr/local/bin/python3.11  a copy of the interpreter binary (17 kB), RUNPATH made relative
       /usr/local/lib             the interpreter's lib directory (libpython, the stdlib)
       /usr/local/lib/python3.X/site-packages   only the template's packages
       /usr/lib/x86_64-linux-gnu  the system libraries (no /usr/local, no compilers)
       /usr/share/zoneinfo        the time zone database
       /usr/bin                   a few basic tools (sh, echo, sleep, cat...), copied
       /usr/sbin/ldconfig, /etc/ld.so.cache   for ctypes.util.find_library
       /usr/lib/go-1.XX, /usr/share/go-1.XX, /usr/lib/go-cache, /usr/bin/go   Go runtimes only: the
                                  toolchain and the shared build cache (``go_toolchain.py``)
       /usr/lib/node, /usr/bin/node   Node.js runtimes only: the node binary and the driver
                                  (``node_runtime.root_dirs``)
       /opt/mem0                  the engine package, for the zygote only (not in sandboxes)
       /dev                       null, zero, full, random, urandom as device nodes
     Host directories are stacked as read-only overlays whose layers are named by
     ``/proc/self/fd/N``: overlayfs prints its options as given, so /proc/self/mounts shows
     ``lowerdir=/proc/self/fd/5:/proc/self/fd/6`` and the source ``mem0``, where a bind mount
     would show the host path (mountinfo's root field) and the host's block device;
  3. pivot_roots into it and detaches the host's tree;
  4. execs ``/usr/local/bin/python3`` with argv ``["python3"]`` and a fixed environment. The
     program arrives on stdin (a pipe), the runtime's description on fd 4 (a pipe), the
     zygote socket is fd 3 and the compiled init fd 5: none of them is in argv or environ,
     which every sandbox can read in /proc/self/cmdline and /proc/self/environ.

User code sees neutral values for everything the interpreter reports (sys.executable, sys.path,
module ``__file__``, ``sysconfig``: its build data is rewritten in a layer over the stdlib's).
What still names the build prefix: bytes inside the runtime's files (the compiled-in prefix in
libpython, ``co_filename`` inside shipped .pyc files, the stdlib's config-3.X Makefile).
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import stat
import sys
from typing import TYPE_CHECKING

from . import linux, userland

if TYPE_CHECKING:
    from .runtimes import Runtime

PREFIX = "/usr/local"
ENGINE_DIR = "/opt/mem0"  # the engine package, importable by the zygote only
LIBDIR = "/usr/lib/x86_64-linux-gnu"
LOADER = "ld-linux-x86-64.so.2"
ZONEINFO = "/usr/share/zoneinfo"
SOCK_FD, CONFIG_FD, REAPER_FD = 3, 4, 5
# Basic tools a sandbox may run (os.system, subprocess.run(['echo', ...])): copied, not bound.
TOOLS = (
    "sh", "cat", "echo", "env", "false", "true", "sleep", "ls", "mkdir", "rm", "cp", "mv",
    "head", "tail", "wc", "sort", "uniq", "tr", "cut", "date", "id", "pwd", "printf", "test",
    "touch", "uname", "grep", "sed",
)  # fmt: skip
ZYGOTE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    # glibc marks its heaps MADV_HUGEPAGE (THP is "madvise" here): fork then copies one
    # PMD per 2 MiB instead of 512 PTEs; forking a 117 MB heap: 1.64 ms -> 0.35 ms.
    "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",
    # matplotlib (python-ml): no GUI in a sandbox; config and caches in the zygote's memory (the
    # directory is never written: the font cache is built at preload, before /tmp is private).
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/tmp/matplotlib",
}
BOOTSTRAP = (
    f"import sys\nsys.path.insert(0, {ENGINE_DIR!r})\nfrom sandboxes.engine.zygote import main\nmain()\n"
)


class Layout:
    """Builds the root at ``root`` (a host directory, mounted over by a tmpfs)."""

    def __init__(self, root: str):
        self.root = root
        self.fds: list[int] = []  # overlay layers, held open until the exec (then closed)
        linux.mount("mem0", root, "tmpfs", linux.MS_NOSUID, "mode=0755,size=16m")
        os.mkdir(f"{root}/.empty", 0o555)
        self.empty = self._fd(f"{root}/.empty")

    def _fd(self, path: str) -> int:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        self.fds.append(fd)
        return fd

    def dir(self, path: str) -> str:
        os.makedirs(self.root + path, exist_ok=True)
        return self.root + path

    def overlay(self, host_dir: str, path: str, above: str | None = None) -> None:
        """``host_dir`` read-only at ``path`` (with the files of directory ``above`` over it), with
        no host path in the mount's options or source."""
        layers = [self._fd(d) for d in (above, host_dir) if d] + [self.empty]
        opts = "lowerdir=" + ":".join(f"/proc/self/fd/{fd}" for fd in layers)
        linux.mount(
            "mem0", self.dir(path), "overlay", linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV, opts
        )

    def copy(self, host_file: str, path: str, mode: int = 0o755) -> None:
        self.dir(os.path.dirname(path))
        shutil.copyfile(host_file, self.root + path)
        os.chmod(self.root + path, mode)

    def module(self, host_path: str, directory: str) -> None:
        """A package (overlay) or single-file module (copied with its compiled form, mtimes kept
        so the .pyc stays valid: six.py compiled at each zygote start cost ~9 ms) into ``directory``."""
        name = os.path.basename(host_path)
        if os.path.isdir(host_path):
            self.overlay(host_path, f"{directory}/{name}")
            return
        self.dir(directory)
        shutil.copy2(host_path, f"{self.root}{directory}/{name}")
        pyc = importlib.util.cache_from_source(host_path)
        if os.path.exists(pyc):
            shutil.copy2(pyc, f"{self.dir(directory + '/__pycache__')}/{os.path.basename(pyc)}")

    def symlink(self, target: str, path: str) -> None:
        self.dir(os.path.dirname(path))
        os.symlink(target, self.root + path)


def _package_paths(names: tuple[str, ...]) -> list[str]:
    """Host directories (or single-file modules) of the given top-level packages, with their
    auditwheel-vendored libraries (numpy.libs, pandas.libs)."""
    out: list[str] = []
    for name in names:
        spec = importlib.util.find_spec(name)
        namespace = list(spec.submodule_search_locations or []) if spec is not None else []
        if spec is None or (spec.origin is None and len(namespace) != 1):
            raise RuntimeError(f"package {name!r} is not installed")
        if spec.origin is None:  # a namespace package (mpl_toolkits) in one directory
            path = namespace[0]
        else:
            path = os.path.dirname(spec.origin) if spec.origin.endswith("__init__.py") else spec.origin
        out.append(path)
        libs = os.path.join(os.path.dirname(path), VENDORED_LIBS.get(name, name + ".libs"))
        if os.path.isdir(libs):
            out.append(libs)
    return out


# Packages whose vendored libraries are not named after the import name (PIL is the pillow wheel).
VENDORED_LIBS = {"PIL": "pillow.libs"}


def _neutral_sysconfig(lay: Layout, version: str) -> str:
    """A layer holding the interpreter's build configuration (what ``sysconfig`` reports: the
    prefix, LIBDIR, CONFIG_ARGS...) with the host prefix replaced by ``PREFIX``, source and
    compiled, to lie over the stdlib's own. Returns its directory (in the root, outside /usr)."""
    import py_compile
    import sysconfig

    name = sysconfig._get_sysconfigdata_name()
    host = importlib.import_module(name).build_time_vars
    prefixes = sorted({sys.base_prefix, os.path.realpath(sys.base_prefix)}, key=len, reverse=True)

    def neutral(value):
        if isinstance(value, str):
            for p in prefixes:
                value = value.replace(p, PREFIX)
        return value

    layer = lay.dir("/.sysconfig")
    src = lay.dir(f"/.sysconfig/{version}") + f"/{name}.py"
    with open(src, "w") as f:
        f.write(f"build_time_vars = { ({k: neutral(v) for k, v in host.items()})!r}\n")
    py_compile.compile(
        src,
        cfile=importlib.util.cache_from_source(src),
        dfile=f"{PREFIX}/lib/{version}/{name}.py",
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
    )
    return layer


def _relative_runpath(binary: bytes, host_libdir: str) -> bytes:
    """The interpreter links libpython through an absolute RUNPATH (the host prefix): point it
    at ``$ORIGIN/../lib`` instead, padding the string table entry with NULs (same length)."""
    old = host_libdir.encode() + b"\0"
    new = b"$ORIGIN/../lib\0"
    if binary.count(old) != 1 or len(new) > len(old):
        return binary
    return binary.replace(old, new.ljust(len(old), b"\0"))


def build(root: str, modules: dict[str, list[str]], state_dir: str) -> Layout:
    """Populate the zygote's root at host path ``root`` (in the launcher's private namespace)."""
    import sysconfig  # here: the zygote imports this module for its constants only

    lay = Layout(root)
    base = os.path.realpath(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    host_libdir = sysconfig.get_config_var("LIBDIR") or f"{base}/lib"
    # The interpreter: a copy of the small launcher binary; libpython and the stdlib stay on disk.
    exe = os.path.realpath(f"{base}/bin/{version}")
    with open(exe, "rb") as f:
        binary = _relative_runpath(f.read(), host_libdir)
    with open(lay.dir(f"{PREFIX}/bin") + f"/{version}", "wb") as f:
        f.write(binary)
    os.chmod(f"{root}{PREFIX}/bin/{version}", 0o755)
    lay.symlink(version, f"{PREFIX}/bin/python3")
    lay.symlink(version, f"{PREFIX}/bin/python")
    lay.overlay(os.path.realpath(host_libdir), f"{PREFIX}/lib", _neutral_sysconfig(lay, version))
    # site-packages: only what the template exposes (the host's holds the web stack).
    site = f"{PREFIX}/lib/{version}/site-packages"
    linux.mount("mem0", root + site, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=0755,size=4m")
    for path in modules["site"]:
        lay.module(path, site)
    linux.mount(
        None, root + site, None, linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV
    )
    # System libraries and the loader; merged-/usr symlinks.
    lay.overlay(LIBDIR, LIBDIR)
    # The time zone database at its standard path: zoneinfo (and pandas at import, 1 -> 160 ms
    # without it) otherwise falls back to the tzdata package.
    if os.path.isdir(ZONEINFO):
        lay.overlay(ZONEINFO, ZONEINFO)
    lay.symlink(f"{LIBDIR}/{LOADER}", f"/lib64/{LOADER}")
    for top in ("bin", "lib", "sbin"):
        lay.symlink(f"usr/{top}", f"/{top}")
    lay.dir("/usr/sbin")
    for tool in TOOLS:
        host = shutil.which(tool, path="/usr/bin:/bin")
        if host:
            lay.copy(os.path.realpath(host), f"/usr/bin/{tool}")
    # A compiled runtime's toolchain (``go_toolchain.root_dirs``), read-only under /usr.
    toolchain = modules.get("toolchain") or {}
    for host_dir, path in toolchain.get("binds", {}).items():
        lay.overlay(host_dir, path)
    for path, target in toolchain.get("links", {}).items():
        lay.symlink(target, path)
    userland.install(lay)  # busybox for what the copied tools lack (``userland.py``)
    # The engine, for the zygote only: sandboxes bind /usr, not /opt.
    engine = os.path.dirname(os.path.abspath(__file__))
    lay.overlay(engine, f"{ENGINE_DIR}/sandboxes/engine")
    for path in modules["engine"]:
        lay.module(path, ENGINE_DIR)
    for name, minor in linux.CHAR_DEVICES.items():
        os.mknod(f"{lay.dir('/dev')}/{name}", stat.S_IFCHR | 0o666, os.makedev(1, minor))
        os.chmod(f"{root}/dev/{name}", 0o666)  # mknod's mode passes through the umask
    for d in ("/proc", "/run/z", "/tmp", "/etc"):
        lay.dir(d)
    lay.copy("/sbin/ldconfig", "/usr/sbin/ldconfig")
    _library_cache(root, state_dir, host_libdir)
    linux.mount(None, root, None, linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_NOSUID)
    return lay


def _library_cache(root: str, state_dir: str, host_libdir: str) -> None:
    """/etc/ld.so.cache of this root: the system libraries and the interpreter's lib directory
    (an interpreter built without RUNPATH, as the python:3.11 image's, finds libpython through
    it); ctypes.util.find_library reads it through ``ldconfig -p``. The host's would name
    host-only directories. Generating it reads every library (~0.1 s CPU, ~0.8 s from a cold
    page cache): kept in ``state_dir`` until one of the directories changes."""
    key = "-".join(f"{st.st_ino}-{st.st_mtime_ns}" for st in map(os.stat, (LIBDIR, host_libdir)))
    cached = os.path.join(state_dir, f"ld.so.cache-{key}")
    if os.path.exists(cached):
        shutil.copyfile(cached, f"{root}/etc/ld.so.cache")
        return
    import subprocess  # only here: the launcher starts faster without it

    with open(f"{root}/etc/ld.so.conf", "w") as f:
        f.write(f"{PREFIX}/lib\n")
    subprocess.run(["/sbin/ldconfig", "-X", "-r", root], check=True, capture_output=True)
    tmp = f"{cached}.{os.getpid()}"
    shutil.copyfile(f"{root}/etc/ld.so.cache", tmp)
    os.replace(tmp, cached)


def enter(root: str) -> None:
    """pivot_root into ``root`` and detach the host's tree; a fresh procfs for the zygote."""
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount(".", linux.MNT_DETACH)
    os.chdir("/")
    linux.mount("proc", "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)


def _pipe_with(data: bytes) -> int:
    """Read end of a pipe already holding ``data`` (small: it fits the pipe buffer)."""
    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    return r


def launch(
    runtime: dict, modules: dict[str, list[str]], state_dir: str, sock_fd: int, reaper: str | None
) -> None:
    """Steps 1-4 of the module docstring; does not return (execs the zygote)."""
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    root = os.path.join(state_dir, f"z-{runtime['name']}")
    os.makedirs(root, exist_ok=True)
    build(root, modules, state_dir)
    reaper_fd = os.open(reaper, os.O_RDONLY) if reaper else -1
    enter(root)
    # What the zygote needs of its description; host paths never reach it.
    config = json.dumps({"runtime": runtime, "reaper": reaper_fd >= 0}).encode()
    fds = {0: _pipe_with(BOOTSTRAP.encode()), SOCK_FD: sock_fd, CONFIG_FD: _pipe_with(config)}
    if reaper_fd >= 0:
        fds[REAPER_FD] = reaper_fd
    # Out of the way of the targets first (a plain dup could land on a target not yet set).
    moved = {dst: fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, 64) for dst, src in fds.items()}
    for dst, tmp in moved.items():
        os.dup2(tmp, dst)
    keep = {*moved, 1, 2}
    for fd in os.listdir("/proc/self/fd"):
        if int(fd) not in keep:
            try:
                os.close(int(fd))
            except OSError:
                pass  # the directory's own descriptor
    os.execve(f"{PREFIX}/bin/python3", ["python3"], ZYGOTE_ENV)


def launcher_argv(
    runtime: Runtime, state_dir: str, sock_fd: int, reaper: str | None, toolchain: dict | None = None
) -> list[str]:
    """The launcher's command (host interpreter; gone at its exec). Package locations are
    resolved here, in the agent, so that the launcher can start without site (-S: a venv's
    site processing cost 50-150 ms of each zygote start here). ``toolchain``: host directories of a
    compiled runtime's toolchain (``go_toolchain.root_dirs``)."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    modules = {"site": _package_paths(runtime.packages), "engine": _package_paths(("pyseccomp",))}
    if toolchain:
        modules["toolchain"] = toolchain
    program = (
        f"import sys\nsys.path.insert(0, {repo!r})\nfrom sandboxes.engine.zygote_root import main\nmain()\n"
    )
    spec = json.dumps({"runtime": vars(runtime), "modules": modules})
    return [sys.executable, "-S", "-E", "-c", program, spec, state_dir, str(sock_fd), reaper or ""]


def main() -> None:
    spec, state_dir, sock_fd = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    reaper = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
    # The launcher handles the template as plain data (importing dataclasses costs it ~10 ms).
    launch(spec["runtime"], spec["modules"], state_dir, sock_fd, reaper)
