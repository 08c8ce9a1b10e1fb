"""The store's small metadata database (SQLite, WAL): which chunks S3 holds, recently committed snapshot
roots (the GC grace journal) and the GC epoch. Chunk data never goes through it, so the snapshot hot path
touches it once per snapshot (to journal the root).
"""

import os
import sqlite3
import threading
import time
from collections.abc import Iterable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS remote (id BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS roots (digest TEXT PRIMARY KEY, committed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', '0');
"""
_BATCH = 500


class Catalog:
    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()
        with self._conn() as c:
            c.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        # One connection per thread and per process: sqlite connections must not cross either.
        key = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != key:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            with self._opened_lock:
                self._opened.append(conn)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn, self._local.pid = conn, key
        return conn

    def close(self) -> None:
        """Close every connection this catalog opened; the last close folds the WAL back into the db."""
        with self._opened_lock:
            conns, self._opened = self._opened, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def record_root(self, digest: str) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO roots (digest, committed_at) VALUES (?, ?)", (digest, time.time())
        )

    def roots_since(self, since: float) -> list[str]:
        rows = self._conn().execute("SELECT digest FROM roots WHERE committed_at >= ?", (since,))
        return [r[0] for r in rows]

    def prune_roots(self, before: float) -> None:
        self._conn().execute("DELETE FROM roots WHERE committed_at < ?", (before,))

    def epoch(self) -> int:
        return int(self._conn().execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0])

    def bump_epoch(self) -> None:
        self._conn().execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'epoch'")

    def mark_remote(self, ids: Iterable[bytes]) -> None:
        c = self._conn()
        c.execute("BEGIN")
        c.executemany("INSERT OR IGNORE INTO remote (id) VALUES (?)", ((i,) for i in ids))
        c.execute("COMMIT")

    def forget_remote(self, ids: Iterable[bytes]) -> None:
        c = self._conn()
        c.execute("BEGIN")
        c.executemany("DELETE FROM remote WHERE id = ?", ((i,) for i in ids))
        c.execute("COMMIT")

    def remote_subset(self, ids: Iterable[bytes]) -> set[bytes]:
        """The members of ``ids`` that S3 is known to hold."""
        ids, found, c = list(ids), set(), self._conn()
        for i in range(0, len(ids), _BATCH):
            part = ids[i : i + _BATCH]
            q = f"SELECT id FROM remote WHERE id IN ({','.join('?' * len(part))})"
            found.update(r[0] for r in c.execute(q, part))
        return found

    def all_remote(self) -> set[bytes]:
        return {r[0] for r in self._conn().execute("SELECT id FROM remote")}
