"""How many requests a worker process keeps in flight: sized by its CPU headroom, memory,
scheduling lag and hosts' pushback (crawlee's AutoscaledPool sizes by CPU, memory and event
loop lag; this does the same for a pool of threads).

The Autoscaler is pure: it is given readings (a clock, the process's CPU seconds, its RSS,
how late a timer fired, threads busy, results and pushback counts) and returns a size, so
its tests need no clock and no threads. Every AUTOSCALE_INTERVAL it decides:

* **shrink** (by SHRINK_STEP) when the process's RSS is over AUTOSCALE_MAX_MEMORY, when
  more than AUTOSCALE_MAX_PUSHBACK of the results were 429/503 answers, when the process
  is CPU-saturated (over AUTOSCALE_MAX_CPU of one core: one GIL), or when timers fire late
  by more than AUTOSCALE_MAX_LAG on average (threads waiting for the GIL or for a CPU the
  machine does not have to give);
* **grow** when every thread was busy (the pool, not the master or politeness, is what
  bounds the worker) and the CPU has headroom: in proportion to it, since a latency-bound
  worker's CPU grows with its requests in flight (at most GROW_MAX times per interval);
* else keep the size.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

log = logging.getLogger(__name__)
GROW_MAX = 2.0       # at most this many times the size per interval
SHRINK_STEP = 0.1    # share of the size dropped per interval when overloaded
SATURATED = 0.9      # busy threads over size, on average, that count as "all busy"


@dataclass(frozen=True)
class Limits:
    """The autoscaler's settings, as plain values."""

    start: int
    cap: int                  # CONCURRENT_REQUESTS
    interval: float = 0.5     # seconds between two decisions
    max_cpu: float = 0.9      # share of one core
    max_lag: float = 0.1      # seconds
    max_memory: int = 0       # bytes; 0: not checked
    max_pushback: float = 0.1  # share of results

    @classmethod
    def from_settings(cls, s: Mapping[str, Any]) -> "Limits":
        cap = s["CONCURRENT_REQUESTS"]
        return cls(min(s["AUTOSCALE_START"], cap), cap, s["AUTOSCALE_INTERVAL"],
                   s["AUTOSCALE_MAX_CPU"], s["AUTOSCALE_MAX_LAG"],
                   int(s["AUTOSCALE_MAX_MEMORY"] * 2**20), s["AUTOSCALE_MAX_PUSHBACK"])


class Autoscaler:
    """Decides a pool's size from readings; holds no clock and no thread."""

    def __init__(self, limits: Limits, now: float, cpu_seconds: float) -> None:
        self.limits = limits
        self.size = max(1, min(limits.start, limits.cap))
        self.reason = "start"
        self._since, self._cpu = now, cpu_seconds
        self._results = self._pushback = 0
        self._reset_samples()

    def _reset_samples(self) -> None:
        self._samples, self._busy, self._lag = 0, 0.0, 0.0

    def sample(self, busy: int, lag: float) -> None:
        """One reading between decisions: threads busy, and how late a timer fired."""
        self._samples += 1
        self._busy += min(busy, self.size) / self.size
        self._lag += max(0.0, lag)

    def due(self, now: float) -> bool:
        return now - self._since >= self.limits.interval

    def decide(self, now: float, cpu_seconds: float, rss: int, results: int,
               pushback: int) -> int:
        """The new size. `results` and `pushback` are running totals (results received,
        and of them 429/503 answers)."""
        span = max(now - self._since, 1e-6)
        cpu = (cpu_seconds - self._cpu) / span
        got, pushed = results - self._results, pushback - self._pushback
        samples = max(self._samples, 1)
        busy, lag = self._busy / samples, self._lag / samples
        self._since, self._cpu, self._results, self._pushback = now, cpu_seconds, results, \
            pushback
        self._reset_samples()
        self.size, self.reason = self._next(cpu, busy, lag, rss, pushed / got if got else 0.0)
        return self.size

    def _next(self, cpu: float, busy: float, lag: float, rss: int,
              pushback: float) -> tuple[int, str]:
        lim = self.limits
        over = [why for why, bad in (
            ("memory", lim.max_memory and rss > lim.max_memory),
            ("pushback", pushback > lim.max_pushback),
            ("cpu", cpu > lim.max_cpu), ("lag", lag > lim.max_lag)) if bad]
        if over:
            smaller = max(1, min(self.size - 1, math.floor(self.size * (1 - SHRINK_STEP))))
            return smaller, "shrink: " + ", ".join(over)
        if busy < SATURATED or self.size >= lim.cap:
            return self.size, "hold"
        factor = min(GROW_MAX, lim.max_cpu / max(cpu, 1e-3))
        bigger = min(lim.cap, max(self.size + 1, round(self.size * factor)))
        return bigger, f"grow: cpu {cpu:.2f}"


def rss_bytes() -> int:
    """This process's resident set size (Linux: /proc/self/statm); 0 when unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


SAMPLE_EVERY = 0.05  # seconds between two readings of busy threads and timer lag


class Driver:
    """Feeds an Autoscaler from this process and resizes a pool: run() on a thread of its
    own until stop(). `counts()` gives the running totals (results, pushback)."""

    def __init__(self, scaler: Autoscaler, pool: Any, counts: Any) -> None:
        self.scaler, self.pool, self.counts = scaler, pool, counts
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        due = time.monotonic() + SAMPLE_EVERY
        while not self._stopped.wait(max(0.0, due - time.monotonic())):
            now = time.monotonic()
            self.scaler.sample(self.pool.busy, now - due)
            due = now + SAMPLE_EVERY
            if self.scaler.due(now):
                self._decide(now)

    def _decide(self, now: float) -> None:
        before = self.scaler.size
        size = self.scaler.decide(now, time.process_time(), rss_bytes(), *self.counts())
        if size != before:
            self.pool.resize(size)
            log.debug("pool %d -> %d (%s)", before, size, self.scaler.reason)
