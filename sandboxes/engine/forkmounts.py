"""A fork's own /proc, /tmp and /dev/shm (zygote side, as root), installed in the fork's new
mount namespace before the fork's interpreter exists.

The fork's mount namespace starts as a copy of its parent's, so /tmp and /dev/shm are at first
the parent's own tmpfs mounts: each gets a new tmpfs on top holding a copy of the parent's files
as they were at fork time (the agent freezes the parent meanwhile); /proc gets a procfs of the
fork's PID namespace; the fork's user namespace gets its id maps. The work is done by a child of the zygote
born in the fork's PID namespace, which makes the procfs while still in the zygote's mount
namespace (a procfs made straight in a namespace whose /proc has masked entries is refused as
"too revealing") and then joins the fork's mount namespace.

A copy, not copy-on-write layers: both are capped at ``zygote.TMP_BYTES`` each, and what a
sandbox keeps there is small; the workspace, which can be large, is copy-on-write
(``layers.py``).
"""

from __future__ import annotations

import os
import stat

from . import isolation, linux

SPECIAL = ("tmp", "dev/shm")


def install(parent_pid: int, child_pid: int, tmp_bytes: int, own_pidns: int) -> None:
    """Give the fork whose PID 1 is host pid ``child_pid`` its own /proc, /tmp and /dev/shm.
    ``own_pidns``: the caller's PID namespace, returned to after the helper is born."""
    sources = {path: os.open(f"/proc/{parent_pid}/root/{path}", os.O_RDONLY | os.O_DIRECTORY) for path in SPECIAL}
    mntns = os.open(f"/proc/{child_pid}/ns/mnt", os.O_RDONLY)
    parent_userns = os.open(f"/proc/{parent_pid}/ns/user", os.O_RDONLY)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        # One fork, born in the fork's PID namespace (a procfs made there is the fork's).
        pidns = os.open(f"/proc/{child_pid}/ns/pid", os.O_RDONLY)
        try:
            linux.setns(pidns, linux.CLONE_NEWPID)
            helper = -1
            try:
                helper = os.fork()
            finally:
                if helper != 0:
                    linux.setns(own_pidns, linux.CLONE_NEWPID)
        finally:
            os.close(pidns)
        if helper == 0:
            os.close(err_r)
            _in_helper(sources, mntns, parent_userns, tmp_bytes, err_w)
        os.close(err_w)
        _, status = os.waitpid(helper, 0)
        why = os.read(err_r, 4096).decode(errors="replace")
    finally:
        for fd in (*sources.values(), mntns, parent_userns, err_r):
            os.close(fd)
    if status != 0:
        raise OSError(f"fork mounts failed: {why or status}")


def _in_helper(sources: dict[str, int], mntns: int, parent_userns: int, tmp_bytes: int, err: int) -> None:
    code = 1
    try:
        proc = linux.procfs_mount()
        linux.setns(mntns, linux.CLONE_NEWNS)
        os.chdir("/")
        for path, src in sources.items():
            opts = f"mode=1777,size={tmp_bytes},nr_inodes=65536"
            linux.mount("tmpfs", f"/{path}", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, opts)
            dst = os.open(f"/{path}", os.O_RDONLY | os.O_DIRECTORY)
            try:
                copy_tree(src, dst)
            finally:
                os.close(dst)
        linux.move_mount_fd(proc, "/proc")
        # The id maps of the fork's user namespace can only be written from it or from its
        # parent (the parent sandbox's): join that last, when every file is made.
        linux.setns(parent_userns, linux.CLONE_NEWUSER)
        map_fork_ids("/proc/1")
        code = 0
    except BaseException as exc:
        os.write(err, f"{type(exc).__name__}: {exc}".encode()[:4000])
    finally:
        os._exit(code)


def map_fork_ids(proc_dir: str) -> None:
    """The fork's user namespace maps only the sandbox user, to the same id in its parent's:
    its files keep their owner; root and every other id are unmapped inside."""
    uid, gid = isolation.SANDBOX_UID, isolation.SANDBOX_GID
    with open(f"{proc_dir}/uid_map", "w") as f:
        f.write(f"{uid} {uid} 1\n")
    with open(f"{proc_dir}/setgroups", "w") as f:
        f.write("deny")
    with open(f"{proc_dir}/gid_map", "w") as f:
        f.write(f"{gid} {gid} 1\n")


def copy_tree(src_dir: int, dst_dir: int) -> None:
    """Copy the tree under directory fd ``src_dir`` into ``dst_dir``: files, directories,
    symlinks, FIFOs, with owner and mode; never following a symlink (all fd-relative)."""
    for entry in os.scandir(src_dir):
        st = entry.stat(follow_symlinks=False)
        name = entry.name
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, 0o700, dir_fd=dst_dir)
            s = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=src_dir)
            d = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dst_dir)
            try:
                copy_tree(s, d)
            finally:
                os.close(s)
                os.close(d)
        elif stat.S_ISREG(st.st_mode):
            s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=src_dir)
            d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dst_dir)
            try:
                while os.sendfile(d, s, None, 1 << 30):  # copy_file_range: EXDEV across tmpfs
                    pass
            finally:
                os.close(s)
                os.close(d)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src_dir), name, dir_fd=dst_dir)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(name, 0o600, dir_fd=dst_dir)
        else:
            continue  # sockets and devices are not carried over
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst_dir)
