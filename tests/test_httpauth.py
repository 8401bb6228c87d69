"""HTTP Basic auth as Scrapy's HttpAuthMiddleware: the credentials go to their domain only
(real servers on two loopback hosts, real master and workers); none without a domain."""
from __future__ import annotations

import base64
import contextlib
import threading
from http.server import ThreadingHTTPServer

from crawler import Request, Spider
from crawler.config import defaults
from crawler.spider.httpauth import HttpAuth
from pageserver import PageHandler
from procs import QUIET, read_jsonl

GOOD = "Basic " + base64.b64encode(b"ann:pw").decode()


@contextlib.contextmanager
def server(host: str, pages: dict[str, bytes], seen: list):
    """Serves `pages` on host; each request's (path, Authorization) goes to `seen`; paths
    under /private/ answer 401 without the right credentials."""
    class Handler(PageHandler):
        def do_GET(self):
            auth = self.headers.get("Authorization")
            seen.append((self.path, auth))
            if self.path.startswith("/private/") and auth != GOOD:
                return self.send(401, b"who are you", {"WWW-Authenticate": 'Basic realm="x"'})
            self.send(200, pages.get(self.path, b"<title>none</title>"))

    httpd = ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


SPIDER = '''
from crawler import Spider


class AuthSpider(Spider):
    name = "auth"
    http_user, http_pass = "ann", "pw"
    {domain}

    def __init__(self, start=None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.start_urls = [start]

    def parse(self, response):
        yield {{"url": response.url, "title": response.css("title::text").get()}}
        yield from response.follow_all(css="a")
'''


def test_credentials_go_to_their_domain_and_not_to_a_linked_site(project, run_master):
    mine, other = [], []
    with server("127.0.0.2", {}, other) as elsewhere:
        pages = {"/private/": f'<title>in</title><a href="/private/b">b</a>'
                             f'<a href="{elsewhere}/x">out</a>'.encode(),
                 "/private/b": b"<title>b</title>"}
        with server("127.0.0.1", pages, mine) as site:
            (project / "spiders" / "auth.py").write_text(
                SPIDER.format(domain='http_auth_domain = "127.0.0.1"'))
            out = project / "out.jsonl"
            master = run_master(["--spider", "auth", "-a", f"start={site}/private/",
                                 "--workers", 1, "-o", out, "-s", "ROBOTSTXT_OBEY=false",
                                 "-s", f'ADDRESS_GUARD_TRUSTED=["{elsewhere}"]', *QUIET],
                                timeout=30)
            assert master.returncode == 0, master.describe()
    titles = sorted(item["title"] for item in read_jsonl(out))
    assert titles == ["b", "in", "none"], master.describe()
    assert sorted(mine) == [("/private/", GOOD), ("/private/b", GOOD)]
    assert other == [("/x", None)]


def test_credentials_without_a_domain_stop_the_master_at_start(project, run_master):
    (project / "spiders" / "auth.py").write_text(SPIDER.format(domain=""))
    master = run_master(["--spider", "auth", "-a", "start=http://127.0.0.1:9/",
                         "--workers", 1, *QUIET], timeout=20)
    assert master.returncode == 2, master.describe()
    assert "http_auth_domain" in master.stderr, master.describe()


class Plain(Spider):
    name = "plain"


def auth_of(settings: dict, url: str, **headers) -> str | None:
    request = Request(url, headers=headers)
    HttpAuth.for_spider(Plain(), dict(defaults(), **settings)).process_request(request, None)
    return request.headers.get("Authorization")


def test_settings_give_credentials_for_a_domain_and_its_subdomains():
    settings = {"HTTPAUTH_USER": "ann", "HTTPAUTH_PASS": "pw", "HTTPAUTH_DOMAIN": "example.com"}
    assert auth_of(settings, "https://docs.example.com/a") == GOOD
    assert auth_of(settings, "https://example.com.evil.org/a") is None
    assert auth_of(settings, "https://example.com/a", authorization="Bearer t") is None


def test_a_domain_of_none_sends_credentials_everywhere_and_no_credentials_no_middleware():
    settings = {"HTTPAUTH_USER": "ann", "HTTPAUTH_PASS": "pw", "HTTPAUTH_DOMAIN": None}
    assert auth_of(settings, "http://anywhere.test/") == GOOD
    assert HttpAuth.for_spider(Plain(), defaults()) is None
