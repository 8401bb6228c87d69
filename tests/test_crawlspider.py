"""CrawlSpider and Rule: rules, follow, process_links/process_request, cb_kwargs, errbacks,
parse_start_url; and a whole crawl with a real master and 2 workers on a generated site."""
from __future__ import annotations

from collections import Counter

import pytest

from crawler import CrawlSpider, Failure, HttpError, Link, LinkExtractor, Request, Response, Rule
from crawler import UsageError
from crawler.sitegen import Site
from procs import QUIET, read_jsonl, write_seeds

HTML = {"Content-Type": "text/html"}
FRONT = ('<html><body><ul><li><a href="/book/1.html">Book 1</a></li>'
         '<li><a href="/book/2.html" rel="nofollow">Book 2</a></li></ul>'
         '<a class="next" href="/catalogue/page-2.html">next</a><a href="/about.html">about</a>'
         '</body></html>')


def response(url: str = "http://shop.test/", body: str = FRONT, request: Request | None = None,
             headers=HTML) -> Response:
    return Response(url, 200, headers, body.encode(), request)


class Shop(CrawlSpider):
    name = "shop"

    def parse_book(self, response, **kwargs):
        yield {"book": response.url, **kwargs}

    rules = (
        Rule(LinkExtractor(allow=r"/catalogue/")),
        Rule(LinkExtractor(allow=r"/book/"), callback=parse_book, cb_kwargs={"shelf": "a"},
             errback="book_failed"),
        Rule(LinkExtractor(), callback="parse_other", follow=True, process_links="no_nofollow",
             process_request="drop_about"),
    )

    def parse_start_url(self, response):
        yield {"start": response.url}

    def parse_other(self, response):
        yield {"other": response.url}

    def book_failed(self, failure):
        yield {"failed": failure.request.url, "reason": failure.reason}

    def no_nofollow(self, links):
        return [link for link in links if not link.nofollow]

    def drop_about(self, request, response):
        return None if "about" in request.url else request


def split(output) -> tuple[list[dict], list[Request]]:
    output = list(output)
    return ([o for o in output if isinstance(o, dict)],
            [o for o in output if isinstance(o, Request)])


def test_start_response_gives_parse_start_url_items_then_each_links_first_rule():
    items, requests = split(Shop().parse(response()))
    assert items == [{"start": "http://shop.test/"}]
    assert [(r.url, r.callback, r.errback, r.meta) for r in requests] == [
        ("http://shop.test/catalogue/page-2.html", "_callback", None,
         {"rule": 0, "link_text": "next"}),
        ("http://shop.test/book/1.html", "_callback", "_errback", {"rule": 1, "link_text": "Book 1"}),
        ("http://shop.test/book/2.html", "_callback", "_errback", {"rule": 1, "link_text": "Book 2"}),
    ]  # rule 2 saw the same links again (seen) and about.html, which its process_request drops
    assert all(r.to_task(1) is not None for r in requests)  # plain data, for the wire


def test_rule_callback_gets_rule_and_request_cb_kwargs_and_follow_defaults_to_no_callback():
    spider = Shop()
    request = Request("http://shop.test/book/1.html", callback="_callback",
                      meta={"rule": 1}, cb_kwargs={"from": "x", "shelf": "b"})
    items, requests = split(spider._callback(response(request.url, FRONT, request),
                                             **request.cb_kwargs))
    assert items == [{"book": "http://shop.test/book/1.html", "shelf": "b", "from": "x"}]
    assert requests == []  # a rule with a callback does not follow, unless told
    other = Request("http://shop.test/about.html", meta={"rule": 2})
    items, requests = split(spider._callback(response(other.url, FRONT, other)))
    assert items == [{"other": "http://shop.test/about.html"}] and len(requests) == 3
    assert spider.rules[1].callback is Shop.__dict__["parse_book"]  # the class's rules untouched


def test_follow_rule_without_callback_only_follows():
    request = Request("http://shop.test/catalogue/page-2.html", meta={"rule": 0})
    items, requests = split(Shop()._callback(response(request.url, FRONT, request)))
    assert items == [] and len(requests) == 3


def test_errback_of_the_rule_gets_the_failure():
    request = Request("http://shop.test/book/9.html", callback="_callback", errback="_errback",
                      meta={"rule": 1})
    failed = Response(request.url, 404, HTML, b"", request)
    out = list(Shop()._errback(Failure(request, "http_404", HttpError(failed), failed)))
    assert out == [{"failed": "http://shop.test/book/9.html", "reason": "http_404"}]
    assert list(Shop()._errback(Failure(Request("http://x/", meta={"rule": 0}), "timeout",
                                        TimeoutError()))) == []


def test_process_links_may_change_links_and_process_results_the_callbacks_output():
    class Rewrite(CrawlSpider):
        name = "rewrite"
        rules = [Rule(LinkExtractor(allow="/book/"), process_links="to_print")]

        def to_print(self, links: list[Link]):
            for link in links:
                link.url += "?print=1"
                yield link

        def parse_start_url(self, response):
            return [{"n": 1}, {"n": 2}]

        def process_results(self, response, results):
            return [dict(r, seen=True) for r in results if r["n"] == 2]

    items, requests = split(Rewrite().parse(response()))
    assert items == [{"n": 2, "seen": True}]
    assert [r.url for r in requests] == ["http://shop.test/book/1.html?print=1",
                                         "http://shop.test/book/2.html?print=1"]


