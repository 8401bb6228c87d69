"""The downloader: requests sessions per thread, deadlines and size caps.

Redirects are not followed here: the worker turns them into new requests, so
every hop goes through scope checks, dedup and politeness like any link.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests
import urllib3.exceptions

from .errors import CrawlerError
from .request import Request
from .response import Response

log = logging.getLogger(__name__)
_CHUNK = 64 * 1024


class FetchError(CrawlerError):
    """A request that produced no usable response; `reason` names why."""

    def __init__(self, reason: str, message: str, retryable: bool = False) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.retryable = reason, retryable


@dataclass(frozen=True)
class FetchConfig:
    """The settings the fetcher needs, as plain values."""

    user_agent: str
    default_headers: dict[str, str]
    timeout: float
    maxsize: int
    warnsize: int
    address_guard: bool = True
    trusted_hosts: frozenset[str] = frozenset()  # seed hosts: exempt from the address guard
    proxy: str | None = None
    cookies: bool = True

    @classmethod
    def from_settings(cls, s: dict[str, Any], trusted_hosts=()) -> "FetchConfig":
        return cls(s["USER_AGENT"], dict(s["DEFAULT_REQUEST_HEADERS"]), s["DOWNLOAD_TIMEOUT"],
                   s["DOWNLOAD_MAXSIZE"], s["DOWNLOAD_WARNSIZE"], s["ADDRESS_GUARD"],
                   frozenset(trusted_hosts), s["HTTP_PROXY"], s["COOKIES_ENABLED"])


class Fetcher:
    """Fetches Requests into Responses; safe to share between threads."""

    def __init__(self, config: FetchConfig) -> None:
        self.config = config
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """This thread's session (connection pool and cookies)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
            session.headers.clear()
            session.headers.update(self.config.default_headers)
            session.headers["User-Agent"] = self.config.user_agent
        return session

    def fetch(self, request: Request, depth: int = 0) -> Response:
        """Download one request or raise FetchError; never follows redirects."""
        deadline = time.monotonic() + self.config.timeout
        try:
            raw = self.session.request(
                request.method, request.url, headers=request.headers, data=request.body or None,
                timeout=(self.config.timeout, self.config.timeout), stream=True,
                allow_redirects=False)
        except requests.RequestException as exc:
            raise _classify(exc) from None
        try:
            body = self._read(raw, deadline)
        finally:
            raw.close()
        return Response(raw.url, raw.status_code, raw.headers, body, request, depth)

    def _read(self, raw: requests.Response, deadline: float) -> bytes:
        declared = raw.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.config.maxsize:
            raise FetchError("too_large", f"Content-Length {declared} over DOWNLOAD_MAXSIZE")
        chunks, size = [], 0
        try:
            for chunk in raw.raw.stream(_CHUNK, decode_content=True):
                size += len(chunk)
                if size > self.config.maxsize:
                    raise FetchError("too_large", f"body over {self.config.maxsize} bytes")
                if time.monotonic() > deadline:
                    raise FetchError("timeout", "DOWNLOAD_TIMEOUT passed while reading", True)
                chunks.append(chunk)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _classify(exc) from None
        if size > self.config.warnsize:
            log.warning("%s: large body, %d bytes", raw.url, size)
        return b"".join(chunks)


def _classify(exc: Exception) -> FetchError:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, requests.exceptions.SSLError):
        return FetchError("tls", text)
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
        return FetchError("timeout", text, retryable=True)
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema)):
        return FetchError("invalid_url", text)
    if isinstance(exc, urllib3.exceptions.DecodeError) or \
            isinstance(exc, requests.exceptions.ContentDecodingError):
        return FetchError("bad_encoding", text)
    return FetchError("connection", text, retryable=True)
