"""Why a fetch failed: FetchError, and the reason a transport exception stands for.

Reasons (FetchError.reason): timeout*, truncated*, connection*, proxy*, too_large,
blocked_address, tls, invalid_url, invalid_request, bad_encoding (* = retryable).
"""
from __future__ import annotations

import http.client
import ssl
import time
from typing import Any, Iterable

import requests
import urllib3.exceptions

from . import addresses
from ..errors import CrawlerError


class FetchError(CrawlerError):
    """A request that produced no usable response; `reason` names why."""

    def __init__(self, reason: str, message: str, retryable: bool = False) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.retryable = reason, retryable


def refuse_private(host: str, found: Iterable[str]) -> None:
    """The address guard: fail with blocked_address when any address host resolves to is
    not public."""
    bad = addresses.refused(found)
    if bad:
        raise FetchError("blocked_address", f"{host} resolves to {bad[0]}, not a public address")


def timed_out(when: str, timeout: float) -> FetchError:
    return FetchError("timeout", f"DOWNLOAD_TIMEOUT ({timeout} s) passed {when}", True)


TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError,
                    http.client.HTTPException, ValueError)

_NOT_REQUEST_ERRORS = (OSError, requests.RequestException, urllib3.exceptions.HTTPError)

# (exception types, reason, retryable), tried in this order after the deadline and truncation
_REASONS: tuple[tuple[tuple[type, ...], str, bool], ...] = (
    ((requests.exceptions.SSLError, urllib3.exceptions.SSLError, ssl.SSLError,
      ssl.CertificateError), "tls", False),
    ((requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError), "timeout", True),
    ((requests.exceptions.ProxyError, urllib3.exceptions.ProxyError), "proxy", True),
    ((requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
      requests.exceptions.InvalidSchema, urllib3.exceptions.LocationValueError,
      requests.exceptions.URLRequired), "invalid_url", False),
    ((urllib3.exceptions.DecodeError, requests.exceptions.ContentDecodingError),
     "bad_encoding", False),
    ((requests.exceptions.InvalidHeader,), "invalid_request", False),
)


def classify(exc: BaseException, ctx: Any = None) -> FetchError:
    """The FetchError for a transport exception (from requests, urllib3 or the socket).
    ctx: the fetch's context (watchdog.FetchContext); past its deadline, all is a timeout."""
    text = str(exc) or type(exc).__name__
    if ctx is not None and (ctx.expired or time.monotonic() >= ctx.deadline):
        return FetchError("timeout", f"DOWNLOAD_TIMEOUT passed ({text})", retryable=True)
    if caused_by(exc, http.client.IncompleteRead):
        return FetchError("truncated", text, retryable=True)
    for kinds, reason, retryable in _REASONS:
        if isinstance(exc, kinds):
            return FetchError(reason, text, retryable)
    if isinstance(exc, ValueError) and not isinstance(exc, _NOT_REQUEST_ERRORS):
        return FetchError("invalid_request", text)  # the spider's request cannot be sent
    return FetchError("connection", text, retryable=True)


def caused_by(exc: BaseException, kind: type, depth: int = 6) -> bool:
    """True when exc, an argument of it or its cause (a few levels deep) is a kind."""
    seen: list[BaseException] = [exc]
    for _ in range(depth):
        if not seen:
            return False
        current, seen = seen, []
        for e in current:
            if isinstance(e, kind):
                return True
            seen.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
            seen.extend(c for c in (e.__cause__, e.__context__) if c is not None)
    return False
