"""Scrapy's Request habits: errback, cb_kwargs, replace(), FormRequest and from_response(),
the meta switches, spider arguments and streamed start requests."""
import itertools

import pytest
from test_fetcher import StubFetcher, URL, html, rules, task

from crawler import (CrawlerError, FormRequest, HttpError, Request, Response, Spider,
                     UsageError)
from crawler.frontier import FAILED, Frontier
from crawler.http.errors import FetchError
from crawler.sitegen import Site
from crawler.spider.base import make_spider
from crawler.spider.handler import Handler
from crawler.starts import FIRST_BATCH, StartRequests
from procs import QUIET, read_jsonl, write_seeds


# -- Request ---------------------------------------------------------------------------------
class Catalog(Spider):
    name = "catalog"

    def parse(self, response, page=None, tag=None):
        yield {"page": page, "tag": tag, "status": response.status}

    def failed(self, failure):
        yield {"failed": failure.reason, "url": failure.request.url,
               "http": bool(failure.check(HttpError)),
               "status": failure.response.status if failure.response else None}
        yield Request("http://example.com/fallback")


def test_errback_and_cb_kwargs_travel_by_value():
    req = Request(URL, callback=Catalog().parse, errback=Catalog().failed, cb_kwargs={"page": 2})
    back = Request.from_task(req.to_task(0))
    assert (back.callback, back.errback, back.cb_kwargs) == ("parse", "failed", {"page": 2})
    assert "errback" not in Request(URL).to_task(0) and "cb_kwargs" not in Request(URL).to_task(0)


def test_replace_changes_only_what_it_is_given():
    req = Request(URL, callback="parse", meta={"a": 1}, priority=3)
    other = req.replace(url="http://example.com/other", priority=0)
    assert (other.url, other.callback, other.meta, other.priority) == (
        "http://example.com/other", "parse", {"a": 1}, 0)
    assert req.url == URL


# -- the handler: callbacks, errbacks, retries ------------------------------------------------
def run(table, t, **settings):
    handler = Handler(Catalog(), StubFetcher(table), rules(**settings))
    return handler.handle(t)


def test_cb_kwargs_reach_the_callback():
    result = run({URL: html()}, task(cb_kwargs={"page": 2, "tag": "x"}))
    assert result["items"] == [{"page": 2, "tag": "x", "status": 200}]


def test_errback_gets_http_errors_and_what_it_yields_is_kept():
    result = run({URL: (404, {}, b"")}, task(errback="failed"))
    assert (result["outcome"], result["reason"], result["status"]) == ("failed", "http_404", 404)
    assert result["items"] == [{"failed": "http_404", "url": URL, "http": True, "status": 404}]
    assert [r["url"] for r in result["requests"]] == ["http://example.com/fallback"]


def test_errback_gets_a_fetch_failure_once_retries_are_spent():
    down = {URL: FetchError("connection", "refused", retryable=True)}
    assert run(down, task(errback="failed"))["outcome"] == "retry"
    last = dict(task(errback="failed"), attempt=2)
    result = run(down, last)
    assert result["reason"] == "connection"
    assert result["items"] == [{"failed": "connection", "url": URL, "http": False,
                                "status": None}]


@pytest.mark.parametrize("meta, attempt, outcome", [
    ({"dont_retry": True}, 0, "failed"),
    ({"max_retry_times": 5}, 4, "retry"),
    ({"max_retry_times": 5}, 5, "failed"),
    ({"max_retry_times": 0}, 0, "failed"),
])
def test_retry_meta_switches(meta, attempt, outcome):
    for answer in (FetchError("timeout", "slow", retryable=True), (503, {}, b"")):
        t = dict(task(meta=meta), attempt=attempt)
        assert run({URL: answer}, t)["outcome"] == outcome


def test_the_frontier_retries_up_to_a_requests_max_retry_times():
    f = Frontier(retry_times=1)
    f.admit([task(meta={"max_retry_times": 3})])
    for _ in range(4):
        f._release_delayed(float("inf"))  # retries wait for backoff: skip it here
        [(lease, _)] = f.lease("w", 1)[0]
        f.complete(lease, "retry", "timeout")
    assert f.stats["retries"] == 3 and f.stats["failed/timeout"] == 1


