"""crawler.http.fetcher.Fetcher against a real server on 127.0.0.1 (tests/badserver.py), and
crawler.spider.handler.Handler with a stub fetcher.

The fetcher sends everything over its own transport, so nothing here mocks requests: each
case is a response written to a socket. Servers that trickle, bomb or cut the connection are
in test_downloader.py; the HTTP/1.1 framing in test_http1.py; TLS in test_tls.py.
"""
import gzip
import json
import socket

import pytest

from badserver import BadServer
from crawler import GenericSpider, Request, Response, Spider, config
from crawler.http.body import ACCEPT_ENCODING, BodyDecoder
from crawler.http.fetcher import FetchConfig, Fetcher, FetchError
from crawler.spider.handler import Handler, Rules
from crawler.urls import fingerprint

URL = "http://example.com/page"


@pytest.fixture(scope="module")
def server():
    with BadServer() as s:
        yield s


def make_fetcher(**overrides):
    return Fetcher(FetchConfig.from_settings(dict(config.defaults(), **overrides),
                                             ["127.0.0.1"], env={}))


def serve(server, path, body=b"", status="200 OK", **headers):
    """server answers path with this status, body and headers (names with _ for -)."""
    fields = {k.replace("_", "-"): v for k, v in headers.items()}
    server.routes[path] = lambda ex: ex.respond(status, body, fields.pop("Content-Type",
                                                                         "text/html"),
                                                fields)
    return server.url(path)


def serve_raw(server, path, data: bytes) -> str:
    """server writes data as it is, then closes the connection."""
    server.routes[path] = lambda ex: ex.send(data) and False
    return server.url(path)


def sent(fetcher, url, **request) -> dict:
    """What the server received for this request, as /echo shows it."""
    return json.loads(fetcher.fetch(Request(url, **request)).body)


def failure(fetcher, url, **request) -> tuple[str, bool]:
    with pytest.raises(FetchError) as info:
        fetcher.fetch(Request(url, **request))
    assert str(info.value).startswith(info.value.reason + ": ")
    return info.value.reason, info.value.retryable


# -- Fetcher ---------------------------------------------------------------------

def test_200_page(server):
    url = serve(server, "/page", b"<html>hi</html>", X_Served_By="test")
    req = Request(url, meta={"k": 1})
    resp = make_fetcher().fetch(req, depth=2)
    assert isinstance(resp, Response)
    assert (resp.url, resp.status, resp.body) == (url, 200, b"<html>hi</html>")
    assert resp.headers["x-served-by"] == "test"
    assert resp.content_type == "text/html"
    assert resp.request is req and resp.depth == 2 and resp.meta == {"k": 1}


def test_user_agent_and_default_headers_sent(server):
    fetcher = make_fetcher(USER_AGENT="testbot/9",
                           DEFAULT_REQUEST_HEADERS={"Accept": "text/html", "X-Default": "d"})
    headers = sent(fetcher, server.url("/echo"))["headers"]
    assert headers["User-Agent"] == "testbot/9"
    assert headers["Accept"] == "text/html"
    assert headers["X-Default"] == "d"


def test_request_headers_override_defaults(server):
    fetcher = make_fetcher(USER_AGENT="testbot/9", DEFAULT_REQUEST_HEADERS={"Accept": "a/b"})
    headers = sent(fetcher, server.url("/echo"), headers={
        "User-Agent": "special/1", "Accept": "c/d", "X-Own": "o"})["headers"]
    assert (headers["User-Agent"], headers["Accept"], headers["X-Own"]) == \
        ("special/1", "c/d", "o")


def test_post_body_sent(server):
    got = sent(make_fetcher(), server.url("/echo"), method="POST", body=b"a=1")
    assert (got["method"], got["body"], got["headers"]["Content-Length"]) == ("POST", "a=1", "3")


def test_redirect_not_followed(server):
    url = serve(server, "/moved", status="302 Found", Location="/elsewhere")
    before = len(server.received)
    resp = make_fetcher().fetch(Request(url))
    assert resp.status == 302
    assert resp.headers["Location"] == "/elsewhere"
    assert len(server.received) == before + 1


def test_content_length_over_maxsize(server):
    url = serve_raw(server, "/lying-length", b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
                    + b"x" * 10)
    assert failure(make_fetcher(DOWNLOAD_MAXSIZE=1000), url) == ("too_large", False)


def test_body_over_maxsize_without_content_length(server):
    url = serve_raw(server, "/no-length", b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 5000)
    assert failure(make_fetcher(DOWNLOAD_MAXSIZE=1000), url)[0] == "too_large"


def test_body_at_maxsize_is_fine(server):
    url = serve(server, "/thousand", b"x" * 1000)
    assert len(make_fetcher(DOWNLOAD_MAXSIZE=1000).fetch(Request(url)).body) == 1000


def test_decoded_size_counts_for_maxsize(server):
    packed = gzip.compress(b"0" * 50_000)
    assert len(packed) < 1000
    url = serve(server, "/packed", packed, Content_Encoding="gzip")
    assert failure(make_fetcher(DOWNLOAD_MAXSIZE=1000), url)[0] == "too_large"


def test_gzip_body_is_decoded(server):
    url = serve(server, "/zipped", gzip.compress(b"<p>zipped</p>"), Content_Encoding="gzip")
    assert make_fetcher().fetch(Request(url)).body == b"<p>zipped</p>"


