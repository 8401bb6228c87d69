"""The generic spider's links reach the master as the same tasks, and are dropped for the
same reasons, whether they go as hrefs (the handler's fast route) or as one Request each
(what a spider overriding parse yields)."""
import pytest

from crawler import GenericSpider, Response, config
from crawler.signals import SignalManager, request_dropped
from crawler.spider.handler import Handler, Rules
from crawler.http.request import Request

HREFS = ["/a", "b", "../c", "./d/../e", "b", "#top", "?q=1", "", "  /spaced  ", "//other.test/x",
         "http://Example.COM/abs", "https://sub.example.com/s", "http://elsewhere.test/y",
         "mailto:me@example.com", "javascript:void(0)", "/wiki/Special:Page", "a\tb",
         "/x/y/x/y/x/y/x/y/x/y", "/" + "l" * 300, "http://[::1", "z.html#frag", "%zz",
         "/caf\u00e9", "HTTP://example.com/upper"]


class StubFetcher:
    def __init__(self, table):
        self.table = table

    def fetch(self, request, depth=0, cookies=None):
        head, hrefs = self.table[request.url]
        anchors = "".join(f'<a href="{h}">x</a>' for h in hrefs)
        body = f"<html><head>{head}<title>t</title></head><body>{anchors}</body></html>"
        return Response(request.url, 200, {"Content-Type": "text/html"}, body.encode(),
                        request, depth)


class ByRequests(GenericSpider):
    """The generic spider, its links yielded as Requests (parse overridden)."""

    def parse(self, response):
        yield from GenericSpider.parse(self, response)


PAGES = {
    "http://example.com/one/page.html": ("", HREFS),
    "http://example.com/two/page.html": ("", HREFS),  # the same hrefs, another directory
    "http://example.com/one/other?x=1": ("", HREFS),
    "http://example.com/based.html": ('<base href="http://example.com/base/dir/">', HREFS),
}


def results(spider, signals=None, allowed=("example.com",), depth=1, **settings):
    rules = Rules.from_settings(dict(config.defaults(), **settings), allowed)
    handler = Handler(spider, StubFetcher(PAGES), rules, signal_manager=signals)
    out = []
    for url in PAGES:
        result = handler.handle(Request(url).to_task(depth))
        result.pop("latency")
        out.append(result)
    return out


@pytest.mark.parametrize("settings", [
    {}, {"DEPTH_LIMIT": 1}, {"DEPTH_PRIORITY": 2}, {"URLLENGTH_LIMIT": 40},
    {"TRAP_SEGMENT_REPEAT": 3}, {"LINKS_PER_PAGE_LIMIT": 5}, {"LINKS_PER_PAGE_LIMIT": 100},
    {"FINGERPRINT_IGNORE_PARAMS": ["q"]},
])
def test_hrefs_give_the_tasks_requests_give(settings):
    fast = results(GenericSpider(), **settings)
    assert fast == results(ByRequests(), **settings)
    assert fast[0]["requests"] or fast[0]["dropped"]  # something to compare


def test_the_same_href_in_another_directory_is_another_link():
    one, two, _, based = results(GenericSpider())
    urls = {r["url"] for r in one["requests"]}
    assert "http://example.com/one/b" in urls and "http://example.com/two/b" not in urls
    assert "http://example.com/two/b" in {r["url"] for r in two["requests"]}
    assert "http://example.com/base/dir/b" in {r["url"] for r in based["requests"]}


def test_offsite_and_every_domain():
    assert results(GenericSpider(), allowed=()) == results(ByRequests(), allowed=())
    dropped = results(GenericSpider())[0]["dropped"]
    assert dropped["offsite"] == 2  # other.test and elsewhere.test


def test_dropped_signal_sees_requests():
    seen = {}
    for spider in (GenericSpider(), ByRequests()):
        signals, got = SignalManager(), []
        signals.connect(lambda request, reason, spider: got.append((request.url, reason)),
                        request_dropped)
        results(spider, signals, URLLENGTH_LIMIT=40)
        seen[type(spider)] = got
    assert seen[GenericSpider] == seen[ByRequests]
    assert ("http://example.com/" + "l" * 300, "url_too_long") in seen[GenericSpider]
