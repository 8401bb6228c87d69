"""crawler.http.fetcher.Fetcher (mocked with `responses`) and crawler.spider.handler.Handler.

Real misbehaving servers (trickle, bombs, truncation, TLS, proxies) are in test_downloader.py.
"""
import gzip
import http.client
import types

import pytest
import requests
import responses

from crawler import GenericSpider, Request, Response, Spider, config
from crawler.http.bodies import ACCEPT_ENCODING, BodyDecoder
from crawler.http.fetcher import FetchConfig, Fetcher, FetchError
from crawler.spider.handler import Handler, Rules
from crawler.urls import fingerprint

URL = "http://example.com/page"


def make_fetcher(**overrides):
    return Fetcher(FetchConfig.from_settings(dict(config.defaults(), **overrides)))


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


# -- Fetcher ---------------------------------------------------------------------

def test_200_page(mocked):
    mocked.get(URL, body=b"<html>hi</html>", status=200, content_type="text/html",
               headers={"X-Served-By": "test"})
    req = Request(URL, meta={"k": 1})
    resp = make_fetcher().fetch(req, depth=2)
    assert isinstance(resp, Response)
    assert (resp.url, resp.status, resp.body) == (URL, 200, b"<html>hi</html>")
    assert resp.headers["x-served-by"] == "test"
    assert resp.content_type == "text/html"
    assert resp.request is req and resp.depth == 2 and resp.meta == {"k": 1}


def test_user_agent_and_default_headers_sent(mocked):
    mocked.get(URL, body=b"ok")
    fetcher = make_fetcher(USER_AGENT="testbot/9",
                           DEFAULT_REQUEST_HEADERS={"Accept": "text/html", "X-Default": "d"})
    fetcher.fetch(Request(URL))
    sent = mocked.calls[0].request.headers
    assert sent["User-Agent"] == "testbot/9"
    assert sent["Accept"] == "text/html"
    assert sent["X-Default"] == "d"


def test_request_headers_override_defaults(mocked):
    mocked.get(URL, body=b"ok")
    fetcher = make_fetcher(USER_AGENT="testbot/9", DEFAULT_REQUEST_HEADERS={"Accept": "a/b"})
    fetcher.fetch(Request(URL, headers={"User-Agent": "special/1", "Accept": "c/d", "X-Own": "o"}))
    sent = mocked.calls[0].request.headers
    assert (sent["User-Agent"], sent["Accept"], sent["X-Own"]) == ("special/1", "c/d", "o")


def test_post_body_sent(mocked):
    mocked.post(URL, body=b"done")
    resp = make_fetcher().fetch(Request(URL, method="POST", body=b"a=1"))
    assert resp.status == 200
    assert mocked.calls[0].request.method == "POST"
    assert mocked.calls[0].request.body == b"a=1"


def test_redirect_not_followed(mocked):
    mocked.get(URL, status=302, headers={"Location": "/elsewhere"})
    mocked.get("http://example.com/elsewhere", body=b"target")
    resp = make_fetcher().fetch(Request(URL))
    assert resp.status == 302
    assert resp.headers["Location"] == "/elsewhere"
    assert len(mocked.calls) == 1


def test_content_length_over_maxsize(mocked):
    mocked.get(URL, body=b"x" * 10, headers={"Content-Length": "5000"})
    with pytest.raises(FetchError) as info:
        make_fetcher(DOWNLOAD_MAXSIZE=1000).fetch(Request(URL))
    assert info.value.reason == "too_large"
    assert info.value.retryable is False


def test_body_over_maxsize_without_content_length(mocked):
    mocked.get(URL, body=b"x" * 5000)
    with pytest.raises(FetchError) as info:
        make_fetcher(DOWNLOAD_MAXSIZE=1000).fetch(Request(URL))
    assert info.value.reason == "too_large"


def test_body_at_maxsize_is_fine(mocked):
    mocked.get(URL, body=b"x" * 1000)
    assert len(make_fetcher(DOWNLOAD_MAXSIZE=1000).fetch(Request(URL)).body) == 1000


def test_decoded_size_counts_for_maxsize(mocked):
    packed = gzip.compress(b"0" * 50_000)
    assert len(packed) < 1000
    mocked.get(URL, body=packed, headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError) as info:
        make_fetcher(DOWNLOAD_MAXSIZE=1000).fetch(Request(URL))
    assert info.value.reason == "too_large"


def test_gzip_body_is_decoded(mocked):
    mocked.get(URL, body=gzip.compress(b"<p>zipped</p>"), headers={"Content-Encoding": "gzip"})
    assert make_fetcher().fetch(Request(URL)).body == b"<p>zipped</p>"


