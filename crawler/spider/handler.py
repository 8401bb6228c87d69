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

from .. import urls, wire
from ..errors import PageError
from ..http.fetcher import Fetcher, FetchError
from ..http.request import Request
from ..http.response import Response
from .base import Spider

log = logging.getLogger(__name__)
_REDIRECTS = {301, 302, 303, 307, 308}
# What of a robots.txt is read (RFC 9309: at least 500 KiB must be): a bigger file would
# cost the master time to ship and parse, for rules no site needs.
ROBOTS_MAX_BYTES = 500 * 1024


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
    retry_times: int = 2
    allowed_codes: frozenset[int] = frozenset()  # HTTPERROR_ALLOWED_CODES
    allow_all: bool = False                      # HTTPERROR_ALLOW_ALL
    refresh_max_delay: float | None = 100.0      # None: meta refresh is not followed

    @classmethod
    def from_settings(cls, s: Mapping[str, Any], allowed_domains: Iterable[str]) -> "Rules":
        domains = (urls.to_ascii_host(d.strip().lower()) or d for d in allowed_domains)
        return cls(tuple(domains), s["DEPTH_LIMIT"],
                   s["DEPTH_PRIORITY"], frozenset(s["RETRY_HTTP_CODES"]),
                   tuple(s["FINGERPRINT_IGNORE_PARAMS"]), s["URLLENGTH_LIMIT"],
                   s["REDIRECT_MAX_TIMES"], s["TRAP_SEGMENT_REPEAT"], s["RETRY_TIMES"],
                   frozenset(s["HTTPERROR_ALLOWED_CODES"]), s["HTTPERROR_ALLOW_ALL"],
                   s["METAREFRESH_MAXDELAY"] if s["METAREFRESH_ENABLED"] else None)


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
        result = self._respond(request, response, task.get("attempt", 0), depth)
        result["latency"] = latency
        pause = retry_after(response.headers.get("Retry-After"))
        if pause is not None and response.status in (429, 503):
            result["retry_after"] = pause
        return result

    def _respond(self, request: Request, response: Response, attempt: int,
                 depth: int) -> dict[str, Any]:
        """Retry, redirect, fail or parse, by the response's status (Scrapy's rules)."""
        status = response.status
        if status in self.rules.retry_codes and attempt < self.rules.retry_times:
            return {"outcome": "retry", "reason": f"http_{status}"}
        if status in _REDIRECTS and "Location" in response.headers and \
                not self._keeps_redirect(request, status):
            return self._redirect(request, response, depth, response.headers["Location"],
                                  status)
        if not 200 <= status < 300 and not self._allowed(request, status):
            return {"outcome": "failed", "reason": f"http_{status}", "status": status}
        refresh = self._refresh(request, response)
        if refresh is not None:
            return self._redirect(request, response, depth, refresh, "meta refresh")
        return self._parse(request, response, depth)

    def _allowed(self, request: Request, status: int) -> bool:
        """May a non-2xx response reach the callback? The request's meta decides first,
        then the spider's handle_httpstatus_list, then HTTPERROR_ALLOWED_CODES/_ALLOW_ALL."""
        meta = request.meta
        if meta.get("handle_httpstatus_all"):
            return True
        if "handle_httpstatus_list" in meta:
            return status in meta["handle_httpstatus_list"]
        if self.rules.allow_all:
            return True
        codes = getattr(self.spider, "handle_httpstatus_list", None)
        return status in (self.rules.allowed_codes if codes is None else codes)

    def _keeps_redirect(self, request: Request, status: int) -> bool:
        """A redirect the callback gets as it is instead of it being followed."""
        meta = request.meta
        return bool(meta.get("dont_redirect") or meta.get("handle_httpstatus_all")
                    or status in meta.get("handle_httpstatus_list", ())
                    or status in getattr(self.spider, "handle_httpstatus_list", ()))

    def _refresh(self, request: Request, response: Response) -> str | None:
        """The URL a <meta http-equiv="refresh"> sends this page to, when it is followed."""
        limit = self.rules.refresh_max_delay
        if limit is None or request.meta.get("dont_redirect") or not response.is_html:
            return None
        found = response.meta_refresh()
        if found is None or found[0] >= limit or found[1] == response.url:
            return None
        return found[1]

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
            log.warning("%s: %s", url, exc)  # the why, where it is known (the master gets the reason)
            return {"outcome": "retry" if exc.retryable else "failed", "reason": exc.reason}
        if response.status >= 500 or response.status == 429:
            return {"outcome": "retry", "reason": f"http_{response.status}"}
        body = response.body
        if len(body) > ROBOTS_MAX_BYTES:
            body = body[:body.rfind(b"\n", 0, ROBOTS_MAX_BYTES) + 1]  # whole lines only
        return {"outcome": "done", "status": response.status,
                "robots": Response(url, response.status, response.headers, body).text}

    def _redirect(self, request: Request, response: Response, depth: int, location: str,
                  why: int | str) -> dict[str, Any]:
        """A redirect (`why`: its status, or "meta refresh") as a new request."""
        hops = request.meta.get("redirect_times", 0) + 1
        if hops > self.rules.redirect_max:
            return {"outcome": "failed", "reason": "redirect_max", "status": response.status}
        meta = dict(request.meta, redirect_times=hops,
                    redirect_urls=request.meta.get("redirect_urls", []) + [request.url],
                    redirect_reasons=request.meta.get("redirect_reasons", []) + [why])
        method = "GET" if why in (303, "meta refresh") else request.method
        target = Request(urls.join(request.url, location),
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
        items: list[dict] = []
        new: list[Request] = []
        outcome, reason = "done", None
        try:
            for out in callback(response) or ():
                if isinstance(out, Request):
                    if out.meta:
                        out.meta = wire.plain(out.meta, "Request.meta")
                    new.append(out)
                else:
                    items.append(wire.plain(_as_item(out)))
        except wire.NotPlainData as exc:
            log.error("spider error on %s: %s", request.url, exc)
            outcome, reason = "failed", "spider_error"
        except PageError as exc:
            log.warning("%s: %s", request.url, exc)
            outcome, reason = "failed", exc.reason
        except Exception:
            log.exception("spider error on %s", request.url)
            outcome, reason = "failed", "spider_error"
        # What the callback yielded before it raised is kept, as in Scrapy.
        dropped: Counter = Counter()
        tasks = self._vet(new, depth, dropped)
        result = {"outcome": outcome, "status": response.status, "items": items,
                  "requests": tasks, "dropped": dict(dropped)}
        if reason is not None:
            result["reason"] = reason
        return result

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
