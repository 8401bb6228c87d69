"""The corpus on a real HTTP server on loopback, typed as a default nginx serves files.

nginx's default config (mime.types, `charset off`) sends `text/html` for .html with no
charset parameter, so a page's encoding comes from its own bytes (<meta>, XML declaration,
BOM, or a guess). A page may be given another Content-Type (expected.json says which and why).
The server counts requests per path, so a crawl can be checked to fetch each page once.
"""
from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

# The part of nginx's mime.types the corpus folder needs; anything else gets default_type.
NGINX_TYPES = {".html": "text/html", ".htm": "text/html", ".css": "text/css",
               ".json": "application/json", ".md": "text/plain", ".py": "text/plain"}
NGINX_DEFAULT_TYPE = "application/octet-stream"


def nginx_type(path: str) -> str:
    """The Content-Type a default nginx sends for a file name."""
    return NGINX_TYPES.get(Path(path).suffix.lower(), NGINX_DEFAULT_TYPE)


class CorpusServer:
    """Serves the files under `root` on 127.0.0.1, a free port; `types` overrides the
    Content-Type of given paths (relative to root, as in expected.json)."""

    def __init__(self, root: Path, types: dict[str, str] | None = None) -> None:
        self.root = root.resolve()
        self.types = dict(types or {})
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The root URL, ending in a slash."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "CorpusServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def lookup(self, raw_path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a request path."""
        rel = unquote(urlsplit(raw_path).path).lstrip("/")
        with self._lock:
            self.requests[rel] += 1
        file = (self.root / rel).resolve()
        if not file.is_relative_to(self.root) or not file.is_file():
            return 404, "text/html", b"<html><title>404 Not Found</title></html>"
        return 200, self.types.get(rel) or nginx_type(rel), file.read_bytes()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, ctype, body = server.lookup(self.path)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # quiet: the counter is the log
                pass

        return Handler