def test_deadline_passed_while_reading(mocked, monkeypatch):
    ticks = iter([0.0, 100.0, 100.0, 100.0])
    monkeypatch.setattr("crawler.http.fetcher.time", types.SimpleNamespace(monotonic=lambda: next(ticks)))
    mocked.get(URL, body=b"slow body")
    with pytest.raises(FetchError) as info:
        make_fetcher(DOWNLOAD_TIMEOUT=30.0).fetch(Request(URL))
    assert (info.value.reason, info.value.retryable) == ("timeout", True)


@pytest.mark.parametrize("exc, reason, retryable", [
    (requests.ConnectionError("refused"), "connection", True),
    (requests.Timeout("too slow"), "timeout", True),
    (requests.exceptions.ConnectTimeout("connect too slow"), "timeout", True),
    (requests.exceptions.ReadTimeout("read too slow"), "timeout", True),
    (requests.exceptions.SSLError("bad certificate"), "tls", False),
])
def test_transport_errors_are_classified(mocked, exc, reason, retryable):
    mocked.get(URL, body=exc)
    with pytest.raises(FetchError) as info:
        make_fetcher().fetch(Request(URL))
    assert info.value.reason == reason
    assert info.value.retryable is retryable
    assert str(info.value).startswith(reason + ": ")


def test_session_ignores_the_environment(mocked, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://env-proxy.invalid:3128")
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):  # these count: tests/test_tls.py
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", "/nonexistent/ca.pem")  # requests' own fallback
    mocked.get(URL, body=b"ok")
    make_fetcher().fetch(Request(URL))
    sent = mocked.calls[0].request.req_kwargs
    assert not sent["proxies"]
    assert sent["verify"] is True  # certificates checked, with the bundled CAs


def test_proxy_setting_and_meta_proxy_passed(mocked):
    mocked.get(URL, body=b"ok")
    fetcher = make_fetcher(HTTP_PROXY="http://proxy.invalid:3128", ADDRESS_GUARD=False)
    fetcher.fetch(Request(URL))
    fetcher.fetch(Request(URL, meta={"proxy": "http://other.invalid:8080"}))
    fetcher.fetch(Request(URL, meta={"proxy": None}))
    used = [dict(call.request.req_kwargs["proxies"]) for call in mocked.calls]
    assert used[0] == {"http": "http://proxy.invalid:3128", "https": "http://proxy.invalid:3128"}
    assert used[1]["http"] == "http://other.invalid:8080"
    assert not used[2]


def test_accept_encoding_default_and_override(mocked):
    mocked.get(URL, body=b"ok")
    fetcher = make_fetcher()
    fetcher.fetch(Request(URL))
    fetcher.fetch(Request(URL, headers={"Accept-Encoding": "identity"}))
    assert mocked.calls[0].request.headers["Accept-Encoding"] == ACCEPT_ENCODING
    assert mocked.calls[1].request.headers["Accept-Encoding"] == "identity"


def test_gzip_exactly_at_maxsize_is_fine(mocked):
    mocked.get(URL, body=gzip.compress(b"z" * 1000), headers={"Content-Encoding": "gzip"})
    assert make_fetcher(DOWNLOAD_MAXSIZE=1000).fetch(Request(URL)).body == b"z" * 1000


def test_decoder_never_holds_more_than_the_cap():
    bomb = gzip.compress(bytes(50_000_000))
    decoder = BodyDecoder("gzip", 100_000)
    with pytest.raises(FetchError) as info:
        for i in range(0, len(bomb), 65536):
            decoder.feed(bomb[i:i + 65536])
    assert info.value.reason == "too_large"
    assert len(decoder.body) <= 100_001


def test_too_many_stacked_encodings_refused(mocked):
    mocked.get(URL, body=b"x", headers={"Content-Encoding": "gzip, " * 5 + "gzip"})
    assert pytest.raises(FetchError, make_fetcher().fetch, Request(URL)).value.reason == \
        "bad_encoding"


@pytest.mark.parametrize("exc, reason, retryable", [
    (requests.exceptions.ProxyError("proxy said no"), "proxy", True),
    (requests.ConnectionError("connection reset by peer"), "connection", True),
    (requests.exceptions.InvalidHeader("bad header"), "invalid_request", False),
    (requests.exceptions.InvalidURL("bad url"), "invalid_url", False),
    (requests.exceptions.ContentDecodingError("bad gzip"), "bad_encoding", False),
    (requests.ConnectionError(http.client.IncompleteRead(b"x", 10)), "truncated", True),
])
def test_more_errors_are_classified(mocked, exc, reason, retryable):
    mocked.get(URL, body=exc)
    with pytest.raises(FetchError) as info:
        make_fetcher().fetch(Request(URL))
    assert (info.value.reason, info.value.retryable) == (reason, retryable)


