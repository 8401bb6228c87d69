"""What the handler enforces, and its decisions by status, as pure functions of plain values:
retries (RETRY_*, meta dont_retry/max_retry_times), which responses reach callbacks (Scrapy's
HttpError rules), which redirects are followed, meta refresh, Retry-After."""
from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .. import urls
from ..http.request import Request
from ..http.response import Response

REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class Rules:
    """What the handler enforces, as plain values from the merged settings."""

    allowed_domains: frozenset[str]
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
    cookies: bool = True                         # COOKIES_ENABLED
    links_per_page: int = 0                      # LINKS_PER_PAGE_LIMIT (0: no limit)

    @classmethod
    def from_settings(cls, s: Mapping[str, Any], allowed_domains: Iterable[str]) -> "Rules":
        domains = (urls.to_ascii_host(d.strip().lower()) or d for d in allowed_domains)
        return cls(frozenset(domains), s["DEPTH_LIMIT"],
                   s["DEPTH_PRIORITY"], frozenset(s["RETRY_HTTP_CODES"]),
                   tuple(s["FINGERPRINT_IGNORE_PARAMS"]), s["URLLENGTH_LIMIT"],
                   s["REDIRECT_MAX_TIMES"], s["TRAP_SEGMENT_REPEAT"], s["RETRY_TIMES"],
                   frozenset(s["HTTPERROR_ALLOWED_CODES"]), s["HTTPERROR_ALLOW_ALL"],
                   s["METAREFRESH_MAXDELAY"] if s["METAREFRESH_ENABLED"] else None,
                   s["COOKIES_ENABLED"], s["LINKS_PER_PAGE_LIMIT"])

    def retries_left(self, request: Request, attempt: int) -> bool:
        """May a retryable failure of this attempt be retried (meta dont_retry and
        max_retry_times as in Scrapy)?"""
        meta = request.meta
        return not meta.get("dont_retry") and \
            attempt < meta.get("max_retry_times", self.retry_times)

    def allowed(self, request: Request, status: int, spider: Any) -> bool:
        """May a non-2xx response reach the callback? The request's meta decides first,
        then the spider's handle_httpstatus_list, then HTTPERROR_ALLOWED_CODES/_ALLOW_ALL."""
        meta = request.meta
        if meta.get("handle_httpstatus_all"):
            return True
        if "handle_httpstatus_list" in meta:
            return status in meta["handle_httpstatus_list"]
        if self.allow_all:
            return True
        codes = getattr(spider, "handle_httpstatus_list", None)
        return status in (self.allowed_codes if codes is None else codes)

    def follows_redirect(self, request: Request, response: Response, spider: Any) -> bool:
        """A redirect followed, rather than given to the callback as it is."""
        status, meta = response.status, request.meta
        return status in REDIRECTS and "Location" in response.headers and not (
            meta.get("dont_redirect") or meta.get("handle_httpstatus_all")
            or status in meta.get("handle_httpstatus_list", ())
            or status in getattr(spider, "handle_httpstatus_list", ()))

    def refresh(self, request: Request, response: Response) -> str | None:
        """The URL a <meta http-equiv="refresh"> sends this page to, when it is followed."""
        limit = self.refresh_max_delay
        if limit is None or request.meta.get("dont_redirect") or not response.is_html:
            return None
        found = response.meta_refresh()
        if found is None or found[0] >= limit or found[1] == response.url:
            return None
        return found[1]


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
