"""A deterministic generated site served on loopback: for the demo, the tests and the bench.

Books at /book/<i>.html (title, price, links to related books) and catalogue
pages at /catalogue/page-<n>.html (twenty books each, and a link to the next).
The front page / is catalogue page 1. Everything is computed, nothing stored.
"""
from __future__ import annotations

import hashlib
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

PER_CATALOGUE = 20


class Site:
    """N books with K related links each, pages padded to about size_kb kilobytes."""

    def __init__(self, pages: int = 100, links: int = 10, size_kb: float = 2.0, seed: int = 0):
        self.books, self.links, self.size, self.seed = pages, links, int(size_kb * 1024), seed
        self.catalogues = max(1, -(-pages // PER_CATALOGUE))

    def paths(self) -> set[str]:
        """Every page path reachable from the front page (the front page is '/')."""
        return ({"/"} | {f"/catalogue/page-{n}.html" for n in range(2, self.catalogues + 1)}
                | {f"/book/{i}.html" for i in range(self.books)})

    def render(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a path."""
        if path in ("/", "/catalogue/page-1.html"):
            return self._catalogue(1)
        if path.startswith("/catalogue/page-") and path.endswith(".html"):
            n = path[len("/catalogue/page-"):-5]
            if n.isdigit() and 2 <= int(n) <= self.catalogues:
                return self._catalogue(int(n))
        if path.startswith("/book/") and path.endswith(".html"):
            i = path[len("/book/"):-5]
            if i.isdigit() and int(i) < self.books:
                return self._book(int(i))
        return 404, "text/html", b"<html><title>Not found</title></html>"

    def _catalogue(self, n: int) -> tuple[int, str, bytes]:
        first = (n - 1) * PER_CATALOGUE
        items = "".join(f'<li><a class="book" href="/book/{i}.html">Book {i}</a></li>'
                        for i in range(first, min(first + PER_CATALOGUE, self.books)))
        nxt = f'<a class="next" href="/catalogue/page-{n + 1}.html">next</a>' \
            if n < self.catalogues else ""
        return self._page(f"Catalogue {n}", f"<ul>{items}</ul>{nxt}")

    def _book(self, i: int) -> tuple[int, str, bytes]:
        rng = random.Random(self.seed * 1_000_003 + i)
        related = "".join(f'<a class="related" href="/book/{rng.randrange(self.books)}.html">'
                          f"related</a> " for _ in range(self.links))
        price = f"{rng.randrange(100, 10000) / 100:.2f}"
        return self._page(f"Book {i}", f'<p class="price">{price}</p><p>{related}</p>'
                          '<a href="/">home</a>')

    def _page(self, title: str, body: str) -> tuple[int, str, bytes]:
        html = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
                f"<body><h1>{title}</h1>{body}")
        pad = max(0, self.size - len(html) - 20)
        html += f"<p>{'lorem ipsum ' * (pad // 12)}</p></body></html>"
        return 200, "text/html; charset=utf-8", html.encode()


class SiteServer(ThreadingHTTPServer):
    """Serves a Site in a thread; records (path, start, end) of every request, the
    User-Agent each path was asked with and the status answered. Pages have an ETag, and
    a request whose If-None-Match holds it gets 304 Not Modified."""

    daemon_threads = True

    def __init__(self, site: Site, host: str = "127.0.0.1", port: int = 0,
                 delay: float = 0.0) -> None:
        self.site, self.delay = site, delay
        self.log: list[tuple[str, float, float]] = []
        self.agents: list[tuple[str, str]] = []  # (path, User-Agent)
        self.statuses: list[tuple[str, int]] = []  # (path, status answered)
        self.extra: dict[str, Callable[[], tuple[int, str, bytes]]] = {}
        super().__init__((host, port), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "SiteServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes

    def do_GET(self) -> None:
        start = time.monotonic()
        path = self.path.split("?")[0]
        maker = self.server.extra.get(path)
        status, ctype, body = maker() if maker else self.server.site.render(path)
        if self.server.delay:
            time.sleep(self.server.delay)
        etag = f'"{hashlib.blake2b(body, digest_size=8).hexdigest()}"'
        if status == 200 and self.headers.get("If-None-Match") == etag:
            status, body = 304, b""  # as a static file server answers a recrawl
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The end is taken before the body goes out: once the client has it, it may start
        # its next request, which must not look as if it overlapped this one.
        end = time.monotonic()
        self.wfile.write(body)
        self.server.log.append((self.path, start, end))
        self.server.statuses.append((self.path, status))
        self.server.agents.append((self.path, self.headers.get("User-Agent", "")))

    def log_message(self, *args) -> None:
        pass
