"""The LLM answer cache (teacher and benchmark judge): every request/response pair, in SQLite.

A corpus build against a paid, rate-limited API runs for days and gets killed, and a benchmark
re-scored with a judge asks the same questions again; the cache is what makes a rerun, a resume
or a re-score free. Each answered request is committed the moment it arrives, keyed by
(model, prompt-template hash, request hash, image sha256), so the only requests a resume repeats
are those that had not been answered when the process died. WAL mode with a busy timeout lets
several worker processes (``--workers``) read and write the same file; each process opens its own
connection. Only answers are stored: no headers, no key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    kind TEXT NOT NULL,
    content TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL
)
"""


def cache_key(model: str, prompt_hash: str, request_hash: str, image_sha256: str) -> str:
    """The row key: one sha256 over the four parts (unambiguous: NUL-separated)."""
    raw = "\0".join((model, prompt_hash, request_hash, image_sha256)).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    content: str
    prompt_tokens: int
    completion_tokens: int


class AnswerCache:
    """A process-safe SQLite map from a request's key to the model's answer.

    The connection is opened lazily and reopened after a ``fork`` (SQLite connections must not
    cross processes), so an annotator built in the parent can be used by worker processes.
    """

    def __init__(self, path: str | Path, busy_timeout_s: float = 60.0):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout_s, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode survives a killed process (not a power cut): the right trade for a cache.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(_SCHEMA)
        self._conn, self._pid = conn, os.getpid()
        return conn

    def get(self, key: str) -> CachedAnswer | None:
        row = self._connection().execute(
            "SELECT content, prompt_tokens, completion_tokens FROM responses WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else CachedAnswer(row[0], int(row[1]), int(row[2]))

    def put(self, key: str, *, model: str, prompt_hash: str, request_hash: str, image_sha256: str,
            kind: str, answer: CachedAnswer) -> None:
        """Store an answer (first writer wins: a duplicate from another process is ignored)."""
        self._connection().execute(
            "INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, model, prompt_hash, request_hash, image_sha256, kind, answer.content,
             int(answer.prompt_tokens), int(answer.completion_tokens), time.time()),
        )

    def __len__(self) -> int:
        return int(self._connection().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn, self._pid = None, None

    def __getstate__(self) -> dict:
        return {"path": self.path, "busy_timeout_s": self.busy_timeout_s}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["busy_timeout_s"])
