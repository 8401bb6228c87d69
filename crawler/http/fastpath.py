"""The fast path for the common request: a plain GET, without requests' per-request work.

requests spends about as much CPU per request preparing it (merging settings, copying the
cookie jar, re-parsing and re-quoting the URL) and wrapping the answer as urllib3 spends
sending it, and urllib3 with http.client spends ~300 us more. For a GET with no body, no
headers of its own and no proxy, whose URL is already in the form requests would send (what
crawler.urls.normalize produces), this module does what requests would do, directly: the
same headers in the same order, the cookies of the session's jar (sent and stored), and the
session's adapter, which sends http:// on crawler.http1's kept-alive connections and
https:// on urllib3's pools, with the same address guard, deadline and failure reasons.
Any other request goes through requests.
"""
from __future__ import annotations

import re
from typing import Any

import requests
from requests.cookies import extract_cookies_to_jar, get_cookie_header
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity

from .connections import Adapter
from .request import Request

Where = tuple[str, str, int | None, str]  # scheme, host, port, path and query

# URLs requests sends unchanged: lowercase scheme and host, a path, an optional non-empty
# query, only characters that need no quoting, no fragment, no user info
_SHAPE = re.compile(r"(https?)://([a-z0-9_][a-z0-9_.-]*)(?::([1-9][0-9]{0,4}))?"
                    r"(/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*"
                    r"(?:\?[A-Za-z0-9\-._~!$&'()*+,;=:@/%?]+)?)\Z")
# percent-escapes requests would rewrite: malformed, lowercase, or of an unreserved character
_ODD_ESCAPE = re.compile(r"%(?![0-9A-F]{2})|%(?:2[DE]|3[0-9]|[46][1-9A-F]|[57][0-9A]|5F|7E)")
_DOT_SEGMENT = re.compile(r"/\.\.?(?:/|\Z)")


def where(url: str) -> Where | None:
    """(scheme, host, port, path?query) when requests would send url as it is, else None."""
    match = _SHAPE.match(url)
    if match is None:
        return None
    scheme, host, port, target = match.groups()
    if "%" in target and _ODD_ESCAPE.search(target):
        return None
    if "/." in target and _DOT_SEGMENT.search(target.split("?", 1)[0]):
        return None
    if port is None:
        return scheme, host, None, target
    return (scheme, host, int(port), target) if int(port) <= 65535 else None


class FastResponse:
    """The parts of a requests.Response the fetcher reads, around the adapter's response."""

    __slots__ = ("url", "status_code", "headers", "raw")

    def __init__(self, url: str, raw: Any) -> None:
        self.url, self.raw, self.status_code = url, raw, raw.status
        headers = raw.headers
        self.headers = headers if isinstance(headers, CaseInsensitiveDict) else \
            CaseInsensitiveDict(headers)  # as requests builds it

    def close(self) -> None:
        """What requests.Response.close() does with a streamed body."""
        self.raw.close()
        self.raw.release_conn()


class _Sent:
    """A request as requests' cookie helpers see it (they read .url and .headers)."""

    __slots__ = ("url", "headers")

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers


class FastPath:
    """Plain GETs for one session (so one thread) on its own adapters and cookie jar."""

    def __init__(self, session: requests.Session) -> None:
        self.session = session
        self.headers = dict(session.headers)  # the headers requests would send, in order
        self.usable = all(_valid(item) for item in self.headers.items())

    def route(self, request: Request) -> tuple[Adapter, Where] | None:
        """Where to send the request on the fast path, or None when it must go through
        requests (not a plain GET, a URL requests would rewrite, a replaced adapter)."""
        if not self.usable or request.method != "GET" or request.body or request.headers:
            return None
        place = where(request.url)
        if place is None:
            return None
        adapter = self.session.adapters.get(place[0] + "://")
        if not isinstance(adapter, Adapter) or not adapter.bypassable:
            return None
        return adapter, place

    def get(self, request: Request, route: tuple[Adapter, Where], timeout: float
            ) -> FastResponse:
        """Send the GET and return once the headers are in (the body is left to read)."""
        adapter, place = route
        url, jar = request.url, self.session.cookies
        sent = _Sent(url, self.headers)
        if next(iter(jar), None) is not None:
            cookie = get_cookie_header(jar, sent)
            if cookie is not None:
                sent.headers = dict(self.headers, Cookie=cookie)
        raw = adapter.get(url, place, sent.headers, timeout)
        if "set-cookie" in raw.headers or "set-cookie2" in raw.headers:
            extract_cookies_to_jar(jar, sent, raw)  # type: ignore[arg-type]
        return FastResponse(url, raw)


def _valid(header: tuple[str, str]) -> bool:
    try:
        check_header_validity(header)
    except (requests.exceptions.InvalidHeader, ValueError, TypeError):
        return False
    return True
