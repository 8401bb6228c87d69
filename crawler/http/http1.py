"""Plain GETs to http:// URLs over kept-alive sockets: the fast path's own small client.

urllib3 and http.client spend about 300 us of CPU on a request (pool queues and locks,
headers parsed through the email package, two response wrappers) where a whole page of a
crawl costs about 1 ms. This client does only what a plain GET needs: one kept-alive
connection per host for the calling thread, the address guard and the watchdog applied as
crawler.connections applies them to urllib3's connections, and the response's framing
(Content-Length, chunked, or until the server closes). It fails with the exceptions the
fetcher already classifies (OSError, http.client's), so the failure reasons do not depend
on the path taken. https and everything else stay with urllib3 and requests.
"""
from __future__ import annotations

import http.client
import select
import socket
import time
from typing import Iterable

from requests.structures import CaseInsensitiveDict

from . import addresses, watchdog
from .failures import refuse_private

MAX_HEAD = 64 * 1024  # bytes of status line and headers, as http.client's limits allow
MAX_HEADERS = 100  # http.client's limit too
MAX_IDLE = 10  # kept-alive connections one thread keeps (requests' default pool count)
_BUFFER = 64 * 1024


class Pool:
    """One thread's kept-alive connections by (host, port); not thread-safe (one per
    session, and a session belongs to one thread)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], socket.socket] = {}

    def get(self, host: str, port: int | None, target: str, headers: Iterable[tuple[str, str]],
            timeout: float) -> "Response":
        """Send GET target to host and return once the response's headers are in."""
        key = (host, port or 80)
        head = _request_head(host, port, target, headers)
        sock = self._idle.pop(key, None)
        if sock is not None and _dropped(sock):
            sock.close()
            sock = None
        if sock is not None:
            try:
                return self._exchange(key, sock, head, timeout)
            except _Stale:
                pass  # the server closed a kept-alive connection as we reused it: once more
        return self._exchange(key, _connect(key, timeout), head, timeout, fresh=True)

    def _exchange(self, key: tuple[str, int], sock: socket.socket, head: bytes,
                  timeout: float, fresh: bool = False) -> "Response":
        ctx = watchdog.current()
        if ctx is not None:
            ctx.watch(sock)
        reader = _Reader(sock)
        try:
            sock.settimeout(timeout)
            sock.sendall(head)
            return Response(self, key, reader, *_read_head(reader))
        except BaseException as exc:
            sock.close()
            # A kept-alive connection the server closed just as we reused it: not a
            # failure of this request (unless the watchdog cut it at the deadline).
            if not fresh and not reader.received and isinstance(exc, ConnectionError) \
                    and not (ctx is not None and ctx.expired):
                raise _Stale(str(exc)) from None
            raise

    def keep(self, key: tuple[str, int], sock: socket.socket) -> None:
        """Take back a connection whose response was read to its end."""
        old = self._idle.pop(key, None)
        if old is not None:
            old.close()
        self._idle[key] = sock
        while len(self._idle) > MAX_IDLE:
            self._idle.pop(next(iter(self._idle))).close()

    def close(self) -> None:
        for sock in self._idle.values():
            sock.close()
        self._idle.clear()


class Response:
    """What the fetcher reads of a response: status, headers, and the body by read1()."""

    def __init__(self, pool: Pool, key: tuple[str, int], reader: "_Reader", status: int,
                 reason: str, version: int, fields: list[tuple[str, str]]) -> None:
        self.status, self.reason, self.fields = status, reason, fields
        self.headers: CaseInsensitiveDict = CaseInsensitiveDict()
        for name, value in fields:
            known = self.headers.get(name)
            self.headers[name] = value if known is None else f"{known}, {value}"
        self._pool, self._key, self._reader = pool, key, reader
        self._body = _framing(status, self.headers)
        self.length_remaining = self._body if isinstance(self._body, int) else None
        self._reusable = version >= 11 and status >= 200 and self._body != "close" and \
            "close" not in self.headers.get("Connection", "").lower()
        self._done = self._body == 0
        self._chunk_left = 0

    def read1(self, amount: int = _BUFFER, decode_content: bool = False) -> bytes:
        """Up to `amount` bytes of the body as sent (one recv at most); b"" at its end."""
        if self._done:
            return b""
        if self._body == "chunked":
            return self._read_chunked(amount)
        data = self._reader.some(amount if self._body == "close" else
                                 min(amount, self.length_remaining or 0))
        if not data:
            self._reusable = False  # the end of a close-delimited body, or a short one
            self._done = True
        elif self.length_remaining is not None:
            self.length_remaining -= len(data)
            self._done = self.length_remaining == 0
        return data

    def _read_chunked(self, amount: int) -> bytes:
        reader = self._reader
        if self._chunk_left == 0:
            size = _chunk_size(reader.line())
            if size == 0:
                while reader.line() not in (b"\r\n", b"\n"):  # trailers, then the end
                    pass
                self._done = True
                return b""
            self._chunk_left = size
        data = reader.some(min(amount, self._chunk_left))
        if not data:
            raise http.client.IncompleteRead(b"", self._chunk_left)
        self._chunk_left -= len(data)
        if self._chunk_left == 0 and reader.line() not in (b"\r\n", b"\n"):
            raise http.client.IncompleteRead(b"", 2)  # no CRLF after the chunk data
        return data

    def close(self) -> None:
        """Give the connection back when the body was read to its end, else close it."""
        sock, self._reader.sock = self._reader.sock, None
        if sock is None:
            return
        if self._done and self._reusable and not self._reader.pending():
            self._pool.keep(self._key, sock)
        else:
            sock.close()

    def release_conn(self) -> None:
        """close() already gave the connection back."""

    @property
    def _original_response(self) -> "Response":
        return self  # requests' cookie code reads response._original_response.msg

    @property
    def msg(self) -> http.client.HTTPMessage:
        """The headers as http.client would give them (for the cookie jar)."""
        message = http.client.HTTPMessage()
        for name, value in self.fields:
            message[name] = value
        return message


