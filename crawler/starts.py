"""Start requests as a stream of tasks: from a seeds file through the spider's
seed_requests(), else from its start_requests() or Scrapy 2.13's `async def start()`.

A spider may start from millions of requests: they are turned into tasks a batch at a time,
as the frontier makes room, never all at once. The first batch is checked before anything
starts (a bad start request is a usage error, exit 2); later bad ones are logged and skipped.
"""
from __future__ import annotations

import inspect
import itertools
import logging
from typing import Any, Iterable, Iterator

from .errors import UsageError
from .http.request import Request
from .spider.base import Spider
from .urls import normalize

log = logging.getLogger(__name__)
FIRST_BATCH = 1000  # start requests checked before the crawl starts


class StartRequests:
    """The start tasks of a crawl, taken `take(n)` at a time."""

    def __init__(self, spider: Spider, ignore_params: Iterable[str],
                 seed_urls: Iterable[str] | None = None) -> None:
        self.spider, self.ignore = spider, tuple(ignore_params)
        kind = "seed_requests" if seed_urls is not None else (
            "start" if _has_async_start(spider) else "start_requests")
        self.where = f"{spider.name}.{kind}()"
        self._seed_urls = seed_urls
        self._source: Iterator[Any] | None = None  # made on first use: spider code may raise
        self.exhausted = False
        self.skipped = 0
        self.first = self._checked_first()
        # The origins (scheme://host:port) the crawl starts from: every seed's when a seeds
        # file gives them (crawler.seeds.SeedFile), else the first batch's.
        known = getattr(seed_urls, "origins", None)
        self.origins: set[str] = set(known) if known is not None else \
            {t["url"][:t["url"].find("/", 8)] for t in self.first}

    def _requests(self, seed_urls: Iterable[str] | None) -> Iterator[Any]:
        if seed_urls is not None:
            return iter(self.spider.seed_requests(seed_urls) or ())
        if _has_async_start(self.spider):
            return _iterate_async(self.spider.start())
        return iter(self.spider.start_requests() or ())

    def _checked_first(self) -> list[dict[str, Any]]:
        """The first batch, every one checked: UsageError names the first bad one."""
        tasks = []
        for request in self._next(FIRST_BATCH):
            task, problem = self._vet(request)
            if problem:
                raise UsageError(f"{self.where}: {problem}")
            tasks.append(task)
        return tasks

    def take(self, n: int) -> list[dict[str, Any]]:
        """Up to n more tasks (after `first`); bad requests are logged and skipped."""
        tasks = []
        for request in self._next(n):
            task, problem = self._vet(request)
            if problem:
                self.skipped += 1
                log.error("%s: %s; skipped", self.where, problem)
            else:
                tasks.append(task)
        return tasks

    def from_urls(self, urls: list[str]) -> tuple[list[dict[str, Any]], list[list[str]]]:
        """Tasks for start URLs given while the crawl runs (crawler.add), made as a seeds
        file's are (the spider's seed_requests), and [url, problem] for each refused."""
        normal = [(url, normalize(url)) for url in urls]
        refused = [[url, "not an http(s) URL"] for url, norm in normal if norm is None]
        good = [norm for _, norm in normal if norm is not None]
        try:
            requests = list(self.spider.seed_requests(good) or ())
        except Exception as exc:  # the spider's own code
            return [], refused + [[url, f"seed_requests() failed: {exc!r}"] for url in good]
        tasks = []
        for request in requests:
            task, problem = self._vet(request)
            if problem:
                refused.append([getattr(request, "url", repr(request)), problem])
            else:
                tasks.append(task)
        return tasks, refused

    def _next(self, n: int) -> list[Any]:
        try:
            if self._source is None:
                self._source = self._requests(self._seed_urls)
            batch = list(itertools.islice(self._source, n))
        except UsageError:
            raise
        except Exception as exc:  # the spider's own code
            self.exhausted = True
            raise UsageError(f"{self.where} failed: {exc!r}") from exc
        if len(batch) < n:
            self.exhausted = True
        return batch

    def _vet(self, request: Any) -> tuple[dict[str, Any] | None, str | None]:
        task = request.to_task(0, self.ignore) if isinstance(request, Request) else None
        if task is None:
            return None, f"not a Request for an http(s) URL: {request!r}"
        for kind, name in (("callback", request.callback or "parse"),
                           ("errback", request.errback)):
            if name is not None and not callable(getattr(self.spider, name, None)):
                return None, f"the spider has no {kind} {name!r}"
        return task, None


def _has_async_start(spider: Spider) -> bool:
    start = getattr(type(spider), "start", None)
    return start is not None and inspect.isasyncgenfunction(start)


def _iterate_async(agen: Any) -> Iterator[Any]:
    """An async generator, iterated from synchronous code on a loop of its own."""
    import asyncio  # here: only an async start() needs it
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
