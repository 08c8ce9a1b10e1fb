"""Workspace file operations, done by the agent on the host side of the sandbox's workspace.

Every path is relative to /workspace and resolved with openat2(RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): a '..' that would leave the workspace, an
absolute path or any symlink on the way is refused (``invalid_request``), so sandboxed code
cannot plant a link that makes the agent read or write a host file. Ops that act on a name
(stat, make_dir, rename, delete) resolve its parent directory that way and then act on the name
relative to that directory descriptor without following it (``*at`` calls, AT_SYMLINK_NOFOLLOW,
rename of the link itself), so swapping a path component for a symlink mid-op gains nothing.
A recursive listing opens each subdirectory the same way relative to its parent's descriptor.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import uuid

from . import linux
from .protocol import EngineError

MAX_FILE_BYTES = 64 << 20
NAME_MAX = 255  # bytes of one path component (Linux NAME_MAX)
MAX_LIST_ENTRIES = 10_000
MAX_LIST_DEPTH = 16  # recursive listings: levels below the listed directory (1 = its entries only)


def _parts(path: str, allow_root: bool = False) -> list[str]:
    if not isinstance(path, str) or "\x00" in path or path.startswith("/"):
        raise EngineError("invalid_request", "path must be relative to /workspace")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise EngineError("invalid_request", "'..' is not allowed in paths")
    if any(len(p.encode("utf-8", "surrogateescape")) > NAME_MAX for p in parts):
        raise EngineError("invalid_request", f"a name in the path is longer than {NAME_MAX} bytes")
    if not parts and not allow_root:
        raise EngineError("invalid_request", "path is empty")
    return parts


def _oserror(exc: OSError, path: str) -> EngineError:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return EngineError("not_found", f"no such file: {path}")
    if exc.errno in (errno.ELOOP, errno.EXDEV, errno.EACCES, errno.EPERM):
        return EngineError("invalid_request", f"path escapes the workspace or crosses a symlink: {path}")
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return EngineError("payload_too_large", "workspace is full")
    if exc.errno in (errno.ENXIO, errno.ENODEV):  # a FIFO without reader, a socket
        return EngineError("invalid_request", f"not a regular file: {path}")
    if exc.errno == errno.EISDIR:
        return EngineError("invalid_request", f"is a directory: {path}")
    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
        return EngineError("conflict", f"already exists or not empty: {path}")
    if exc.errno == errno.ENAMETOOLONG:
        return EngineError("invalid_request", f"name too long: {path[:200]}")
    if exc.errno in (errno.EINVAL, errno.EBUSY):  # a directory moved into itself, the workspace root
        return EngineError("invalid_request", f"cannot do that to {path}")
    return EngineError("internal_error", f"{exc.strerror}: {path}")


class Workspace:
    """The host view of one sandbox's /workspace; files written are owned by the sandbox user."""

    def __init__(self, root: str, owner_uid: int):
        self.root = root
        self.owner_uid = owner_uid

    def _open(self, path: str, flags: int, mode: int = 0o644) -> int:
        base = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return linux.openat2_beneath(base, path or ".", flags, mode)
        except OSError as exc:
            raise _oserror(exc, path) from None
        finally:
            os.close(base)

    def list(self, path: str = "", depth: int = 1) -> list[dict]:
        """Entries of the directory ``path`` and, down to ``depth`` levels, of its subdirectories
        (symlinks are listed, never followed), sorted by path; more than ``MAX_LIST_ENTRIES`` in
        all is ``payload_too_large``."""
        if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= MAX_LIST_DEPTH:
            raise EngineError("invalid_request", f"depth must be an integer from 1 to {MAX_LIST_DEPTH}")
        rel = "/".join(_parts(path, allow_root=True))
        fd = self._open(rel, os.O_RDONLY | os.O_DIRECTORY)
        out: list[dict] = []
        try:
            self._list_into(fd, rel, depth, out, path)
        finally:
            os.close(fd)
        return sorted(out, key=lambda e: e["path"])

    def _list_into(self, fd: int, rel: str, depth: int, out: list[dict], path: str) -> None:
        subdirs = []
        with os.scandir(fd) as it:
            for entry in it:
                if len(out) == MAX_LIST_ENTRIES:
                    raise EngineError(
                        "payload_too_large", f"more than {MAX_LIST_ENTRIES} entries in {path!r}"
                    )
                item = _entry(
                    entry.name,
                    f"{rel}/{entry.name}" if rel else entry.name,
                    entry.stat(follow_symlinks=False),
                )
                out.append(item)
                if item["type"] == "dir" and depth > 1:
                    subdirs.append(item)
        for item in subdirs:
            try:  # relative to the parent's descriptor: a directory swapped for a link since is not entered
                sub = linux.openat2_beneath(fd, item["name"], os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                continue
            try:
                self._list_into(sub, item["path"], depth - 1, out, path)
            finally:
                os.close(sub)

    def _parent(self, parts: list[str]) -> int:
        """An O_PATH descriptor of the directory holding ``parts[-1]`` (resolved beneath the root)."""
        return self._open("/".join(parts[:-1]), os.O_PATH | os.O_DIRECTORY)

    def stat(self, path: str) -> dict:
        """Type, size, mode and mtime of ``path`` itself (a symlink is reported, not followed);
        ``not_found`` when it does not exist."""
        parts = _parts(path, allow_root=True)
        if not parts:
            fd = self._open("", os.O_PATH | os.O_DIRECTORY)
            try:
                return _entry("", "", os.fstat(fd))
            finally:
                os.close(fd)
        parent = self._parent(parts)
        try:
            return _entry(
                parts[-1], "/".join(parts), os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            )
        except OSError as exc:
            raise _oserror(exc, path) from None
        finally:
            os.close(parent)

    def make_dir(self, path: str, parents: bool = True) -> dict:
        """Create the directory ``path`` (and, with ``parents``, missing ones above it), each step
        relative to the descriptor of the one before; ``conflict`` when something that is not a
        directory is in the way, or (without ``parents``) when it already exists."""
        parts = _parts(path)
        fd = self._open("", os.O_PATH | os.O_DIRECTORY)
        try:
            for i, name in enumerate(parts):
                last = i == len(parts) - 1
                if parents or last:
                    try:
                        os.mkdir(name, 0o755, dir_fd=fd)
                        os.chown(name, self.owner_uid, self.owner_uid, dir_fd=fd, follow_symlinks=False)
                    except FileExistsError:
                        if last and not parents:
                            raise EngineError("conflict", f"already exists: {path}") from None
                    except OSError as exc:
                        raise _oserror(exc, path) from None
                try:
                    nxt = linux.openat2_beneath(fd, name, os.O_PATH | os.O_DIRECTORY)
                except OSError as exc:
                    if exc.errno == errno.ENOTDIR:
                        raise EngineError(
                            "conflict", f"not a directory: {'/'.join(parts[: i + 1])}"
                        ) from None
                    raise _oserror(exc, path) from None
                os.close(fd)
                fd = nxt
            return _entry(parts[-1], "/".join(parts), os.fstat(fd))
        finally:
            os.close(fd)

    def rename(self, source: str, destination: str, overwrite: bool = False) -> dict:
        """Move ``source`` to ``destination`` within the workspace (the destination's directory
        must exist). Without ``overwrite`` an existing destination is ``conflict``, atomically
        (RENAME_NOREPLACE); a symlink is moved as the link itself."""
        src, dst = _parts(source), _parts(destination)
        src_dir = self._parent(src)
        try:
            try:
                dst_dir = self._parent(dst)
            except EngineError as exc:
                if exc.code == "not_found":
                    raise EngineError(
                        "not_found", f"destination directory does not exist: {destination}"
                    ) from None
                raise
            try:
                linux.renameat2(src_dir, src[-1], dst_dir, dst[-1], noreplace=not overwrite)
                return _entry(dst[-1], "/".join(dst), os.stat(dst[-1], dir_fd=dst_dir, follow_symlinks=False))
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    raise EngineError("not_found", f"no such file: {source}") from None
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR):
                    raise EngineError("conflict", f"destination exists: {destination}") from None
                if exc.errno == errno.EXDEV:  # overlayfs: a directory of a lower layer cannot be renamed
                    raise EngineError(
                        "conflict",
                        f"{source} is a directory the sandbox had before it was forked, which cannot be moved; "
                        "copy it instead",
                    ) from None
                raise _oserror(exc, source) from None
            finally:
                os.close(dst_dir)
        finally:
            os.close(src_dir)

    def read(self, path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
        """The file's bytes, at most ``max_bytes`` (capped at ``MAX_FILE_BYTES``).

        The sandbox can grow the file between the size check and the read (a sparse
        ``ftruncate`` is instant), so ``st_size`` is only a fast refusal: the read itself never
        asks for more than the cap plus one byte, and that extra byte means ``payload_too_large``."""
        cap = min(max_bytes, MAX_FILE_BYTES)
        rel = "/".join(_parts(path))
        # O_NONBLOCK: a FIFO planted by the sandbox must not hang an agent thread in open().
        fd = self._open(rel, os.O_RDONLY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise EngineError("invalid_request", f"not a regular file: {path}")
            if st.st_size > cap:
                raise EngineError("payload_too_large", f"file is larger than {cap} bytes")
            chunks, left = [], cap + 1
            while left and (data := os.read(fd, min(left, 1 << 20))):
                chunks.append(data)
                left -= len(data)
            if not left:
                raise EngineError("payload_too_large", f"file is larger than {cap} bytes")
            return b"".join(chunks)
        finally:
            os.close(fd)

    def write(self, path: str, data: bytes) -> None:
        if len(data) > MAX_FILE_BYTES:
            raise EngineError("payload_too_large", f"file is larger than {MAX_FILE_BYTES} bytes")
        parts = _parts(path)
        for i in range(1, len(parts)):
            sub = "/".join(parts[:i])
            try:
                os.close(self._open(sub, os.O_PATH | os.O_DIRECTORY))
            except EngineError as exc:
                if exc.code != "not_found":
                    raise
                parent = self._open("/".join(parts[: i - 1]), os.O_PATH | os.O_DIRECTORY)
                try:
                    os.mkdir(parts[i - 1], 0o755, dir_fd=parent)
                    os.chown(
                        parts[i - 1], self.owner_uid, self.owner_uid, dir_fd=parent, follow_symlinks=False
                    )
                except OSError as err:
                    raise _oserror(err, path) from None
                finally:
                    os.close(parent)
        fd = self._open("/".join(parts), os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise EngineError("invalid_request", f"not a regular file: {path}")
            os.set_blocking(fd, True)
            os.ftruncate(fd, 0)
            os.fchown(fd, self.owner_uid, self.owner_uid)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            raise _oserror(exc, path) from None
        finally:
            os.close(fd)

    def delete(self, path: str, recursive: bool = True) -> None:
        """Remove a file, a symlink (not its target) or a directory; a non-empty directory only
        with ``recursive`` (else ``conflict``). The tree is removed descriptor by descriptor."""
        parts = _parts(path)
        parent = self._parent(parts)
        try:
            st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                if recursive:
                    try:
                        _remove_tree(parent, parts[-1])
                    except RecursionError:
                        raise EngineError(
                            "invalid_request",
                            f"{path} is nested too deep to delete at once: delete a deeper part first",
                        ) from None
                else:
                    os.rmdir(parts[-1], dir_fd=parent)
            else:
                os.unlink(parts[-1], dir_fd=parent)
        except OSError as exc:
            raise _oserror(exc, path) from None
        finally:
            os.close(parent)

    def chown_tree(self) -> None:
        """Give every restored file to the sandbox user (restore writes as host root)."""
        for _dirpath, dirnames, filenames, dirfd in os.fwalk(self.root, follow_symlinks=False):
            for name in dirnames + filenames:
                os.chown(name, self.owner_uid, self.owner_uid, dir_fd=dirfd, follow_symlinks=False)


def _remove_tree(parent: int, name: str) -> None:
    """rm -r of the directory ``name`` in ``parent`` without recursion and with one descriptor of its own
    open at a time: each directory's subdirectories are moved up beside it (renameat2, which never follows
    a link) and removed in turn, so a tree nested thousands deep (a sandbox can make one) costs neither
    Python recursion (shutil.rmtree's RecursionError) nor a descriptor per level. Every directory is opened
    beneath ``parent`` without following links; files and links are unlinked, never followed."""
    todo = [name]
    while todo:
        current = todo.pop()
        fd = linux.openat2_beneath(parent, current, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with os.scandir(fd) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            for entry, is_dir in entries:
                if is_dir:
                    moved = f".mem0-rm-{uuid.uuid4().hex}"
                    try:
                        linux.renameat2(fd, entry, parent, moved, noreplace=True)
                    except OSError as exc:
                        if exc.errno != errno.EXDEV:
                            raise
                        # A directory of a lower overlay layer (from before a fork) cannot move:
                        # removed in place, descriptor-based (shutil.rmtree with dir_fd never follows links).
                        shutil.rmtree(entry, dir_fd=fd)
                        continue
                    todo.append(moved)
                else:
                    os.unlink(entry, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(current, dir_fd=parent)


def _entry(name: str, path: str, st: os.stat_result) -> dict:
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
    return {
        "name": name,
        "path": path,
        "type": kind,
        "size": st.st_size,
        "mode": stat.S_IMODE(st.st_mode),
        "mtime": st.st_mtime,
    }
