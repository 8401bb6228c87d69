"""A misbehaving HTTP server on 127.0.0.1 for the downloader's tests: what `responses` cannot fake.

Each path is a behaviour written straight to the socket, so it can trickle, lie about its
length, stall, bomb or cut the connection:

    /ok                   a small HTML page (keep-alive)
    /echo                 the request as JSON: method, target (the request line's), headers
                          (in their order; "fields": every header line, repeats too),
                          body (latin-1)
    /set-cookie?name=v    sets a cookie; /echo shows what comes back
    /trickle-body         Content-Length 100, then one byte every `interval` (0.2 s)
    /trickle-headers      a status line, then a header one byte every `interval`
    /silent               reads the request and never answers
    /gzip-bomb?mb=10      mb MB of zeros, gzipped (about 1 KB per MB), Content-Encoding gzip
    /huge?mb=50&mode=     mb MB of "a": mode chunked (default), close (no length) or length
    /short                Content-Length 1000, 100 bytes, then the connection is closed
    /short-chunked        chunked: one chunk, then the connection is closed without the end
    /loop                 302 to itself
    /cp1251-meta          windows-1251 declared only in <meta>
    /nul                  NUL bytes and unclosed tags
    /links?n=200000       one page with n links
    /binary               a PNG signature and random bytes, image/png

A request in absolute form (GET http://host/path, as sent to a proxy) is served by the same
path, so the server doubles as a forward proxy that records what it was asked; CONNECT is
refused with 403. With an ssl.SSLContext the server speaks TLS instead, and logs each
handshake in `handshakes` (resumed or not, the SNI name, the ALPN protocol chosen).
`TunnelProxy` is a CONNECT proxy in front of such servers. Every wait and every loop is
bounded, and close() stops everything within about a second.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs, urlsplit

MAX_BEHAVIOUR_SECONDS = 20.0  # no behaviour runs longer than this, whatever its parameters
_HEAD_LIMIT = 64 * 1024


@dataclass
class Received:
    """One request as the server read it."""

    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    fields: list[tuple[str, str]] = field(default_factory=list)


class Exchange:
    """What a behaviour works with: the request, and a socket it may abuse politely."""

    def __init__(self, server: "BadServer", sock: socket.socket, request: Received) -> None:
        self.server, self.sock, self.request = server, sock, request
        self.started = time.monotonic()

    def arg(self, name: str, default: float) -> float:
        return float(self.request.query.get(name, default))

    @property
    def alive(self) -> bool:
        return (not self.server.stopping.is_set()
                and time.monotonic() - self.started < MAX_BEHAVIOUR_SECONDS)

    def send(self, data: bytes) -> bool:
        """Write data; False when the client has gone or the server is stopping."""
        if not self.alive:
            return False
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def sleep(self, seconds: float) -> bool:
        """Wait, waking for close(); False when the server is stopping."""
        return not self.server.stopping.wait(seconds) and self.alive

    def respond(self, status: str, body: bytes, ctype: str = "text/html",
                headers: dict[str, str] | None = None, close: bool = False) -> bool:
        head = [f"HTTP/1.1 {status}", f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if close:
            head.append("Connection: close")
        return self.send(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


@dataclass
class Handshake:
    """A TLS handshake as the server saw it."""

    resumed: bool
    sni: str | None
    alpn: str | None


Behaviour = Callable[[Exchange], bool]  # True: the connection may serve another request


# -- behaviours ------------------------------------------------------------------------------

def ok(ex: Exchange) -> bool:
    return ex.respond("200 OK", b"<html><head><title>ok</title></head><body>ok</body></html>")


def echo(ex: Exchange) -> bool:
    r = ex.request
    body = json.dumps({"method": r.method, "target": r.target, "headers": r.headers,
                       "fields": r.fields, "body": r.body.decode("latin-1")}).encode()
    return ex.respond("200 OK", body, "application/json")


def set_cookie(ex: Exchange) -> bool:
    name, value = next(iter(ex.request.query.items()), ("k", "v"))
    return ex.respond("200 OK", b"set", "text/plain", {"Set-Cookie": f"{name}={value}; Path=/"})


def trickle_body(ex: Exchange) -> bool:
    interval = ex.arg("interval", 0.2)
    if not ex.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100\r\n\r\n"):
        return False
    for _ in range(100):
        if not (ex.sleep(interval) and ex.send(b"x")):
            return False
    return False


def trickle_headers(ex: Exchange) -> bool:
    interval = ex.arg("interval", 0.2)
    if not ex.send(b"HTTP/1.1 200 OK\r\nX-Slow: "):
        return False
    for _ in range(1000):
        if not (ex.sleep(interval) and ex.send(b"a")):
            return False
    return False


def silent(ex: Exchange) -> bool:
    while ex.sleep(0.1):
        pass
    return False


_BOMBS: dict[int, bytes] = {}
_BOMB_LOCK = threading.Lock()


def bomb_bytes(mb: int) -> bytes:
    """mb MiB of zeros as one gzip member, made once per size (about 1 KB per MiB)."""
    with _BOMB_LOCK:
        if mb not in _BOMBS:
            out = io.BytesIO()
            zeros = bytes(1 << 20)
            with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as f:
                for _ in range(mb):
                    f.write(zeros)
            _BOMBS[mb] = out.getvalue()
        return _BOMBS[mb]


def gzip_bomb(ex: Exchange) -> bool:
    body = bomb_bytes(int(ex.arg("mb", 10)))
    return ex.respond("200 OK", body, "text/html", {"Content-Encoding": "gzip"}, close=True)


def huge(ex: Exchange) -> bool:
    total = int(ex.arg("mb", 50) * (1 << 20))
    mode = ex.request.query.get("mode", "chunked")
    piece = b"a" * (64 * 1024)
    head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
    head += {"chunked": "Transfer-Encoding: chunked\r\n",
             "length": f"Content-Length: {total}\r\n"}.get(mode, "Connection: close\r\n")
    if not ex.send(head.encode() + b"\r\n"):
        return False
    sent = 0
    while sent < total:
        data = piece[:total - sent]
        frame = b"%x\r\n%s\r\n" % (len(data), data) if mode == "chunked" else data
        if not ex.send(frame):
            return False
        sent += len(data)
    if mode == "chunked":
        ex.send(b"0\r\n\r\n")
    return False


def short(ex: Exchange) -> bool:
    ex.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n"
            + b"x" * 100)
    return False


def short_chunked(ex: Exchange) -> bool:
    ex.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"64\r\n" + b"x" * 100 + b"\r\n")
    return False


def loop(ex: Exchange) -> bool:
    return ex.respond("302 Found", b"", headers={"Location": "/loop"})


CP1251_PAGE = ("<html><head><meta http-equiv='Content-Type' content='text/html; "
               "charset=windows-1251'><title>Привет</title></head>"
               "<body><p class='x'>Съешь же ещё этих мягких французских булок</p></body></html>")


def cp1251_meta(ex: Exchange) -> bool:
    return ex.respond("200 OK", CP1251_PAGE.encode("cp1251"), "text/html")


NUL_PAGE = (b"<html><head><title>nul\x00title</title><body><div class=a>one\x00two"
            b"<p>unclosed <b>bold <a href='/x'>link<div class=a>three\x00\x00")


def nul(ex: Exchange) -> bool:
    return ex.respond("200 OK", NUL_PAGE, "text/html; charset=utf-8")


def links(ex: Exchange) -> bool:
    n = int(ex.arg("n", 200_000))
    body = ("<html><body>" + "".join(f'<a href="/p/{i}">{i}</a>\n' for i in range(n))
            + "</body></html>").encode()
    return ex.respond("200 OK", body, "text/html; charset=utf-8")


def binary(ex: Exchange) -> bool:
    return ex.respond("200 OK", b"\x89PNG\r\n\x1a\n" + os.urandom(4096), "image/png")


ROUTES: dict[str, Behaviour] = {
    "/ok": ok, "/echo": echo, "/set-cookie": set_cookie, "/trickle-body": trickle_body,
    "/trickle-headers": trickle_headers, "/silent": silent, "/gzip-bomb": gzip_bomb,
    "/huge": huge, "/short": short, "/short-chunked": short_chunked, "/loop": loop,
    "/cp1251-meta": cp1251_meta, "/nul": nul, "/links": links, "/binary": binary,
}


# -- the server ------------------------------------------------------------------------------

class BadServer:
    """The server: a thread accepting on 127.0.0.1:<free port>, a thread per connection."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.host, self.tls = host, tls
        self.routes: dict[str, Behaviour] = dict(ROUTES)
        self.received: list[Received] = []
        self.connections = 0
        self.handshakes: list[Handshake] = []
        self._names: dict[int, str] = {}  # SNI names by id of the server-side socket
        if tls is not None:
            tls.sni_callback = lambda conn, name, _: self._names.__setitem__(id(conn), name)
        self.stopping = threading.Event()
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="badserver", daemon=True)

    def url(self, path: str = "/", host: str | None = None) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def start(self) -> "BadServer":
        self._acceptor.start()
        return self

    def close(self) -> None:
        """Stop accepting, cut every connection and wait (bounded) for the threads."""
        self.stopping.set()
        self._acceptor.join(5)
        self._listener.close()
        with self._lock:
            clients, threads = list(self._clients), list(self._threads)
        for sock in clients:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(5)

    def __enter__(self) -> "BadServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except (socket.timeout, BlockingIOError):
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            with self._lock:
                self.connections += 1
                self._clients.append(sock)
                self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        conn: socket.socket = sock
        try:
            sock.settimeout(5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                conn = self.tls.wrap_socket(sock, server_side=True)
                self.handshakes.append(Handshake(conn.session_reused,
                                                 self._names.pop(id(conn), None),
                                                 conn.selected_alpn_protocol()))
            buffer = b""
            while not self.stopping.is_set():
                request, buffer = self._read_request(conn, buffer)
                if request is None:
                    return
                self.received.append(request)
                if request.method == "CONNECT":
                    Exchange(self, conn, request).respond("403 Forbidden", b"", close=True)
                    return
                behaviour = self.routes.get(request.path)
                exchange = Exchange(self, conn, request)
                keep = behaviour(exchange) if behaviour else exchange.respond(
                    "404 Not Found", b"<title>nothing here</title>")
                if not keep:
                    return
        except (OSError, ssl.SSLError, ValueError):
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _read_request(self, conn: socket.socket, buffer: bytes
                      ) -> tuple[Received | None, bytes]:
        while b"\r\n\r\n" not in buffer:
            if self.stopping.is_set() or len(buffer) > _HEAD_LIMIT:
                return None, b""
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue  # a TLS client that never finishes its handshake lands here
            if not data:
                return None, b""
            buffer += data
        head, _, rest = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        fields = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
            fields.append((name.strip(), value.strip()))
        length = int(headers.get("Content-Length", "0") or 0)
        while len(rest) < length:
            data = conn.recv(65536)
            if not data:
                return None, b""
            rest += data
        parts = urlsplit(target if "://" in target else f"http://x{target}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return Received(method, target, parts.path, query, headers, rest[:length], fields), \
            rest[length:]


def self_signed(folder: str) -> tuple[str, str] | None:
    """(certfile, keyfile) for 127.0.0.1 made with the openssl command, or None without it."""
    import shutil
    import subprocess
    if shutil.which("openssl") is None:
        return None
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


class TunnelProxy(BadServer):
    """A CONNECT proxy on 127.0.0.1: each CONNECT host:port is answered 200 and tunnelled to
    host:port when host is a 127.x address, else to 127.0.0.1:port (never anywhere else);
    `received` records each CONNECT with its headers."""

    def proxy_url(self, auth: str = "") -> str:
        return f"http://{auth + '@' if auth else ''}127.0.0.1:{self.port}"

    def _read_request(self, conn: socket.socket, buffer: bytes
                      ) -> tuple[Received | None, bytes]:
        request, rest = super()._read_request(conn, buffer)
        if request is None or request.method != "CONNECT":
            return None, b""
        self.received.append(request)
        host, _, port = request.target.rpartition(":")
        if not host.startswith("127.") or not host.replace(".", "").isdigit():
            host = "127.0.0.1"
        with socket.create_connection((host, int(port)), timeout=5) as upstream:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _pipe(conn, upstream, rest, self.stopping)
        return None, b""


def _pipe(a: socket.socket, b: socket.socket, pending: bytes, stopping: threading.Event) -> None:
    """Copy bytes both ways between a and b until either side closes (bounded by
    MAX_BEHAVIOUR_SECONDS)."""
    if pending:
        b.sendall(pending)
    started = time.monotonic()
    with selectors.DefaultSelector() as sel:
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        while not stopping.is_set() and time.monotonic() - started < MAX_BEHAVIOUR_SECONDS:
            for key, _ in sel.select(0.1):
                try:
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                except OSError:
                    return
