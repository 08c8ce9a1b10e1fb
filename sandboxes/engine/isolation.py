"""The isolation recipe, top to bottom, in the order it is applied (DESIGN §4).

nsjail ``contain.cc`` style: every step is a small function, run in a fixed order; any
failure raises ``IsolationError`` and the sandbox process exits before user code can run.

Host side, once per template:
  ``zygote_root``: the zygote itself runs in a root of its own holding only the runtime's
  files at neutral paths (no host path, device or configuration in its argv, environ, mounts,
  module paths), made before its interpreter starts.
  ``build_rootfs`` (in the zygote): a tmpfs holding the zygote's /usr bound read-only, a
  generated /etc, device nodes /dev/{null,zero,full,random,urandom} of its own, empty mount
  points; then the tmpfs is made read-only.
  ``prepare_zygote_process``: the sandbox environment and rlimits, inherited by every clone.

Per sandbox (``SANDBOX_INIT_STEPS``, run by the sandbox's init process ``R``, which the zygote
clones straight into new user, PID, mount, network, IPC and UTS namespaces):
  zygote map_user_namespace  uid/gid 0..65535 inside -> an unprivileged host range; setgroups denied
  agent  join_cgroups        memory, pids, cpu(acct), freezer; then it releases R
  R     wait_for_host        nothing below runs before the maps and cgroups are in place;
                             then a cgroup namespace rooted at them (/proc/self/cgroup reads /)
  R     (fork K)             the interpreter is forked here and waits for the steps below
  R     private_mounts       no mount event propagates back to the host
  R     bind_root            this sandbox's own (unlocked) bind of the read-only template root
  R     mount_proc / mount_tmp / bind_workspace   own /proc (processes only: no host-wide
                             entry, see mount_proc), /tmp and /dev/shm (tmpfs), and the workspace
                             (on /home/sandbox; /workspace links to it),
                             on the read-only template root
  R     pivot_root           old root detached: no host path is reachable any more
  R     set_hostname         UTS namespace
  R     loopback_up          the new network namespace has only ``lo`` (up, for the sandbox's own
                             processes, and for the agent's relay of exposed ports, ``ports.py``):
                             no egress, no route to anybody else
Then ``R`` releases the interpreter ``K`` and stays as PID 1 (exec'ing the compiled reaper of
``reaper.py`` when there is one): it reports every exit to the agent and keeps the PID namespace
alive for forks (see fork notes in ``kernel.py``).

Interpreter (``INTERPRETER_STEPS``, in ``K`` before its control loop):
  close_fds          only stdin (/dev/null), stdout, stderr, the request socket, the framed
                     Python output pipe and the status page's memfd stay open
  clear_env          the agent's environment never reaches the sandbox (checked; the zygote
                     already replaced it)
  set_rlimits        core 0, nofile, nproc, fsize (cgroups are the primary limits); at hand-over the
                     agent sets RLIMIT_DATA to the plan's memory (see the ``cgroups`` docstring)
  drop_privileges    uid/gid 1000 inside; no capability at all: effective, permitted,
                     inheritable, ambient and bounding sets empty (the agent checks them in
                     /proc before it hands the sandbox over)
  no_new_privs       and not dumpable (no /proc/<pid>/mem of a fork sibling)
  seccomp            last, so the steps above are not themselves filtered; denies the syscalls
                     of ``seccomp.DENIED_SYSCALLS``, allow-lists socket families (``seccomp.py``)
                     and refuses new namespaces; its user-notification listener (fd 6) is taken
                     by the agent and closed before any user code runs: the one
                     namespace-creating call user code could make, clone(CLONE_NEWUSER), waits
                     for the agent, which allows it only for a fork it asked for
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import stat

from . import linux, seccomp

SANDBOX_UID = 1000
SANDBOX_GID = 1000
IDMAP_SIZE = 65536
HOSTNAME = "sandbox"


class IsolationError(RuntimeError):
    """An isolation step failed; the sandbox must not start."""


def _step(name: str, fn, *args) -> None:
    try:
        fn(*args)
    except Exception as exc:  # any failure aborts: fail closed
        raise IsolationError(f"isolation step {name} failed: {exc}") from exc


# ---------------------------------------------------------------- template root (zygote, once)


def build_rootfs(root: str) -> None:
    """Assemble the read-only template root at ``root`` (a fresh tmpfs in the zygote's namespace).

    The zygote runs in its own root (``zygote_root``) that holds only the runtime's files at
    neutral paths; the template binds its /usr (interpreter, stdlib, the template's packages,
    system libraries, a few tools) and nothing else of it (not /opt, where the engine is)."""
    linux.mount("tmpfs", root, "tmpfs", linux.MS_NOSUID, "mode=0755,size=4m")
    for d in ("proc", "tmp", "dev/shm", "etc", "usr", "root", "home/sandbox", "lib64"):
        os.makedirs(f"{root}/{d}", exist_ok=True)
    _bind_ro("/usr", f"{root}/usr")
    for top in ("bin", "sbin", "lib"):
        os.symlink(f"usr/{top}", f"{root}/{top}")
    for name in os.listdir("/lib64"):
        os.symlink(os.readlink(f"/lib64/{name}"), f"{root}/lib64/{name}")
    # Device nodes of its own (the zygote is root of the host's user namespace): a bind of the
    # host's /dev/null would name the host's devtmpfs in /proc/self/mountinfo.
    for name, minor in linux.CHAR_DEVICES.items():
        os.mknod(f"{root}/dev/{name}", stat.S_IFCHR | 0o666, os.makedev(1, minor))
        os.chmod(f"{root}/dev/{name}", 0o666)
    os.symlink("/proc/self/fd", f"{root}/dev/fd")
    files = {
        "passwd": f"root:x:0:0:root:/root:/bin/sh\nsandbox:x:{SANDBOX_UID}:{SANDBOX_GID}::/home/sandbox:/bin/sh\n",
        "group": f"root:x:0:\nsandbox:x:{SANDBOX_GID}:\n",
        "hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
        "hostname": f"{HOSTNAME}\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }
    for name, text in files.items():
        with open(f"{root}/etc/{name}", "w") as f:
            f.write(text)
    with open("/etc/ld.so.cache", "rb") as src, open(f"{root}/etc/ld.so.cache", "wb") as dst:
        dst.write(src.read())  # generated for the zygote's root: names only its libraries
    os.chown(f"{root}/home/sandbox", -1, -1)
    os.symlink(WORKSPACE_MOUNT, f"{root}/workspace")
    linux.mount(None, root, None, linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_NOSUID)


def _bind_ro(src: str, dst: str) -> None:
    linux.mount(src, dst, None, linux.MS_BIND | linux.MS_REC)
    # A bind mount ignores MS_RDONLY on creation; the remount makes it read-only.
    linux.mount(None, dst, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID)


# ---------------------------------------------------------------- host side, per sandbox (zygote)

SANDBOX_CLONE_FLAGS = (
    linux.CLONE_NEWUSER
    | linux.CLONE_NEWPID
    | linux.CLONE_NEWNS
    | linux.CLONE_NEWNET
    | linux.CLONE_NEWIPC
    | linux.CLONE_NEWUTS
)


def map_user_namespace(pid: int, uid_base: int) -> None:
    """Inside uid/gid 0..65535 = host uid/gid ``uid_base``.. (a range no host account uses)."""
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(f"0 {uid_base} {IDMAP_SIZE}\n")
    with open(f"/proc/{pid}/setgroups", "w") as f:
        f.write("deny")  # no setgroups(): a sandbox cannot drop a group to escape a deny-ACL
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(f"0 {uid_base} {IDMAP_SIZE}\n")


def join_cgroups(pid: int, procs_files: list[str]) -> None:
    for path in procs_files:
        with open(path, "w") as f:
            f.write(str(pid))


def release_sandbox_init(pid: int, procs_files: list[str], sync_fd: int) -> None:
    """Agent side, after the zygote mapped the user namespace: cgroups, then let the init go on."""
    _step("join_cgroups", join_cgroups, pid, procs_files)
    os.write(sync_fd, b"1")


# ---------------------------------------------------------------- sandbox init R (inside)


def close_inherited_fds(keep: set[int]) -> None:
    """First thing in the clone: drop every zygote descriptor (its control socket, its mount
    namespace fd...) except stdio and ``keep``."""
    top = 3
    for fd in sorted(keep):
        os.closerange(top, fd)
        top = fd + 1
    os.closerange(top, 1 << 20)


def wait_for_host(sync_fd: int) -> None:
    """Nothing runs before the user namespace is mapped and the cgroups are joined; then a
    cgroup namespace rooted at those cgroups, so that /proc/self/cgroup of every process of
    the sandbox (the interpreter is forked right after this) reads "/" instead of the agent's
    cgroup path on the host."""
    if os.read(sync_fd, 1) != b"1":
        raise IsolationError("host did not finish preparing the sandbox")
    os.close(sync_fd)
    _step("cgroup_namespace", linux.unshare, linux.CLONE_NEWCGROUP)


def private_mounts() -> None:
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)


def bind_root(root: str) -> None:
    # Mounts inherited from the zygote's namespace are locked and pivot_root refuses a locked
    # new root; a bind of the template is a mount of this namespace (its submounts stay locked).
    linux.mount(root, root, None, linux.MS_BIND | linux.MS_REC)


def mount_proc(root: str) -> None:
    """A procfs of the sandbox's own PID namespace (host processes are not listed) showing only
    process directories, ``self`` and ``thread-self`` (``subset=pid``, Linux 5.8).

    Everything else in /proc is host-wide: the kernel's configuration (config.gz), its boot
    command line naming the root device, load, memory, uptime, disks, interrupts, slab,
    modules, keys, /proc/sys. runc binds /dev/null over such entries and LXCFS binds FUSE files
    over meminfo and friends; both leave a mount whose target names the entry in
    /proc/self/mountinfo, and the entry still exists. With subset=pid they do not exist
    (ENOENT), and every per-process file (/proc/self/{status,maps,fd,mounts,net...}) is there.
    The cost: meminfo, cpuinfo, stat, uptime, loadavg and /proc/mounts are absent too (``free``
    and ``psutil.virtual_memory`` fail; os.cpu_count and sysconf still answer, through
    sched_getaffinity and sysinfo(2)). sysinfo(2) itself still returns the host's load, memory
    and uptime: refusing it is the seccomp filter's part."""
    flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    linux.mount("proc", f"{root}/proc", "proc", flags, "subset=pid")


def mount_tmp(root: str, size_bytes: int) -> None:
    # /tmp and /dev/shm (POSIX semaphores and shared memory: multiprocessing needs them);
    # tmpfs pages are charged to the sandbox's memory cgroup.
    for path in ("tmp", "dev/shm"):
        opts = f"mode=1777,size={size_bytes},nr_inodes=65536"
        linux.mount("tmpfs", f"{root}/{path}", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, opts)


# The workspace is mounted on the sandbox user's home; /workspace is a symlink to it. Not a mount
# on /workspace itself: nothing in /proc/self/mounts may read like a host path, and "/work…"
# is one (the checkout of the host this was built on lives there).
WORKSPACE_MOUNT = "/home/sandbox"


def bind_workspace(root: str, workspace: str) -> None:
    linux.mount(workspace, f"{root}{WORKSPACE_MOUNT}", None, linux.MS_BIND)
    linux.mount(
        None, f"{root}{WORKSPACE_MOUNT}", None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_NOSUID | linux.MS_NODEV
    )


def enter_root(root: str) -> None:
    os.chdir(root)
    linux.pivot_root(".", ".")
    linux.umount(".", linux.MNT_DETACH)  # the old root (host view) is gone from this namespace
    os.chdir("/")


def run_init_steps(root: str, workspace: str, tmp_bytes: int) -> None:
    """SANDBOX_INIT_STEPS after ``wait_for_host``, in order (the interpreter, already forked,
    waits for them; see ``zygote.ZygoteServer._become_sandbox``)."""
    _step("private_mounts", private_mounts)
    _step("bind_root", bind_root, root)
    _step("mount_proc", mount_proc, root)
    _step("mount_tmp", mount_tmp, root, tmp_bytes)
    _step("bind_workspace", bind_workspace, root, workspace)
    _step("pivot_root", enter_root, root)
    _step("set_hostname", linux.sethostname, HOSTNAME)
    _step("loopback_up", linux.loopback_up)
    _step("no_new_privs", linux.prctl, linux.PR_SET_NO_NEW_PRIVS, 1)


# ---------------------------------------------------------------- interpreter K (inside)


def close_fds(keep: dict[int, int]) -> None:
    """Move ``keep`` (src fd -> target fd) into place and close every other descriptor."""
    tmp = {src: os.dup(src) for src in keep}
    for src, dst in keep.items():
        # Children of user code inherit stdio and the framed Python output, not the request
        # socket (3) or the status page's memfd (5, mapped and closed by the interpreter).
        os.dup2(tmp[src], dst, inheritable=dst not in (3, 5))
    top = max(keep.values()) + 1
    os.closerange(top, 1 << 20)
    for fd in range(0, top):
        if fd not in keep.values():
            try:
                os.close(fd)
            except OSError:
                pass
    devnull = os.open("/dev/null", os.O_RDONLY)
    if devnull != 0:
        os.dup2(devnull, 0)
        os.close(devnull)


SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/home/sandbox",
    "LANG": "C.UTF-8",
    "TMPDIR": "/tmp",
    "PYTHONUNBUFFERED": "1",
}


