"""The downloader: requests sessions per thread, a total deadline, size caps, an address guard.

Redirects are not followed here: the worker turns them into new requests, so
every hop goes through scope checks, dedup and politeness like any link, and
through fetch() again, so through the address guard again.

What fetch() guarantees:

* Deadline. DOWNLOAD_TIMEOUT bounds the whole request: connect, TLS handshake, headers and
  body. Socket timeouts alone cannot do that (they bound each recv, and a server that sends a
  byte a second never trips them), so every socket a fetch uses is registered with a watchdog
  thread that shuts it down when the deadline passes, whatever phase the fetch is in; the body
  loop also checks the clock after every read1-style read (one recv at most). Name resolution
  (getaddrinfo) is the one step the watchdog cannot cut.
* Size. The body is read in small pieces and decompressed here, incrementally, with an output
  bound per step (gzip, deflate, and br when a brotli package with bounded output is
  installed): raw and decoded bytes are both capped at DOWNLOAD_MAXSIZE, so a gzip bomb costs
  at most about DOWNLOAD_MAXSIZE of memory. A body shorter than its Content-Length fails as
  "truncated" instead of passing as complete.
* Address guard. Before connecting, the host is resolved and the connection refused when any
  of its addresses is not public (crawler.addresses); then only the checked addresses are
  connected to, so a DNS answer that changes between check and connect (rebinding) does not
  get through. Seed hosts (FetchConfig.trusted_hosts) are exempt. Through a proxy the proxy
  resolves the name again: there the check is best effort (rebinding remains possible).

Failure reasons (FetchError.reason): timeout*, truncated*, connection*, proxy*, too_large,
blocked_address, tls, invalid_url, invalid_request, bad_encoding (* = retryable).
"""
from __future__ import annotations

import heapq
import http.client
import http.cookiejar
import itertools
import logging
import os
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
import urllib3.exceptions

from . import addresses
from .errors import CrawlerError
from .request import Request
from .response import Response

log = logging.getLogger(__name__)
_CHUNK = 64 * 1024
_MAX_CODINGS = 4  # stacked Content-Encodings decoded at most

try:  # brotli is optional; used only if its decompressor can bound its output
    import brotli as _brotli  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the environment
    try:
        import brotlicffi as _brotli  # type: ignore[import-not-found]
    except ImportError:
        _brotli = None


def _bounded_brotli() -> bool:
    if _brotli is None:
        return False
    try:
        _brotli.Decompressor().process(b"", output_buffer_limit=1)
    except Exception:  # older releases have no output_buffer_limit: unbounded, so unused
        return False
    return True


