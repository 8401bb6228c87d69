"""The link between master and workers, below the manager protocol: sockets, TLS, timeouts,
and the rules the master's listener enforces before anyone has proved they hold the key.

A `Channel` is a multiprocessing Connection over a socket object (plain or TLS) whose
`recv` unpickles plain data only (crawler.wire.loads). On the master, a `ServerChannel`
sends nothing but the challenge until the peer has passed it (no traceback, no install
paths), gives the TLS handshake and challenge CHALLENGE seconds, closes a connection
idle for IDLE seconds, and the `Listener` holds at most MAX_PER_ADDRESS connections per
IP address. TCP keepalive finds peers that vanished without a word.
"""
from __future__ import annotations

import hashlib
import io
import logging
import resource
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing import connection
from typing import Any

from . import wire

log = logging.getLogger("crawler.link.manager")
REPORT_EVERY = 60.0  # seconds between two log lines about one kind of refused connection
MESSAGE_MAX = 1 << 30  # bytes: the largest message read (a batch is far smaller)
_BACKLOG = 512  # pending connections the kernel queues (the stdlib's 16 drops SYNs in a flood)
_KEEPALIVE = (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6))


def tune(sock: socket.socket) -> None:
    """TCP_NODELAY (connect ~44 ms -> ~3 ms) and keepalive (a dead peer is noticed within
    ~2 minutes instead of never)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in _KEEPALIVE:
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


class Reports:
    """Logs refused or dropped connections: the first of each kind at once, then at most one
    line every REPORT_EVERY seconds with how many were not reported, so a scan or a flood
    cannot flood the log."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next_report: dict[str, float] = {}
        self.unreported: Counter = Counter()

    def note(self, kind: str, peer: Any, detail: str = "") -> None:
        now = time.monotonic()
        with self.lock:
            if now < self.next_report.get(kind, 0.0):
                self.unreported[kind] += 1
                return
            more = self.unreported.pop(kind, 0)
            self.next_report[kind] = now + REPORT_EVERY
        log.warning("%s %s: %s%s", "dropped a connection from" if detail else
                    "refused a connection from", fmt(peer), detail or kind,
                    f" ({more} more since the last report)" if more else "")


reports = Reports()


def fmt(peer: Any) -> str:
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


class Channel(connection.Connection):
    """A Connection over a socket (plain or TLS) that unpickles plain data only."""

    def __init__(self, sock: socket.socket, peer: Any) -> None:
        super().__init__(sock.fileno())
        self.sock, self.peer = sock, peer

    def set_timeout(self, seconds: float | None) -> None:
        """Deadline for each read and write (TimeoutError, an OSError, when it passes)."""
        self.sock.settimeout(seconds)

    def recv(self) -> Any:
        self._check_closed()
        buf = self._recv_bytes(MESSAGE_MAX)
        try:
            if buf is None:
                raise wire.ProtocolError(f"a message longer than {MESSAGE_MAX} bytes")
            return wire.loads(buf.getbuffer())
        except wire.ProtocolError:
            self.close()  # a peer that sends such things is not talked to again
            raise

    def _send(self, buf: bytes, write: Any = None) -> None:
        self.sock.sendall(buf)

    def _recv(self, size: int, read: Any = None) -> io.BytesIO:
        buf, remaining = io.BytesIO(), size
        while remaining > 0:
            chunk = self.sock.recv(min(remaining, 1 << 20))
            if not chunk:
                if remaining == size:
                    raise EOFError
                raise OSError("got end of file during message")
            buf.write(chunk)
            remaining -= len(chunk)
        return buf

    def _close(self, _close: Any = None) -> None:
        self.sock.close()


class ServerChannel(Channel):
    """The master's end. Until the peer passed the challenge (its first pickled message
    is read only then), nothing but the challenge is sent: the manager's answer to a
    failure (a pickled traceback) is logged here instead, rate-limited."""

    def __init__(self, sock: socket.socket, peer: Any, listener: "Listener") -> None:
        super().__init__(sock, peer)
        self.listener, self.limits = listener, listener.limits
        self.trusted = self.dropped = False
        self.opened = not isinstance(sock, ssl.SSLSocket)
        self.set_timeout(self.limits.challenge)

    def evict(self) -> None:
        """End this connection from another thread: its reads see the end of the stream."""
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)  # not TLS's: its state
        except OSError:  # is the serving thread's
            pass

    def _open(self) -> None:
        self.opened = True  # the handshake runs here, on the connection's own thread
        self.sock.do_handshake()

    def _send(self, buf: bytes, write: Any = None) -> None:
        if not self.opened:
            self._open()
        super()._send(buf)

    def _recv(self, size: int, read: Any = None) -> io.BytesIO:
        if not self.opened:
            self._open()
        try:
            return super()._recv(size)
        except TimeoutError:
            if self.trusted:  # idle for too long: the manager ends the thread on EOFError
                log.debug("closing %s: idle for %.0f s", fmt(self.peer), self.limits.idle)
                raise EOFError from None
            raise

    def recv(self) -> Any:
        if not self.trusted:  # the challenge (send_bytes/recv_bytes) went through
            self.trusted = True
            self.set_timeout(self.limits.idle)
            self.listener.trusted(self)
        try:
            return super().recv()
        except wire.ProtocolError as exc:
            self.dropped = True
            reports.note("protocol", self.peer, str(exc))
            raise EOFError from None

    def send(self, obj: Any) -> None:
        if self.dropped:
            return
        if not self.trusted:
            self._refused(obj)
            return
        if isinstance(obj, tuple) and obj[:1] == ("#ERROR",):
            obj = _as_text(obj[1])
        super().send(obj)

    def _refused(self, obj: Any) -> None:
        text = str(obj[1]) if isinstance(obj, tuple) and len(obj) > 1 else ""
        if "AuthenticationError" in text:
            reports.note("wrong authkey", self.peer)
        elif "TimeoutError" in text:
            reports.note(f"no TLS handshake and authkey challenge within "
                         f"{self.limits.challenge:g} s", self.peer)
        elif "SSL" in text:
            reports.note("TLS handshake failed", self.peer)
        elif "EOFError" not in text:  # a closed connection (a port check) is no news
            reports.note("not the manager protocol", self.peer)

    def _close(self, _close: Any = None) -> None:
        try:
            super()._close()
        finally:
            self.listener.closed(self)


