"""A loopback site of pages that refer to images, serving real PNG and JPEG bytes made with
Pillow, and logging every request as it starts and as it is answered."""
from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from PIL import Image

SPIDER = '''
from crawler import Spider


class MediaSpider(Spider):
    name = "media"

    def parse(self, response):
        join = response.urljoin
        yield {"url": response.url,
               "image_urls": [join(u) for u in response.css("img::attr(src)").getall()],
               "file_urls": [join(u) for u in response.css("a.file::attr(href)").getall()]}
        yield from response.follow_all(css="a.page")
'''


def image_bytes(n: int, size: tuple[int, int] = (64, 48), kind: str = "PNG") -> bytes:
    """A real image, different for each n."""
    image = Image.new("RGBA" if kind == "PNG" else "RGB", size,
                      (n * 37 % 256, n * 91 % 256, n * 13 % 256))
    out = io.BytesIO()
    image.save(out, kind)
    return out.getvalue()


class MediaSite:
    """pages: {path: (image paths, file paths, page links)}; files: {path: (status, body,
    content type)}. `gates` holds an Event per path whose answer must wait for it."""

    def __init__(self, pages: dict, files: dict) -> None:
        self.pages, self.files = pages, files
        self.started: list[str] = []
        self.answered: list[str] = []
        self.gates: dict[str, threading.Event] = {}
        self.locations: dict[str, str] = {}  # Location headers, by path
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                site.started.append(path)
                gate = site.gates.get(path)
                if gate is not None:
                    gate.wait(30)
                status, body, kind = site.answer(path)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    if path in site.locations:
                        self.send_header("Location", site.locations[path])
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the worker that asked was killed
                    return
                site.answered.append(path)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str) -> tuple[int, bytes, str]:
        if path == "/robots.txt" and path not in self.files:
            return 404, b"", "text/plain"
        if path in self.pages:
            images, files, links = self.pages[path]
            html = "".join(f'<img src="{p}">' for p in images) + \
                "".join(f'<a class="file" href="{p}">f</a>' for p in files) + \
                "".join(f'<a class="page" href="{p}">p</a>' for p in links)
            return 200, f"<html><body>{html}</body></html>".encode(), "text/html"
        return self.files.get(path, (404, b"not found", "text/plain"))

    def redirect(self, path: str, to: str) -> None:
        self.files[path] = (301, b"", "text/plain")
        self.locations[path] = to

    def count(self, path: str) -> int:
        """How many times `path` was requested (started)."""
        return self.started.count(path)

    def close(self) -> None:
        for gate in self.gates.values():
            gate.set()
        self.server.shutdown()
        self.server.server_close()
