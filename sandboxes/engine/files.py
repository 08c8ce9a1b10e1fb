"""Workspace file operations, done by the agent on the host side of the sandbox's workspace.

Every path is relative to /workspace and resolved with openat2(RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): a '..' that would leave the workspace, an
absolute path or any symlink on the way is refused (``invalid_request``), so sandboxed code
cannot plant a link that makes the agent read or write a host file.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

from . import linux
from .protocol import EngineError

MAX_FILE_BYTES = 64 << 20
MAX_LIST_ENTRIES = 10_000


def _parts(path: str, allow_root: bool = False) -> list[str]:
    if not isinstance(path, str) or "\x00" in path or path.startswith("/"):
        raise EngineError("invalid_request", "path must be relative to /workspace")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise EngineError("invalid_request", "'..' is not allowed in paths")
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

    def list(self, path: str = "") -> list[dict]:
        parts = _parts(path, allow_root=True)
        rel = "/".join(parts)
        fd = self._open(rel, os.O_RDONLY | os.O_DIRECTORY)
        out = []
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    if len(out) == MAX_LIST_ENTRIES:
                        raise EngineError(
                            "payload_too_large", f"more than {MAX_LIST_ENTRIES} entries in {path!r}"
                        )
                    st = entry.stat(follow_symlinks=False)
                    kind = (
                        "dir"
                        if stat.S_ISDIR(st.st_mode)
                        else "symlink"
                        if stat.S_ISLNK(st.st_mode)
                        else "file"
                    )
                    out.append(
                        {
                            "name": entry.name,
                            "path": f"{rel}/{entry.name}" if rel else entry.name,
                            "type": kind,
                            "size": st.st_size,
                            "mode": stat.S_IMODE(st.st_mode),
                            "mtime": st.st_mtime,
                        }
                    )
        finally:
            os.close(fd)
        return sorted(out, key=lambda e: e["name"])

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

    def delete(self, path: str) -> None:
        parts = _parts(path)
        parent = (
            self._open("/".join(parts[:-1]), os.O_PATH | os.O_DIRECTORY)
            if len(parts) > 1
            else self._open("", os.O_PATH | os.O_DIRECTORY)
        )
        try:
            st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(parts[-1], dir_fd=parent)  # fd-based: does not follow symlinks
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
