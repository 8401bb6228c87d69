"""Cookies travel with the crawl: a login made by one fetch holds for every request that
follows from it, whichever worker thread or process fetches it."""
import threading
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_fetcher import StubFetcher, URL, rules, task

from crawler import Request, Spider
from crawler.spider import cookies
from crawler.spider.handler import Handler
from procs import QUIET, read_jsonl

MEMBERS = 30
SESSION = "s3cret"


class Club(BaseHTTPRequestHandler):
    """A login form with a CSRF token; members' pages only for the session cookie."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/login":
            return self.send(200, b'<form method="post" action="/login">'
                                  b'<input type="hidden" name="csrf" value="t0k">'
                                  b'<input name="user"><input type="submit" value="Go"></form>')
        if self.path.startswith("/members/"):
            jar = SimpleCookie(self.headers.get("Cookie", ""))
            if "session" not in jar or jar["session"].value != SESSION:
                return self.send(403, b"members only")
            n = int(self.path.rsplit("/", 1)[1])
            links = "".join(f'<a href="/members/{i}">{i}</a>' for i in range(MEMBERS))
            return self.send(200, f"<title>Member page {n}</title>{links}".encode())
        self.send(404, b"")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        if body != "csrf=t0k&user=ann":
            return self.send(400, b"bad form")
        self.send(302, b"", {"Location": "/members/0",
                             "Set-Cookie": f"session={SESSION}; Path=/; HttpOnly"})

    def send(self, status, body, headers=None):
        self.send_response(status)
        for name, value in dict({"Content-Type": "text/html"}, **(headers or {})).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def club():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Club)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


SPIDER = '''
import os
from crawler import FormRequest, Request, Spider


class Member(Spider):
    name = "member"
    base = None

    def start_requests(self):
        yield Request(self.base + "/login", callback="login")

    def login(self, response):
        yield FormRequest.from_response(response, formdata={"user": "ann"},
                                        callback="parse_member", dont_click=True)

    def parse_member(self, response):
        yield {"url": response.url, "title": response.css("title::text").get(),
               "pid": os.getpid()}
        yield from response.follow_all(css="a", callback="parse_member")
'''


def test_a_login_holds_for_every_members_page_across_workers(club, project, run_master):
    (project / "spiders" / "member.py").write_text(SPIDER.replace("base = None",
                                                                  f"base = {club!r}"))
    out = project / "out.jsonl"
    master = run_master(["--spider", "member", "--workers", 2, "-o", out, "-s",
                         "ROBOTSTXT_OBEY=false", "-s", "CONCURRENT_REQUESTS=8", *QUIET],
                        timeout=30)
    assert master.returncode == 0, master.describe()
    items = read_jsonl(out)
    assert sorted(i["title"] for i in items) == sorted(f"Member page {n}"
                                                       for n in range(MEMBERS)), items
    assert f"{MEMBERS + 2} pages done, 0 failed" in master.stdout, master.describe()
    print("member pages fetched by worker pids:", sorted({i["pid"] for i in items}))


# -- units ------------------------------------------------------------------------------------
class Stay(Spider):
    name = "stay"

    def parse(self, response):
        yield Request("http://example.com/same")
        yield Request("http://example.com/apart", meta={"cookiejar": 2})


def test_cookies_a_response_sets_go_with_the_requests_it_leads_to():
    fetcher = StubFetcher({URL: (200, {"Content-Type": "text/html"}, b"")})

    def fetch(request, depth=0, cookies=None):  # what the real fetcher does with its jar
        cookies.set("session", "abc", domain="example.com", path="/")
        return StubFetcher.fetch(fetcher, request, depth)

    fetcher.fetch = fetch
    result = Handler(Stay(), fetcher, rules()).handle(task())
    same, apart = result["requests"]
    assert [(c["name"], c["value"]) for c in same["cookies"]] == [("session", "abc")]
    assert "cookies" not in apart  # another cookiejar: another session
    jar = cookies.jar_for(same, Request.from_task(same))
    assert jar.get("session") == "abc"


def test_dont_merge_cookies_and_request_cookies():
    req = Request(URL, cookies={"lang": "de"})
    jar = cookies.jar_for({"cookies": [{"name": "s", "value": "1", "domain": "example.com",
                                        "path": "/", "secure": False, "expires": None}]},
                          Request.from_task(req.to_task(0)))
    assert (jar.get("s"), jar.get("lang")) == ("1", "de")
    quiet = Request(URL, meta={"dont_merge_cookies": True})
    assert len(cookies.jar_for({"cookies": [{"name": "s", "value": "1"}]}, quiet)) == 0
    assert cookies.carried(jar, quiet) is None


def test_no_cookies_travel_when_cookies_are_disabled():
    fetcher = StubFetcher({URL: (200, {"Content-Type": "text/html"}, b"")})
    result = Handler(Stay(), fetcher, rules(COOKIES_ENABLED=False)).handle(task())
    assert all("cookies" not in r for r in result["requests"])
