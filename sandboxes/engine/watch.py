"""Watch a workspace directory for changes: inotify on the host side, events on the bus.

A watch is one inotify descriptor of the agent on one directory of a sandbox's workspace (and,
``recursive``, its subdirectories as they appear). Its events go to the bus as an output stream
``watch:{id}`` (so the bus's byte budgets bound them like run output), as ``OutputEvent``s of
stream ``"watch"`` whose data is one JSON event::

    {"type": "created" | "modified" | "deleted" | "moved" | "overflow" | "end",
     "path": "dir/file", "dest": "new/path" (moved), "is_dir": bool, "reason": "..." (end)}

and a final ``ExitEvent``. Paths are relative to /workspace.

Safety: the sandbox can rename or swap any directory while it is being watched. A directory is
watched through a descriptor opened with ``openat2_beneath`` relative to its parent's (no symlink,
no magic link, nothing outside), and ``inotify_add_watch`` is given ``/proc/self/fd/N`` of that
descriptor: the agent's own descriptor, so the watch is on exactly the inode that was resolved.
A renamed directory keeps its watch (paths reported below it may then be stale until the move's
own event, which re-labels it). Bounds: ``MAX_DIRS`` watched directories per watch,
``MAX_WATCHES_PER_SANDBOX`` and ``MAX_WATCHES`` watches, at most one publish per ``FLUSH_S`` of at
most ``MAX_EVENTS_PER_FLUSH`` events (repeats coalesced, more become one ``overflow`` event), ``MAX_WATCH_S`` of life. A watch ends when it is
stopped, its sandbox ends, its directory is deleted or its time is up.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import threading
import time
import uuid
from dataclasses import dataclass, field

from . import linux
from .inotify import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    add_watch,
    inotify_init,
    records,
)
from .protocol import EngineError, ExitEvent, OutputEvent

log = logging.getLogger("mem0.engine.watch")

# Kernel limits are per user (root, for the agent): fs.inotify.max_user_instances defaults to 128 and
# max_user_watches to ~8k-1M by memory. 64 watches of at most 1024 directories stay under both.
MAX_DIRS = 1024
MAX_DEPTH = 32  # directory levels below the watched one (a sandbox can nest thousands: never recursed into)
MAX_WATCHES_PER_SANDBOX = 4
MAX_WATCHES = 64
MAX_EVENTS_PER_FLUSH = 256
MAX_WATCH_S = 3600.0
FLUSH_S = 0.05
READ_BYTES = 64 << 10


@dataclass
class Watch:
    watch_id: str
    sandbox_id: str
    root: str  # host path of the workspace
    path: str  # the watched directory, relative to the workspace
    recursive: bool
    fd: int
    expires: float
    dirs: dict[int, str] = field(default_factory=dict)  # wd -> directory path relative to the workspace
    pending: list[dict] = field(default_factory=list)
    overflowed: bool = False
    seq: int = 0
    dirs_capped: bool = False
    last_flush: float = 0.0  # monotonic time of its last publish
    paused: bool = False  # over MAX_EVENTS_PER_FLUSH: not read until its window ends (the kernel queues)


def watch_stream(watch_id: str) -> str:
    """The bus stream a watch's events go to."""
    return f"watch:{watch_id}"


