"""The HTTP cache (HTTPCACHE_*, as Scrapy's HttpCacheMiddleware): responses kept on disk and
given back instead of fetching, so a spider can be re-run against what was crawled.

It wraps a worker's fetcher (`HttpCache.fetch` has Fetcher.fetch's signature), so it sits
below every downloader middleware, as Scrapy's does. One file per request: a JSON line
(url, status, headers) then the body, written to a temporary file and renamed, so readers
never see half an entry and workers on several hosts may share one folder (a path they all
mount: NFS, a shared volume). A relative HTTPCACHE_DIR is relative to each worker's current
folder: by default every worker host keeps a cache of its own.

Policies: "dummy" (every response is stored and every stored one is used, until
HTTPCACHE_EXPIRATION_SECS) and "rfc2616" (Cache-Control, Expires and validators obeyed: a
stale entry is revalidated with If-None-Match / If-Modified-Since, a 304 renews it).
Not kept: requests with meta["dont_cache"]; requests already conditional (a --recrawl's);
statuses in HTTPCACHE_IGNORE_HTTP_CODES. Cookies a cached response sets are not stored.
"""
from __future__ import annotations

import email.utils
import hashlib
import http.cookiejar
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import IgnoreRequest, UsageError
from .errors import FetchError
from .headers import Headers
from .request import Request
from .response import Response

log = logging.getLogger(__name__)
POLICIES = {"dummy": "dummy", "rfc2616": "rfc2616",  # Scrapy's class paths name them too
            "scrapy.extensions.httpcache.dummypolicy": "dummy",
            "scrapy.extensions.httpcache.rfc2616policy": "rfc2616"}
_CONDITIONAL = ("If-None-Match", "If-Modified-Since")
_YEAR = 365 * 24 * 3600.0


def policy_name(value: str) -> str:
    """The policy HTTPCACHE_POLICY names; UsageError for anything else."""
    name = POLICIES.get(str(value).strip().lower())
    if name is None:
        raise UsageError(f"setting HTTPCACHE_POLICY={value!r}: use dummy or rfc2616")
    return name


@dataclass(frozen=True)
class CacheConfig:
    """The cache's settings, as plain values."""

    folder: str
    expiration: float = 0.0  # seconds an entry is used at most (0: for ever)
    ignore_codes: frozenset[int] = frozenset()
    policy: str = "dummy"
    ignore_missing: bool = False  # a request not in the cache is ignored, not fetched

    @classmethod
    def from_settings(cls, s: dict[str, Any], spider_name: str) -> "CacheConfig":
        return cls(os.path.join(s["HTTPCACHE_DIR"], spider_name),
                   s["HTTPCACHE_EXPIRATION_SECS"], frozenset(s["HTTPCACHE_IGNORE_HTTP_CODES"]),
                   policy_name(s["HTTPCACHE_POLICY"]), s["HTTPCACHE_IGNORE_MISSING"])