def prepare_zygote_process(nofile: int, nproc: int, fsize: int) -> None:
    """Done once in the zygote (inherited by every sandbox, and so not paid per sandbox: each
    rewrite in the interpreter made ~0.3 MB of its pages private): the sandbox environment
    and rlimits. The zygote itself needs neither its environment nor more."""
    os.environ.clear()
    os.environ.update(SANDBOX_ENV)
    _apply_rlimits(nofile, nproc, fsize)


def _apply_rlimits(nofile: int, nproc: int, fsize: int) -> None:
    for res, value in _rlimits(nofile, nproc, fsize):
        resource.setrlimit(res, (value, value))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversize writes fail with EFBIG instead


def _rlimits(nofile: int, nproc: int, fsize: int) -> tuple:
    return (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, nofile),
        (resource.RLIMIT_NPROC, nproc),
        (resource.RLIMIT_FSIZE, fsize),
    )


def clear_env() -> None:
    """The agent's environment never reaches the sandbox (the zygote already dropped it)."""
    if dict(os.environ) != SANDBOX_ENV:
        os.environ.clear()
        os.environ.update(SANDBOX_ENV)


def set_rlimits(nofile: int, nproc: int, fsize: int) -> None:
    if any(resource.getrlimit(res) != (value, value) for res, value in _rlimits(nofile, nproc, fsize)):
        _apply_rlimits(nofile, nproc, fsize)
    if signal.getsignal(signal.SIGXFSZ) is not signal.SIG_IGN:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def drop_all_capabilities() -> None:
    """Empty every capability set of this process, the bounding set included (so nothing it
    executes can regain one). Also used by a fork's first process, which holds every
    capability of its new user namespace until it calls this."""
    for cap in range(linux.CAP_LAST_CAP + 1):
        try:
            linux.prctl(linux.PR_CAPBSET_DROP, cap)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: cap unknown to this kernel
                raise
    linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    linux.set_capabilities(set())


