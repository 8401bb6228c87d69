"""Kept-alive connections waiting for their next request, shared by a fetcher's threads.

A broad crawl's fetcher threads take tasks from hundreds of hosts, so one thread seldom
sends two requests in a row to the same host: connections kept per thread were almost
never reused (each page paid a connect, the address guard's lookup and a close). Kept here,
a host's next request reuses its connection whichever thread sends it. A connection is
owned by one thread from `take` to `put`; while idle it belongs to no one.
"""
from __future__ import annotations

import resource
import threading
from typing import Protocol

# Connections kept idle per fetcher (all its threads), the least recently kept closed first.
# A broad crawl at per-host 8 over 200 hosts keeps up to ~1,600 per worker; fewer when the
# process may open fewer than 4x as many files (see default_cap).
MAX_IDLE = 2048


def default_cap() -> int:
    """MAX_IDLE, or a quarter of this process's file-descriptor limit when that is lower
    (the rest stays for connections in use, the output and the master's link)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return MAX_IDLE
    return max(8, min(MAX_IDLE, soft // 4))


class Kept(Protocol):
    """What the pool needs of a connection: its key and a way to close it."""

    key: tuple

    def close(self) -> None: ...


class IdleConnections:
    """Idle connections by key ((scheme, host, port) and the proxy, as the client keys
    them); thread-safe; at most `cap`, the least recently kept closed first."""

    def __init__(self, cap: int | None = None) -> None:
        self.cap = default_cap() if cap is None else cap
        self._lock = threading.Lock()
        self._by_key: dict[tuple, list[Kept]] = {}
        self._order: dict[Kept, None] = {}  # insertion order: least recently kept first
        self._closed = False  # after close(), connections given back are closed

    def __len__(self) -> int:
        return len(self._order)

    def take(self, key: tuple) -> Kept | None:
        """The most recently kept connection for `key` (now the caller's), or None."""
        with self._lock:
            conns = self._by_key.get(key)
            if not conns:
                return None
            conn = conns.pop()  # the most recent: the least likely to have timed out
            if not conns:
                del self._by_key[key]
            del self._order[conn]
        return conn

    def put(self, conn: Kept) -> None:
        """Keep `conn` for its key's next request; close the oldest beyond the cap."""
        evicted = []
        with self._lock:
            if self._closed:
                evicted.append(conn)
            else:
                self._by_key.setdefault(conn.key, []).append(conn)
                self._order[conn] = None
            while len(self._order) > self.cap:
                evicted.append(self._drop_oldest())
        for old in evicted:
            old.close()

    def _drop_oldest(self) -> Kept:
        old = next(iter(self._order))
        del self._order[old]
        conns = self._by_key[old.key]
        conns.remove(old)
        if not conns:
            del self._by_key[old.key]
        return old

    def close(self) -> None:
        """Close every idle connection, and each one given back from now on."""
        with self._lock:
            conns, self._order, self._by_key = list(self._order), {}, {}
            self._closed = True
        for conn in conns:
            conn.close()