BROTLI = _bounded_brotli()
ACCEPT_ENCODING = "gzip, deflate, br" if BROTLI else "gzip, deflate"


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
        self._trusted = frozenset(addresses.normalize_host(h) for h in config.trusted_hosts)
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """This thread's session (connection pool and cookies)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False  # no proxies, .netrc or CA bundle from the environment
            session.headers.clear()
            session.headers["Accept-Encoding"] = ACCEPT_ENCODING
            session.headers.update(self.config.default_headers)
            session.headers["User-Agent"] = self.config.user_agent
            session.mount("http://", _Adapter())
            session.mount("https://", _Adapter())
            if not self.config.cookies:
                session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        return session

    def fetch(self, request: Request, depth: int = 0) -> Response:
        """Download one request or raise FetchError; never follows redirects."""
        ctx = _Fetch(time.monotonic() + self.config.timeout, self.config.address_guard,
                     self._trusted)
        _watchdog.add(ctx, self.config.timeout)
        _current.fetch = ctx
        try:
            return self._fetch(request, depth, ctx)
        finally:
            _current.fetch = None
            _watchdog.remove(ctx)

    def _fetch(self, request: Request, depth: int, ctx: "_Fetch") -> Response:
        proxy = self._proxy(request)
        if proxy and ctx.guard:
            self._check_before_proxy(request.url, ctx)
        remaining = ctx.deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("timeout", "DOWNLOAD_TIMEOUT passed before connecting", True)
        try:
            raw = self.session.request(
                request.method, request.url, headers=request.headers, data=request.body or None,
                timeout=(remaining, remaining), stream=True, allow_redirects=False,
                proxies={"http": proxy, "https": proxy} if proxy else None)
        except FetchError:
            raise
        except _TRANSPORT_ERRORS as exc:
            raise _classify(exc, ctx) from None
        try:
            body = self._read(raw, ctx)
        finally:
            try:
                raw.close()
            except Exception:  # closing a broken connection must not hide the real outcome
                pass
        return Response(raw.url, raw.status_code, raw.headers, body, request, depth)

    def _proxy(self, request: Request) -> str | None:
        """The proxy for this request: its meta["proxy"] when set (None or "" for none),
        else HTTP_PROXY."""
        if "proxy" in request.meta:
            return request.meta["proxy"] or None
        return self.config.proxy or None

    def _check_before_proxy(self, url: str, ctx: "_Fetch") -> None:
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
            found = addresses.resolve(host, port or 80)
        except (OSError, UnicodeError) as exc:
            raise FetchError("blocked_address", f"{host} does not resolve here, so the address "
                             f"guard cannot check it ({exc}); set ADDRESS_GUARD=False to crawl "
                             "names only the proxy can resolve") from None
        bad = addresses.refused(found)
        if bad:
            raise FetchError("blocked_address", f"{host} resolves to {bad[0]}, not a public "
                             "address")

    def _read(self, raw: requests.Response, ctx: "_Fetch") -> bytes:
        """The decoded body, read in small steps against the deadline and the size caps."""
        cap = self.config.maxsize
        stream = raw.raw
        declared = stream.length_remaining  # Content-Length, or None (chunked, or no length)
        if declared is not None and declared > cap:
            raise FetchError("too_large", f"Content-Length {declared} over DOWNLOAD_MAXSIZE "
                             f"{cap}")
        decoder = _BodyDecoder(raw.headers.get("Content-Encoding", ""), cap)
        received = 0
        while True:
            if ctx.expired or time.monotonic() >= ctx.deadline:
                raise FetchError("timeout", f"DOWNLOAD_TIMEOUT ({self.config.timeout} s) passed "
                                 "while reading the body", True)
            try:
                chunk = stream.read1(_CHUNK, decode_content=False)
            except _TRANSPORT_ERRORS as exc:
                raise _classify(exc, ctx) from None
            if not chunk:
                break
            received += len(chunk)
            if received > cap:
                raise FetchError("too_large", f"body over DOWNLOAD_MAXSIZE {cap} bytes")
            decoder.feed(chunk)
        if ctx.expired:  # the watchdog cut the connection: what we have is not the whole body
            raise FetchError("timeout", f"DOWNLOAD_TIMEOUT ({self.config.timeout} s) passed "
                             "while reading the body", True)
        if declared is not None and received < declared:
            raise FetchError("truncated", f"connection closed after {received} of {declared} "
                             "bytes (Content-Length)", True)
        body = decoder.result()
        if len(body) > self.config.warnsize:
            log.warning("%s: large body, %d bytes", raw.url, len(body))
        return body


# -- errors ----------------------------------------------------------------------------------

_TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError,
                     http.client.HTTPException, ValueError)


_NOT_REQUEST_ERRORS = (OSError, requests.RequestException, urllib3.exceptions.HTTPError)


def _classify(exc: BaseException, ctx: "_Fetch | None" = None) -> FetchError:
    """The FetchError for a transport exception (from requests, urllib3 or the socket)."""
    text = str(exc) or type(exc).__name__
    if ctx is not None and (ctx.expired or time.monotonic() >= ctx.deadline):
        return FetchError("timeout", f"DOWNLOAD_TIMEOUT passed ({text})", retryable=True)
    if _caused_by(exc, http.client.IncompleteRead):
        return FetchError("truncated", text, retryable=True)
    if isinstance(exc, (requests.exceptions.SSLError, urllib3.exceptions.SSLError,
                        ssl.SSLError, ssl.CertificateError)):
        return FetchError("tls", text)
    if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
        return FetchError("timeout", text, retryable=True)
    if isinstance(exc, (requests.exceptions.ProxyError, urllib3.exceptions.ProxyError)):
        return FetchError("proxy", text, retryable=True)
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema, urllib3.exceptions.LocationValueError,
                        requests.exceptions.URLRequired)):
        return FetchError("invalid_url", text)
    if isinstance(exc, (urllib3.exceptions.DecodeError,
                        requests.exceptions.ContentDecodingError)):
        return FetchError("bad_encoding", text)
    if isinstance(exc, requests.exceptions.InvalidHeader) or (
            isinstance(exc, ValueError) and not isinstance(exc, _NOT_REQUEST_ERRORS)):
        return FetchError("invalid_request", text)  # the spider's request cannot be sent
    return FetchError("connection", text, retryable=True)


def _caused_by(exc: BaseException, kind: type, depth: int = 6) -> bool:
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


# -- bounded decompression -------------------------------------------------------------------

class _Zlib:
    """gzip (several members too) or deflate (zlib-wrapped, or raw as some servers send it)."""

    def __init__(self, gzip: bool) -> None:
        self.gzip = gzip
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)
        self._tail = b""  # input left over when the output limit was reached
        self._first: bytes | None = None if gzip else b""  # deflate: input until it decodes
        self._members = 1  # gzip members seen
        self._ignore_rest = False
        self.pending = False

    def feed(self, data: bytes, limit: int) -> bytes:
        if self._ignore_rest:
            return b""
        if self._tail:
            data = self._tail + data
        if self._first is not None:
            self._first += data
        try:
            out = self._d.decompress(data, limit)
        except zlib.error:
            if self._first is not None:  # deflate without the zlib wrapper: start over, raw
                data, self._first = self._first, None
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                out = self._d.decompress(data, limit)
            elif self._members > 1:  # bytes after a complete gzip member that are not one
                self._ignore_rest, self._tail, self.pending = True, b"", False
                return b""
            else:
                raise
        if out:
            self._first = None
        self._tail = self._d.unconsumed_tail
        if self.gzip and self._d.eof and self._d.unused_data and not self._tail:
            self._tail = self._d.unused_data  # another gzip member follows
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._members += 1
        self.pending = bool(self._tail) or len(out) >= limit
        return out


class _Brotli:
    """br, through a decompressor that stops at an output limit (brotli >= 1.2)."""

    def __init__(self) -> None:
        self._d = _brotli.Decompressor()
        self._input = b""
        self.pending = False

    def feed(self, data: bytes, limit: int) -> bytes:
        self._input += data
        if not self._d.can_accept_more_data():  # output left over: drain it first
            out = self._d.process(b"", output_buffer_limit=limit)
        elif self._input:
            out = self._d.process(self._input, output_buffer_limit=limit)
            self._input = b""
        else:
            out = b""
        self.pending = bool(self._input) or not self._d.can_accept_more_data()
        return out


class _BodyDecoder:
    """Content-Encoding decoding with at most cap decoded bytes ever held.

    Each stage is asked for no more output than the room left under the cap (plus one byte, to
    notice going over), so one compressed chunk can never expand into more than that.
    Unknown codings are left as they are (the body is kept as sent)."""

    def __init__(self, content_encoding: str, cap: int) -> None:
        self.cap = cap
        self.body = bytearray()
        codings = [c.strip().lower() for c in content_encoding.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        known = {"gzip": True, "x-gzip": True, "deflate": True, "br": BROTLI}
        if len(codings) > _MAX_CODINGS:
            raise FetchError("bad_encoding", f"{len(codings)} stacked Content-Encodings")
        if not all(known.get(c) for c in codings):
            if codings:
                log.debug("Content-Encoding %r not decoded", content_encoding)
            codings = []
        # decoding undoes the codings in the reverse order of their application
        self.stages = [_Brotli() if c == "br" else _Zlib(gzip=c != "deflate")
                       for c in reversed(codings)]

    def feed(self, data: bytes) -> None:
        try:
            self._pump(0, data)
        except FetchError:
            raise
        except Exception as exc:  # zlib.error, brotli.error
            raise FetchError("bad_encoding", f"cannot decode the body: {exc}") from None

    def _pump(self, index: int, data: bytes) -> None:
        if index == len(self.stages):
            self.body += data
            if len(self.body) > self.cap:
                raise FetchError("too_large", f"decoded body over DOWNLOAD_MAXSIZE {self.cap} "
                                 "bytes")
            return
        stage = self.stages[index]
        out = stage.feed(data, self.cap + 1 - len(self.body))
        while True:
            if out:
                self._pump(index + 1, out)
            if not stage.pending:
                return
            out = stage.feed(b"", self.cap + 1 - len(self.body))
            if not out and stage.pending:
                raise FetchError("bad_encoding", "the decoder stopped making progress")

    def result(self) -> bytes:
        return bytes(self.body)


# -- the deadline watchdog -------------------------------------------------------------------

_clock = time.monotonic  # the watchdog's own clock (tests replace the fetcher's)
_current = threading.local()  # .fetch: the _Fetch running in this thread, if any


class _Fetch:
    """One fetch in progress: its deadline, guard policy and the sockets it uses."""

    def __init__(self, deadline: float, guard: bool, trusted: frozenset[str]) -> None:
        self.deadline, self.guard, self.trusted = deadline, guard, trusted
        self.expired = False
        self.done = False
        self.sockets: dict[int, socket.socket] = {}  # fd of the live socket -> our dup of it

    def trusts(self, host: str) -> bool:
        return addresses.normalize_host(host) in self.trusted

    def watch(self, sock: Any) -> None:
        """Have the watchdog cut this socket at the deadline. Holds a dup of the descriptor
        (closed when the fetch ends), so a descriptor number reused later is never touched."""
        _watchdog.watch(self, sock)


class _Watchdog:
    """One daemon thread per process that shuts down the sockets of expired fetches."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Fetch]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, ctx: _Fetch, timeout: float) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fetch-watchdog",
                                                daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (_clock() + timeout, next(self._seq), ctx))
            if self._heap[0][2] is ctx:
                self._cond.notify()

    def watch(self, ctx: _Fetch, sock: Any) -> None:
        try:
            fd = sock.fileno()
        except (OSError, AttributeError):
            return
        if fd < 0:
            return
        with self._cond:
            if ctx.done or fd in ctx.sockets:
                return
            try:
                dup = socket.socket(fileno=os.dup(fd))
            except OSError:
                return
            ctx.sockets[fd] = dup
            if ctx.expired:
                _shutdown(dup)

    def remove(self, ctx: _Fetch) -> None:
        with self._cond:
            ctx.done = True
            for dup in ctx.sockets.values():
                dup.close()
            ctx.sockets.clear()

    def _run(self) -> None:
        with self._cond:
            while True:
                now = _clock()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _, _, ctx = heapq.heappop(self._heap)
                    if not ctx.done:
                        ctx.expired = True
                        for dup in ctx.sockets.values():
                            _shutdown(dup)
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


