"""One-line progress: the master's (from a snapshot) and a worker's (from its own counts)."""
from __future__ import annotations

from typing import Any

_TOP_REASONS = 3


def master_line(snap: dict[str, Any], rates: dict[str, Any]) -> str:
    """Pages, items, queue, hosts, workers and failures in one line."""
    hosts = snap["hosts"]
    text = (f"{snap['pages_done']:,} pages ({rates['pages_per_second']:,.1f}/s), "
            f"{snap['items']:,} items ({rates['items_per_second']:,.1f}/s), "
            f"{snap['queued']:,} queued, {snap['in_flight']:,} in flight, "
            f"hosts {hosts['with_work']:,} with work/{hosts['waiting']:,} waiting on delay, "
            f"{snap['workers_connected']} workers, {snap['pages_failed']:,} failed")
    reasons = sorted(snap["failed_by_reason"].items(), key=lambda kv: (-kv[1], kv[0]))
    if reasons:
        text += " (" + ", ".join(f"{r} {n:,}" for r, n in reasons[:_TOP_REASONS]) + \
            (", ..." if len(reasons) > _TOP_REASONS else "") + ")"
    return text


class WorkerMeter:
    """A worker's counts between two progress lines, and the line when one is due."""

    def __init__(self, interval: float, now: float) -> None:
        self.interval = interval  # 0: never
        self.pages = self.reconnects = 0
        self._last_time, self._last_pages = now, 0

    def line(self, now: float, busy: int, threads: int) -> str | None:
        """The progress line when `interval` has passed since the last one, else None."""
        span = now - self._last_time
        if not self.interval or span < self.interval:
            return None
        rate = (self.pages - self._last_pages) / span
        self._last_time, self._last_pages = now, self.pages
        return (f"{self.pages:,} pages ({rate:,.1f}/s), {busy}/{threads} threads busy, "
                f"{self.reconnects} reconnects")