def drop_privileges() -> None:
    os.setresgid(SANDBOX_GID, SANDBOX_GID, SANDBOX_GID)
    linux.prctl(linux.PR_SET_KEEPCAPS, 1)  # keep CAP_SETPCAP past setresuid for the drop below
    os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
    linux.prctl(linux.PR_SET_KEEPCAPS, 0)
    drop_all_capabilities()
    if os.getuid() != SANDBOX_UID or os.getgid() != SANDBOX_GID:
        raise IsolationError("uid/gid did not change")


def no_new_privs() -> None:
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    linux.prctl(linux.PR_SET_DUMPABLE, 0)


def run_interpreter_steps(
    keep_fds: dict[int, int], rl_nofile: int, rl_nproc: int, rl_fsize: int, seccomp_program: bytes
) -> None:
    """INTERPRETER_STEPS, in order. ``seccomp_program`` comes from ``seccomp.compile_seccomp``."""
    _step("close_fds", close_fds, keep_fds)
    _step("clear_env", clear_env)
    _step("set_rlimits", set_rlimits, rl_nofile, rl_nproc, rl_fsize)
    _step("drop_privileges", drop_privileges)
    _step("no_new_privs", no_new_privs)
    _step("seccomp", seccomp.load_seccomp, seccomp_program)