def test_deadline_passed_while_reading(server):
    url = server.url("/trickle-body")
    assert failure(make_fetcher(DOWNLOAD_TIMEOUT=30.0), url,
                   meta={"download_timeout": 0.3}) == ("timeout", True)


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def test_transport_failures_are_classified(server):
    fetcher = make_fetcher(DOWNLOAD_TIMEOUT=0.5)
    assert failure(fetcher, f"http://127.0.0.1:{closed_port()}/") == ("connection", True)
    assert failure(fetcher, server.url("/silent")) == ("timeout", True)
    assert failure(fetcher, serve_raw(server, "/hang-up", b"")) == ("connection", True)
    assert failure(fetcher, server.url("/short")) == ("truncated", True)
    assert failure(fetcher, server.url("/echo"), meta={
        "proxy": f"http://127.0.0.1:{closed_port()}"}) == ("proxy", True)


@pytest.mark.parametrize("request_fields, reason", [
    ({"url": "http://[oops/"}, "invalid_url"),
    ({"url": "ftp://127.0.0.1/file"}, "invalid_url"),
    ({"url": "http:///nohost"}, "invalid_url"),
    ({"headers": {"X-Bad": "a\nb"}}, "invalid_request"),
    ({"headers": {"X-Number": 1}}, "invalid_request"),
    ({"headers": {"X-Euro": "\u20ac"}}, "invalid_request"),
    ({"method": "GET /x"}, "invalid_request"),
    ({"meta": {"proxy": "socks5://127.0.0.1:9"}}, "proxy"),
])
def test_requests_that_cannot_be_sent_fail_without_a_retry(server, request_fields, reason):
    fields = {"url": server.url("/echo"), **request_fields}
    before = len(server.received)
    assert failure(make_fetcher(), fields.pop("url"), **fields) == (reason, False)
    assert len(server.received) == before


def test_environment_proxies_and_ca_bundles_are_ignored(server, monkeypatch):
    with BadServer() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url("").rstrip("/"))
        monkeypatch.setenv("http_proxy", proxy.url("").rstrip("/"))
        monkeypatch.setenv("CURL_CA_BUNDLE", "/nonexistent/ca.pem")  # requests' own fallback
        assert sent(make_fetcher(), server.url("/echo"))["target"] == "/echo"
        assert proxy.received == []


def test_proxy_setting_and_meta_proxy_used(server):
    with BadServer() as other:
        fetcher = make_fetcher(HTTP_PROXY=server.url("").rstrip("/"), ADDRESS_GUARD=False)
        target = "http://example.invalid/echo"
        assert sent(fetcher, target)["target"] == target  # absolute form: to a proxy
        assert sent(fetcher, target, meta={"proxy": other.url("").rstrip("/")})["target"] == \
            target
        assert [r.target for r in other.received] == [target]
        assert sent(fetcher, server.url("/echo"), meta={"proxy": None})["target"] == "/echo"


def test_proxy_credentials_sent_to_the_proxy(server):
    proxy = server.url("").rstrip("/").replace("://", "://us%40er:p%3Ass@")
    fetcher = make_fetcher(HTTP_PROXY=proxy, ADDRESS_GUARD=False)
    headers = sent(fetcher, "http://example.invalid/echo")["headers"]
    assert headers["Proxy-Authorization"] == "Basic dXNAZXI6cDpzcw=="  # us@er:p:ss


def test_accept_encoding_default_and_override(server):
    fetcher = make_fetcher()
    assert sent(fetcher, server.url("/echo"))["headers"]["Accept-Encoding"] == ACCEPT_ENCODING
    assert sent(fetcher, server.url("/echo"), headers={"Accept-Encoding": "identity"})[
        "headers"]["Accept-Encoding"] == "identity"


def test_gzip_exactly_at_maxsize_is_fine(server):
    url = serve(server, "/z1000", gzip.compress(b"z" * 1000), Content_Encoding="gzip")
    assert make_fetcher(DOWNLOAD_MAXSIZE=1000).fetch(Request(url)).body == b"z" * 1000


def test_decoder_never_holds_more_than_the_cap():
    bomb = gzip.compress(bytes(50_000_000))
    decoder = BodyDecoder("gzip", 100_000)
    with pytest.raises(FetchError) as info:
        for i in range(0, len(bomb), 65536):
            decoder.feed(bomb[i:i + 65536])
    assert info.value.reason == "too_large"
    assert len(decoder.body) <= 100_001


def test_too_many_stacked_encodings_refused(server):
    url = serve(server, "/stacked", b"x", Content_Encoding="gzip, " * 5 + "gzip")
    assert failure(make_fetcher(), url) == ("bad_encoding", False)


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
    assert r.allowed_domains == {"example.com"}
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


def test_handler_with_real_fetcher(server):
    url = serve(server, "/real", b'<html><title>Real</title><a href="/next">n</a></html>')
    handler = Handler(GenericSpider(), make_fetcher(), rules(["127.0.0.1"]))
    result = handler.handle(task(url))
    assert result["items"] == [{"url": url, "status": 200, "title": "Real", "depth": 0}]
    assert [r["url"] for r in result["requests"]] == [server.url("/next")]


def test_malformed_redirect_location_never_raises():
    result = handle({URL: (302, {"Location": "http://[oops/"}, b"")})
    assert result["outcome"] in ("done", "failed")
    assert result.get("requests", []) == []


def test_redirect_to_non_http_location_dropped():
    result = handle({URL: (302, {"Location": "mailto:x@example.com"}, b"")})
    assert result["outcome"] == "done"
    assert result["requests"] == []
    assert result["dropped"] == {"invalid_url": 1}
