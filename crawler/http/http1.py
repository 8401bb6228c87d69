"""HTTP/1.1 messages on a connected socket (plain or TLS): the request head, the response head
and how the body ends, strict where RFC 9112 says a response must be rejected.

Rejected (FetchError "connection", the connection dropped): a status line that is not
`HTTP/1.x NNN ...` or whose code is below 100; a field name that is not a token (so also
whitespace before the colon), a line without a colon, a continuation line before any field;
a Content-Length that is not digits or that disagrees with itself; a chunk size that is not
plain hex; `chunked` anywhere but last in Transfer-Encoding. Transfer-Encoding is a list:
chunked last means chunked framing (Content-Length ignored), any other codings are read
until the server closes; the codings besides chunked are left for the body decoder.
Tolerated as RFC 9112 allows: LF alone as a line end, obsolete line folding (joined with a
space), interim 1xx responses (skipped).
"""
from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING, Iterable

from .errors import FetchError, malformed
from .headers import Headers

if TYPE_CHECKING:
    from .deadline import Deadline

MAX_HEAD = 64 * 1024  # bytes of status line and headers (and of trailers), as http.client
MAX_HEADERS = 100  # http.client's limit too
MAX_INTERIM = 16  # 1xx responses skipped before the final one at most
_BUFFER = 64 * 1024
_STATUS = re.compile(r"HTTP/1\.[0-9] ([0-9]{3})(?:[ \t](.*))?\Z")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?\n\Z")
CLOSE, CHUNKED = "close", "chunked"  # how a body ends, besides a length


class Closed(ConnectionError):
    """The server closed the connection before a whole response head."""


