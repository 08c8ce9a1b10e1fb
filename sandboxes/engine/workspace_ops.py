"""The agent's ops on a sandbox's files and snapshots (a mixin of ``agent.Agent``: they use its
sandbox table, workspace paths and hand-over): list, stat, read, write, make_dir, move, delete and
watch files, snapshot a workspace into the block store and restore one into a new sandbox.
"""

from __future__ import annotations

import base64
import errno

from .files import MAX_FILE_BYTES, _parts
from .protocol import EngineError
from .watch import watch_stream


def _flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise EngineError("invalid_request", f"{name} must be a boolean")
    return value


class WorkspaceOps:
    def op_files_list(self, *, sandbox_id: str, path: str = "", depth: int = 1) -> list[dict]:
        return self._workspace(self._get(sandbox_id)).list(path, depth)

    def op_file_stat(self, *, sandbox_id: str, path: str) -> dict:
        return self._workspace(self._get(sandbox_id)).stat(path)

    def op_file_mkdir(self, *, sandbox_id: str, path: str, parents: bool = True) -> dict:
        return self._workspace(self._get(sandbox_id)).make_dir(path, _flag("parents", parents))

    def op_file_move(
        self, *, sandbox_id: str, source: str, destination: str, overwrite: bool = False
    ) -> dict:
        return self._workspace(self._get(sandbox_id)).rename(
            source, destination, _flag("overwrite", overwrite)
        )

    def op_files_watch(
        self, *, sandbox_id: str, path: str = "", recursive: bool = True, owner: str = ""
    ) -> dict:
        """Start watching a directory; its events go to the bus stream ``stream`` (see ``watch``)."""
        if not isinstance(owner, str) or len(owner) > 128:
            raise EngineError("invalid_request", "owner must be a string of at most 128 characters")
        sb = self._get(sandbox_id)
        rel = "/".join(_parts(path, allow_root=True))
        watch_id = self.watch_hub.add(
            sandbox_id=sandbox_id,
            root=self._workspace(sb).root,
            path=rel,
            recursive=_flag("recursive", recursive),
            owner=owner or f"sandbox:{sandbox_id}",
        )
        return {"watch_id": watch_id, "stream": watch_stream(watch_id)}

    def op_files_unwatch(self, *, sandbox_id: str, watch_id: str) -> dict:
        if not isinstance(watch_id, str):
            raise EngineError("invalid_request", "watch_id must be a string")
        return {"stopped": self.watch_hub.remove(watch_id, sandbox_id)}

    def op_file_read(self, *, sandbox_id: str, path: str, max_bytes: int = MAX_FILE_BYTES) -> dict:
        if not isinstance(max_bytes, int) or max_bytes < 0:
            raise EngineError("invalid_request", "max_bytes must be a non-negative integer")
        data = self._workspace(self._get(sandbox_id)).read(path, max_bytes)
        return {"data": base64.b64encode(data).decode()}

    def op_file_write(self, *, sandbox_id: str, path: str, data: str) -> dict:
        try:
            raw = base64.b64decode(data, validate=True)
        except (ValueError, TypeError) as exc:
            raise EngineError("invalid_request", "data must be base64") from exc
        self._workspace(self._get(sandbox_id)).write(path, raw)
        return {"size": len(raw)}

    def op_file_delete(self, *, sandbox_id: str, path: str, recursive: bool = True) -> dict:
        self._workspace(self._get(sandbox_id)).delete(path, _flag("recursive", recursive))
        return {}

    def _store(self, scope: str = ""):
        """The block store, or its namespace ``scope`` (one per organisation: no cross-tenant dedup)."""
        if self._blockstore is None:
            try:
                from .blockstore import BlockStore
            except ImportError as exc:
                raise EngineError("internal_error", "block store is not available") from exc
            self._blockstore = BlockStore(self.blockstore_dir)
        if not scope:
            return self._blockstore
        try:
            return self._blockstore.scoped(scope)
        except ValueError as exc:
            raise EngineError("invalid_request", str(exc)) from exc

    def op_snapshot(self, *, sandbox_id: str, scope: str = "") -> dict:
        sb = self._get(sandbox_id)
        store = self._store(scope)
        with sb.lock:
            sb.cgroup.freeze()  # a consistent tree even while a run writes
            try:
                res = store.snapshot_tree(sb.zygote.workspace_path(sb.slot), previous_index=sb.snapshot_index)
            except Exception as exc:
                raise _blockstore_error(exc, "") from exc
            finally:
                sb.cgroup.thaw()
            sb.snapshot_index = res.index
        return {
            "digest": res.digest,
            "logical_bytes": res.logical_bytes,
            "new_bytes": res.new_bytes,
            "stored_bytes": res.stored_bytes,
            "files": res.files,
        }

    def op_restore(
        self,
        *,
        digest: str,
        new_sandbox_id: str,
        runtime: str,
        env: dict | None = None,
        limits: dict | None = None,
        scope: str = "",
    ) -> dict:
        env, lim = self._check_new(new_sandbox_id, env, limits)
        if not isinstance(digest, str) or not digest:
            raise EngineError("invalid_request", "digest must be a non-empty string")
        store = self._store(scope)
        sb = self._take(runtime)
        try:
            ws = self._workspace(sb)
            store.restore_tree(digest, ws.root)  # into the still-empty workspace, before hand-over
            ws.chown_tree()
        except BaseException as exc:
            self.supervisor.kill(sb)
            raise _blockstore_error(exc, digest) from exc
        return self._hand_over(sb, new_sandbox_id, env, lim)


def _blockstore_error(exc: BaseException, digest: str) -> BaseException:
    """Block store failures as engine errors (the block store is imported lazily)."""
    if isinstance(exc, EngineError) or not isinstance(exc, Exception):
        return exc
    code = getattr(exc, "code", "")
    if code in ("chunk_missing", "not_a_snapshot") or isinstance(exc, (KeyError, FileNotFoundError)):
        return EngineError("not_found", f"snapshot {digest} not found")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return EngineError("payload_too_large", "the snapshot does not fit in the workspace size limit")
    if isinstance(exc, ValueError):
        return EngineError("invalid_request", f"bad digest {digest!r}")
    if code == "chunk_archived":
        return EngineError(
            "invalid_request", f"snapshot {digest} is archived; restore it from cold storage first"
        )
    return EngineError("internal_error", f"block store: {type(exc).__name__}: {exc}")