def _as_text(exc: BaseException) -> tuple[str, str]:
    """An exception raised by a master method, as the text the client turns into a
    RemoteError: the exception itself would need its class unpickled there."""
    log.error("a worker's call failed on the master", exc_info=exc)
    kind = type(exc)
    return ("#TRACEBACK", f"{kind.__module__}.{kind.__qualname__}: {exc}")


@dataclass(frozen=True)
class Limits:
    """What the master's listener allows peers (seconds, connections)."""

    challenge: float = 10.0
    idle: float = 300.0
    per_address: int = 128
    # Connections waiting for the challenge at most (and half the descriptors this process
    # may open): the oldest is closed to make room, so a flood from many addresses delays
    # a real worker's connection instead of keeping it out.
    pending: int = 1024


class Listener:
    """The master's listening socket, as managers.Server uses it (accept, address)."""

    def __init__(self, address: tuple[str, int], backlog: int = 16, *,
                 limits: Limits = Limits(), tls: ssl.SSLContext | None = None) -> None:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(address)
            self.sock.listen(max(backlog, _BACKLOG))
        except OSError:
            self.sock.close()
            raise
        self.address = self.sock.getsockname()[:2]
        self.limits, self.tls = limits, tls
        self.max_pending = max(8, min(limits.pending,
                                      resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2))
        self.per_address = min(limits.per_address, self.max_pending)
        self.lock, self.held = threading.Lock(), Counter()
        self.pending: dict[ServerChannel, None] = {}  # oldest first

    def accept(self) -> ServerChannel:
        """The next connection (its TLS handshake is left to the thread that serves it);
        OSError when refused: too many from its address."""
        sock, peer = self.sock.accept()
        with self.lock:
            full = self.held[peer[0]] >= self.per_address
            if not full:
                self.held[peer[0]] += 1
        if full:
            sock.close()
            reports.note(f"more than {self.per_address} connections from {peer[0]}", peer)
            raise ConnectionRefusedError("too many connections from one address")
        try:
            tune(sock)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False)
            conn = ServerChannel(sock, peer, self)
        except OSError:
            sock.close()
            self._release(peer[0])
            raise
        with self.lock:
            self.pending[conn] = None
            crowded = len(self.pending) > self.max_pending
        if crowded:
            self.evict_oldest()
        return conn

    def evict_oldest(self) -> None:
        """Close the connection that has waited longest for the challenge (when they are
        too many, or descriptors ran out)."""
        with self.lock:
            oldest = next(iter(self.pending), None)
            if oldest is not None:
                del self.pending[oldest]
        if oldest is not None:
            reports.note(f"closed as the oldest of {self.max_pending} connections waiting "
                         "for the challenge", oldest.peer)
            oldest.evict()

    def trusted(self, conn: ServerChannel) -> None:
        with self.lock:
            self.pending.pop(conn, None)

    def closed(self, conn: ServerChannel) -> None:
        with self.lock:
            self.pending.pop(conn, None)
        self._release(conn.peer[0])

    def _release(self, ip: str) -> None:
        with self.lock:
            self.held[ip] -= 1
            if self.held[ip] <= 0:
                del self.held[ip]

    def close(self) -> None:
        self.sock.close()


# -- TLS -----------------------------------------------------------------------------------------
def server_context(cert: str, key: str) -> ssl.SSLContext:
    """The master's TLS: its certificate chain and key (PEM files), TLS 1.2 or later.
    ssl.SSLError/OSError when they cannot be used."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def fingerprint_of(cert: str) -> str:
    """The SHA-256 fingerprint (hex) of the first certificate in a PEM file."""
    with open(cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


def parse_fingerprint(text: str) -> str | None:
    """A SHA-256 fingerprint as hex (colons, a 'sha256:' prefix and case ignored), or None."""
    text = text.strip().lower().removeprefix("sha256:").replace(":", "")
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else None


class ClientTls:
    """A worker's TLS: the master's certificate checked against a CA bundle (and the host
    name or address it connects to), or pinned by its SHA-256 fingerprint."""

    def __init__(self, ca: str | None = None, fingerprint: str | None = None) -> None:
        self.pin = fingerprint
        if fingerprint is None:
            self.context = ssl.create_default_context(cafile=ca)
        else:  # the pin is the whole check
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2

    def wrap(self, sock: socket.socket, host: str) -> ssl.SSLSocket:
        """The handshake; ssl.SSLCertVerificationError when the master is not the one."""
        tls = self.context.wrap_socket(sock, server_hostname=host)
        if self.pin is not None:
            got = hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest()
            if got != self.pin:
                tls.close()
                error = ssl.SSLCertVerificationError(
                    f"certificate fingerprint {got} is not the pinned {self.pin}")
                error.verify_message = error.args[0]
                raise error
        return tls

