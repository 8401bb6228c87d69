"""FilesPipeline: download the URLs an item lists in `file_urls` through the cluster,
store them content-addressed, and record each in the item's `files`.

It runs in two places. On the master (process_item, in the sink's thread) it turns the
item's URLs into media tasks for the frontier, holds the item until every one is settled,
and fills in the entries. On the workers (media_downloaded) it turns a downloaded body
into the files to store. Paths are Scrapy's: full/<sha1 of the URL><extension>.
"""
from __future__ import annotations

import hashlib
import logging
import mimetypes
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from w3lib.url import safe_url_string

from ..errors import CrawlerError, UsageError
from ..http.request import Request
from ..sink import Held
from ..urls import fingerprint, identify_uncached
from .store import Store, open_store

log = logging.getLogger(__name__)
DAY = 86400.0
# Media tasks are leased before pages, as Scrapy downloads them at once: an item is
# written only when its media are settled.
MEDIA_PRIORITY = 1000


class MediaError(CrawlerError):
    """A downloaded body that cannot be stored (reason: image_too_small, image_invalid...)."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


@dataclass
class MediaInfo:
    """What Scrapy's media pipeline methods get as `info`."""

    spider: Any


class FilesPipeline:
    """Scrapy's FilesPipeline, with the downloads done by the cluster's workers."""

    URLS_FIELD, RESULT_FIELD = "file_urls", "files"
    STORE, EXPIRES = "FILES_STORE", "FILES_EXPIRES"

    def __init__(self, store_uri: str, settings: dict[str, Any], media: Any = None) -> None:
        self.store_uri = store_uri
        self.expires = float(settings.get(self.EXPIRES, 90)) * DAY
        self.allow_redirects = bool(settings.get("MEDIA_ALLOW_REDIRECTS", False))
        self.redirect_max = int(settings.get("REDIRECT_MAX_TIMES", 10))
        self.workers_write = settings.get("MEDIA_WRITTEN_BY", "master") == "workers"
        prefix = self.STORE[:-len("_STORE")]  # FILES or IMAGES
        self.urls_field = settings.get(f"{prefix}_URLS_FIELD") or self.URLS_FIELD
        self.result_field = settings.get(f"{prefix}_RESULT_FIELD") or self.RESULT_FIELD
        self.media = media  # the master's MediaQueue; None on workers
        self.name = f"{type(self).__module__}.{type(self).__qualname__}"
        self._store: Store | None = None
        self.info = MediaInfo(None)

    @classmethod
    def from_crawler(cls, crawler: Any) -> "FilesPipeline":
        settings = crawler.settings
        uri = settings.get(cls.STORE)
        if not uri:
            raise UsageError(f"{cls.__name__} needs {cls.STORE}: the folder (or fsspec URL) "
                             "to store files in")
        written_by = settings.get("MEDIA_WRITTEN_BY", "master")
        if written_by not in ("master", "workers"):
            raise UsageError(f"MEDIA_WRITTEN_BY={written_by!r}: expected master or workers")
        pipeline = cls(str(uri), settings, getattr(crawler, "media", None))
        pipeline.info = MediaInfo(crawler.spider)
        if pipeline.media is not None:  # on the master: it stats the store, and may write it
            pipeline.media.register(pipeline)
        return pipeline

    @property
    def store(self) -> Store:
        """The store, opened on first use (a worker opens it only when it writes there)."""
        if self._store is None:
            self._store = open_store(self.store_uri)
        return self._store

    # -- on the master ---------------------------------------------------------
    def open_spider(self, spider: Any) -> None:
        self.info = MediaInfo(spider)
        self.store  # a bad URL or a missing fsspec driver fails here, before the crawl

    def process_item(self, item: Any, spider: Any) -> Any:
        """The item with its entries filled in, or Held until its downloads are settled."""
        requests = self.get_media_requests(item, self.info)
        results: list[tuple[bool, dict] | None] = [None] * len(requests)
        wanted: list[tuple[int, dict[str, Any]]] = []
        for i, request in enumerate(requests):
            url = _scrapy_url(request.url)
            path = self.file_path(request, info=self.info, item=item)
            task = self._task(request, path, item)
            if task is None:
                results[i] = (False, _failed(url, "invalid_url"))
                continue
            # Asked for in this crawl already: the same outcome ("downloaded" for every item
            # that refers to it), else the store may have it fresh from an earlier crawl.
            fresh = None if self.media.known(task["fp"]) else self._fresh(path)
            if fresh is not None:
                results[i] = (True, _entry(url, path, fresh, "uptodate"))
            else:
                wanted.append((i, task))
        if not wanted:
            return self.item_completed(results, item, self.info)
        return self._hold(item, requests, results, wanted)

    def _hold(self, item: Any, requests: list[Request], results: list,
              wanted: list[tuple[int, dict]]) -> Held:
        left = [len(wanted)]

        def settled(i: int, url: str, path: str, outcome: dict[str, Any]) -> None:
            if outcome.get("checksum") is not None:
                results[i] = (True, _entry(url, path, outcome["checksum"], outcome["status"]))
            else:
                results[i] = (False, _failed(url, outcome.get("reason", "failed")))
            left[0] -= 1
            if left[0] == 0:
                held.release(lambda: self.item_completed(results, item, self.info))

        def abandon() -> Any:  # the crawl ended first: say so in each entry still open
            done = [r or (False, _failed(_scrapy_url(requests[i].url), "not_downloaded"))
                    for i, r in enumerate(results)]
            return self.item_completed(done, item, self.info)

        held = Held(abandon)
        self.media.request([(task, _bind(settled, i, task)) for i, task in wanted])
        return held

    def _fresh(self, path: str) -> str | None:
        """The checksum of the stored file when it is younger than FILES_EXPIRES."""
        found = self.store.stat(path)
        if found is None or found[0] > self.expires:
            return None
        return found[1]

    def _task(self, request: Request, path: str, item: Any) -> dict[str, Any] | None:
        identity = identify_uncached(request.url)
        if identity is None:
            return None
        url, host, _ = identity
        # Its own fingerprint, per pipeline: the same URL as a page, or in another media
        # pipeline, is another download.
        fp = fingerprint(url, method=f"MEDIA {self.name}")
        task = {"url": url, "fp": fp, "host": host, "depth": 0, "kind": "media",
                "priority": MEDIA_PRIORITY + request.priority,
                "media": {"pipeline": self.name, "url": _scrapy_url(request.url),
                          "paths": self.paths(request, path, item)}}
        for name, value in (("headers", request.headers), ("meta", request.meta)):
            if value:
                task[name] = value
        return task

    def paths(self, request: Request, path: str, item: Any) -> dict[str, str]:
        """Where this download's files go: {"full": path} (ImagesPipeline adds thumbs)."""
        return {"full": path}

    # -- Scrapy's hooks -------------------------------------------------------------
    def get_media_requests(self, item: Any, info: MediaInfo) -> list[Request]:
        urls = item.get(self.urls_field) or []
        if not isinstance(urls, (list, tuple)):
            raise TypeError(f"{self.urls_field} must be a list of URLs, got "
                            f"{type(urls).__name__}")
        return [u if isinstance(u, Request) else Request(u) for u in urls]

    def file_path(self, request: Request, response: Any = None, info: Any = None, *,
                  item: Any = None) -> str:
        """full/<sha1 of the URL><extension>, as Scrapy names files."""
        url = _scrapy_url(request.url)
        digest = hashlib.sha1(url.encode()).hexdigest()
        return f"full/{digest}{_extension(url)}"

    def item_completed(self, results: list[tuple[bool, dict]], item: Any,
                       info: MediaInfo) -> Any:
        """The item with RESULT_FIELD set: one entry per URL, failed ones included (with
        status "failed" and a reason), in the order of the URLs."""
        item[self.result_field] = [entry for _, entry in results]
        return item

    # -- on the workers ---------------------------------------------------------------
    def media_downloaded(self, body: bytes, paths: dict[str, str]) -> tuple[dict[str, bytes], str]:
        """The files to store for a downloaded body ({path: bytes}) and its checksum (the
        md5 of the full file)."""
        return {paths["full"]: body}, hashlib.md5(body).hexdigest()


def _bind(settled, i: int, task: dict[str, Any]):
    url, path = task["media"]["url"], task["media"]["paths"]["full"]
    return lambda outcome: settled(i, url, path, outcome)


def _entry(url: str, path: str, checksum: str, status: str) -> dict[str, Any]:
    return {"url": url, "path": path, "checksum": checksum, "status": status}


def _failed(url: str, reason: str) -> dict[str, Any]:
    return {"url": url, "path": None, "checksum": None, "status": "failed", "reason": reason}


def _scrapy_url(url: str) -> str:
    """The URL as Scrapy's Request holds it (paths are the sha1 of that)."""
    return safe_url_string(url)


def _extension(url: str) -> str:
    """The file's extension as Scrapy picks it: the path's, else the URL's, when it is a
    known type; else one guessed from the URL's type; else none."""
    for candidate in (os.path.splitext(urlsplit(url).path)[1], os.path.splitext(url)[1]):
        if candidate in mimetypes.types_map:
            return candidate
    kind = mimetypes.guess_type(url)[0]
    return (mimetypes.guess_extension(kind) or "") if kind else ""
