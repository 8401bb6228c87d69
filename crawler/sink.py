"""Where items go: item pipelines, then a feed file, on a thread of the master's own.

Server threads hand items over with put_many() and return at once; the writer
thread runs the pipelines and writes, so slow output never slows a lease call.
"""
from __future__ import annotations

import csv
import importlib
import json
import logging
import os
import queue
import threading
from collections import deque
from typing import Any, Callable, Iterable

from .errors import CrawlerError, UsageError

log = logging.getLogger(__name__)
# One encoder for every item: json.dumps with options builds a new encoder per call.
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
FORMATS = {".jsonl": "jsonl", ".jl": "jsonl", ".csv": "csv", ".json": "json"}


class DropItem(CrawlerError):
    """Raise in a pipeline's process_item to drop the item."""


def feed_format(path: str) -> str:
    """The feed format for an output path, by extension; UsageError when unknown."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise UsageError(f"-o {path}: unknown format {ext or '(none)'}; "
                         f"use one of {', '.join(FORMATS)}")
    return FORMATS[ext]


def check_output(path: str, overwrite: bool) -> None:
    """Refuse an existing output file unless it is JSON lines (appended) or overwriting."""
    if os.path.exists(path) and feed_format(path) != "jsonl" and not overwrite:
        raise UsageError(f"{path} exists; give --overwrite to replace it")


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


class FeedWriter:
    """Writes items to one file as JSON lines, CSV or a JSON array.

    `resume=(size, count)` continues a file known good up to `size` bytes holding
    `count` items: anything after is cut off first (a write torn by a crash).
    """

    def __init__(self, path: str, overwrite: bool = False,
                 resume: tuple[int, int] | None = None) -> None:
        self.format, self.path = feed_format(path), path
        self.count = 0
        self._csv: csv.DictWriter | None = None
        if resume is not None and resume[0] >= 0:
            self._reopen(*resume)
            return
        mode = "a" if self.format == "jsonl" and not overwrite else "w"
        self.file = open(path, mode, encoding="utf-8", newline="")
        if self.format == "json":
            self.file.write("[")

    def _reopen(self, size: int, count: int) -> None:
        actual = os.path.getsize(self.path) if os.path.exists(self.path) else -1
        if actual < size:
            raise CrawlerError(f"{self.path} is shorter than the journal says ({actual} < "
                               f"{size} bytes): it was changed; cannot resume")
        os.truncate(self.path, size)
        header = None
        if self.format == "csv" and count:
            with open(self.path, encoding="utf-8", newline="") as f:
                header = next(csv.reader(f))
        self.file = open(self.path, "a", encoding="utf-8", newline="")
        if header:
            self._csv = csv.DictWriter(self.file, fieldnames=header, extrasaction="ignore")
        self.count = count

    def write(self, item: dict[str, Any]) -> None:
        if self.format == "csv":
            self._write_csv(item)
        else:
            text = _encode(item)
            if self.format == "json":
                text = ("\n" if self.count == 0 else ",\n") + text
            else:
                text += "\n"
            self.file.write(text)
        self.count += 1

    def _write_csv(self, item: dict[str, Any]) -> None:
        if self._csv is None:
            self._csv = csv.DictWriter(self.file, fieldnames=list(item), extrasaction="ignore")
            self._csv.writeheader()
        extra = set(item) - set(self._csv.fieldnames)
        if extra:
            log.warning("CSV columns are fixed by the first item; dropping %s", sorted(extra))
        self._csv.writerow(item)

    def flush(self) -> int:
        """Push written items to the OS; return the file's size in bytes."""
        self.file.flush()
        return os.fstat(self.file.fileno()).st_size

    def close(self) -> None:
        if self.format == "json":
            self.file.write("\n]\n")
        self.file.close()


class Sink:
    """Item pipelines plus a feed writer, fed from any thread, written by one."""

    def __init__(self, writer: FeedWriter, pipelines: Iterable[Any] = (), spider: Any = None,
                 on_written: Callable[[int, int, int], None] | None = None) -> None:
        self.writer, self.pipelines, self.spider = writer, list(pipelines), spider
        self.on_written = on_written  # (last seq, good file size, item count) after a flush
        self.dropped = 0
        self.recent: deque = deque(maxlen=10)  # the last items written, for the status page
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="sink", daemon=True)

    @property
    def count(self) -> int:
        """Items written so far."""
        return self.writer.count

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
        self.writer.close()

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
                size = self.writer.flush()
                if self.on_written is not None:
                    self.on_written(last, size, self.writer.count)
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
        self.writer.write(item)
        self.recent.append(item)
