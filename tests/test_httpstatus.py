"""The handler's status rules, as Scrapy's HttpError, Retry, Redirect and MetaRefresh
middlewares behave: which responses reach the callback, which fail, which are followed."""
import pytest
from test_fetcher import URL, handle, html, task

from crawler import PageError, Spider

GONE = (404, {"Content-Type": "text/html"}, b"<title>Gone</title>")


class Recorder(Spider):
    name = "recorder"

    def parse(self, response):
        yield {"status": response.status, "url": response.url}


class Allows404(Recorder):
    handle_httpstatus_list = [404]


def test_non_2xx_is_failed_by_default():
    assert handle({URL: GONE}, spider=Recorder()) == {
        "outcome": "failed", "reason": "http_404", "status": 404}


@pytest.mark.parametrize("spider, meta, settings", [
    (Allows404(), {}, {}),
    (Recorder(), {"handle_httpstatus_list": [404]}, {}),
    (Recorder(), {"handle_httpstatus_all": True}, {}),
    (Recorder(), {}, {"HTTPERROR_ALLOWED_CODES": [404]}),
    (Recorder(), {}, {"HTTPERROR_ALLOW_ALL": True}),
], ids=["spider-list", "meta-list", "meta-all", "allowed-codes", "allow-all"])
def test_allowed_non_2xx_reaches_the_callback(spider, meta, settings):
    result = handle({URL: GONE}, task(meta=meta), spider=spider, **settings)
    assert result["outcome"] == "done"
    assert result["items"] == [{"status": 404, "url": URL}]


def test_meta_list_overrides_the_spider_and_settings():
    t = task(meta={"handle_httpstatus_list": [500]})
    result = handle({URL: GONE}, t, spider=Allows404(), HTTPERROR_ALLOW_ALL=True)
    assert result == {"outcome": "failed", "reason": "http_404", "status": 404}


def test_spider_list_overrides_allowed_codes():
    result = handle({URL: (410, {}, b"")}, spider=Allows404(), HTTPERROR_ALLOWED_CODES=[410])
    assert result["reason"] == "http_410"


def test_retry_codes_retry_until_the_last_attempt_then_fail_or_reach_callback():
    busy = {URL: (503, {}, b"busy")}
    assert handle(busy, task(), RETRY_TIMES=2)["outcome"] == "retry"
    last = dict(task(), attempt=2)
    assert handle(busy, last, RETRY_TIMES=2) == {
        "outcome": "failed", "reason": "http_503", "status": 503}
    allowed = dict(task(meta={"handle_httpstatus_list": [503]}), attempt=2)
    assert handle(busy, allowed, spider=Recorder(), RETRY_TIMES=2)["items"] == [
        {"status": 503, "url": URL}]


def test_handled_redirect_status_is_not_followed():
    moved = {URL: (302, {"Location": "/elsewhere"}, b"")}
    result = handle(moved, task(meta={"handle_httpstatus_list": [302]}), spider=Recorder())
    assert result["requests"] == [] and result["items"] == [{"status": 302, "url": URL}]
    result = handle(moved, task(meta={"dont_redirect": True}), spider=Recorder())
    assert result == {"outcome": "failed", "reason": "http_302", "status": 302}


def refresh_page(content, extra=""):
    body = (f'<html><head><meta http-equiv="Refresh" content="{content}">{extra}'
            '<title>Moved</title></head><body><a href="/other">x</a></body></html>')
    return {URL: (200, {"Content-Type": "text/html"}, body.encode())}


@pytest.mark.parametrize("content, target", [
    ("0; url=/new", "http://example.com/new"),
    ("0;URL='http://example.com/quoted'", "http://example.com/quoted"),
    ("5, next.html", "http://example.com/next.html"),
    ("  2 ; url = '/spaced path' ", "http://example.com/spaced%20path"),
])
def test_meta_refresh_is_followed_as_a_redirect(content, target):
    result = handle(refresh_page(content), task(callback="parse_item", meta={"k": 1}))
    assert result["items"] == []
    [request] = result["requests"]
    assert (request["url"], request["callback"]) == (target, "parse_item")
    assert request["meta"] == {"k": 1, "redirect_times": 1, "redirect_urls": [URL],
                               "redirect_reasons": ["meta refresh"]}


