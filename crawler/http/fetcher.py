"""The downloader's interface: Fetcher.fetch(Request) -> Response, over one transport.

Redirects are not followed here: the worker turns them into new requests, so
every hop goes through scope checks, dedup and politeness like any link, and
through fetch() again, so through the address guard again.

A request is prepared as requests would send it (crawler.http.session), sent over the
fetcher's kept-alive connections (shared by its threads), plain or TLS, direct or through an
http:// proxy (crawler.http.client, crawler.http.http1), and its body read here. What fetch() guarantees:

* Deadline. DOWNLOAD_TIMEOUT (or meta["download_timeout"]) bounds the whole request: name
  lookup, connect, TLS handshake, headers and body. Every wait on a socket is given what
  is left of it (crawler.http.deadline); name resolution (getaddrinfo, which nothing can
  interrupt) runs on a thread of its own, and the fetch stops waiting for it at the deadline.
* Size. The body is read in small pieces and decompressed incrementally with an output
  bound per step (crawler.http.body): raw and decoded bytes are both capped at
  DOWNLOAD_MAXSIZE (or meta["download_maxsize"]), so a gzip bomb costs at most about the cap
  of memory. A body shorter than its Content-Length fails as "truncated".
* Address guard. Before connecting, the host is resolved and the connection refused when any
  of its addresses is not public; only the checked addresses are then connected to
  (crawler.http.guard). The seeds' origins (FetchConfig.trusted_hosts) are exempt. Through a proxy
  the proxy resolves the name again: there the check is best effort (rebinding remains
  possible).
* Certificates. Checked unless TLS_VERIFY is off: against TLS_CA_BUNDLE, else the
  environment's bundle on this host, else certifi's (FetchConfig.verify, crawler.http.tls).
  Nothing else comes from the environment: no proxies, no .netrc.
* Requests. The bytes requests would send: its headers in its order, the cookie jar's
  cookies (sent and stored as requests does), Content-Length as it sets it.

Failure reasons (FetchError.reason): timeout*, truncated*, connection*, proxy*, too_large,
blocked_address, tls, invalid_url, invalid_request, bad_encoding (* = retryable).
"""
from __future__ import annotations

import http.cookiejar
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Mapping


from . import http1, tls
from .body import ACCEPT_ENCODING, BodyDecoder
from .client import DEFAULT_PORTS, Client, Outgoing
from .client import Response as Received
from .deadline import Deadline
from .errors import TRANSPORT_ERRORS, FetchError, classify
from .guard import Guard
from .headers import Headers
from .idle import IdleConnections
from .request import Request
from .response import Response
from .session import Session

__all__ = ["ACCEPT_ENCODING", "Exchange", "FetchConfig", "FetchError", "Fetcher"]

log = logging.getLogger(__name__)
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchConfig:
    """The settings the fetcher needs, as plain values."""

    user_agent: str
    default_headers: dict[str, str]
    timeout: float
    maxsize: int
    warnsize: int
    address_guard: bool = True
    # exempt from the address guard: origins (the seeds') and host names (crawler.http.guard)
    trusted_hosts: frozenset[str] = frozenset()
    proxy: str | None = None
    cookies: bool = True
    verify: bool | str = True  # requests' verify: False, True (certifi) or a CA bundle path
    capture: bool = False  # keep each exchange's bytes as sent and received (WARC_OUTPUT)

    @classmethod
    def from_settings(cls, s: dict[str, Any], trusted_hosts=(),
                      env: Mapping[str, str] = os.environ) -> "FetchConfig":
        """The config for these settings; `env` supplies the CA bundle when TLS_CA_BUNDLE is
        unset (crawler.http.tls). UsageError when the bundle cannot be used here."""
        return cls(s["USER_AGENT"], dict(s["DEFAULT_REQUEST_HEADERS"]), s["DOWNLOAD_TIMEOUT"],
                   s["DOWNLOAD_MAXSIZE"], s["DOWNLOAD_WARNSIZE"], s["ADDRESS_GUARD"],
                   frozenset([*trusted_hosts, *s["ADDRESS_GUARD_TRUSTED"]]), s["HTTP_PROXY"],
                   s["COOKIES_ENABLED"],
                   tls.verify_value(s["TLS_VERIFY"], s["TLS_CA_BUNDLE"], env),
                   bool(s["WARC_OUTPUT"]))


@dataclass(frozen=True)
class Exchange:
    """One request and its response as they went over the wire (for WARC records): the
    request's head and body; the response's status line and fields, and its body as sent
    (content codings kept; chunked framing removed, so that field is left out)."""

    request: bytes
    response_head: bytes
    response_body: bytes

    @classmethod
    def of(cls, out: Outgoing, raw: Received, body: bytes) -> "Exchange":
        request = http1.request_head(out.method, out.target, out.host_header,
                                     out.headers.items()) + out.body
        lines = [f"HTTP/1.1 {raw.status} {raw.reason}"]
        lines.extend(f"{name}: {value}" for name, value in raw.fields
                     if name.lower() != "transfer-encoding" or raw.codings)
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        return cls(request, head, body)


