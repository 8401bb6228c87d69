"""Downloader and spider middlewares and signals, the Scrapy way, on real workers too."""
import pytest
from test_fetcher import StubFetcher, URL, html, rules, task

from crawler import IgnoreRequest, Request, Response, Spider, signals
from crawler.http.failures import FetchError
from crawler.sitegen import Site
from crawler.spider.handler import Handler
from crawler.spider.middleware import Middlewares
from procs import QUIET, read_jsonl, write_seeds


class Echo(Spider):
    name = "echo"

    def parse(self, response):
        yield {"url": response.url, "status": response.status, "body": response.body.decode()}
        yield Request("http://elsewhere.example/x")

    def failed(self, failure):
        yield {"failed": failure.reason}


class Canned:
    def process_request(self, request, spider):
        if "canned" in request.url:
            return Response(request.url, 200, {"Content-Type": "text/html"}, b"canned")
        return None


class Redirect:
    def process_request(self, request, spider):
        if request.url.endswith("/old"):
            return request.replace(url="http://example.com/new")


class Ignore:
    def process_request(self, request, spider):
        raise IgnoreRequest("not today")


class Rescue:
    def process_exception(self, request, exception, spider):
        return Response(request.url, 200, {}, f"rescued {exception.reason}".encode())


class Tagging:
    def process_response(self, request, response, spider):
        return Response(response.url, response.status, response.headers, response.body + b"!")


class OnlyItems:
    def process_spider_output(self, response, result, spider):
        return (out for out in result if not isinstance(out, Request))


def handle(table, t, downloader=(), spider_side=(), manager=None, **settings):
    spider = Echo()
    mws = Middlewares(spider, downloader, spider_side)
    handler = Handler(spider, StubFetcher(table), rules(**settings), mws, manager)
    return handler, handler.handle(t)


def test_a_response_from_process_request_skips_the_fetch():
    handler, result = handle({}, task(url="http://example.com/canned"), [Canned()])
    assert handler.fetcher.calls == []
    assert result["items"][0]["body"] == "canned"


def test_a_request_from_process_request_is_fetched_instead():
    _, result = handle({}, task(url="http://example.com/old", depth=2), [Redirect()])
    assert result["outcome"] == "done" and result["items"] == []
    assert [(r["url"], r["depth"]) for r in result["requests"]] == [("http://example.com/new", 2)]


def test_ignore_request_fails_the_page_and_calls_its_errback():
    _, result = handle({URL: html()}, task(errback="failed"), [Ignore()])
    assert (result["outcome"], result["reason"]) == ("failed", "ignored")
    assert result["items"] == [{"failed": "ignored"}]


def test_process_exception_may_turn_a_failure_into_a_response():
    _, result = handle({URL: FetchError("connection", "refused", True)}, task(), [Rescue()])
    assert result["items"][0]["body"] == "rescued connection"


def test_process_response_runs_in_reverse_order_over_every_response():
    _, result = handle({}, task(url="http://example.com/canned"), [Canned(), Tagging()])
    assert result["items"][0]["body"] == "canned!"


def test_process_spider_output_changes_what_the_callback_yields():
    _, result = handle({URL: html()}, task(), spider_side=[OnlyItems()])
    assert len(result["items"]) == 1 and result["requests"] == []


def test_worker_side_signals():
    manager, seen = signals.SignalManager(), []
    manager.connect(lambda response: seen.append(("received", response.url)),
                    signals.response_received)
    manager.connect(lambda request, reason: seen.append(("dropped", request.url, reason)),
                    signals.request_dropped)
    handle({URL: html()}, task(), manager=manager, DEPTH_LIMIT=0)
    assert seen == [("received", URL)]
    handler = Handler(Echo(), StubFetcher({URL: html()}), rules(["example.com"]),
                      signal_manager=manager)
    handler.handle(task())
    assert seen[-1] == ("dropped", "http://elsewhere.example/x", "offsite")


def test_a_receiver_that_raises_does_not_stop_the_others():
    manager, seen = signals.SignalManager(), []
    manager.connect(lambda spider: 1 / 0, signals.spider_opened)
    manager.connect(lambda spider: seen.append(spider), signals.spider_opened)
    manager.send(signals.spider_opened, spider="s", extra="not taken")
    assert seen == ["s"]


# -- end to end --------------------------------------------------------------------------
IDLE_SPIDER = '''
from crawler import Request, Spider, signals


class Idler(Spider):
    name = "idler"
    custom_settings = {
        "DOWNLOADER_MIDDLEWARES": {"spiders.middlewares.RotateUserAgent": 400},
        "USER_AGENTS": ["agent-one/1.0", "agent-two/1.0"],
    }
    rounds = 0

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.idle, signal=signals.spider_idle)
        return spider

    def idle(self, spider):
        self.rounds += 1  # runs on the master: one more page, once
        if self.rounds == 1:
            return [Request(self.start_urls[0].rstrip("/") + "/book/7.html", callback="book")]

    def parse(self, response):
        yield {"url": response.url}
        yield from response.follow_all(css="a.next")

    def book(self, response):
        yield {"book": response.url}
'''


def test_middleware_and_spider_idle_on_real_workers(serve, project, run_master):
    site = serve(Site(pages=60, links=0))
    spider = IDLE_SPIDER.replace("rounds = 0", f"rounds = 0\n    start_urls = ['{site.url}']")
    (project / "spiders" / "idler.py").write_text(spider)
    out = project / "out.jsonl"
    master = run_master(["--spider", "idler", "--workers", 2, "-o", out, *QUIET], timeout=30)
    assert master.returncode == 0, master.describe()
    items = read_jsonl(out)
    assert {"book": site.url + "book/7.html"} in items
    catalogues = {p for p in site.site.paths() if not p.startswith("/book/")}
    assert {i["url"] for i in items if "url" in i} == {site.url.rstrip("/") + p
                                                       for p in catalogues}
    agents = {agent for path, agent in site.agents if path != "/robots.txt"}
    assert agents == {"agent-one/1.0", "agent-two/1.0"}, agents


@pytest.mark.parametrize("setting", ["DOWNLOADER_MIDDLEWARES", "SPIDER_MIDDLEWARES"])
def test_a_middleware_that_cannot_be_imported_stops_the_master(setting, project, run_master,
                                                               site):
    master = run_master([write_seeds(project, site.url), "--workers", 0, "-s",
                         f'{setting}={{"spiders.nope.Missing": 100}}', *QUIET])
    assert master.returncode == 2, master.describe()
    assert f"{setting}: cannot load spiders.nope.Missing" in master.stderr, master.describe()
