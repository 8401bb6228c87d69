"""The downloader: requests sessions per thread, a total deadline, size caps, an address guard.

Redirects are not followed here: the worker turns them into new requests, so
every hop goes through scope checks, dedup and politeness like any link, and
through fetch() again, so through the address guard again.

What fetch() guarantees:

* Deadline. DOWNLOAD_TIMEOUT bounds the whole request: connect, TLS handshake, headers and
  body. Every socket a fetch uses is registered with a watchdog thread that shuts it down
  when the deadline passes, whatever phase the fetch is in (crawler.watchdog); the body loop
  also checks the clock after every read1-style read (one recv at most). Name resolution
  (getaddrinfo, which nothing can interrupt) runs on a thread of its own, and the fetch
  stops waiting for it at the deadline.
* Size. The body is read in small pieces and decompressed incrementally with an output
  bound per step (crawler.bodies): raw and decoded bytes are both capped at DOWNLOAD_MAXSIZE,
  so a gzip bomb costs at most about DOWNLOAD_MAXSIZE of memory. A body shorter than its
  Content-Length fails as "truncated" instead of passing as complete.
* Address guard. Before connecting, the host is resolved and the connection refused when any
  of its addresses is not public; only the checked addresses are then connected to
  (crawler.connections). Seed hosts (FetchConfig.trusted_hosts) are exempt. Through a proxy
  the proxy resolves the name again: there the check is best effort (rebinding remains
  possible).

* Certificates. Checked on both paths unless TLS_VERIFY is off: against TLS_CA_BUNDLE, else
  the environment's bundle on this host, else certifi's (FetchConfig.verify, crawler.http.tls).
  Nothing else comes from the environment (trust_env is off: no proxies, no .netrc).

Plain GETs take a faster path (crawler.fastpath, crawler.http1) with the same headers,
cookies, address guard, deadline, caps and failure reasons; everything else goes through
requests.

Failure reasons (FetchError.reason): timeout*, truncated*, connection*, proxy*, too_large,
blocked_address, tls, invalid_url, invalid_request, bad_encoding (* = retryable).
"""
from __future__ import annotations

import http.cookiejar
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests
import urllib3

from . import addresses, tls, watchdog
from .bodies import ACCEPT_ENCODING, BodyDecoder
from .connections import Adapter
from .failures import TRANSPORT_ERRORS, FetchError, classify, refuse_private, timed_out
from .fastpath import FastPath
from .request import Request
from .response import Response

__all__ = ["ACCEPT_ENCODING", "FetchConfig", "FetchError", "Fetcher"]

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
    trusted_hosts: frozenset[str] = frozenset()  # seed hosts: exempt from the address guard
    proxy: str | None = None
    cookies: bool = True
    verify: bool | str = True  # requests' verify: False, True (certifi) or a CA bundle path

    @classmethod
    def from_settings(cls, s: dict[str, Any], trusted_hosts=(),
                      env: Mapping[str, str] = os.environ) -> "FetchConfig":
        """The config for these settings; `env` supplies the CA bundle when TLS_CA_BUNDLE is
        unset (crawler.http.tls). UsageError when the bundle cannot be used here."""
        return cls(s["USER_AGENT"], dict(s["DEFAULT_REQUEST_HEADERS"]), s["DOWNLOAD_TIMEOUT"],
                   s["DOWNLOAD_MAXSIZE"], s["DOWNLOAD_WARNSIZE"], s["ADDRESS_GUARD"],
                   frozenset(trusted_hosts), s["HTTP_PROXY"], s["COOKIES_ENABLED"],
                   tls.verify_value(s["TLS_VERIFY"], s["TLS_CA_BUNDLE"], env))