class _Stale(Exception):
    """A reused connection closed before any byte of the response."""


class _Reader:
    """Buffered reads from a socket: at most one recv per call."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        self.buffer = b""
        self.received = False

    def fill(self) -> bool:
        data = self.sock.recv(_BUFFER) if self.sock is not None else b""
        if data:
            self.buffer += data
            self.received = True
        return bool(data)

    def some(self, amount: int) -> bytes:
        if not self.buffer and not self.fill():
            return b""
        data, self.buffer = self.buffer[:amount], self.buffer[amount:]
        return data

    def line(self, limit: int = 1024) -> bytes:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                data, self.buffer = self.buffer[:end + 1], self.buffer[end + 1:]
                return data
            if len(self.buffer) > limit:
                raise http.client.LineTooLong("chunk size line")
            if not self.fill():
                raise http.client.IncompleteRead(self.buffer)

    def pending(self) -> bool:
        return bool(self.buffer)


def _request_head(host: str, port: int | None, target: str,
                  headers: Iterable[tuple[str, str]]) -> bytes:
    # What http.client sends for requests' GET: Host first, then the headers in order.
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}" if port in (None, 80) else
             f"Host: {host}:{port}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _connect(key: tuple[str, int], timeout: float) -> socket.socket:
    host, port = key
    ctx = watchdog.current()
    if ctx is None:
        sock = socket.create_connection(key, timeout)
    else:  # the name looked up within the deadline, and checked unless trusted
        found = addresses.resolve(host, port, ctx.deadline - time.monotonic())
        if ctx.guard and not ctx.trusts(host):
            refuse_private(host, found)
        sock = _connect_first(found, port, timeout)  # the addresses checked, no new lookup
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _connect_first(found: list[str], port: int, timeout: float) -> socket.socket:
    error: OSError | None = None
    for address in found:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as exc:
            error = exc
    assert error is not None
    raise error


def _dropped(sock: socket.socket) -> bool:
    """An idle kept-alive connection the server closed (or sent something on) meanwhile."""
    try:
        poller = select.poll()  # not select(): descriptors above 1023 are fine here
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _read_head(reader: _Reader) -> tuple[int, str, int, list]:
    """Status, reason, HTTP version (10 or 11) and header fields; interim 1xx skipped."""
    while True:
        lines = _head_lines(reader)
        status, reason, version = _status_line(lines[0] if lines else "")
        if not 100 <= status < 200 or status == 101:
            return status, reason, version, _fields(lines[1:])


def _head_lines(reader: _Reader) -> list[str]:
    searched = 0  # each byte is searched once, however the head arrives
    while True:
        buffer = reader.buffer
        crlf, lf = buffer.find(b"\r\n\r\n", searched), buffer.find(b"\n\n", searched)
        if crlf >= 0 and (lf < 0 or crlf < lf):
            reader.buffer = buffer[crlf + 4:]
            return buffer[:crlf].decode("latin-1").splitlines()
        if lf >= 0:  # a server that ends lines with LF alone
            reader.buffer = buffer[lf + 2:]
            return buffer[:lf].decode("latin-1").splitlines()
        if len(buffer) > MAX_HEAD:
            raise http.client.LineTooLong("response headers")
        searched = max(0, len(buffer) - 3)
        if not reader.fill():
            if not buffer:
                raise http.client.RemoteDisconnected("the server closed the connection "
                                                     "without a response")
            raise http.client.IncompleteRead(buffer)


def _status_line(line: str) -> tuple[int, str, int]:
    version, _, rest = line.partition(" ")
    code, _, reason = rest.strip().partition(" ")
    numeric = len(code) == 3 and code.isascii() and code.isdigit()
    if not version.startswith("HTTP/") or not numeric:
        raise http.client.BadStatusLine(line)
    return int(code), reason.strip(), 10 if version == "HTTP/1.0" else 11


def _fields(lines: list[str]) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and fields:  # an obsolete folded continuation line
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if colon:
            fields.append((name.strip(), value.strip()))
    if len(fields) > MAX_HEADERS:
        raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
    return fields


def _framing(status: int, headers: CaseInsensitiveDict) -> int | str:
    """How the body ends: its length, "chunked", or "close"."""
    if status < 200 or status in (204, 304):
        return 0
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return "chunked"
    lengths = {v.strip() for v in headers.get("Content-Length", "").split(",") if v.strip()}
    if len(lengths) > 1:
        raise http.client.HTTPException(f"conflicting Content-Length values {sorted(lengths)}")
    value = lengths.pop() if lengths else ""
    return int(value) if value.isascii() and value.isdigit() else "close"


def _chunk_size(line: bytes) -> int:
    try:
        size = int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        size = -1
    if size < 0:
        raise http.client.HTTPException(f"bad chunk size line {line[:40]!r}")
    return size
