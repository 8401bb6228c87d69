"""Queued URLs beyond the frontier's memory bound, on disk, per host in queue order.

Entries are buffered in memory and written in runs: per host, up to _RUN entries sorted by
queue key, one SQLite row each (one row per URL cost ~5 us of B-tree insertion; a run, a
fraction). A host's runs come back smallest key first, and the frontier merges them into
the host's heap whenever the spill holds a key smaller than the heap's first, so the order
is exactly the one an unbounded heap would give.

Nothing here is durable: the file is unlinked as soon as it is open (a killed master leaves
no file behind); with a JOBDIR the journal, not this file, is what a resumed crawl starts
from. The caller holds the frontier's lock around every call.
"""
from __future__ import annotations

import heapq
import os
import pickle
import sqlite3
import tempfile
from collections import defaultdict

from .hosts import Host

_FLUSH_AT = 50_000  # entries buffered in memory before they are written
_RUN = 256  # most entries in one row


class Spill:
    """The spilled entries of every host."""

    def __init__(self, folder: str | None = None) -> None:
        fd, path = tempfile.mkstemp(prefix="crawler-spill-", suffix=".sqlite", dir=folder)
        os.close(fd)
        self.path = path
        # One connection, used under the frontier's lock from whichever thread holds it.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        os.unlink(path)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "locking_mode=EXCLUSIVE",
                       "cache_size=-16384", "temp_store=MEMORY"):
            self._db.execute(f"PRAGMA {pragma}")
        # Rows appended in rowid order; only the small index is kept sorted by host.
        self._db.execute("CREATE TABLE run (host INTEGER, first INTEGER, entries BLOB)")
        self._db.execute("CREATE INDEX run_by_host ON run (host, first)")
        self._buffer: defaultdict[int, list[tuple]] = defaultdict(list)
        self._buffered = 0
        self.count = 0  # entries held, buffered or written

    def put(self, host: Host, entry: tuple) -> None:
        """Keep one heap entry (key, url, fp, depth, extra) of host's until take()."""
        self._buffer[host.id].append(entry)
        host.spilled += 1
        if entry[0] < host.spill_min:
            host.spill_min = entry[0]
        self.count += 1
        self._buffered += 1
        if self._buffered >= _FLUSH_AT:
            self._flush(list(self._buffer))

    def _flush(self, host_ids: list[int]) -> None:
        rows = []
        for host_id in host_ids:
            entries = sorted(self._buffer.pop(host_id, ()))
            self._buffered -= len(entries)
            rows += [(host_id, entries[at][0], pickle.dumps(entries[at:at + _RUN], 5))
                     for at in range(0, len(entries), _RUN)]
        if rows:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO run VALUES (?, ?, ?)", rows)
            self._db.execute("COMMIT")

    def take(self, host: Host) -> None:
        """Move host's first run (the smallest keys it has spilled) into its heap."""
        if host.id in self._buffer:
            self._flush([host.id])
        rows = self._db.execute("SELECT first, rowid FROM run WHERE host = ? ORDER BY first "
                                "LIMIT 2", (host.id,)).fetchall()
        if not rows:
            return
        rowid = rows[0][1]
        blob, = self._db.execute("SELECT entries FROM run WHERE rowid = ?", (rowid,)).fetchone()
        self._db.execute("DELETE FROM run WHERE rowid = ?", (rowid,))
        entries = pickle.loads(blob)
        for entry in entries:
            heapq.heappush(host.queue, entry)
        host.spill_min = rows[1][0] if len(rows) > 1 else float("inf")
        host.spilled -= len(entries)
        self.count -= len(entries)

    def close(self) -> None:
        self._buffer.clear()
        self._db.close()
