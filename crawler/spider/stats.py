"""`crawler.stats`: a spider's own counters, as Scrapy's `self.crawler.stats.inc_value()`.

Counts made while a worker handles a page travel with that page's result and are added up
by the frontier (so a result sent twice counts once); counts made on the master (item
pipelines) are added there. The crawl's totals are `spider_stats` in stats.json, the
summary and the status page. Only sums add up across a cluster: the other methods of
Scrapy's collector would each see one process and are refused.
"""
from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Any

from ..errors import CrawlerError

_NAME = re.compile(r"^[A-Za-z0-9_./:-]{1,100}$")


class SpiderStats:
    """Counters a spider, middleware or pipeline increments; sums for the whole crawl."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._here: Counter = Counter()  # this process's, since it started
        self._local = threading.local()  # the counts of the page this thread handles

    def inc_value(self, key: str, count: int = 1, start: int = 0, spider: Any = None) -> None:
        """Add `count` (an int >= 0) to the counter `key` (every counter starts at 0)."""
        if start != 0:
            raise CrawlerError(f"stats {key}: start={start!r}; counters from every process "
                               "are added up, so each starts at 0")
        if type(key) is not str or not _NAME.match(key):
            raise CrawlerError(f"stats key {key!r}: 1-100 letters, digits or _./:-")
        if type(count) is not int or count < 0:
            raise CrawlerError(f"stats {key}: count {count!r} is not an int >= 0 (counts "
                               "from every process are added up)")
        with self._lock:
            self._here[key] += count
        pending = getattr(self._local, "pending", None)
        if pending is not None:
            pending[key] += count

    def get_value(self, key: str, default: Any = None) -> Any:
        """This process's count (the crawl's total is in stats.json)."""
        with self._lock:
            return self._here.get(key, default)

    def get_stats(self) -> dict[str, int]:
        """This process's counts."""
        with self._lock:
            return dict(self._here)

    def set_value(self, key: str, value: Any) -> None:
        raise CrawlerError("stats.set_value: only inc_value adds up across the cluster's "
                           "processes; count with inc_value, or keep the value in an item")

    max_value = min_value = set_value

    # -- for the handler (workers) and the master ---------------------------------------
    def begin_page(self) -> None:
        """Counts from now on this thread belong to one page's result."""
        self._local.pending = Counter()

    def end_page(self) -> dict[str, int] | None:
        """The counts of the page this thread handled (None: none), for its result."""
        pending, self._local.pending = getattr(self._local, "pending", None), None
        return dict(pending) if pending else None
