"""Where items go: item pipelines, then every feed, on a thread of the master's own.

Server threads hand items over with put_many() and return at once; the writer
thread runs the pipelines and writes, so slow output never slows a lease call.
"""
from __future__ import annotations

import importlib
import logging
import queue
import threading
from typing import Any, Callable, Iterable

from .errors import CrawlerError, UsageError
from .feeds import Feed

log = logging.getLogger(__name__)
# Progress of each resumable feed after a flush: {feed key: (path, size in bytes, items)}.
Progress = dict[str, tuple[str, int, int]]


class DropItem(CrawlerError):
    """Raise in a pipeline's process_item to drop the item."""


def load_pipelines(spec: dict[str, int], spider: Any) -> list[Any]:
    """Instantiate ITEM_PIPELINES in order; UsageError for a bad path."""
    pipelines = []
    for path, _ in sorted(spec.items(), key=lambda kv: kv[1]):
        module, _, name = path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise UsageError(f"ITEM_PIPELINES: cannot load {path}: {exc}") from None
        pipelines.append(cls())
    return pipelines


class Sink:
    """Item pipelines plus feeds, fed from any thread, written by one."""

    def __init__(self, feeds: list[Feed], pipelines: Iterable[Any] = (), spider: Any = None,
                 on_written: Callable[[int, Progress], None] | None = None) -> None:
        self.feeds, self.pipelines, self.spider = feeds, list(pipelines), spider
        self.on_written = on_written  # (last seq, progress) after a flush
        self.dropped = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="sink", daemon=True)

    @property
    def count(self) -> int:
        """Items written so far (to each feed)."""
        return self.feeds[0].count

    def start(self) -> None:
        for pipeline in self.pipelines:
            if hasattr(pipeline, "open_spider"):
                pipeline.open_spider(self.spider)
        self._thread.start()

    def put_many(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        """Hand over (seq, item) pairs; returns at once."""
        self._queue.put(items)

    def close(self) -> None:
        """Write everything handed over so far, then close pipelines and file."""
        self._queue.put(None)
        self._thread.join()
        for pipeline in self.pipelines:
            if hasattr(pipeline, "close_spider"):
                pipeline.close_spider(self.spider)
        for feed in self.feeds:
            feed.close()

    def progress(self) -> Progress:
        """Flush every feed; how far each resumable one is known good."""
        progress = {}
        for feed in self.feeds:
            size, count = feed.flush()
            if feed.resumable:
                progress[feed.key] = (feed.path, size, count)
        return progress

    def _run(self) -> None:
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
                    self.on_written(last, progress)
                unflushed = 0

    def _write(self, item: dict[str, Any]) -> None:
        try:
            for pipeline in self.pipelines:
                item = pipeline.process_item(item, self.spider)
        except DropItem as exc:
            self.dropped += 1
            log.debug("dropped item: %s", exc)
            return
        except Exception:
            log.exception("item pipeline failed; item dropped")
            self.dropped += 1
            return
        for feed in self.feeds:
            try:
                feed.write(item)
            except Exception:  # e.g. a value no format can encode: that feed goes without
                log.exception("item left out of feed %s", feed.path)
