"""Why a fetch failed: FetchError, and the reason an exception from the transport stands for.

Reasons (FetchError.reason): timeout*, truncated*, connection*, proxy*, too_large,
blocked_address, tls, invalid_url, invalid_request, bad_encoding (* = retryable).
"""
from __future__ import annotations

import functools
import ssl

from ..errors import CrawlerError


class FetchError(CrawlerError):
    """A request that produced no usable response; `reason` names why."""

    def __init__(self, reason: str, message: str, retryable: bool = False) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.retryable = reason, retryable


def malformed(what: str) -> FetchError:
    """A response that breaks HTTP/1.1's rules (RFC 9112): its connection is dropped."""
    return FetchError("connection", f"malformed response: {what}", True)


# What the transport raises besides FetchError: the socket's and ssl's errors, and from
# requests' preparation of a request its own exceptions (OSErrors all) and ValueError.
TRANSPORT_ERRORS = (OSError, ValueError)

PEER_CLOSED = (ssl.SSLEOFError, ssl.SSLZeroReturnError)  # the peer hung up: not a TLS verdict


@functools.cache
def _reasons() -> tuple[tuple[tuple[type, ...], str, bool], ...]:
    """(exception types, reason, retryable), tried in this order after the deadline.
    requests is imported here, not above: the master imports this module, never requests."""
    import requests
    return (
        (PEER_CLOSED, "connection", True),
        ((ssl.SSLError, ssl.CertificateError), "tls", False),
        ((TimeoutError,), "timeout", True),
        ((requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
          requests.exceptions.InvalidSchema, requests.exceptions.URLRequired, UnicodeError),
         "invalid_url", False),
        ((requests.exceptions.InvalidHeader,), "invalid_request", False),
        ((OSError,), "connection", True),
        ((ValueError, requests.RequestException), "invalid_request", False),
    )


def classify(exc: BaseException, late: bool = False) -> FetchError:
    """The FetchError for an exception of the transport; `late` (the fetch's deadline has
    passed): every failure is a timeout."""
    text = str(exc) or type(exc).__name__
    if late:
        return FetchError("timeout", f"DOWNLOAD_TIMEOUT passed ({text})", True)
    for kinds, reason, retryable in _reasons():
        if isinstance(exc, kinds):
            return FetchError(reason, text, retryable)
    return FetchError("connection", text, True)
