"""Keeping the frontier fed while a crawl runs: start requests a batch at a time while few
URLs are queued; once they are all in and the crawl is idle, what spider_idle receivers
return; on Redis, what users push to the crawl's start_urls list."""
from __future__ import annotations

import logging
from typing import Any, Callable

from . import signals
from .http.request import Request
from .starts import StartRequests

log = logging.getLogger(__name__)
# Start requests stream in while fewer than this many URLs are queued, a batch at a time.
FEED_BELOW, FEED_BATCH = 10_000, 1_000


class Feeder:
    """Called on every tick of the master's loop; each source is read only when due."""

    def __init__(self, starts: StartRequests, frontier: Any, scheduler: Any, spider: Any,
                 ignore_params: tuple[str, ...], redis: Any = None,
                 add: Callable[[list[str]], Any] | None = None) -> None:
        self.starts, self.frontier, self.scheduler = starts, frontier, scheduler
        self.spider, self.ignore = spider, ignore_params
        self.signals = spider.crawler.signals
        self.redis, self.add = redis, add

    def more(self) -> bool:
        """Whether more work may still come from start requests or spider_idle."""
        return not self.starts.exhausted or self._idle_hooked()

    def first(self) -> int:
        """Admit the first batch (checked before the crawl started); how many were new."""
        return self.scheduler.admit(self.starts.first, more=self.more())

    def feed(self) -> None:
        if not self.starts.exhausted:
            if self.frontier.queued < FEED_BELOW:
                self.scheduler.admit(self.starts.take(FEED_BATCH), more=self.more())
        elif self._idle_hooked() and self.scheduler.idle():
            tasks = self._idle_tasks()
            self.scheduler.admit(tasks, more=bool(tasks))
        if self.redis is not None:
            self.redis.feed_start_urls(self.add)

    def _idle_hooked(self) -> bool:
        return self.signals.has_receivers(signals.spider_idle)

    def _idle_tasks(self) -> list[dict[str, Any]]:
        tasks = []
        for returned in self.signals.send(signals.spider_idle, spider=self.spider):
            for request in returned or ():
                task = request.to_task(0, self.ignore) if isinstance(request, Request) else None
                if task is None:
                    log.error("spider_idle: not a Request for an http(s) URL: %r", request)
                else:
                    tasks.append(task)
        return tasks
