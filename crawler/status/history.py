"""The crawl over time: totals sampled about once a second, kept for the whole crawl in a
bounded series (thinned by half when full), and rates over a recent window."""
from __future__ import annotations

from collections import deque
from typing import Any

MAX_POINTS = 720
_COLUMNS = ("t", "pages", "items", "failed")


class History:
    """Samples of (seconds, pages done, items, pages failed) and per-worker pages."""

    def __init__(self, max_points: int = MAX_POINTS, recent: float = 60.0) -> None:
        self.max_points, self.recent_span = max_points, recent
        self.series: dict[str, list] = {c: [] for c in _COLUMNS}
        self.step = 0.0  # least seconds between kept points; doubles when the series thins
        self._recent: deque = deque()  # (t, pages, items, {worker: pages}) of the last minute

    def add(self, snap: dict[str, Any]) -> None:
        """Record a snapshot's totals."""
        t = snap["seconds"]
        row = (t, snap["pages_done"], snap["items"], snap["pages_failed"])
        self._recent.append((t, row[1], row[2], {w["id"]: w["pages"] for w in snap["workers"]}))
        while self._recent and self._recent[0][0] < t - self.recent_span:
            self._recent.popleft()
        times = self.series["t"]
        if times and t - times[-1] < self.step:
            for column, value in zip(_COLUMNS, row):  # keep the newest as the last point
                self.series[column][-1] = value
            return
        for column, value in zip(_COLUMNS, row):
            self.series[column].append(value)
        if len(times) > self.max_points:
            for column in _COLUMNS:
                values = self.series[column]
                self.series[column] = values[:-1:2] + values[-1:]
            self.step = max(self.step * 2, (times[-1] - times[0]) / self.max_points)

    def rates(self, window: float) -> dict[str, Any]:
        """Pages/s and items/s over about the last `window` seconds, and pages/s per worker."""
        if len(self._recent) < 2:
            return {"window": 0.0, "pages_per_second": 0.0, "items_per_second": 0.0,
                    "worker_pages_per_second": {}}
        now = self._recent[-1]
        then = next((s for s in reversed(self._recent) if s[0] <= now[0] - window),
                    self._recent[0])
        span = now[0] - then[0] or 1.0
        return {"window": round(span, 3),
                "pages_per_second": round((now[1] - then[1]) / span, 2),
                "items_per_second": round((now[2] - then[2]) / span, 2),
                "worker_pages_per_second": {w: round((p - then[3].get(w, 0)) / span, 2)
                                            for w, p in now[3].items()}}

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, **{c: list(v) for c, v in self.series.items()}}
