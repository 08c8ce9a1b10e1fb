"""Files as agents need them: stat, make_dir, move, text reads and watches of a sandbox's workspace.

Services over the sandbox's own agent (engine/files.py and engine/watch.py do the work, resolving every
path beneath the workspace); the basic list/read/write/delete are in services.py. Paths are checked here
first (validation.clean_workspace_path) and again by the agent.
"""

import logging

from mem0web.errors import Mem0Error
from sandboxes import dispatch, services
from sandboxes.models import Sandbox
from sandboxes.validation import clean_workspace_path

log = logging.getLogger("mem0.sandboxes.files")

MAX_LIST_DEPTH = 16  # engine/files.py MAX_LIST_DEPTH


class NotText(Mem0Error):
    code, status, message = "not_text", 422, "The file is not UTF-8 text; read it as bytes."


def _call(sandbox: Sandbox, op: str, **kwargs):
    services.require_running(sandbox)
    return dispatch.call(sandbox.agent_id, op, owner=sandbox.organization_id, sandbox_id=sandbox.pk, **kwargs)


def file_stat(*, sandbox: Sandbox, path: str) -> dict:
    """`{name, path, type, size, mode, mtime}` of the path itself (a symlink is not followed); 404 not_found."""
    return _call(sandbox, "file_stat", path=clean_workspace_path(path, allow_root=True))


def file_mkdir(*, sandbox: Sandbox, path: str, parents: bool = True) -> dict:
    return _call(sandbox, "file_mkdir", path=clean_workspace_path(path), parents=parents)


def file_move(*, sandbox: Sandbox, source: str, destination: str, overwrite: bool = False) -> dict:
    return _call(
        sandbox,
        "file_move",
        source=clean_workspace_path(source),
        destination=clean_workspace_path(destination),
        overwrite=overwrite,
    )


def file_list_tree(*, sandbox: Sandbox, path: str, depth: int) -> list[dict]:
    return _call(sandbox, "files_list", path=clean_workspace_path(path, allow_root=True), depth=depth)


def file_delete(*, sandbox: Sandbox, path: str, recursive: bool) -> None:
    _call(sandbox, "file_delete", path=clean_workspace_path(path), recursive=recursive)


def file_read_text(*, sandbox: Sandbox, path: str) -> str:
    """The file as UTF-8 text (same size cap as bytes); 422 not_text when it is not valid UTF-8."""
    data = services.file_read(sandbox=sandbox, path=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotText(details={"offset": exc.start}) from None


def files_watch_start(*, sandbox: Sandbox, path: str, recursive: bool) -> dict:
    """Start a watch on the agent: `{"watch_id", "stream"}` (the bus stream its events go to)."""
    return _call(
        sandbox, "files_watch", path=clean_workspace_path(path, allow_root=True), recursive=recursive
    )


def files_watch_stop(*, sandbox: Sandbox, watch_id: str, stream: str) -> None:
    """Stop a watch and let the bus drop its stream; best effort (it ends with its sandbox anyway)."""
    try:
        dispatch.call(
            sandbox.agent_id,
            "files_unwatch",
            owner=sandbox.organization_id,
            sandbox_id=sandbox.pk,
            watch_id=watch_id,
        )
    except Mem0Error as exc:
        log.info("watch_stop_failed sandbox=%s code=%s", sandbox.pk, exc.code)
    dispatch.output_recorded([stream])
