"""The transport: kept-alive HTTP/1.1 connections, plain and TLS, direct and
through http:// proxies.

Every request the fetcher sends comes here as an `Outgoing` (what to send, already
prepared) and leaves as a `Response` whose head is in and whose body is left to read.
Connections are opened by the address guard (resolve, refuse, pin: crawler.http.guard),
wrapped in TLS with session resumption (crawler.http.tls), kept by (scheme, host, port,
proxy) while their responses are read to the end, and every wait on them is bounded by the
fetch's deadline (crawler.http.deadline). Through a proxy, http:// requests are sent to it
in absolute form over one kept-alive connection, and https:// ones through a CONNECT
tunnel per host, TLS inside; the proxy itself is the operator's and is not checked.
Idle connections wait in a pool the fetcher's threads share (crawler.http.idle).
"""
from __future__ import annotations

import base64
import select
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping
from urllib.parse import unquote, urlsplit

from requests.utils import urldefragauth

from . import http1
from .errors import PEER_CLOSED, TRANSPORT_ERRORS, FetchError, classify
from .guard import Guard
from .headers import Headers
from .idle import IdleConnections
from .tls import Tls

if TYPE_CHECKING:
    from .deadline import Deadline

DEFAULT_PORTS = {"http": 80, "https": 443}
_HUNG_UP = (ConnectionError, *PEER_CLOSED)
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


@dataclass(slots=True)
class Outgoing:
    """A request ready to send: `headers` in their order (Host apart), `host_header` None
    when the headers carry their own Host."""

    method: str
    url: str
    scheme: str
    host: str
    port: int | None
    target: str
    headers: Mapping[str, str]
    body: bytes
    host_header: str | None
    proxy: str | None = None


class Connection(http1.Stream):
    """A kept-alive connection: its stream and its place in the pool."""

    __slots__ = ("key", "origin", "_poller")

    def __init__(self, sock: socket.socket, key: tuple, origin: tuple[str, int] | None) -> None:
        super().__init__(sock)
        self.key = key
        self.origin = origin  # (host, port) of a TLS connection whose session is not kept yet
        self._poller: select.poll | None = None  # made on the first reuse, kept for the next

    def dropped(self) -> bool:
        """An idle connection the server closed (or sent something on) meanwhile."""
        try:
            if self._poller is None:
                self._poller = select.poll()  # not select(): descriptors above 1023 are fine
                self._poller.register(self.sock, select.POLLIN)
            return bool(self._poller.poll(0))
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