# -- Handler ---------------------------------------------------------------------

class StubFetcher:
    """Answers from a {url: Response-args or FetchError} table and records calls."""

    def __init__(self, table):
        self.table, self.calls = table, []

    def fetch(self, request, depth=0, cookies=None):
        self.calls.append((request.url, depth))
        answer = self.table[request.url]
        if isinstance(answer, Exception):
            raise answer
        status, headers, body = answer
        return Response(request.url, status, headers, body, request, depth)


def html(links=(), title="t"):
    anchors = "".join(f'<a href="{h}">x</a>' for h in links)
    body = f"<html><head><title>{title}</title></head><body>{anchors}</body></html>"
    return 200, {"Content-Type": "text/html"}, body.encode()


def rules(allowed=(), **overrides):
    return Rules.from_settings(dict(config.defaults(), **overrides), allowed)


def task(url=URL, depth=0, **fields):
    return Request(url, **fields).to_task(depth)


def handle(table, t=None, spider=None, **rule_kwargs):
    handler = Handler(spider or GenericSpider(), StubFetcher(table), rules(**rule_kwargs))
    result = handler.handle(t or task())
    assert result.pop("latency") >= 0  # every fetched result reports its latency
    assert result.pop("bytes", 0) >= 0  # and its body's size, when there was a response
    return result


def test_rules_from_settings():
    r = rules(["Example.COM"], DEPTH_LIMIT=3, RETRY_HTTP_CODES=[503])
    assert r.allowed_domains == ("example.com",)
    assert r.depth_limit == 3
    assert r.retry_codes == frozenset({503})
    assert r.redirect_max == 10


@pytest.mark.parametrize("status", [500, 503, 429])
def test_retry_codes_give_retry(status):
    result = handle({URL: (status, {}, b"busy")})
    assert result == {"outcome": "retry", "reason": f"http_{status}"}


@pytest.mark.parametrize("exc, expected", [
    (FetchError("connection", "refused", True), {"outcome": "retry", "reason": "connection"}),
    (FetchError("tls", "bad cert"), {"outcome": "failed", "reason": "tls"}),
    (FetchError("too_large", "big"), {"outcome": "failed", "reason": "too_large"}),
])
def test_fetch_errors_become_outcomes(exc, expected):
    assert handle({URL: exc}) == expected


def test_404_fails_without_reaching_the_callback():
    result = handle({URL: (404, {"Content-Type": "text/html"}, b"<title>Nope</title>")})
    assert result == {"outcome": "failed", "reason": "http_404", "status": 404}


def test_200_items_and_requests():
    t = task(depth=1)
    result = handle({URL: html(["/a", "b"], title="Home")}, t)
    assert result["outcome"] == "done"
    assert result["items"] == [{"url": URL, "status": 200, "title": "Home", "depth": 1}]
    assert [r["url"] for r in result["requests"]] == ["http://example.com/a",
                                                      "http://example.com/b"]
    assert all(r["depth"] == 2 for r in result["requests"])
    assert result["requests"][0]["fp"] == fingerprint("http://example.com/a")
    assert result["dropped"] == {}


def test_redirect_gives_one_task_for_target():
    t = task(depth=2, callback="parse_item", meta={"k": 1})
    result = handle({URL: (301, {"Location": " /moved?x=1 "}, b"")}, t)
    assert result["outcome"] == "done"
    assert result["status"] == 301
    assert result["items"] == []
    assert len(result["requests"]) == 1
    target = result["requests"][0]
    assert target["url"] == "http://example.com/moved?x=1"
    assert target["depth"] == 2
    assert target["callback"] == "parse_item"
    assert target["meta"] == {"k": 1, "redirect_times": 1, "redirect_urls": [URL],
                              "redirect_reasons": [301]}


def test_second_redirect_hop_accumulates():
    t = task(meta={"redirect_times": 1, "redirect_urls": ["http://example.com/first"]})
    result = handle({URL: (302, {"Location": "http://example.com/third"}, b"")}, t)
    assert result["requests"][0]["meta"] == {
        "redirect_times": 2, "redirect_urls": ["http://example.com/first", URL],
        "redirect_reasons": [302]}


def test_303_turns_post_into_get():
    t = task(method="POST", body=b"a=1")
    result = handle({URL: (303, {"Location": "/done"}, b"")}, t)
    target = result["requests"][0]
    assert "method" not in target and "body" not in target
    assert target["fp"] == fingerprint("http://example.com/done")


def test_redirect_beyond_max_fails():
    t = task(meta={"redirect_times": 2})
    result = handle({URL: (302, {"Location": "/again"}, b"")}, t, REDIRECT_MAX_TIMES=2)
    assert result == {"outcome": "failed", "reason": "redirect_max", "status": 302}


