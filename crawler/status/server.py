"""The status server: `/` (the page), `/stats.json`, `/metrics`, read-only, on threads of its
own in the master. Requests never touch the frontier: they render the latest snapshot the
monitor took (one a second at most), encoded once per snapshot however many ask."""
from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from . import metrics, page

log = logging.getLogger(__name__)


class StatusServer(ThreadingHTTPServer):
    """Serves the current snapshot; with a token, only to requests that carry it."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], current: Callable[[], dict[str, Any]],
                 token: str | None = None) -> None:
        self.current, self.token = current, token
        self._cache: tuple[dict, bytes, bytes] | None = None  # (snapshot, json, metrics)
        self._cache_lock = threading.Lock()
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        # serve_forever notices shutdown() only between polls: 0.5 s by default, which the
        # end of every crawl waited for.
        self._thread = threading.Thread(target=self.serve_forever, name="status-http",
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def start(self) -> "StatusServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def rendered(self) -> tuple[bytes, bytes]:
        """(stats.json, metrics) of the current snapshot, encoded once for every request."""
        snap = self.current()
        with self._cache_lock:
            if self._cache is None or self._cache[0] is not snap:
                self._cache = (snap, json.dumps(snap).encode(),
                               metrics.render(snap).encode())
            return self._cache[1], self._cache[2]

    def allowed(self, handler: BaseHTTPRequestHandler) -> bool:
        if self.token is None:
            return True
        query = parse_qs(urlsplit(handler.path).query).get("token", [""])[0]
        header = handler.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else query
        return hmac.compare_digest(given.encode(), self.token.encode())


class _Handler(BaseHTTPRequestHandler):
    server: StatusServer
    timeout = 10  # a client that sends nothing lets go of its thread
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms wait between

    def do_GET(self) -> None:
        if not self.server.allowed(self):
            self._send(401, "text/plain; charset=utf-8",
                       b"token required: add ?token=... or an Authorization: Bearer header\n")
            return
        path = urlsplit(self.path).path
        if path == "/stats.json":
            self._send(200, "application/json", self.server.rendered()[0])
        elif path == "/metrics":
            self._send(200, metrics.CONTENT_TYPE, self.server.rendered()[1])
        elif path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", page.live())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _refuse(self) -> None:
        self.close_connection = True  # its body is never read
        self._send(405, "text/plain; charset=utf-8", b"read-only: GET only\n",
                   {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def _send(self, status: int, ctype: str, body: bytes, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)