class Response:
    """A response with its head in: status, headers, and the body by read1()."""

    __slots__ = ("status", "reason", "fields", "headers", "codings", "length", "_body",
                 "_conn", "_client", "_reusable")

    def __init__(self, client: "Client", conn: Connection, method: str, status: int,
                 reason: str, version: int, fields: list[tuple[str, str]]) -> None:
        self.status, self.reason, self.fields = status, reason, fields
        headers = self.headers = Headers.merged(fields)
        end, self.codings = http1.framing(method, status, headers)
        self.length = end if isinstance(end, int) else None  # the Content-Length
        self._body = http1.Body(conn, end)
        self._conn, self._client = conn, client
        self._reusable = version >= 11 and status >= 200 and end != http1.CLOSE and \
            method != "CONNECT" and "close" not in headers.get("Connection", "").lower() and \
            not ("Transfer-Encoding" in headers and "Content-Length" in headers)

    def read1(self, amount: int = 64 * 1024) -> bytes:
        """Up to `amount` bytes of the body as sent (one recv at most); b"" at its end."""
        return self._body.read1(amount)

    def close(self) -> None:
        """Give the connection back when the body was read to its end, else close it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._body.done and self._reusable and not conn.pending():
            self._client.keep(conn)
        else:
            conn.close()


class _Stale(Exception):
    """A reused connection the server closed before any byte of the response."""


class Client:
    """One thread's side of the transport; not thread-safe (each fetcher thread has its
    own). Its idle connections wait in `idle`, shared with the other threads' clients when
    given, else its own."""

    def __init__(self, guard: Guard, tls: Tls, idle: IdleConnections | None = None) -> None:
        self.guard, self.tls = guard, tls
        self._owns_idle = idle is None
        self.idle = IdleConnections() if idle is None else idle

    def send(self, out: Outgoing, deadline: "Deadline") -> Response:
        """Send the request and return once the response's head is in."""
        proxy = _Proxy.parse(out.proxy) if out.proxy else None
        key = (out.scheme, out.host, out.port) if proxy is None else \
            (out.scheme, out.host, out.port, out.proxy) if out.scheme == "https" else \
            ("proxy", out.proxy)
        head = self._head(out, proxy) + out.body
        conn = self.idle.take(key)
        if conn is not None and conn.dropped():
            conn.close()
            conn = None
        if conn is not None:
            try:
                return self._exchange(conn, out.method, head, deadline)
            except _Stale:
                if out.method not in _IDEMPOTENT:
                    raise FetchError("connection", "the server closed a kept-alive "
                                     "connection as the request went out", True) from None
        return self._exchange(self._open(key, out, proxy, deadline), out.method, head,
                              deadline, fresh=True)

    def _head(self, out: Outgoing, proxy: "_Proxy | None") -> bytes:
        if proxy is None or out.scheme == "https":
            return http1.request_head(out.method, out.target, out.host_header,
                                      out.headers.items())
        headers = list(out.headers.items()) + proxy.headers  # as urllib3 adds them
        return http1.request_head(out.method, urldefragauth(out.url), out.host_header, headers)

    def _exchange(self, conn: Connection, method: str, head: bytes, deadline: "Deadline",
                  fresh: bool = False) -> Response:
        conn.deadline = deadline
        try:
            conn.send(head)
            response = Response(self, conn, method, *http1.read_head(conn))
        except BaseException as exc:
            conn.close()
            # A kept-alive connection the server closed just as we reused it: not a
            # failure of this request.
            if not fresh and not conn.received and isinstance(exc, _HUNG_UP) and \
                    not deadline.passed:
                raise _Stale(str(exc)) from None
            raise
        if conn.origin is not None:
            self.tls.keep_session(conn.sock, *conn.origin)  # type: ignore[arg-type]
            conn.origin = None
        return response

    def _open(self, key: tuple, out: Outgoing, proxy: "_Proxy | None",
              deadline: "Deadline") -> Connection:
        port = out.port or DEFAULT_PORTS[out.scheme]
        if proxy is None:
            sock = self.guard.connect(out.host, port, deadline, scheme=out.scheme)
        else:
            sock = proxy.connect(self.guard, out, port, deadline)
        if out.scheme != "https":
            return Connection(sock, key, None)
        try:
            return Connection(self.tls.wrap(sock, out.host, port, deadline), key,
                              (out.host, port))
        except BaseException:
            sock.close()
            raise

    def keep(self, conn: Connection) -> None:
        """Take back a connection whose response was read to its end."""
        conn.deadline = None
        self.idle.put(conn)

    def close(self) -> None:
        """Close the idle connections if they are this client's own (shared ones stay for
        the other threads)."""
        if self._owns_idle:
            self.idle.close()


@dataclass(slots=True)
class _Proxy:
    """An http:// proxy: where it is, and the Proxy-Authorization its URL's user info gives."""

    host: str
    port: int
    headers: list[tuple[str, str]]

    @classmethod
    def parse(cls, url: str) -> "_Proxy":
        try:
            parts = urlsplit(url if "://" in url else "http://" + url)  # as requests reads it
            host, port = parts.hostname, parts.port or 80
        except ValueError as exc:
            raise FetchError("proxy", f"proxy {url!r}: {exc}") from None
        if parts.scheme.lower() != "http":
            raise FetchError("proxy", f"proxy {url!r}: only http:// proxies are supported")
        if not host:
            raise FetchError("proxy", f"proxy {url!r}: no host")
        headers = []
        if parts.username:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            token = base64.b64encode(pair.encode("latin-1")).decode()
            headers.append(("Proxy-Authorization", f"Basic {token}"))
        return cls(host, port, headers)

    def connect(self, guard: Guard, out: Outgoing, port: int,
                deadline: "Deadline") -> socket.socket:
        """A connection to the proxy; for https, a tunnel through it to out's host."""
        sock = None
        try:
            sock = guard.connect(self.host, self.port, deadline, check=False)
            if out.scheme == "https":
                self._tunnel(sock, f"{_bracket(out.host)}:{port}", deadline)
            return sock
        except BaseException as exc:
            if sock is not None:
                sock.close()
            if isinstance(exc, FetchError) or not isinstance(exc, TRANSPORT_ERRORS):
                raise
            failure = classify(exc, deadline.passed)
            if failure.reason != "connection":
                raise failure from None
            raise FetchError("proxy", f"proxy {self.host}:{self.port}: {exc}", True) from None

    def _tunnel(self, sock: socket.socket, authority: str, deadline: "Deadline") -> None:
        stream = http1.Stream(sock)
        stream.deadline = deadline
        stream.send(http1.request_head("CONNECT", authority, authority, self.headers))
        status, reason, _, _ = http1.read_head(stream)
        if not 200 <= status < 300:
            raise FetchError("proxy", f"proxy {self.host}:{self.port} answered CONNECT "
                             f"{authority} with {status} {reason}", True)
        if stream.buffer:
            raise FetchError("proxy", "the proxy sent bytes before the tunnel's TLS", True)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host
