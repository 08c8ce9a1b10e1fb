"""Workspace layers (zygote side): each sandbox's /workspace is an overlayfs whose upper layer
is a private size-limited tmpfs, so fork costs the same whatever the workspace holds.

Why overlay on tmpfs: the host is ext4 without reflink, so a copy of the workspace would cost
O(bytes). Fork instead freezes the parent's upper layer (tmpfs remounted read-only) and
stacks it as a shared lower under two fresh uppers, one for the parent and one for the fork.
The tmpfs ``size=`` is the exact workspace-bytes cap (writes fail with ENOSPC; copy-up of a
lower file counts against the writer). tmpfs pages are charged to the writer's memory cgroup, which is
sized for the processes' memory plus the workspace (see ``cgroups`` docstring): a full workspace gives
ENOSPC, never an OOM kill.
Layers are reference counted and unmounted when no workspace stacks them.

Measured: fork of a sandbox with a 200 MB workspace costs the same as with an empty one
(``tests/engine/test_fork.py``); the layer work itself (remount, 2 tmpfs, 2 overlays, 2
installs) is ~0.5-1.5 ms of the 7-11 ms fork. A chain of forks stacks one lower per fork
(capped at ``MAX_LAYERS``).

All mounts live in the zygote's private mount namespace; the agent reaches a workspace at
``/proc/<zygote pid>/root/<base>/ws/<slot>`` and the zygote moves mounts into a sandbox's
namespace with open_tree/move_mount after setns.
"""

from __future__ import annotations

import os

from . import linux
from .isolation import WORKSPACE_MOUNT

MAX_LAYERS = 64


class LayerStore:
    def __init__(self, base: str):
        self.base = base
        self.next_id = 0
        self.refs: dict[int, int] = {}
        self.slots: dict[str, tuple[int, list[int]]] = {}  # slot -> (upper layer, lower layers top first)
        for d in ("layers", "ws", "empty"):
            os.makedirs(f"{base}/{d}", exist_ok=True)
        self.own_ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)

    def _layer(self, lid: int) -> str:
        return f"{self.base}/layers/{lid}"

    def workspace(self, slot: str) -> str:
        return f"{self.base}/ws/{slot}"

    def _new_layer(self, size: int, uid: int) -> int:
        self.next_id += 1
        lid = self.next_id
        path = self._layer(lid)
        os.mkdir(path)
        linux.mount(
            "tmpfs",
            path,
            "tmpfs",
            linux.MS_NOSUID | linux.MS_NODEV,
            f"size={size},nr_inodes={max(4096, size // 4096)},mode=0700",
        )
        os.mkdir(f"{path}/upper", 0o755)
        os.mkdir(f"{path}/wd", 0o700)
        os.chown(f"{path}/upper", uid, uid)
        self.refs[lid] = 0
        return lid

    def _mount_overlay(self, target: str, upper: int, lowers: list[int]) -> None:
        """Layers are named to overlayfs as /proc/self/fd/N (it prints its options as given): a
        sandbox's /proc/self/mounts then shows neither the zygote's paths nor layer numbers,
        which count every tenant's sandboxes."""
        paths = [f"{self._layer(i)}/upper" for i in lowers] or [f"{self.base}/empty"]
        paths += [f"{self._layer(upper)}/upper", f"{self._layer(upper)}/wd"]
        fds = [os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for p in paths]
        try:
            *lower, up, wd = (f"/proc/self/fd/{fd}" for fd in fds)
            opts = f"lowerdir={':'.join(lower)},upperdir={up},workdir={wd}"
            linux.mount("mem0", target, "overlay", linux.MS_NOSUID | linux.MS_NODEV, opts)
        finally:
            for fd in fds:
                os.close(fd)

    def _hold(self, slot: str, upper: int, lowers: list[int]) -> None:
        for lid in [upper, *lowers]:
            self.refs[lid] += 1
        self.slots[slot] = (upper, lowers)

    def create(self, slot: str, uid: int, size: int) -> str:
        """A fresh empty workspace for ``slot`` owned by host ``uid``."""
        target = self.workspace(slot)
        os.makedirs(target, exist_ok=True)
        upper = self._new_layer(size, uid)
        self._mount_overlay(target, upper, [])
        self._hold(slot, upper, [])
        return target

    def fork(
        self,
        parent: str,
        parent_pid: int,
        child: str,
        child_pid: int,
        uid: int,
        parent_size: int,
        child_size: int,
    ) -> None:
        """Freeze the parent's upper as a shared lower; give parent and child new uppers."""
        upper, lowers = self.slots[parent]
        if len(lowers) + 1 >= MAX_LAYERS:
            raise ValueError("fork depth limit reached")
        # Read-only first: a process of the parent still holding the old mount (cwd, open dir)
        # then gets EROFS instead of changing a layer the fork now shares. EBUSY means a file
        # is open for writing; the fork is refused rather than sharing a layer still changing.
        linux.mount(
            None,
            self._layer(upper),
            None,
            linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV,
        )
        new_lowers = [upper, *lowers]
        p_upper = self._new_layer(parent_size, uid)
        c_upper = self._new_layer(child_size, uid)
        ptarget, ctarget = self.workspace(parent), self.workspace(child)
        linux.umount(ptarget)
        self._mount_overlay(ptarget, p_upper, new_lowers)
        os.makedirs(ctarget, exist_ok=True)
        self._mount_overlay(ctarget, c_upper, new_lowers)
        self._hold(parent, p_upper, new_lowers)
        self._hold(child, c_upper, new_lowers)
        self._release_layers(upper, lowers)
        self.install(parent_pid, ptarget)
        self.install(child_pid, ctarget)

    def resize(self, slot: str, size: int) -> None:
        """Set the workspace-bytes cap of ``slot`` (tmpfs remount; refused below current use)."""
        upper, _ = self.slots[slot]
        linux.mount(
            None,
            self._layer(upper),
            None,
            linux.MS_REMOUNT | linux.MS_NOSUID | linux.MS_NODEV,
            f"size={size},nr_inodes={max(4096, size // 4096)}",
        )

    def install(self, pid: int, source: str) -> None:
        """Replace the workspace (``WORKSPACE_MOUNT``) in the mount namespace of host process ``pid`` by a clone of ``source``."""
        tree = linux.open_tree(source, linux.OPEN_TREE_CLONE)
        target_ns = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.setns(target_ns, linux.CLONE_NEWNS)
            try:
                try:
                    linux.umount(WORKSPACE_MOUNT)
                except OSError:
                    pass
                linux.move_mount_fd(tree, WORKSPACE_MOUNT)
            finally:
                linux.setns(self.own_ns, linux.CLONE_NEWNS)
                os.chdir("/")
        finally:
            os.close(target_ns)
            os.close(tree)

    def _release_layers(self, upper: int, lowers: list[int]) -> None:
        for lid in [upper, *lowers]:
            self.refs[lid] -= 1
            if self.refs[lid] <= 0:
                del self.refs[lid]
                try:
                    linux.umount(self._layer(lid))
                    os.rmdir(self._layer(lid))
                except OSError:
                    pass

    def release(self, slot: str) -> None:
        entry = self.slots.pop(slot, None)
        target = self.workspace(slot)
        try:
            linux.umount(target)
            os.rmdir(target)
        except OSError:
            pass
        if entry:
            self._release_layers(*entry)