class Fetcher:
    """Fetches Requests into Responses; safe to share between threads.

    `fast_path` (default True): plain GETs skip requests' per-request work (crawler.fastpath);
    False sends everything through requests (for comparison)."""

    def __init__(self, config: FetchConfig) -> None:
        self.config = config
        self.fast_path = True
        self._trusted = frozenset(addresses.normalize_host(h) for h in config.trusted_hosts)
        self._local = threading.local()
        if config.verify is False:
            # instead of urllib3's warning for every host reached unverified
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            log.warning("TLS_VERIFY is off: server certificates are not checked")

    @property
    def session(self) -> requests.Session:
        """This thread's session (connection pool and cookies)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._new_session()
            self._local.fast = FastPath(session)
        return session

    def _new_session(self) -> requests.Session:
        session = _Session()
        session.trust_env = False  # no proxies or .netrc from the environment
        session.verify = self.config.verify
        session.headers.clear()
        session.headers["Accept-Encoding"] = ACCEPT_ENCODING
        session.headers.update(self.config.default_headers)
        session.headers["User-Agent"] = self.config.user_agent
        session.mount("http://", Adapter(verify=self.config.verify))
        session.mount("https://", Adapter(verify=self.config.verify))
        if not self.config.cookies:
            session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        return session

    def fetch(self, request: Request, depth: int = 0,
              cookies: http.cookiejar.CookieJar | None = None) -> Response:
        """Download one request or raise FetchError; never follows redirects. The request's
        meta["download_timeout"] (seconds, as in Scrapy) replaces DOWNLOAD_TIMEOUT.
        `cookies`: the jar this request sends from and stores into (default: the thread's)."""
        if cookies is not None:
            self.session.cookies = cookies
        timeout = request.meta.get("download_timeout")
        if type(timeout) not in (int, float) or not timeout > 0:
            timeout = self.config.timeout
        ctx = watchdog.FetchContext(time.monotonic() + timeout, self.config.address_guard,
                                    self._trusted)
        watchdog.start(ctx, timeout)
        try:
            return self._fetch(request, depth, ctx)
        finally:
            watchdog.finish(ctx)

    def _fetch(self, request: Request, depth: int, ctx: watchdog.FetchContext) -> Response:
        proxy = self._proxy(request)
        if proxy and ctx.guard:
            self._check_before_proxy(request.url, ctx)
        remaining = ctx.deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("timeout", "DOWNLOAD_TIMEOUT passed before connecting", True)
        try:
            raw = self._send(request, proxy, remaining)
        except FetchError:
            raise
        except TRANSPORT_ERRORS as exc:
            raise classify(exc, ctx) from None
        try:
            body = self._read(raw, ctx, self._maxsize(request))
        finally:
            try:
                raw.close()
            except Exception:  # closing a broken connection must not hide the real outcome
                pass
        return Response(raw.url, raw.status_code, raw.headers, body, request, depth)

    def _send(self, request: Request, proxy: str | None, timeout: float) -> Any:
        """Send the request; the response (a requests.Response or a fastpath.FastResponse)
        has its headers in and its body left to read."""
        session = self.session
        fast: FastPath = self._local.fast
        route = fast.route(request) if self.fast_path and proxy is None else None
        if route is not None:
            return fast.get(request, route, timeout)
        return session.request(
            request.method, request.url, headers=request.headers, data=request.body or None,
            timeout=(timeout, timeout), stream=True, allow_redirects=False,
            proxies={"http": proxy, "https": proxy} if proxy else None)

    def _proxy(self, request: Request) -> str | None:
        """The proxy for this request: its meta["proxy"] when set (None or "" for none),
        else HTTP_PROXY."""
        if "proxy" in request.meta:
            return request.meta["proxy"] or None
        return self.config.proxy or None

    def _check_before_proxy(self, url: str, ctx: watchdog.FetchContext) -> None:
        """The address guard for a proxied request: the proxy connects, so all we can do is
        resolve the name here and refuse it when it points inward."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise FetchError("invalid_url", str(exc)) from None
        if not host or ctx.trusts(host):
            return
        try:
            found = addresses.resolve(host, port or 80, ctx.deadline - time.monotonic())
        except (OSError, UnicodeError) as exc:
            raise FetchError("blocked_address", f"{host} does not resolve here, so the address "
                             f"guard cannot check it ({exc}); set ADDRESS_GUARD=False to crawl "
                             "names only the proxy can resolve") from None
        refuse_private(host, found)

    def _maxsize(self, request: Request) -> int:
        """The body cap: the request's meta["download_maxsize"] (bytes, as in Scrapy) when it
        is a positive whole number, else DOWNLOAD_MAXSIZE."""
        cap = request.meta.get("download_maxsize")
        if type(cap) is int and cap > 0:
            return cap
        return self.config.maxsize

    def _read(self, raw: Any, ctx: watchdog.FetchContext, cap: int) -> bytes:
        """The decoded body, read in small steps against the deadline and the size cap."""
        stream = raw.raw
        declared = stream.length_remaining  # Content-Length, or None (chunked, or no length)
        if declared is not None and declared > cap:
            raise FetchError("too_large", f"Content-Length {declared} over DOWNLOAD_MAXSIZE "
                             f"{cap}")
        decoder = BodyDecoder(raw.headers.get("Content-Encoding", ""), cap)
        received = self._pump(stream, decoder, ctx, cap)
        if ctx.expired:  # the watchdog cut the connection: what we have is not the whole body
            raise timed_out("while reading the body", self.config.timeout)
        if declared is not None and received < declared:
            raise FetchError("truncated", f"connection closed after {received} of {declared} "
                             "bytes (Content-Length)", True)
        body = decoder.result()
        if len(body) > self.config.warnsize:
            log.warning("%s: large body, %d bytes", raw.url, len(body))
        return body

    def _pump(self, stream: Any, decoder: BodyDecoder, ctx: watchdog.FetchContext,
              cap: int) -> int:
        """Feed the raw body to the decoder until its end; the raw bytes received."""
        received = 0
        while True:
            if ctx.expired or time.monotonic() >= ctx.deadline:
                raise timed_out("while reading the body", self.config.timeout)
            try:
                chunk = stream.read1(_CHUNK, decode_content=False)
            except TRANSPORT_ERRORS as exc:
                raise classify(exc, ctx) from None
            if not chunk:
                return received
            received += len(chunk)
            if received > cap:
                raise FetchError("too_large", f"body over DOWNLOAD_MAXSIZE {cap} bytes")
            decoder.feed(chunk)


class _Session(requests.Session):
    """A session that never looks at redirects. requests, even when told not to follow them,
    reads a redirect's whole body to prepare the next request (Response.next): unbounded,
    and decoded. Here that body is read like any other, under the caps."""

    def resolve_redirects(self, *args: Any, **kwargs: Any):
        return iter(())
