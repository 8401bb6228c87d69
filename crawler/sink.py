"""Where items go: item pipelines, then every feed, on a thread of the master's own.

Server threads hand items over with put_many() and return at once; the writer
thread runs the pipelines and writes, so slow output never slows a lease call.
A pipeline may hold an item back (Held: the media pipelines, until its downloads are
settled); the feeds still get items in the order they came, so "written up to seq N"
stays true and a resumed JOBDIR writes each item exactly once.

An error of one item (a pipeline that raises, a value a format cannot encode) costs that
item only: it is counted (item_error) and listed. An error of the output itself (a full
disk, a journal that cannot record progress) stops the sink: `failure` says why, the master
aborts the crawl (exit 1), and each file feed is cut back to the last item flushed whole.
"""
from __future__ import annotations

import inspect
import logging
import queue
import threading
from collections import deque
from typing import Any, Callable, Iterable

from . import signals
from .errors import CrawlerError, DropItem
from .feeds import Feed
from .feeds.warc import RECORDS, WarcFeed

log = logging.getLogger(__name__)
# Progress of each resumable feed after a flush: {feed key: (path, size in bytes, items)}.
Progress = dict[str, tuple[str, int, int]]


class Held:
    """What a pipeline's process_item returns to hold its item back: the later pipelines
    and the feeds get it once release(then) is called, from any thread; the sink's thread
    then calls then(), which returns the item (or raises DropItem). `abandon`, when given,
    is called instead if the sink is closed first, unless the crawl is to be resumed."""

    def __init__(self, abandon: Callable[[], Any] | None = None) -> None:
        self.abandon = abandon
        self._lock = threading.Lock()
        self._then: Callable[[], Any] | None = None
        self._wake: Callable[[Callable[[], Any]], None] | None = None

    def release(self, then: Callable[[], Any]) -> None:
        with self._lock:
            self._then, wake = then, self._wake
        if wake is not None:
            wake(then)

    def _attach(self, wake: Callable[[Callable[[], Any]], None]) -> None:
        with self._lock:  # released already (before process_item returned) or later
            self._wake, then = wake, self._then
        if then is not None:
            wake(then)


class _Entry:
    """An item in the sink's line: its seq, the item so far, and where it stands."""

    __slots__ = ("seq", "item", "stage", "held", "dropped", "error")

    def __init__(self, seq: int, item: dict[str, Any]) -> None:
        self.seq, self.item, self.stage = seq, item, 0
        self.held: Held | None = None
        self.dropped: DropItem | None = None
        self.error: Exception | None = None  # a pipeline raised: an item_error


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
        self._loop: Any = None  # an asyncio event loop  # for async def pipelines
        self.on_written = on_written  # (last seq, progress) after a flush
        self.dropped = 0
        self.item_errors: list[tuple[str, str]] = []  # (item's url or "", why), as failures
        self.failure: BaseException | None = None  # what stopped the sink, if anything
        self.recent: deque = deque(maxlen=10)  # the last items written, for the status page
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._line: deque[_Entry] = deque()  # handed over, not yet written, in order
        self._handed = self._finished = 0  # each written by one thread only
        self._resumable = False
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
        self._handed += len(items)
        self._queue.put(items)

    def unfinished(self) -> int:
        """Items handed over and not yet written or dropped (held ones included)."""
        return self._handed - self._finished

    def close(self, resumable: bool = False) -> None:
        """Write everything handed over so far, then close pipelines and files (after a
        failure: cut each file back to its last whole item instead). Items still held are
        finished by their pipeline's `abandon`, unless `resumable` (an interrupted crawl
        with a journal: they are written when it is resumed)."""
        self._resumable = resumable
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
        last, unflushed = None, 0
        while True:
            message = self._queue.get()
            if message is None:
                self._abandon_held()
            elif type(message) is tuple:  # a held item released: (entry, then)
                self._resume(*message)
            else:
                for seq, item in message:
                    entry = _Entry(seq, item)
                    self._line.append(entry)
                    self._advance(entry)
            written, last = self._write_ready(last)
            unflushed += written
            # Flush when caught up, and at least every 1,000 items under a steady stream,
            # so the journal can forget written items.
            if unflushed and (self._queue.empty() or unflushed >= 1000 or message is None):
                progress = self.progress()
                if self.on_written is not None:
                    try:
                        self.on_written(last, progress)
                    except Exception as exc:  # sqlite3.Error: a full disk
                        raise CrawlerError(f"the journal cannot record them ({exc})") from exc
                unflushed = 0
            if message is None:
                return

    def _advance(self, entry: _Entry) -> None:
        """Run the entry's item through the pipelines from its stage on, until one holds
        it, drops it, or all are done."""
        if RECORDS in entry.item:  # WARC records: for the WARC feeds, past the pipelines
            return
        try:
            for stage in range(entry.stage, len(self.pipelines)):
                value = self._settle(self.pipelines[stage].process_item(entry.item, self.spider))
                if isinstance(value, Held):
                    entry.stage, entry.held = stage + 1, value
                    value._attach(lambda then: self._queue.put((entry, then)))
                    return
                entry.item = value
            entry.stage = len(self.pipelines)
        except DropItem as exc:
            entry.dropped = exc
            log.debug("dropped item: %s", exc)
        except Exception as exc:
            log.exception("item pipeline failed; item left out")
            entry.error = exc

    def _resume(self, entry: _Entry, then: Callable[[], Any]) -> None:
        if entry.held is None:  # released twice (abandoned, then settled): once is enough
            return
        entry.held = None
        try:
            entry.item = self._settle(then())
        except DropItem as exc:
            entry.dropped = exc
            return
        except Exception as exc:
            log.exception("item pipeline failed; item left out")
            entry.error = exc
            return
        self._advance(entry)

    def _abandon_held(self) -> None:
        """Closed with items still held: unless the crawl is to be resumed (they stay in
        the journal), each is finished as its pipeline says (abandon)."""
        if self._resumable:
            return
        for entry in list(self._line):
            if entry.held is not None and entry.held.abandon is not None:
                self._resume(entry, entry.held.abandon)

    def _write_ready(self, last: int | None) -> tuple[int, int | None]:
        """Write the items at the head of the line that are ready: how many were written
        (or dropped), and the seq of the last one."""
        line, count = self._line, 0
        while line and line[0].held is None:
            entry = line.popleft()
            if entry.dropped is not None:
                self._dropped(entry.item, entry.dropped)
            elif entry.error is not None:
                self._item_error(entry.item, entry.error)
            else:
                self._write(entry.item)
            self._finished += 1
            count, last = count + 1, entry.seq
        return count, last

    def _settle(self, value: Any) -> Any:
        """What a pipeline method returned, awaited first when it is awaitable (async def)."""
        if not inspect.isawaitable(value):
            return value
        if self._loop is None:
            import asyncio  # here: only async def pipelines need it
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