class HttpCache:
    """A fetcher that answers from the cache when it may."""

    def __init__(self, fetcher: Any, config: CacheConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.fetcher, self.config, self.clock = fetcher, config, clock
        self.rfc2616 = config.policy == "rfc2616"

    def close_session(self) -> None:
        """Close this thread's connections (its fetcher's)."""
        self.fetcher.close_session()

    def close(self) -> None:
        """Close its fetcher's connections."""
        self.fetcher.close()

    def fetch(self, request: Request, depth: int = 0,
              cookies: http.cookiejar.CookieJar | None = None) -> Response:
        """The cached response when the policy allows it, else the fetched one (stored)."""
        if request.meta.get("dont_cache") or any(h in request.headers for h in _CONDITIONAL) \
                or self.rfc2616 and "no-store" in _directives(request.headers):
            return self.fetcher.fetch(request, depth, cookies)
        path = self._path(request)
        entry = self._load(path, request, depth)
        if entry is None and self.config.ignore_missing:
            raise IgnoreRequest(f"not in the HTTP cache: {request.url}")
        if entry is not None and (not self.rfc2616 or _fresh(entry, self.clock())):
            return entry
        if entry is None or not self.rfc2616:
            return self._store(path, self.fetcher.fetch(request, depth, cookies))
        return self._revalidate(path, request, entry, depth, cookies)

    def _revalidate(self, path: str, request: Request, entry: Response, depth: int,
                    cookies: http.cookiejar.CookieJar | None) -> Response:
        validators = {h: entry.headers[v] for h, v in (("If-None-Match", "ETag"),
                                                       ("If-Modified-Since", "Last-Modified"))
                      if v in entry.headers}
        try:
            response = self.fetcher.fetch(request.replace(headers={**request.headers,
                                                                   **validators}),
                                          depth, cookies)
        except FetchError as exc:
            if exc.retryable:  # the server is unreachable: the stale copy will do
                return entry
            raise
        if response.status == 304:
            entry.headers.update({k: v for k, v in response.headers.items()
                                  if k.lower() in ("date", "expires", "cache-control",
                                                   "etag", "last-modified")})
            return self._store(path, entry, force=True)
        if response.status >= 500 and "must-revalidate" not in _directives(entry.headers):
            return entry
        return self._store(path, response)

    def _path(self, request: Request) -> str:
        key = hashlib.sha1(f"{request.method} {request.url} ".encode() + request.body)
        digest = key.hexdigest()
        return os.path.join(self.config.folder, digest[:2], digest)

    def _load(self, path: str, request: Request, depth: int) -> Response | None:
        try:
            if 0 < self.config.expiration < self.clock() - os.path.getmtime(path):
                return None
            with open(path, "rb") as f:
                meta = json.loads(f.readline())
                body = f.read()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("HTTP cache entry %s unreadable (%s): fetching %s", path, exc,
                        request.url)
            return None
        headers = Headers(meta["headers"])
        return Response(meta["url"], meta["status"], headers, body, request, depth)

    def _store(self, path: str, response: Response, force: bool = False) -> Response:
        if not force and not self._cacheable(response):
            return response
        headers = list(response.headers.items())
        if "Date" not in response.headers:  # what the entry's age is counted from
            headers.append(("Date", email.utils.formatdate(self.clock(), usegmt=True)))
        meta = {"url": response.url, "status": response.status, "headers": headers}
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(meta).encode() + b"\n" + response.body)
            os.replace(temp, path)  # atomic: a reader sees the old entry or the new one
        except OSError as exc:
            log.warning("cannot write HTTP cache entry %s: %s", path, exc)
        return response

    def _cacheable(self, response: Response) -> bool:
        if response.status in self.config.ignore_codes:
            return False
        if not self.rfc2616:
            return True
        headers = response.headers
        if "no-store" in _directives(headers) or response.status == 304:
            return False
        if "max-age" in _directives(headers) or "Expires" in headers or \
                response.status in (300, 301, 308):
            return True
        return response.status in (200, 203, 401) and ("ETag" in headers or
                                                       "Last-Modified" in headers)


def _directives(headers: Any) -> dict[str, str | None]:
    """Cache-Control's directives: {name: value or None}."""
    out: dict[str, str | None] = {}
    for part in headers.get("Cache-Control", "").split(","):
        name, sep, value = part.strip().partition("=")
        if name:
            out[name.lower()] = value.strip('"') if sep else None
    return out


def _fresh(entry: Response, now: float) -> bool:
    """RFC 2616's freshness (with Firefox's heuristic, as Scrapy's policy): age < lifetime."""
    headers = entry.headers
    directives = _directives(headers)
    if "no-cache" in directives:
        return False
    date = _epoch(headers.get("Date")) or now
    age = max(0.0, now - date)
    if str(headers.get("Age", "")).isdigit():
        age = max(age, float(headers["Age"]))
    return age < _lifetime(entry, directives, date)


def _lifetime(entry: Response, directives: dict[str, str | None], date: float) -> float:
    max_age = directives.get("max-age")
    if max_age is not None and max_age.isdigit():
        return float(max_age)
    headers = entry.headers
    if "Expires" in headers:
        expires = _epoch(headers["Expires"])
        return max(0.0, expires - date) if expires else 0.0
    modified = _epoch(headers.get("Last-Modified"))
    if modified and modified <= date:
        return (date - modified) / 10
    return _YEAR if entry.status in (300, 301, 308) else 0.0


def _epoch(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