def test_redirect_offsite_is_dropped():
    result = handle({URL: (301, {"Location": "http://evil.org/"}, b"")}, allowed=["example.com"])
    assert result["requests"] == []
    assert result["dropped"] == {"offsite": 1}


class FailingSpider(Spider):
    name = "failing"

    def parse(self, response):
        yield {"partial": True}
        raise ValueError("broken parser")

    def parse_weird(self, response):
        yield 42


def test_spider_error_never_raises_and_keeps_what_was_yielded():
    result = handle({URL: html()}, spider=FailingSpider())
    assert result == {"outcome": "failed", "reason": "spider_error", "status": 200,
                      "items": [{"partial": True}], "requests": [], "dropped": {}}


def test_an_unexpected_fetch_error_fails_the_task(caplog):
    class Broken:
        def fetch(self, request, depth, cookies=None):
            raise IndexError("a bug in the downloader")

    result = Handler(GenericSpider(), Broken(), rules()).handle(task())
    assert result == {"outcome": "failed", "reason": "internal_error"}
    assert "a bug in the downloader" in caplog.text


def test_spider_yielding_non_item_is_spider_error():
    result = handle({URL: html()}, task(callback="parse_weird"), spider=FailingSpider())
    assert result["outcome"] == "failed" and result["reason"] == "spider_error"


def test_unknown_callback_is_spider_error():
    result = handle({URL: html()}, task(callback="no_such_method"))
    assert result["outcome"] == "failed" and result["reason"] == "spider_error"


def test_offsite_links_dropped():
    links = ["/in", "http://sub.example.com/s", "http://example.org/out", "http://badexample.com/"]
    result = handle({URL: html(links)}, allowed=["example.com"])
    assert [r["url"] for r in result["requests"]] == ["http://example.com/in",
                                                      "http://sub.example.com/s"]
    assert result["dropped"] == {"offsite": 2}


def test_dont_filter_request_passes_offsite_check():
    class Spider1(Spider):
        name = "s1"

        def parse(self, response):
            yield Request("http://other.org/", dont_filter=True)

    result = handle({URL: html()}, spider=Spider1(), allowed=["example.com"])
    assert [r["url"] for r in result["requests"]] == ["http://other.org/"]


def test_depth_limit_drops_deeper_links():
    table = {URL: html(["/a", "/b"])}
    assert handle(table, task(depth=1), DEPTH_LIMIT=2)["dropped"] == {}
    result = handle(table, task(depth=2), DEPTH_LIMIT=2)
    assert result["requests"] == []
    assert result["dropped"] == {"depth": 2}
    assert result["items"][0]["depth"] == 2


def test_depth_priority_lowers_deeper_requests():
    result = handle({URL: html(["/a"])}, task(depth=1), DEPTH_PRIORITY=1)
    assert result["requests"][0]["priority"] == -2


def test_invalid_links_dropped():
    links = ["mailto:me@example.com", "javascript:void(0)", "tel:123", "http://example.com:99999/",
             "ftp://example.com/f", "/ok"]
    result = handle({URL: html(links)})
    assert [r["url"] for r in result["requests"]] == ["http://example.com/ok"]
    assert result["dropped"] == {"invalid_url": 5}


def test_malformed_ipv6_link_dropped_not_spider_error():
    result = handle({URL: html(["http://[oops/", "/ok"])})
    assert result["outcome"] == "done"
    assert [r["url"] for r in result["requests"]] == ["http://example.com/ok"]
    assert result["dropped"] == {"invalid_url": 1}


def test_too_long_links_dropped():
    result = handle({URL: html(["/" + "a" * 100, "/ok"])}, URLLENGTH_LIMIT=60)
    assert [r["url"] for r in result["requests"]] == ["http://example.com/ok"]
    assert result["dropped"] == {"url_too_long": 1}


def test_handler_with_real_fetcher(mocked):
    mocked.get(URL, body=b'<html><title>Real</title><a href="/next">n</a></html>',
               content_type="text/html")
    handler = Handler(GenericSpider(), make_fetcher(), rules(["example.com"]))
    result = handler.handle(task())
    assert result["items"] == [{"url": URL, "status": 200, "title": "Real", "depth": 0}]
    assert [r["url"] for r in result["requests"]] == ["http://example.com/next"]


def test_malformed_redirect_location_never_raises():
    result = handle({URL: (302, {"Location": "http://[oops/"}, b"")})
    assert result["outcome"] in ("done", "failed")
    assert result.get("requests", []) == []


def test_redirect_to_non_http_location_dropped():
    result = handle({URL: (302, {"Location": "mailto:x@example.com"}, b"")})
    assert result["outcome"] == "done"
    assert result["requests"] == []
    assert result["dropped"] == {"invalid_url": 1}
