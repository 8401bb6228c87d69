"""The master's monitor: a thread that takes the snapshot about once a second, keeps its
history, and shows progress (a log line every LOGSTATS_INTERVAL, or a live terminal line).
Everything else (the status server, stats.json) reads the latest snapshot from here, so no
reader ever takes the frontier's lock."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from .history import History
from .live import LiveLine
from .progress import master_line

log = logging.getLogger(__name__)
SAMPLE_EVERY = 1.0   # seconds between snapshots...
MAX_SHARE = 0.01     # ...or more, so taking them never costs more than 1% of the master
LIVE_WINDOW = 5.0    # seconds of rate shown on the live line and the page


class Monitor:
    """Samples `take()` on a daemon thread; `current()` is the latest full snapshot."""

    def __init__(self, take: Callable[[], dict[str, Any]], log_interval: float,
                 live: LiveLine | None = None, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.take, self.log_interval, self.live, self.clock = take, log_interval, live, clock
        self.history = History()
        self.cost = 0.0  # seconds the last snapshot took
        self._current: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-monitor", daemon=True)
        self._next_log = 0.0

    def start(self) -> None:
        """Take the first snapshot now, then keep sampling."""
        self.sample()
        self._next_log = self.clock() + self.log_interval
        if self.live is not None:
            self.live.capture()
        self._thread.start()

    def current(self) -> dict[str, Any]:
        """The latest snapshot, with its rates and the series (a new dict per sample)."""
        return self._current

    def sample(self, finish: Callable[[dict], dict] | None = None) -> dict[str, Any]:
        """Take a snapshot now (`finish` may adjust it) and make it the current one."""
        started = time.perf_counter()
        snap = self.take()
        self.cost = time.perf_counter() - started
        if finish is not None:
            snap = finish(snap)
        self.history.add(snap)
        snap["rates"] = self.history.rates(LIVE_WINDOW)
        snap["series"] = self.history.to_json()
        snap["snapshot_seconds"] = round(self.cost, 6)
        self._current = snap
        return snap

    def stop(self, finish: Callable[[dict], dict] | None = None) -> dict[str, Any]:
        """Stop sampling, erase the live line; the final snapshot."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        if self.live is not None:
            self.live.close()
        return self.sample(finish)

    def _run(self) -> None:
        every = min(SAMPLE_EVERY, self.log_interval or SAMPLE_EVERY)
        while not self._stop.wait(max(every, self.cost / MAX_SHARE)):
            try:
                self._tick()
            except Exception:  # a bug here must never stop the crawl
                log.exception("status snapshot failed")

    def _tick(self) -> None:
        snap = self.sample()
        if self.live is not None:
            self.live.show(master_line(snap, snap["rates"]))
        elif self.log_interval and self.clock() >= self._next_log:
            self._next_log = self.clock() + self.log_interval
            log.info("%s", master_line(snap, self.history.rates(self.log_interval)))