def test_links_are_followed_only_on_html_pages():
    text = response("http://shop.test/x.txt", '<a href="/book/1.html">b</a>',
                    headers={"Content-Type": "text/plain"})
    assert split(Shop().parse(text)) == ([{"start": "http://shop.test/x.txt"}], [])


def test_default_rule_follows_every_link():
    class Everything(CrawlSpider):
        name = "everything"
        rules = [Rule()]

    assert len(split(Everything().parse(response()))[1]) == 4


@pytest.mark.parametrize("rules, message", [
    ([Rule(callback="missing")], r"rules\[0\]: callback 'missing' is not a method of Bad"),
    ([Rule(), Rule(errback="nope")], r"rules\[1\]: errback 'nope'"),
    ([Rule(process_links="name")], r"process_links 'name'"),
    ([Rule(process_request=42)], r"process_request must be a method name or a callable"),
    ([(LinkExtractor(), "parse_book")], r"rules\[0\] is a tuple, not a Rule"),
])
def test_bad_rules_are_usage_errors(rules, message):
    bad = type("Bad", (CrawlSpider,), {"name": "bad", "rules": rules})
    with pytest.raises(UsageError, match=message):
        bad()


def test_overriding_parse_is_a_usage_error():
    class Parses(CrawlSpider):
        name = "parses"

        def parse(self, response):
            return ()

    with pytest.raises(UsageError, match="overrides parse()"):
        Parses()


def test_a_request_naming_no_rule_fails_its_page():
    request = Request("http://shop.test/", meta={"rule": 7})
    with pytest.raises(Exception, match="names no rule of Shop"):
        list(Shop()._callback(response(request=request)))


# -- a whole crawl -------------------------------------------------------------------------------
CATALOGUE_SPIDER = '''
from crawler import CrawlSpider, LinkExtractor, Rule


class CatalogueSpider(CrawlSpider):
    name = "catalogue"
    rules = [
        Rule(LinkExtractor(allow=r"/catalogue/page-\\d+\\.html$")),
        Rule(LinkExtractor(allow=r"/book/", restrict_css="ul"), callback="parse_book",
             cb_kwargs={"kind": "book"}, process_request="listed_on", errback="book_failed"),
    ]

    def parse_start_url(self, response):
        yield {"kind": "start", "url": response.url}

    def listed_on(self, request, response):
        request.cb_kwargs["listed_on"] = response.url  # travels with the request
        return request

    def parse_book(self, response, kind, listed_on):
        yield {"kind": kind, "url": response.url, "title": response.css("h1::text").get(),
               "listed_on": listed_on, "link_text": response.meta["link_text"]}

    def book_failed(self, failure):
        yield {"kind": "failed", "url": failure.request.url, "reason": failure.reason}
'''


def test_crawl_spider_crawls_a_catalogue_one_item_per_book(serve, project, run_master):
    site = Site(pages=60)
    server = serve(site)
    _, ctype, front = site.render("/")  # the front page also lists a book that is not there
    missing = b'<li><a class="book" href="/book/999.html">Book 999</a></li></ul>'
    server.extra["/"] = lambda: (200, ctype, front.replace(b"</ul>", missing, 1))
    (project / "spiders" / "catalogue.py").write_text(CATALOGUE_SPIDER)
    seeds = write_seeds(project, server.url)
    out, jobdir = project / "out.jsonl", project / "job"
    master = run_master([seeds, "--spider", "catalogue", "--workers", 2, "-o", out,
                         "--jobdir", jobdir, *QUIET], timeout=40)

    assert master.returncode == 0, master.describe()
    items = read_jsonl(out)
    kinds = Counter(item["kind"] for item in items)
    assert kinds == {"book": 60, "start": 1, "failed": 1}, kinds
    books = [item for item in items if item["kind"] == "book"]
    root = server.url.rstrip("/")
    assert Counter(b["url"] for b in books) == {f"{root}/book/{i}.html": 1 for i in range(60)}
    catalogue = [server.url] + [f"{root}/catalogue/page-{n}.html" for n in (2, 3)]
    for book in books:
        i = int(book["url"].rsplit("/", 1)[1].split(".")[0])
        assert (book["title"], book["link_text"]) == (f"Book {i}", f"Book {i}")
        assert book["listed_on"] == catalogue[i // 20]
    others = sorted((i for i in items if i["kind"] != "book"), key=lambda i: i["kind"])
    assert others == [{"kind": "failed", "url": f"{root}/book/999.html", "reason": "http_404"},
                      {"kind": "start", "url": server.url}]
    # every page fetched once: catalogue pages followed, related links of books not
    fetched = Counter(path for path, _, _ in server.log if path != "/robots.txt")
    assert fetched == Counter(["/", "/catalogue/page-2.html", "/catalogue/page-3.html",
                               "/book/999.html"] + [f"/book/{i}.html" for i in range(60)])


def test_a_rule_naming_a_missing_method_stops_the_master(site, project, run_master):
    (project / "spiders" / "broken.py").write_text(
        "from crawler import CrawlSpider, Rule\n\n\nclass Broken(CrawlSpider):\n"
        "    name = 'broken'\n    rules = [Rule(callback='parse_item')]\n")
    master = run_master([write_seeds(project, site.url), "--spider", "broken", "--workers", 1,
                         *QUIET])
    assert master.returncode == 2, master.describe()
    assert "rules[0]: callback 'parse_item' is not a method of Broken" in master.stderr