def test_dont_obey_robotstxt_skips_the_rules():
    f = Frontier(robots_agent="crawler")
    f.admit([task(), Request("http://example.com/other", meta={"dont_obey_robotstxt": True})
             .to_task(0)])
    [(lease, robots)] = f.lease("w", 10)[0]
    f.complete(lease, "done", None, f.parse_robots(200, "User-agent: *\nDisallow: /\n"))
    assert [t["url"] for _, t in f.lease("w", 10)[0]] == ["http://example.com/other"]
    assert f.seen[task()["fp"]] == FAILED


def test_download_timeout_meta_shortens_the_deadline():
    import http.server
    import threading

    from test_fetcher import make_fetcher  # DOWNLOAD_TIMEOUT 30 s
    release = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            release.wait(5)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        with pytest.raises(FetchError) as info:
            make_fetcher(ADDRESS_GUARD=False).fetch(Request(url, meta={"download_timeout": 0.3}))
        assert info.value.reason == "timeout"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


# -- FormRequest -----------------------------------------------------------------------------
FORM_PAGE = b"""<html><body>
<form id="search" action="/search" method="get"><input name="q" value="old"></form>
<form name="login" action="login.php" method="POST">
  <input type="hidden" name="csrf" value="t0k">
  <input name="user" value="">
  <input type="password" name="pass">
  <input type="checkbox" name="remember" value="1" checked>
  <select name="lang"><option value="en">en</option><option value="de" selected>de</option></select>
  <textarea name="note">hi</textarea>
  <input type="submit" name="go" value="Log in">
  <input type="submit" name="alt" value="Other">
</form></body></html>"""
PAGE = Response("http://example.com/account/", 200, {"Content-Type": "text/html"}, FORM_PAGE)


def test_form_request_posts_urlencoded_or_gets_a_query():
    post = FormRequest("http://example.com/a", formdata={"x": "1 2", "y": "é"})
    assert (post.method, post.body, post.headers["Content-Type"]) == (
        "POST", b"x=1+2&y=%C3%A9", "application/x-www-form-urlencoded")
    get = FormRequest("http://example.com/a?k=v", formdata=[("x", "1")], method="GET")
    assert (get.method, get.url, get.body) == ("GET", "http://example.com/a?k=v&x=1", b"")


def test_from_response_fills_the_form_as_a_browser_would():
    req = FormRequest.from_response(PAGE, formname="login",
                                    formdata={"user": "ann", "pass": "pw", "note": None},
                                    callback="after")
    assert (req.method, req.url, req.callback) == (
        "POST", "http://example.com/account/login.php", "after")
    assert req.body.decode() == ("csrf=t0k&remember=1&lang=de&go=Log+in&user=ann&pass=pw")


@pytest.mark.parametrize("kwargs, url", [
    ({}, "http://example.com/search?q=old"),
    ({"formid": "search", "formdata": {"q": "new"}}, "http://example.com/search?q=new"),
    ({"formnumber": 1, "dont_click": True, "formdata": {"csrf": None}},
     "http://example.com/account/login.php"),
    ({"formxpath": "//input[@name='pass']", "clickdata": {"name": "alt"}},
     "http://example.com/account/login.php"),
    ({"formcss": "form[name=login]"}, "http://example.com/account/login.php"),
])
def test_from_response_picks_the_form(kwargs, url):
    assert FormRequest.from_response(PAGE, **kwargs).url == url


def test_from_response_clickdata_and_dont_click():
    alt = FormRequest.from_response(PAGE, formnumber=1, clickdata={"name": "alt"})
    assert alt.body.endswith(b"alt=Other")
    bare = FormRequest.from_response(PAGE, formnumber=1, dont_click=True)
    assert b"go=" not in bare.body and b"alt=" not in bare.body


@pytest.mark.parametrize("kwargs", [{"formname": "nope"}, {"formid": "nope"},
                                    {"formnumber": 5}, {"formxpath": "//p"},
                                    {"formnumber": 1, "clickdata": {"name": "nope"}}])
def test_from_response_without_such_a_form_is_an_error(kwargs):
    with pytest.raises(CrawlerError):
        FormRequest.from_response(PAGE, **kwargs)