class Stream:
    """Buffered reads from a socket, each wait bounded by the fetch's deadline."""

    __slots__ = ("sock", "buffer", "received", "deadline")

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        self.buffer = b""
        self.received = False  # any byte since the last request was sent
        self.deadline: "Deadline | None" = None

    def fill(self) -> bool:
        """One recv into the buffer; False at the end of the stream."""
        sock = self.sock
        if sock is None:
            return False
        sock.settimeout(self.deadline.remaining("while reading the response"))
        data = sock.recv(_BUFFER)
        if data:
            self.buffer += data
            self.received = True
        return bool(data)

    def some(self, amount: int) -> bytes:
        """Up to amount bytes, with one recv at most; b"" at the end of the stream."""
        if not self.buffer and not self.fill():
            return b""
        data, self.buffer = self.buffer[:amount], self.buffer[amount:]
        return data

    def line(self, limit: int = 4096) -> bytes:
        """One line with its end (LF or CRLF); FetchError truncated when the stream ends."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                data, self.buffer = self.buffer[:end + 1], self.buffer[end + 1:]
                return data
            if len(self.buffer) > limit:
                raise malformed("a line too long in the body's framing")
            if not self.fill():
                raise FetchError("truncated", "connection closed inside the chunked framing",
                                 True)

    def send(self, data: bytes) -> None:
        sock = self.sock
        self.received = False
        sock.settimeout(self.deadline.remaining("while sending the request"))
        sock.sendall(data)  # the timeout bounds the whole call (one SSL_write over TLS)

    def pending(self) -> bool:
        """Bytes read past the end of the response (the connection is then not reused)."""
        sock = self.sock
        return bool(self.buffer) or (sock is not None and hasattr(sock, "pending") and
                                     sock.pending() > 0)


def request_head(method: str, target: str, host: str | None,
                 headers: Iterable[tuple[str, str]]) -> bytes:
    """What http.client sends for urllib3's request: the request line, Host (None: the
    headers carry one), then the headers in their order."""
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:
        raise FetchError("invalid_request", f"a header or the URL has a character HTTP/1.1 "
                         f"cannot carry: {exc}") from None


def read_head(stream: Stream) -> tuple[int, str, int, list[tuple[str, str]]]:
    """Status, reason, HTTP version (10 or 11) and header fields of the final response
    (interim 1xx skipped, 101 being final)."""
    for _ in range(MAX_INTERIM):
        lines = _head_lines(stream)
        status, reason, version = _status_line(lines[0])
        if not 100 <= status < 200 or status == 101:
            return status, reason, version, _fields(lines[1:])
    raise malformed(f"more than {MAX_INTERIM} interim responses")


def _head_lines(stream: Stream) -> list[str]:
    searched = 0  # each byte is searched once, however the head arrives
    while True:
        buffer = stream.buffer
        crlf, lf = buffer.find(b"\r\n\r\n", searched), buffer.find(b"\n\n", searched)
        if crlf >= 0 and (lf < 0 or crlf < lf):
            stream.buffer = buffer[crlf + 4:]
            return buffer[:crlf].decode("latin-1").split("\r\n")
        if lf >= 0:  # a server that ends lines with LF alone (or mixes the two)
            stream.buffer = buffer[lf + 2:]
            return buffer[:lf].decode("latin-1").replace("\r\n", "\n").split("\n")
        if len(buffer) > MAX_HEAD:
            raise malformed(f"a head over {MAX_HEAD} bytes")
        searched = max(0, len(buffer) - 3)
        if not stream.fill():
            raise Closed("the server closed the connection " +
                         ("inside the response head" if buffer else "without a response"))


def _status_line(line: str) -> tuple[int, str, int]:
    match = _STATUS.match(line)
    if match is None:
        raise malformed(f"status line {line[:80]!r}")
    status = int(match.group(1))
    if status < 100:
        raise malformed(f"status code {status}")
    return status, (match.group(2) or "").strip(), 10 if line.startswith("HTTP/1.0") else 11


def _fields(lines: list[str]) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):  # an obsolete folded continuation line
            if not fields:
                raise malformed("a continuation line before any header")
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name):
            raise malformed(f"header line {line[:80]!r}")
        fields.append((name, value.strip()))
    if len(fields) > MAX_HEADERS:
        raise malformed(f"more than {MAX_HEADERS} headers")
    return fields


def framing(method: str, status: int, headers: Headers) -> tuple[int | str, str]:
    """How the body ends (its length, CHUNKED or CLOSE) and the transfer codings besides
    chunked, in the order they were applied."""
    if method == "HEAD" or status < 200 or status in (204, 304) or \
            (method == "CONNECT" and status < 300):
        return 0, ""
    coding = headers.get("Transfer-Encoding")
    if coding is not None and coding.strip():
        codings = [c.strip().lower() for c in coding.split(",") if c.strip()]
        if CHUNKED in codings[:-1]:
            raise malformed(f"Transfer-Encoding {coding!r}: chunked is not the last coding")
        chunked = codings[-1] == CHUNKED
        return (CHUNKED, ", ".join(codings[:-1])) if chunked else (CLOSE, ", ".join(codings))
    length = headers.get("Content-Length")
    if length is None:
        return CLOSE, ""
    values = {v.strip() for v in length.split(",")}
    value = values.pop()
    if values or not (value.isascii() and value.isdigit()):
        raise malformed(f"Content-Length {length!r}")
    return int(value), ""


def chunk_size(line: bytes) -> int:
    match = _CHUNK_SIZE.match(line)
    if match is None:
        raise malformed(f"chunk size line {line[:40]!r}")
    return int(match.group(1), 16)


class Body:
    """A response's body as sent, read in steps of one recv at most."""

    __slots__ = ("stream", "end", "left", "done", "chunk_left")

    def __init__(self, stream: Stream, end: int | str) -> None:
        self.stream, self.end = stream, end
        self.left = end if isinstance(end, int) else None  # bytes still due by Content-Length
        self.done = end == 0
        self.chunk_left = 0

    def read1(self, amount: int = _BUFFER) -> bytes:
        """Up to `amount` bytes of the body; b"" at its end (or where the server stopped:
        `left` then tells how short it fell)."""
        if self.done:
            return b""
        if self.end == CHUNKED:
            return self._read_chunked(amount)
        data = self.stream.some(amount if self.left is None else min(amount, self.left))
        if not data:
            self.done = True  # the end of a close-delimited body, or a short one
        elif self.left is not None:
            self.left -= len(data)
            self.done = self.left == 0
        return data

    def _read_chunked(self, amount: int) -> bytes:
        stream = self.stream
        if self.chunk_left == 0:
            size = chunk_size(stream.line())
            if size == 0:
                self._skip_trailers()
                self.done = True
                return b""
            self.chunk_left = size
        data = stream.some(min(amount, self.chunk_left))
        if not data:
            raise FetchError("truncated", f"connection closed with {self.chunk_left} bytes "
                             "of a chunk to come", True)
        self.chunk_left -= len(data)
        if self.chunk_left == 0 and stream.line() not in (b"\r\n", b"\n"):
            raise malformed("no line end after a chunk")
        return data

    def _skip_trailers(self) -> None:
        seen = 0
        while True:
            line = self.stream.line()
            if line in (b"\r\n", b"\n"):
                return
            seen += len(line)
            if seen > MAX_HEAD:
                raise malformed(f"trailers over {MAX_HEAD} bytes")