_watchdog = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_watchdog._reset)


# -- connections: the address guard and the watchdog hook ------------------------------------

class _Connection:
    """Mixed into urllib3's connections: checks addresses before connecting (when `guarded`)
    and registers every socket of the running fetch with the watchdog."""

    guarded = True

    def _new_conn(self) -> socket.socket:
        ctx = getattr(_current, "fetch", None)
        if ctx is not None and self.guarded and ctx.guard and not ctx.trusts(self.host):
            sock = self._connect_checked()
        else:
            sock = super()._new_conn()  # type: ignore[misc]
        if ctx is not None:
            ctx.watch(sock)
        return sock

    def _connect_checked(self) -> socket.socket:
        name = self._dns_host
        try:
            found = addresses.resolve(name, self.port)
        except (OSError, UnicodeError) as exc:
            raise urllib3.exceptions.NameResolutionError(self.host, self, exc) from exc
        bad = addresses.refused(found)
        if bad:
            raise FetchError("blocked_address", f"{self.host} resolves to {bad[0]}, not a "
                             "public address")
        error: Exception | None = None
        for address in found:  # connect to the addresses checked, never to a new lookup
            self._dns_host = address
            try:
                return super()._new_conn()  # type: ignore[misc]
            except urllib3.exceptions.NewConnectionError as exc:
                error = exc
            finally:
                self._dns_host = name
        assert error is not None
        raise error

    def request(self, *args: Any, **kwargs: Any) -> None:
        ctx = getattr(_current, "fetch", None)
        if ctx is not None and self.sock is not None:  # a kept-alive connection, reused
            ctx.watch(self.sock)
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Connection, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_Connection, urllib3.connection.HTTPSConnection):
    pass


class _ProxiedHTTPConnection(_HTTPConnection):
    guarded = False  # connects to the proxy; the target was checked before the request


class _ProxiedHTTPSConnection(_HTTPSConnection):
    guarded = False


def _pool(base: type, connection: type) -> type:
    return type(f"Guarded{base.__name__}", (base,), {"ConnectionCls": connection})


_DIRECT_POOLS = {"http": _pool(urllib3.HTTPConnectionPool, _HTTPConnection),
                 "https": _pool(urllib3.HTTPSConnectionPool, _HTTPSConnection)}
_PROXIED_POOLS = {"http": _pool(urllib3.HTTPConnectionPool, _ProxiedHTTPConnection),
                  "https": _pool(urllib3.HTTPSConnectionPool, _ProxiedHTTPSConnection)}


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter with our connection classes (direct and through proxies)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _DIRECT_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _PROXIED_POOLS
        return manager