def test_meta_refresh_honours_base_href():
    pages = refresh_page("0; url=page2.html", '<base href="http://example.com/docs/">')
    assert handle(pages)["requests"][0]["url"] == "http://example.com/docs/page2.html"


@pytest.mark.parametrize("content, settings", [
    ("100; url=/slow", {}),                      # at METAREFRESH_MAXDELAY: not followed
    ("0; url=/new", {"METAREFRESH_ENABLED": False}),
    ("5", {}),                                   # no URL: a reload, not a redirect
    ("0; url=", {}),
    ("soon; url=/x", {}),                        # malformed
    ("0; url=" + URL, {}),                       # to itself
])
def test_meta_refresh_not_followed(content, settings):
    result = handle(refresh_page(content), **settings)
    assert result["outcome"] == "done"
    assert result["items"][0]["title"] == "Moved"
    assert [r["url"] for r in result["requests"]] == ["http://example.com/other"]


def test_meta_refresh_counts_as_a_redirect_hop():
    t = task(meta={"redirect_times": 10})
    assert handle(refresh_page("0; url=/new"), t)["reason"] == "redirect_max"


class Halfway(Spider):
    name = "halfway"

    def parse(self, response):
        yield {"n": 1}
        yield response.follow("/next")
        raise ValueError("bug after yielding")

    def parse_sitemap(self, response):
        yield {"n": 2}
        raise PageError("sitemap_invalid", "not XML")


def test_a_callback_that_raises_keeps_what_it_yielded():
    result = handle({URL: html()}, spider=Halfway())
    assert (result["outcome"], result["reason"]) == ("failed", "spider_error")
    assert result["items"] == [{"n": 1}]
    assert [r["url"] for r in result["requests"]] == ["http://example.com/next"]


def test_page_error_fails_the_page_with_its_reason():
    result = handle({URL: html()}, task(callback="parse_sitemap"), spider=Halfway())
    assert (result["outcome"], result["reason"], result["items"]) == (
        "failed", "sitemap_invalid", [{"n": 2}])


# -- end to end: real master and workers ---------------------------------------------------
def test_crawl_follows_meta_refresh_and_fails_non_2xx(serve, project, run_master):
    from crawler.sitegen import Site
    from procs import QUIET, read_jsonl, write_seeds

    site = serve(Site(pages=5, links=1))
    status, ctype, front = site.site.render("/")
    links = b'<a href="/refresh.html">r</a> <a href="/missing.html">m</a> <a href="/xml">x</a>'
    site.extra["/"] = lambda: (status, ctype, front.replace(b"</h1>", b"</h1>" + links))
    site.extra["/refresh.html"] = lambda: (200, "text/html", (
        b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head>'
        b'<meta http-equiv="refresh" content="0; URL=landing.html"/></head></html>'))
    site.extra["/landing.html"] = lambda: (200, "text/html", b"<title>Landed</title>")
    site.extra["/xml"] = lambda: (200, "application/xml", b"<?xml version='1.0'?><a href='/b'/>")
    out = project / "out.jsonl"
    master = run_master([write_seeds(project, site.url), "--workers", 2, "-o", out, *QUIET],
                        timeout=30)
    assert master.returncode == 0, master.describe()
    items = {i["url"].removeprefix(site.url.rstrip("/")): i for i in read_jsonl(out)}
    assert items["/landing.html"]["title"] == "Landed"
    assert "/refresh.html" not in items and "/missing.html" not in items
    assert items["/xml"]["title"] is None  # XML: an item, no links followed
    assert set(items) == site.site.paths() | {"/landing.html", "/xml"}
    failures = (project / "out.failures.tsv").read_text().splitlines()
    assert failures == [f"http_404\t{site.url.rstrip('/')}/missing.html"]