def test_form_request_survives_the_wire():
    req = FormRequest.from_response(PAGE, formname="login", formdata={"user": "ann"})
    back = Request.from_task(req.to_task(0))
    assert (back.method, back.body, back.headers) == (req.method, req.body, req.headers)


# -- spider arguments and start requests ----------------------------------------------------
class ScrapyStyle(Spider):
    name = "scrapystyle"

    def __init__(self, category=None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.category = category
        self.seen_settings = self.settings.get("DEPTH_LIMIT")


def test_make_spider_passes_arguments_as_scrapy_does():
    spider = make_spider(ScrapyStyle, {"DEPTH_LIMIT": 3}, {"category": "books", "extra": "1"})
    assert (spider.category, spider.extra, spider.seen_settings) == ("books", "1", 3)


class Endless(Spider):
    name = "endless"
    made = 0

    def start_requests(self):
        for i in itertools.count():
            type(self).made += 1
            yield Request(f"http://example.com/{i}")


def test_start_requests_are_taken_a_batch_at_a_time():
    starts = StartRequests(Endless(), ())
    assert len(starts.first) == FIRST_BATCH and Endless.made == FIRST_BATCH
    assert [t["url"] for t in starts.take(3)] == [f"http://example.com/{i}" for i in
                                                  range(FIRST_BATCH, FIRST_BATCH + 3)]
    assert not starts.exhausted


class AsyncStart(Spider):
    name = "asyncstart"

    async def start(self):
        for i in range(3):
            yield Request(f"http://example.com/{i}", callback="parse_item")
        yield "not a request"

    def parse_item(self, response):
        return []


def test_async_start_is_iterated_and_later_bad_ones_are_skipped():
    with pytest.raises(UsageError, match=r"asyncstart\.start\(\).*not a Request"):
        StartRequests(AsyncStart(), ())


def test_async_start_of_good_requests():
    class Good(AsyncStart):
        name = "good"

        async def start(self):
            for i in range(2):
                yield Request(f"http://example.com/{i}", callback="parse_item")

    starts = StartRequests(Good(), ())
    assert [t["callback"] for t in starts.first] == ["parse_item", "parse_item"]
    assert starts.exhausted


STREAMING = '''
from crawler import Request, Spider


class Streaming(Spider):
    name = "streaming"
    base = "http://127.0.0.1"

    def __init__(self, base=None, books="0", **kwargs):
        super().__init__(**kwargs)
        self.base, self.books = base, int(books)

    def start_requests(self):
        for i in range(self.books):
            yield Request(f"{self.base}/book/{i}.html", callback="parse_book",
                          cb_kwargs={"n": i}, errback="gone")
        yield Request(f"{self.base}/missing.html", callback="parse_book", errback="gone")

    def parse_book(self, response, n=None):
        yield {"n": n, "url": response.url, "base": self.base}

    def gone(self, failure):
        yield {"gone": failure.request.url, "reason": failure.reason}
'''


def test_streamed_start_requests_with_arguments_cb_kwargs_and_errback(serve, project,
                                                                        run_master):
    books = FIRST_BATCH + 1500  # streams in after the crawl has started
    site = serve(Site(pages=books, links=0))
    (project / "spiders" / "streaming.py").write_text(STREAMING)
    out = project / "out.jsonl"
    base = site.url.rstrip("/")
    master = run_master(["--spider", "streaming", "-a", f"base={base}", "-a", f"books={books}",
                         "--workers", 2, "-o", out, "-s", "ROBOTSTXT_OBEY=false", *QUIET],
                        timeout=60)
    assert master.returncode == 0, master.describe()
    assert f"{FIRST_BATCH}+ start requests" in master.stdout, master.describe()
    items = read_jsonl(out)
    assert sorted(i["n"] for i in items if "n" in i) == list(range(books))
    assert all(i["base"] == base for i in items if "n" in i)
    assert [i for i in items if "gone" in i] == [
        {"gone": f"{base}/missing.html", "reason": "http_404"}]


@pytest.mark.parametrize("pair", ["novalue", "=x", "not-an-identifier=1"])
def test_bad_spider_arguments_exit_2(pair, project, run_master, site):
    master = run_master([write_seeds(project, site.url), "-a", pair, "--workers", 0, *QUIET])
    assert master.returncode == 2, master.describe()
    assert f"-a {pair!r}" in master.stderr, master.describe()
