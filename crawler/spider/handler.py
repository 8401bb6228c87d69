"""One task in, one result out: fetch, run the spider callback, vet its output.

Runs on workers. The result is plain data: items, new request tasks (normalized
and fingerprinted here, so the master only dedups), and counts of what was dropped.
"""
from __future__ import annotations

import dataclasses
import email.utils
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .. import urls
from ..errors import PageError
from ..http.fetcher import Fetcher, FetchError
from ..http.request import Request
from ..http.response import Response
from .base import Spider

log = logging.getLogger(__name__)
_REDIRECTS = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class Rules:
    """What the handler enforces, as plain values from the merged settings."""

    allowed_domains: tuple[str, ...]
    depth_limit: int
    depth_priority: int
    retry_codes: frozenset[int]
    ignore_params: tuple[str, ...]
    url_length_limit: int
    redirect_max: int
    trap_repeat: int = 0

    @classmethod
    def from_settings(cls, s: Mapping[str, Any], allowed_domains: Iterable[str]) -> "Rules":
        return cls(tuple(d.lower() for d in allowed_domains), s["DEPTH_LIMIT"],
                   s["DEPTH_PRIORITY"], frozenset(s["RETRY_HTTP_CODES"]),
                   tuple(s["FINGERPRINT_IGNORE_PARAMS"]), s["URLLENGTH_LIMIT"],
                   s["REDIRECT_MAX_TIMES"], s["TRAP_SEGMENT_REPEAT"])


class Handler:
    """Turns a leased task into a result dict for the master."""

    def __init__(self, spider: Spider, fetcher: Fetcher, rules: Rules) -> None:
        self.spider, self.fetcher, self.rules = spider, fetcher, rules

    def handle(self, task: dict[str, Any]) -> dict[str, Any]:
        """Fetch and parse one task; never raises. An unexpected error (a bug) is logged and
        fails the task, so its lease is settled and the crawl can end."""
        try:
            return self._handle(task)
        except Exception:
            log.exception("internal error on %s", task.get("url"))
            return {"outcome": "failed", "reason": "internal_error"}

    def _handle(self, task: dict[str, Any]) -> dict[str, Any]:
        if task.get("robots"):
            return self._robots(task["url"])
        request = Request.from_task(task)
        depth = task.get("depth", 0)
        started = time.monotonic()
        try:
            response = self.fetcher.fetch(request, depth)
        except FetchError as exc:
            return {"outcome": "retry" if exc.retryable else "failed", "reason": exc.reason,
                    "latency": time.monotonic() - started}
        latency = time.monotonic() - started
        if response.status in self.rules.retry_codes:
            result = {"outcome": "retry", "reason": f"http_{response.status}"}
        elif response.status in _REDIRECTS and "Location" in response.headers:
            result = self._redirect(request, response, depth)
        else:
            result = self._parse(request, response, depth)
        result["latency"] = latency
        result["bytes"] = len(response.body)
        pause = retry_after(response.headers.get("Retry-After"))
        if pause is not None and response.status in (429, 503):
            result["retry_after"] = pause
        return result

    def _robots(self, url: str) -> dict[str, Any]:
        """Fetch a robots.txt, following up to 5 redirects; the master parses it."""
        try:
            for _ in range(6):
                response = self.fetcher.fetch(Request(url))
                location = response.headers.get("Location")
                if response.status not in _REDIRECTS or not location:
                    break
                url = urls.join(url, location)
        except FetchError as exc:
            return {"outcome": "retry" if exc.retryable else "failed", "reason": exc.reason}
        if response.status >= 500 or response.status == 429:
            return {"outcome": "retry", "reason": f"http_{response.status}"}
        return {"outcome": "done", "status": response.status, "robots": response.text}

    def _redirect(self, request: Request, response: Response, depth: int) -> dict[str, Any]:
        hops = request.meta.get("redirect_times", 0) + 1
        if hops > self.rules.redirect_max:
            return {"outcome": "failed", "reason": "redirect_max", "status": response.status}
        meta = dict(request.meta, redirect_times=hops,
                    redirect_urls=request.meta.get("redirect_urls", []) + [request.url])
        method = "GET" if response.status == 303 else request.method
        target = Request(urls.join(request.url, response.headers["Location"]),
                         callback=request.callback, method=method, headers=request.headers,
                         body=request.body if method != "GET" else b"", meta=meta,
                         priority=request.priority)
        dropped: Counter = Counter()
        tasks = self._vet([target], depth, dropped, same_depth=True)
        return {"outcome": "done", "status": response.status, "items": [], "requests": tasks,
                "dropped": dict(dropped)}

    def _parse(self, request: Request, response: Response, depth: int) -> dict[str, Any]:
        callback = getattr(self.spider, request.callback or "parse", None)
        if not callable(callback):
            log.error("%s: spider has no callback %r", request.url, request.callback)
            return {"outcome": "failed", "reason": "spider_error", "status": response.status}
        items, new = [], []
        try:
            for out in callback(response) or ():
                if isinstance(out, Request):
                    new.append(out)
                else:
                    items.append(_as_item(out))
        except PageError as exc:
            log.warning("%s: %s", request.url, exc)
            return {"outcome": "failed", "reason": exc.reason, "status": response.status}
        except Exception:
            log.exception("spider error on %s", request.url)
            return {"outcome": "failed", "reason": "spider_error", "status": response.status}
        dropped: Counter = Counter()
        tasks = self._vet(new, depth, dropped)
        return {"outcome": "done", "status": response.status, "items": items,
                "requests": tasks, "dropped": dict(dropped)}

    def _vet(self, requests: list[Request], depth: int, dropped: Counter,
             same_depth: bool = False) -> list[dict[str, Any]]:
        rules, child = self.rules, depth if same_depth else depth + 1
        tasks = []
        for request in requests:
            if rules.depth_limit and child > rules.depth_limit:
                dropped["depth"] += 1
                continue
            if len(request.url) > rules.url_length_limit:
                dropped["url_too_long"] += 1
                continue
            request.priority -= 0 if same_depth else child * rules.depth_priority
            task = request.to_task(child, rules.ignore_params)
            if task is None:
                dropped["invalid_url"] += 1
            elif rules.trap_repeat and urls.repeats_segment(task["url"], rules.trap_repeat):
                dropped["trap"] += 1
            elif rules.allowed_domains and not request.dont_filter and \
                    not urls.in_domains(task["host"], rules.allowed_domains):
                dropped["offsite"] += 1
            else:
                tasks.append(task)
        return tasks


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _as_item(out: Any) -> dict[str, Any]:
    if isinstance(out, dict):
        return out
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return dataclasses.asdict(out)
    if isinstance(out, Mapping):
        return dict(out)
    raise TypeError(f"callback yielded {type(out).__name__}: yield dicts or Requests")
