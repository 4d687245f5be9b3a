"""The hub's SQLite stores share one discipline, kept here once.

One file per store in WAL mode with ``synchronous=FULL``: a transaction is on disk when ``COMMIT``
returns, which is what lets the hub acknowledge only what it has committed (a hub killed with SIGKILL
loses nothing it acknowledged). Access is serialised by a lock rather than by thread identity
(``check_same_thread=False``), so the asyncio MLLP server and HTTP worker threads can share a store.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self


class SQLiteStore:
    """Base of the hub's stores: opens the file, applies the schema, gives one write transaction at a time."""

    def __init__(self, path: Path | str, schema: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (and fsynced) before the caller goes on."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
