"""A worker's fetcher threads: a pool whose size can change while it runs.

Tasks wait in one queue; each thread takes one, runs `work` on it and hands the result to
`done`. Growing starts threads at once. Shrinking is cooperative: a thread over the size
leaves after the task it is on (or when it finds no task for a while), so nothing is ever
interrupted and no task is lost; a thread that leaves runs `on_exit` (closing its kept-alive
connections).
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)
IDLE_CHECK = 1.0  # seconds an idle thread waits before it looks whether it should leave


class FetchPool:
    """Threads running `work(task)` for every task put, at most `size` at once."""

    def __init__(self, work: Callable[[Any], Any], done: Callable[[Any, Any], None],
                 on_exit: Callable[[], None] = lambda: None, name: str = "fetch") -> None:
        self._work, self._done, self._on_exit, self._name = work, done, on_exit, name
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._size = self._alive = self._busy = 0
        self._started = 0  # names threads
        self._closed = False

    @property
    def size(self) -> int:
        """Threads wanted (those over it are leaving)."""
        return self._size

    @property
    def busy(self) -> int:
        """Threads running a task right now."""
        return self._busy

    @property
    def alive(self) -> int:
        """Threads running, leaving ones included."""
        return self._alive

    def waiting(self) -> int:
        """Tasks put and not yet taken by a thread."""
        return self._tasks.qsize()

    def put(self, task: Any) -> None:
        self._tasks.put(task)

    def resize(self, size: int) -> None:
        """Make the pool `size` threads (at least 1): start the missing ones now; threads over
        it leave when they finish their task."""
        size = max(1, size)
        with self._lock:
            if self._closed:
                return
            self._size = size
            start = max(0, size - self._alive)
            self._alive += start
        for _ in range(start):
            self._started += 1
            threading.Thread(target=self._run, name=f"{self._name}-{self._started}",
                             daemon=True).start()

    def close(self) -> None:
        """Every thread leaves after its task; tasks not taken stay untaken."""
        with self._lock:
            self._closed, self._size, alive = True, 0, self._alive
        for _ in range(alive):
            self._tasks.put(None)  # wakes idle threads

    def _leave(self) -> bool:
        """Should this thread leave? If so it is counted out here, under the lock, so two
        threads never both leave for one excess."""
        with self._lock:
            if self._alive <= self._size:
                return False
            self._alive -= 1
            return True

    def _run(self) -> None:
        try:
            while not self._leave():
                try:
                    task = self._tasks.get(timeout=IDLE_CHECK)
                except queue.Empty:
                    continue
                if task is None:
                    continue  # close(): _leave() says so now
                with self._lock:
                    self._busy += 1
                try:
                    self._done(task, self._work(task))
                finally:
                    with self._lock:
                        self._busy -= 1
        finally:
            self._on_exit()