class WatchHub:
    """Every watch of one agent, served by one thread."""

    def __init__(self, bus):
        self.bus = bus
        self.watches: dict[str, Watch] = {}
        self.lock = threading.Lock()
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        self.stopping = False
        self.thread: threading.Thread | None = None
        # Registration and ending happen on the hub thread only (queued here by op threads): a
        # descriptor is never closed while the hub may still read it, nor its number reused under it.
        self.control: list[tuple[str, Watch, str]] = []

    def start(self) -> WatchHub:
        self.thread = threading.Thread(target=self._loop, name="mem0-watch", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping = True
        try:
            os.write(self.wake_w, b"x")  # out of select() now
        except BlockingIOError:
            pass
        if self.thread:
            self.thread.join(timeout=5)
        for watch in list(self.watches.values()):
            self._end(watch, "agent_stopping")
        self.selector.close()
        os.close(self.wake_r)
        os.close(self.wake_w)

    def _wake(self) -> None:
        if self.stopping:
            return  # the hub is gone (its pipe closed): deaths during the agent's stop have nothing to end
        try:
            os.write(self.wake_w, b"x")
        except BlockingIOError:
            pass  # a wake is already pending

    # -------------------------------------------------------------- control (op threads)

    def add(self, *, sandbox_id: str, root: str, path: str, recursive: bool, owner: str) -> str:
        """Start watching ``path`` (relative, already split-checked by the caller) of the workspace at
        ``root``; returns the watch id (its stream is ``watch_stream(id)``)."""
        with self.lock:
            if len(self.watches) >= MAX_WATCHES:
                raise EngineError("rate_limited", f"this host already serves {MAX_WATCHES} watches")
            if sum(w.sandbox_id == sandbox_id for w in self.watches.values()) >= MAX_WATCHES_PER_SANDBOX:
                raise EngineError(
                    "rate_limited", f"a sandbox may have at most {MAX_WATCHES_PER_SANDBOX} watches at once"
                )
        base = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            dirfd = linux.openat2_beneath(base, path or ".", os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            from .files import _oserror

            raise _oserror(exc, path) from None
        finally:
            os.close(base)
        try:
            ifd = inotify_init()
        except OSError as exc:
            os.close(dirfd)
            raise EngineError("rate_limited", "this host cannot take another watch now") from exc
        watch = Watch(
            uuid.uuid4().hex, sandbox_id, root, path, bool(recursive), ifd, time.monotonic() + MAX_WATCH_S
        )
        try:
            self._watch_tree(watch, dirfd, path)
        except OSError as exc:
            os.close(ifd)
            raise EngineError("rate_limited", "this host cannot take another watch now") from exc
        except BaseException:
            os.close(ifd)
            raise
        finally:
            os.close(dirfd)
        self.bus.output_open(watch_stream(watch.watch_id), owner)
        with self.lock:
            self.watches[watch.watch_id] = watch
            self.control.append(("add", watch, ""))
        self._wake()
        return watch.watch_id

    def remove(self, watch_id: str, sandbox_id: str | None = None, reason: str = "stopped") -> bool:
        with self.lock:
            watch = self.watches.get(watch_id)
            if watch is None or (sandbox_id is not None and watch.sandbox_id != sandbox_id):
                return False
            self.control.append(("end", watch, reason))
        self._wake()
        return True

    def end_sandbox(self, sandbox_id: str) -> None:
        """The sandbox is gone: end its watches."""
        with self.lock:
            for watch in self.watches.values():
                if watch.sandbox_id == sandbox_id:
                    self.control.append(("end", watch, "sandbox_ended"))
        self._wake()

    def _apply_control(self) -> None:
        with self.lock:
            actions, self.control = self.control, []
        for action, watch, reason in actions:
            if action == "add" and watch.watch_id in self.watches:
                self.selector.register(watch.fd, selectors.EVENT_READ, watch)
            elif action == "end":
                self._end(watch, reason)

    def count(self, sandbox_id: str | None = None) -> int:
        with self.lock:
            return sum(sandbox_id is None or w.sandbox_id == sandbox_id for w in self.watches.values())

    # -------------------------------------------------------------- the hub thread

    def _loop(self) -> None:
        """Read every watch's queue as it fills; a watch's events go out at once when it has not
        published in the last FLUSH_S, else when that window ends: one change is told within
        milliseconds, a burst is coalesced and published once per window."""
        while not self.stopping:
            self._apply_control()
            due = [w.last_flush + FLUSH_S for w in self.watches.values() if w.pending]
            timeout = max(0.0, min(due) - time.monotonic()) if due else 1.0
            try:
                ready = self.selector.select(timeout=timeout)
            except OSError:
                continue
            self._apply_control()  # ends queued before an event was read win (a sandbox's end, then its unmount)
            for key, _ in ready:
                if key.data is None:
                    try:
                        while os.read(self.wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                self._read_guarded(key.data)
                if key.data.overflowed and not key.data.paused and key.data.watch_id in self.watches:
                    # A storm of changes costs the agent one window's worth of parsing, not the storm's.
                    self.selector.unregister(key.data.fd)
                    key.data.paused = True
            now = time.monotonic()
            for watch in list(self.watches.values()):
                if watch.pending and now - watch.last_flush >= FLUSH_S:
                    watch.last_flush = now
                    self._flush(watch)
                    if watch.paused:
                        watch.paused = False
                        self.selector.register(watch.fd, selectors.EVENT_READ, watch)
                if now > watch.expires:
                    self._end(watch, "time_limit")

    def _read_guarded(self, watch: Watch) -> None:
        """``_read``; a failure ends that watch (``error``), never the hub that serves every watch."""
        try:
            self._read(watch)
        except Exception:
            log.exception("event=watch_failed watch=%s", watch.watch_id)
            self._end(watch, "error")

    def _read(self, watch: Watch, final: bool = False) -> None:
        """Turn what the watch's inotify queue holds into events; ``final``: a last drain before the watch
        ends for another reason (what the queue says about its own end then changes nothing)."""
        if watch.watch_id not in self.watches:
            return
        try:
            buf = os.read(watch.fd, READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            if not final:
                self._end(watch, "error")
            return
        moves: dict[int, tuple[str, bool]] = {}
        for wd, mask, cookie, name in records(buf):
            if mask & IN_Q_OVERFLOW:
                self._emit(watch, {"type": "overflow"})
                continue
            parent = watch.dirs.get(wd)
            if mask & IN_IGNORED:
                watch.dirs.pop(wd, None)
                if not watch.dirs and not final:
                    self._end(watch, "deleted")
                    return
                continue
            if parent is None or mask & (IN_DELETE_SELF | IN_UNMOUNT):
                continue
            path = f"{parent}/{name}" if parent else name
            is_dir = bool(mask & IN_ISDIR)
            if mask & IN_CREATE:
                self._emit(watch, {"type": "created", "path": path, "is_dir": is_dir})
                if is_dir and watch.recursive:
                    self._watch_new_dir(watch, wd, name, path, announce=True)
            elif mask & (IN_MODIFY | IN_CLOSE_WRITE):
                self._emit(watch, {"type": "modified", "path": path, "is_dir": False})
            elif mask & IN_DELETE:
                self._emit(watch, {"type": "deleted", "path": path, "is_dir": is_dir})
            elif mask & IN_MOVED_FROM:
                moves[cookie] = (path, is_dir)
            elif mask & IN_MOVED_TO:
                source = moves.pop(cookie, None)
                if source is None:
                    self._emit(watch, {"type": "created", "path": path, "is_dir": is_dir})
                else:
                    self._emit(watch, {"type": "moved", "path": source[0], "dest": path, "is_dir": is_dir})
                if is_dir and watch.recursive:
                    # the same inode keeps its watch, re-labelled; one moved in is new to the watch
                    self._watch_new_dir(watch, wd, name, path, announce=source is None)
        for path, is_dir in moves.values():  # moved out of the watched tree
            self._emit(watch, {"type": "deleted", "path": path, "is_dir": is_dir})

    def _emit(self, watch: Watch, event: dict) -> None:
        """Queue an event, coalescing repeats of the same change to the same path in this window."""
        if watch.overflowed:
            return
        if event["type"] == "modified" and any(
            e.get("path") == event["path"] and e["type"] in ("created", "modified")
            for e in watch.pending[-32:]
        ):
            return
        if len(watch.pending) >= MAX_EVENTS_PER_FLUSH:
            watch.overflowed = True
            watch.pending.append({"type": "overflow"})
            return
        watch.pending.append(event)

    def _flush(self, watch: Watch) -> None:
        if not watch.pending:
            return
        events = []
        for event in watch.pending:
            watch.seq += 1
            events.append(OutputEvent(watch.seq, "watch", json.dumps(event)))
        watch.pending.clear()
        watch.overflowed = False
        try:
            self.bus.publish(watch_stream(watch.watch_id), events)
        except Exception:
            log.exception("event=watch_publish_failed watch=%s", watch.watch_id)

    def _end(self, watch: Watch, reason: str) -> None:
        if reason != "deleted" and self.selector.get_map() and watch.fd in self.selector.get_map():
            # What happened before the end is still told (bounded: the sandbox may still be writing).
            for _ in range(4):
                self._read(watch, final=True)
        with self.lock:
            if self.watches.pop(watch.watch_id, None) is None:
                return
        try:
            self.selector.unregister(watch.fd)
        except (KeyError, ValueError):
            pass  # ended before the hub registered it
        os.close(watch.fd)
        watch.pending.append({"type": "end", "reason": reason})
        self._flush(watch)
        watch.seq += 1
        end = ExitEvent(
            watch.seq, "succeeded" if reason == "stopped" else "killed", None, None, 0.0, 0.0, 0, False
        )
        try:
            self.bus.publish(watch_stream(watch.watch_id), [end])
        except Exception:
            log.exception("event=watch_publish_failed watch=%s", watch.watch_id)

    # -------------------------------------------------------------- directories

    def _watch_tree(self, watch: Watch, dirfd: int, path: str, announce: bool = False) -> None:
        """Watch the directory open at ``dirfd`` and (recursive) every directory below it. With
        ``announce`` (a directory that just appeared) what is already in it is reported as created:
        it may have been filled before its watch was in place."""
        level = path.count("/") - watch.path.count("/") if watch.path else path.count("/") + 1
        if len(watch.dirs) >= MAX_DIRS or (path != watch.path and level > MAX_DEPTH):
            if not watch.dirs_capped:
                watch.dirs_capped = True
                self._emit(
                    watch,
                    {"type": "overflow", "reason": f"more than {MAX_DIRS} directories or {MAX_DEPTH} levels"},
                )
            return
        watch.dirs[add_watch(watch.fd, dirfd)] = path
        if not watch.recursive:
            return
        try:
            with os.scandir(dirfd) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        except OSError:
            return
        for name, is_dir in entries:
            child = f"{path}/{name}" if path else name
            if announce:
                self._emit(watch, {"type": "created", "path": child, "is_dir": is_dir})
            if is_dir:
                self._watch_child(watch, dirfd, name, child, announce)

    def _watch_child(self, watch: Watch, parentfd: int, name: str, path: str, announce: bool = False) -> None:
        try:
            sub = linux.openat2_beneath(parentfd, name, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return  # gone or swapped for a link since: not watched
        try:
            self._watch_tree(watch, sub, path, announce)
        except OSError:
            # Out of kernel watches: say so once (no log line per directory the sandbox makes).
            if not watch.dirs_capped:
                watch.dirs_capped = True
                self._emit(watch, {"type": "overflow", "reason": "no more directories can be watched"})
        finally:
            os.close(sub)

    def _watch_new_dir(self, watch: Watch, parent_wd: int, name: str, path: str, announce: bool) -> None:
        """A directory appeared under a watched one: open the parent through the workspace root again
        (by its recorded path, beneath the root) and watch the new directory below it."""
        parent_path = watch.dirs.get(parent_wd, "")
        try:
            base = os.open(watch.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            parentfd = linux.openat2_beneath(base, parent_path or ".", os.O_PATH | os.O_DIRECTORY)
        except OSError:
            return
        finally:
            os.close(base)
        try:
            self._watch_child(watch, parentfd, name, path, announce)
        finally:
            os.close(parentfd)
