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
* while the machine's CPUs are busier than AUTOSCALE_MAX_MACHINE_CPU (every process's
  share of all cores), a process's own headroom says nothing (each of two workers and a
  master on two cores sees some while together they leave none), so a growth is a trial:
  kept, and followed by another, only if the next interval's results per second rose by
  PAYOFF; else the size goes back, and the next trial comes PROBE_EVERY later. A crawl
  whose pages/s grows with its requests in flight keeps growing, one that only waits
  for a CPU does not (and a machine busy with other work does not stop a crawl that
  still gains from growing);
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
PAYOFF = 1.05        # results/s a trial growth must bring, over the interval before it
PROBE_EVERY = 2.0    # seconds after a trial that did not pay before the next one


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
    max_machine_cpu: float = 0.95  # share of all the machine's cores; 0: not checked

    @classmethod
    def from_settings(cls, s: Mapping[str, Any]) -> "Limits":
        cap = s["CONCURRENT_REQUESTS"]
        return cls(min(s["AUTOSCALE_START"], cap), cap, s["AUTOSCALE_INTERVAL"],
                   s["AUTOSCALE_MAX_CPU"], s["AUTOSCALE_MAX_LAG"],
                   int(s["AUTOSCALE_MAX_MEMORY"] * 2**20), s["AUTOSCALE_MAX_PUSHBACK"],
                   s["AUTOSCALE_MAX_MACHINE_CPU"])


class Autoscaler:
    """Decides a pool's size from readings; holds no clock and no thread."""

    def __init__(self, limits: Limits, now: float, cpu_seconds: float) -> None:
        self.limits = limits
        self.size = max(1, min(limits.start, limits.cap))
        self.reason = "start"
        self._since, self._cpu = now, cpu_seconds
        self._results = self._pushback = 0
        self._trial: tuple[int, float] | None = None  # (size, results/s) before a trial
        self._probe_at = now  # no trial growth before this
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
               pushback: int, machine: float | None = None) -> int:
        """The new size. `results` and `pushback` are running totals (results received,
        and of them 429/503 answers); `machine` is the share of all the machine's cores
        busy since the last decision (None: unknown)."""
        span = max(now - self._since, 1e-6)
        cpu = (cpu_seconds - self._cpu) / span
        got, pushed = results - self._results, pushback - self._pushback
        samples = max(self._samples, 1)
        busy, lag = self._busy / samples, self._lag / samples
        self._since, self._cpu, self._results, self._pushback = now, cpu_seconds, results, \
            pushback
        self._reset_samples()
        before = self.size
        size, reason = self._next(cpu, busy, lag, rss, pushed / got if got else 0.0)
        if self.limits.max_machine_cpu and machine is not None and \
                machine > self.limits.max_machine_cpu:
            size, reason = self._try(now, got / span, machine, before, size, reason)
        else:
            self._trial = None
        self.size, self.reason = size, reason
        return size

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

    def _try(self, now: float, rate: float, machine: float, before: int, size: int,
             reason: str) -> tuple[int, str]:
        """On a saturated machine: `size` (what _next chose over `before`), unless it is a
        growth not yet shown to pay; a trial that did not pay is undone."""
        trial, self._trial = self._trial, None
        why = f"machine cpu {machine:.2f}, {rate:.0f} results/s"
        if trial is not None and rate < trial[1] * PAYOFF:
            self._probe_at = now + PROBE_EVERY
            return min(trial[0], size), f"undo: {why} (before: {trial[1]:.0f})"
        if size <= before:
            return size, reason
        if trial is None and now < self._probe_at:
            return before, f"hold: {why}"
        self._trial = (before, rate)
        return size, f"trial {reason}: {why}"


def rss_bytes() -> int:
    """This process's resident set size (Linux: /proc/self/statm); 0 when unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _proc_stat() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of all cores since boot (Linux: /proc/stat); None elsewhere."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]  # user .. steal
    except (OSError, ValueError):
        return None
    if len(ticks) < 5:
        return None
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


class MachineCpu:
    """The share of all the machine's cores that were busy (any process) between two
    readings: from /proc/stat; elsewhere the 1-minute load average over the core count
    (slower to follow, but it says when the machine is saturated); None when neither."""

    def __init__(self) -> None:
        self._last = _proc_stat()

    def busy(self) -> float | None:
        now = _proc_stat()
        if now is not None and self._last is not None:
            ticks, total = now[0] - self._last[0], now[1] - self._last[1]
            if total <= 0:
                return None  # less than a tick (10 ms) since the last reading
            self._last = now
            return ticks / total
        try:
            return min(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
        except (OSError, AttributeError):  # no load average on this platform
            return None


SAMPLE_EVERY = 0.05  # seconds between two readings of busy threads and timer lag


class Driver:
    """Feeds an Autoscaler from this process and resizes a pool: run() on a thread of its
    own until stop(). `counts()` gives the running totals (results, pushback)."""

    def __init__(self, scaler: Autoscaler, pool: Any, counts: Any) -> None:
        self.scaler, self.pool, self.counts = scaler, pool, counts
        self.machine = MachineCpu()
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
        size = self.scaler.decide(now, time.process_time(), rss_bytes(), *self.counts(),
                                  self.machine.busy())
        if size != before:
            self.pool.resize(size)
            log.debug("pool %d -> %d (%s)", before, size, self.scaler.reason)