class Fetcher:
    """Fetches Requests into Responses; safe to share between threads (each thread has its
    own session: cookies; idle connections are shared, crawler.http.idle).

    `fast_path` (default True): requests already in the form requests would send skip
    requests' preparation (crawler.http.session); False prepares every request with requests
    (for comparison). Both send over the same transport."""

    def __init__(self, config: FetchConfig) -> None:
        self.config = config
        self.fast_path = True
        self.guard = Guard(config.address_guard, config.trusted_hosts)
        self.tls = tls.Tls(config.verify)
        headers = Headers({"Accept-Encoding": ACCEPT_ENCODING})
        headers.update(config.default_headers)  # in requests' way: one of each, by any case
        headers["User-Agent"] = config.user_agent
        self._headers = dict(headers.items())
        self.idle = IdleConnections()
        self._local = threading.local()
        if config.verify is False:
            log.warning("TLS_VERIFY is off: server certificates are not checked")

    @property
    def session(self) -> Session:
        """This thread's session (headers, cookie jar, connections)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = Session(
                dict(self._headers), self.config.cookies,
                Client(self.guard, self.tls, self.idle))
        return session

    def close_session(self) -> None:
        """End this thread's session: a fetcher thread that ends calls it."""
        session = getattr(self._local, "session", None)
        if session is not None:
            self._local.session = None
            session.close()

    def close(self) -> None:
        """Close the idle connections, and each one a fetch still running gives back."""
        self.idle.close()

    def fetch(self, request: Request, depth: int = 0,
              cookies: http.cookiejar.CookieJar | None = None) -> Response:
        """Download one request or raise FetchError; never follows redirects. The request's
        meta["download_timeout"] (seconds, as in Scrapy) replaces DOWNLOAD_TIMEOUT.
        `cookies`: the jar this request sends from and stores into (default: the thread's)."""
        timeout = request.meta.get("download_timeout")
        if type(timeout) not in (int, float) or not timeout > 0:
            timeout = self.config.timeout
        deadline = Deadline(timeout)
        try:
            return self._fetch(request, depth, deadline, cookies)
        except FetchError:
            raise
        except TRANSPORT_ERRORS as exc:
            raise classify(exc, deadline.passed) from None

    def _fetch(self, request: Request, depth: int, deadline: Deadline,
               cookies: http.cookiejar.CookieJar | None) -> Response:
        session = self.session
        out = session.prepare(request, self.fast_path, cookies)
        out.proxy = self._proxy(request)
        if out.proxy:
            self.guard.check(out.host, out.port or DEFAULT_PORTS[out.scheme], deadline,
                             out.scheme)
        raw = session.client.send(out, deadline)
        sent = [] if self.config.capture else None
        try:
            session.store_cookies(out, raw, cookies)
            body = self._read(raw, deadline, self._maxsize(request), sent)
        finally:
            raw.close()
        if len(body) > self.config.warnsize:
            log.warning("%s: large body, %d bytes", out.url, len(body))
        response = Response(out.url, raw.status, raw.headers, body, request, depth)
        if sent is not None:
            response.exchange = Exchange.of(out, raw, b"".join(sent))
        return response

    def _proxy(self, request: Request) -> str | None:
        """The proxy for this request: its meta["proxy"] when set (None or "" for none),
        else HTTP_PROXY."""
        if "proxy" in request.meta:
            return request.meta["proxy"] or None
        return self.config.proxy or None

    def _maxsize(self, request: Request) -> int:
        """The body cap: the request's meta["download_maxsize"] (bytes, as in Scrapy) when it
        is a positive whole number, else DOWNLOAD_MAXSIZE."""
        cap = request.meta.get("download_maxsize")
        if type(cap) is int and cap > 0:
            return cap
        return self.config.maxsize

    def _read(self, raw: Received, deadline: Deadline, cap: int,
              sent: list[bytes] | None = None) -> bytes:
        """The decoded body, read in small steps against the deadline and the size cap;
        the body as sent is also appended to `sent` when given."""
        declared = raw.length  # Content-Length, or None (chunked, or no length)
        if declared is not None and declared > cap:
            raise FetchError("too_large", f"Content-Length {declared} over DOWNLOAD_MAXSIZE "
                             f"{cap}")
        codings = raw.headers.get("Content-Encoding", "")
        if raw.codings:  # transfer codings were applied after the content codings
            codings = f"{codings}, {raw.codings}" if codings else raw.codings
        decoder = BodyDecoder(codings, cap)
        received = self._pump(raw, decoder, deadline, cap, sent)
        if declared is not None and received < declared:
            raise FetchError("truncated", f"connection closed after {received} of {declared} "
                             "bytes (Content-Length)", True)
        return decoder.result()

    def _pump(self, raw: Received, decoder: BodyDecoder, deadline: Deadline, cap: int,
              sent: list[bytes] | None) -> int:
        """Feed the raw body to the decoder until its end; the raw bytes received."""
        received = 0
        while True:
            deadline.remaining("while reading the body")
            chunk = raw.read1(_CHUNK)
            if not chunk:
                return received
            received += len(chunk)
            if received > cap:
                raise FetchError("too_large", f"body over DOWNLOAD_MAXSIZE {cap} bytes")
            if sent is not None:
                sent.append(chunk)
            decoder.feed(chunk)
