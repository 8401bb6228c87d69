"""On the workers: a media task in, a result out. The body is fetched like a page's
(downloader middlewares, address guard, size cap, retries), turned into files by its
pipeline (media_downloaded), and the files either travel back in the result, for the
master to store (MEDIA_WRITTEN_BY=master, the default), or are stored from here
(MEDIA_WRITTEN_BY=workers: the store must be reachable from every worker host).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterable

from .. import components, urls
from ..errors import IgnoreRequest
from ..http.fetcher import Fetcher, FetchError
from ..http.request import Request
from ..http.response import Response
from ..spider.middleware import Middlewares
from ..spider.rules import REDIRECTS, Rules
from .files import FilesPipeline, MediaError

log = logging.getLogger(__name__)


def load_media_pipelines(paths: Iterable[str], crawler: Any) -> dict[str, FilesPipeline]:
    """The media pipelines at these paths, made on this worker, by name."""
    pipelines = {}
    for path in paths:
        cls = components.load_class("ITEM_PIPELINES", path)
        pipeline = components.make("ITEM_PIPELINES", cls, crawler)
        pipelines[pipeline.name] = pipeline
    return pipelines


class MediaFetch:
    """Downloads media tasks for the worker's handler."""

    def __init__(self, pipelines: dict[str, FilesPipeline], fetcher: Fetcher, rules: Rules,
                 middlewares: Middlewares) -> None:
        self.pipelines, self.fetcher = pipelines, fetcher
        self.rules, self.middlewares = rules, middlewares

    def handle(self, task: dict[str, Any]) -> dict[str, Any]:
        if "revisit" in task:
            # A --recrawl queues every known URL again; a download is asked for again only
            # by an item that refers to it, and FILES_EXPIRES decides then. Settled as
            # unchanged, without a request.
            return {"outcome": "done", "status": 304}
        media = task["media"]
        pipeline = self.pipelines.get(media["pipeline"])
        if pipeline is None:
            log.error("%s: no media pipeline %s on this worker", task["url"], media["pipeline"])
            return {"outcome": "failed", "reason": "no_pipeline"}
        request, attempt = Request.from_task(task), task.get("attempt", 0)
        started = time.monotonic()
        try:
            response = self._fetch(request, pipeline)
        except FetchError as exc:
            retry = exc.retryable and self.rules.retries_left(request, attempt)
            return {"outcome": "retry" if retry else "failed", "reason": exc.reason,
                    "latency": time.monotonic() - started}
        except IgnoreRequest:
            return {"outcome": "failed", "reason": "ignored"}
        result = {"latency": time.monotonic() - started, "bytes": len(response.body),
                  "status": response.status}
        result.update(self._files(request, attempt, response, pipeline, media))
        return result

    def _fetch(self, request: Request, pipeline: FilesPipeline) -> Response:
        """The response, after middlewares' replacements and (MEDIA_ALLOW_REDIRECTS)
        redirects, at most REDIRECT_MAX_TIMES of them."""
        for _ in range(pipeline.redirect_max + 1):
            got = self.middlewares.download(request, lambda r: self.fetcher.fetch(r))
            if isinstance(got, Request):
                request = got
                continue
            location = got.headers.get("Location")
            if not (pipeline.allow_redirects and got.status in REDIRECTS and location):
                return got
            request = request.replace(url=urls.join(request.url, location))
        raise FetchError("redirect_max", f"more than {pipeline.redirect_max} redirects")

    def _files(self, request: Request, attempt: int, response: Response,
               pipeline: FilesPipeline, media: dict[str, Any]) -> dict[str, Any]:
        status = response.status
        if status in self.rules.retry_codes and self.rules.retries_left(request, attempt):
            return {"outcome": "retry", "reason": f"http_{status}"}
        if status != 200:  # Scrapy's rule for media: only a 200 is stored
            return {"outcome": "failed", "reason": f"http_{status}"}
        if not response.body:
            return {"outcome": "failed", "reason": "empty_content"}
        try:
            files, checksum = pipeline.media_downloaded(response.body, media["paths"])
        except MediaError as exc:
            log.warning("%s: %s", request.url, exc)
            return {"outcome": "failed", "reason": exc.reason}
        out = {"outcome": "done", "media": {"pipeline": pipeline.name, "url": media["url"],
                                            "checksum": checksum, "status": "downloaded"}}
        if not pipeline.workers_write:
            out["blobs"] = files
            return out
        try:
            for path, data in files.items():
                pipeline.store.persist(path, data)
        except Exception as exc:
            log.error("%s: cannot store %s: %r", request.url, path, exc)
            return {"outcome": "retry", "reason": "store_error"}
        return out
