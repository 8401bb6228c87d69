"""Where items go: item pipelines, then every feed, on a thread of the master's own.

Server threads hand items over with put_many() and return at once; the writer
thread runs the pipelines and writes, so slow output never slows a lease call.

An error of one item (a pipeline that raises, a value a format cannot encode) costs that
item only: it is counted (item_error) and listed. An error of the output itself (a full
disk, a journal that cannot record progress) stops the sink: `failure` says why, the master
aborts the crawl (exit 1), and each file feed is cut back to the last item flushed whole.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
from collections import deque
from typing import Any, Callable, Iterable

from . import signals
from .errors import DropItem
from .feeds import Feed
from .feeds.warc import RECORDS, WarcFeed

log = logging.getLogger(__name__)
# Progress of each resumable feed after a flush: {feed key: (path, size in bytes, items)}.
Progress = dict[str, tuple[str, int, int]]


class Sink:
    """Item pipelines plus feeds, fed from any thread, written by one."""

    def __init__(self, feeds: list[Feed], pipelines: Iterable[Any] = (), spider: Any = None,
                 on_written: Callable[[int, Progress], None] | None = None,
                 signal_manager: signals.SignalManager | None = None) -> None:
        self.feeds, self.pipelines, self.spider = feeds, list(pipelines), spider
        # WARC records ride with the items (so the journal holds them until written); only
        # the WARC feed takes them, and only the other feeds take items.
        self.item_feeds = [f for f in feeds if not isinstance(f, WarcFeed)]
        self.warc_feeds = [f for f in feeds if isinstance(f, WarcFeed)]
        self.signals = signal_manager or signals.SignalManager()
        self._loop: asyncio.AbstractEventLoop | None = None  # for async def pipelines
        self.on_written = on_written  # (last seq, progress) after a flush
        self.dropped = 0
        self.item_errors: list[tuple[str, str]] = []  # (item's url or "", why), as failures
        self.failure: BaseException | None = None  # what stopped the sink, if anything
        self.recent: deque = deque(maxlen=10)  # the last items written, for the status page
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="sink", daemon=True)

    @property
    def count(self) -> int:
        """Items written so far (to each feed)."""
        return self.item_feeds[0].count

    def start(self) -> None:
        for pipeline in self.pipelines:
            if hasattr(pipeline, "open_spider"):
                self._settle(pipeline.open_spider(self.spider))
        self._thread.start()

    def put_many(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        """Hand over (seq, item) pairs; returns at once."""
        self._queue.put(items)

    def close(self) -> None:
        """Write everything handed over so far, then close pipelines and files (after a
        failure: cut each file back to its last whole item instead)."""
        self._queue.put(None)
        self._thread.join()
        for pipeline in self.pipelines:
            if hasattr(pipeline, "close_spider"):
                try:
                    self._settle(pipeline.close_spider(self.spider))
                except Exception:
                    log.exception("item pipeline %s: close_spider failed",
                                  type(pipeline).__name__)
        if self._loop is not None:
            self._loop.close()
        for feed in self.feeds:
            abandon = getattr(feed, "abandon", None)  # a WARC file's writer can only close
            if self.failure is None or abandon is None:
                try:
                    feed.close()
                    continue
                except OSError as exc:
                    self._fail(exc)
            if abandon is not None:
                abandon()

    def progress(self) -> Progress:
        """Flush every feed; how far each resumable one is known good."""
        progress = {}
        for feed in self.feeds:
            size, count = feed.flush()
            if feed.resumable:
                progress[feed.key] = (feed.path, size, count)
        return progress

    def _run(self) -> None:
        try:
            self._drain()
        except BaseException as exc:  # the output itself: nothing more can be written
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            log.error("writing items failed, the sink stops: %r", exc)
            self.failure = exc

    def _drain(self) -> None:
        last, unflushed = 0, 0
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            for last, item in batch:
                self._write(item)
            unflushed += len(batch)
            # Flush when caught up, and at least every 1,000 items under a steady stream,
            # so the journal can forget written items.
            if self._queue.empty() or unflushed >= 1000:
                progress = self.progress()
                if self.on_written is not None:
                    try:
                        self.on_written(last, progress)
                    except Exception as exc:  # sqlite3.Error: a full disk
                        raise CrawlerError(f"the journal cannot record them ({exc})") from exc
                unflushed = 0

    def _settle(self, value: Any) -> Any:
        """What a pipeline method returned, awaited first when it is awaitable (async def)."""
        if not inspect.isawaitable(value):
            return value
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(_awaited(value))

    def _write(self, item: dict[str, Any]) -> None:
        if RECORDS in item:
            for feed in self.warc_feeds:
                try:
                    feed.write(item)
                except Exception:  # e.g. a full disk: logged, the crawl goes on
                    log.exception("WARC records left out of %s", feed.path)
            return
        try:
            for pipeline in self.pipelines:
                item = self._settle(pipeline.process_item(item, self.spider))
        except DropItem as exc:
            self._dropped(item, exc)
            log.debug("dropped item: %s", exc)
            return
        except Exception as exc:
            log.exception("item pipeline failed; item left out")
            self._item_error(item, exc)
            return
        failed = None
        for feed in self.item_feeds:
            try:
                feed.write(item)
            except OSError:  # the file, not the item: the sink cannot go on
                raise
            except Exception as exc:  # a value the format cannot encode: that feed goes without
                log.error("item left out of feed %s: %r", feed.path, exc)
                failed = failed or exc
        if failed is not None:
            self._item_error(item, failed)
        self.recent.append(item)
        if self.signals.has_receivers(signals.item_scraped):
            self.signals.send(signals.item_scraped, item=item, spider=self.spider)

    def _item_error(self, item: Any, exc: Exception) -> None:
        url = item.get("url") if isinstance(item, dict) else None
        self.item_errors.append((url if isinstance(url, str) else "", repr(exc)))
        if self.signals.has_receivers(signals.item_error):
            self.signals.send(signals.item_error, item=item, exception=exc, spider=self.spider)

    def _dropped(self, item: Any, exc: Exception) -> None:
        self.dropped += 1
        if self.signals.has_receivers(signals.item_dropped):
            self.signals.send(signals.item_dropped, item=item, exception=exc, spider=self.spider)


async def _awaited(value: Any) -> Any:
    return await value
