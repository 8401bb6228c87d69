"""The total deadline of a fetch: a watchdog thread that cuts its sockets when it passes.

Socket timeouts bound each recv, not a whole request (a server that sends a byte a second
never trips them). So every socket a fetch uses is registered here, and one daemon thread
per process shuts them down when the fetch's deadline passes, whatever phase the fetch is in.
The running fetch's context is kept per thread (`current()`), so the connection classes can
find it (crawler.connections).
"""
from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any

from . import addresses

_clock = time.monotonic  # the watchdog's own clock (tests replace the fetcher's)
_current = threading.local()  # .fetch: the FetchContext running in this thread, if any


class FetchContext:
    """One fetch in progress: its deadline, guard policy and the sockets it uses."""

    def __init__(self, deadline: float, guard: bool, trusted: frozenset[str]) -> None:
        self.deadline, self.guard, self.trusted = deadline, guard, trusted
        self.expired = False
        self.done = False
        self.sockets: dict[int, socket.socket] = {}  # fd of the live socket -> our dup of it

    def trusts(self, host: str) -> bool:
        return addresses.normalize_host(host) in self.trusted

    def watch(self, sock: Any) -> None:
        """Have the watchdog cut this socket at the deadline. Holds a dup of the descriptor
        (closed when the fetch ends), so a descriptor number reused later is never touched."""
        _watchdog.watch(self, sock)


def start(ctx: FetchContext, timeout: float) -> None:
    """ctx runs in this thread from now on; its sockets are cut in `timeout` seconds."""
    _watchdog.add(ctx, timeout)
    _current.fetch = ctx


def finish(ctx: FetchContext) -> None:
    """ctx is over: forget it and close the duplicated descriptors."""
    _current.fetch = None
    _watchdog.remove(ctx)


def current() -> FetchContext | None:
    """The fetch running in this thread, if any."""
    return getattr(_current, "fetch", None)


class _Watchdog:
    """One daemon thread per process that shuts down the sockets of expired fetches."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, FetchContext]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, ctx: FetchContext, timeout: float) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fetch-watchdog",
                                                daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (_clock() + timeout, next(self._seq), ctx))
            if self._heap[0][2] is ctx:
                self._cond.notify()

    def watch(self, ctx: FetchContext, sock: Any) -> None:
        try:
            fd = sock.fileno()
        except (OSError, AttributeError):
            return
        if fd < 0:
            return
        with self._cond:
            if ctx.done or fd in ctx.sockets:
                return
            try:
                dup = socket.socket(fileno=os.dup(fd))
            except OSError:
                return
            ctx.sockets[fd] = dup
            if ctx.expired:
                _shutdown(dup)

    def remove(self, ctx: FetchContext) -> None:
        with self._cond:
            ctx.done = True
            for dup in ctx.sockets.values():
                dup.close()
            ctx.sockets.clear()
            # Finished fetches leave the heap here, not at their deadline: else a busy
            # worker would hold DOWNLOAD_TIMEOUT seconds' worth of them.
            heap = self._heap
            while heap and heap[0][2].done:
                heapq.heappop(heap)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = _clock()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _, _, ctx = heapq.heappop(self._heap)
                    if not ctx.done:
                        ctx.expired = True
                        for dup in ctx.sockets.values():
                            _shutdown(dup)
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


_watchdog = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_watchdog._reset)
