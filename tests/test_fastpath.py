"""crawler.http.session: requests prepared without requests, indistinguishable from requests.

The URL rule is checked against what requests itself would send; the bytes on the wire
against a real requests.Session talking to the same server; every other check runs both
ways (Fetcher.fast_path True: the quick preparation, False: requests' own) against
tests/badserver.py, over the one transport.
"""
from __future__ import annotations

import gzip
import json
import socket

import pytest
import requests

from badserver import BadServer, bomb_bytes
from crawler import Request, config, urls
from crawler.http.body import ACCEPT_ENCODING
from crawler.http.session import where
from crawler.http.fetcher import FetchConfig, Fetcher, FetchError

BOTH = pytest.mark.parametrize("fast", [True, False], ids=["fast", "requests"])


@pytest.fixture(scope="module")
def server():
    with BadServer() as s:
        s.routes["/redirect-gzip"] = lambda ex: ex.respond(
            "301 Moved Permanently", gzip.compress(b"<p>moved</p>"),
            headers={"Location": "/ok", "Content-Encoding": "gzip"})
        s.routes["/redirect-bomb"] = lambda ex: ex.respond(
            "302 Found", bomb_bytes(50), headers={"Location": "/ok", "Content-Encoding": "gzip"})
        yield s


def make_fetcher(fast: bool, trusted=("127.0.0.1",), **overrides) -> Fetcher:
    fetcher = Fetcher(FetchConfig.from_settings(dict(config.defaults(), **overrides), trusted))
    fetcher.fast_path = fast
    return fetcher


def echo(fetcher: Fetcher, url: str) -> dict:
    return json.loads(fetcher.fetch(Request(url)).body)


def reason(fetcher: Fetcher, url: str) -> tuple[str, bool]:
    with pytest.raises(FetchError) as info:
        fetcher.fetch(Request(url))
    return info.value.reason, info.value.retryable


# -- which URLs: exactly those requests sends unchanged -----------------------------------------

SENT_AS_IS = [
    "http://example.com/", "https://example.com/a/b.html", "http://127.0.0.1:8080/x?y=1",
    "http://a_b.example.com/p;jsessionid=1?q=a%20b&r=%2F", "https://example.com/?a=b?c",
    "http://example.com/~user/it's(1)!*+,;=:@$&", "http://example.com.:81/",
    "http://example.com/%E2%82%AC", "http://example.com/.well-known/x",
]
REWRITTEN_OR_NOT_PLAIN = [
    "HTTP://example.com/", "http://Example.com/", "http://example.com", "http://example.com?x",
    "http://example.com/a#frag", "http://user:pw@example.com/", "http://[::1]/",
    "http://example.com/a b", "http://example.com/é", "http://example.com/%e2%82%ac",
    "http://example.com/%41", "http://example.com/%zz", "http://example.com/a/../b",
    "http://example.com/./b", "http://example.com/a/..", "http://example.com/x?",
    "http://example.com:99999/", "http://example.com:0/", " http://example.com/",
    "http://example.com/[x]", "http://example.com/{x}", "http://example.com/a|b",
    "ftp://example.com/", "http://.example.com/", "http://*.example.com/",
]


def as_requests_sends(url: str) -> tuple[str, str, str, int | None, str]:
    prepared = requests.Request("GET", url).prepare()
    parts = requests.utils.urlparse(prepared.url)
    return prepared.url, parts.scheme, parts.hostname, parts.port, prepared.path_url


@pytest.mark.parametrize("url", SENT_AS_IS)
def test_urls_requests_sends_unchanged_take_the_fast_path(url):
    scheme, host, port, target = where(url)
    assert as_requests_sends(url) == (url, scheme, host, port, target)


@pytest.mark.parametrize("url", REWRITTEN_OR_NOT_PLAIN)
def test_other_urls_go_through_requests(url):
    assert where(url) is None


def test_normalized_urls_take_the_fast_path_unchanged():
    links = ["/a/./b/../c", "HTTP://Ex.COM:80/%7euser/%2f?q=%e2%82%ac&x=a b", "/é?ü=1#f",
             "//cdn.example.org/x.js", "?page=2", "/p;sid=1/q", "http://xn--bcher-kva.de/",
             "https://example.com:8443/a%20b", "/a%zz", "/it's(1)!*+,;=:@$&"]
    for link in links:
        url = urls.normalize(link, "http://example.com/base/page")
        place = where(url)
        assert place is not None, url
        assert as_requests_sends(url) == (url, *place)


# -- what goes on the wire ---------------------------------------------------------------------

def test_same_request_line_and_headers_in_the_same_order(server):
    seen = []
    for fast in (True, False):
        fetcher = make_fetcher(fast, USER_AGENT="bot/1", DEFAULT_REQUEST_HEADERS={
            "Accept": "text/html", "Accept-Language": "en", "X-Extra": "1"})
        fetcher.fetch(Request(server.url("/set-cookie?sid=abc")))
        got = echo(fetcher, server.url("/echo?q=1"))
        seen.append((got["target"], list(got["headers"].items())))
    assert seen[0] == seen[1]
    assert ("Cookie", "sid=abc") in seen[0][1]


def wire(fetcher_or_session, url: str, **request) -> dict:
    """What the server received (/echo), sent by our fetcher or by a requests.Session."""
    if isinstance(fetcher_or_session, Fetcher):
        return json.loads(fetcher_or_session.fetch(Request(url, **request)).body)
    headers, body = request.get("headers"), request.get("body") or None
    response = fetcher_or_session.request(request.get("method", "GET"), url, headers=headers,
                                          data=body, allow_redirects=False)
    return response.json()


def requests_like(user_agent: str, default_headers: dict) -> requests.Session:
    """A requests.Session with the headers a fetcher sends for these settings (built as the
    fetcher used to build its requests.Session), and nothing from the environment."""
    session = requests.Session()
    session.trust_env = False
    session.headers.clear()
    session.headers["Accept-Encoding"] = ACCEPT_ENCODING
    session.headers.update(default_headers)
    session.headers["User-Agent"] = user_agent
    return session


REQUESTS = [
    {}, {"method": "POST", "body": b"a=1&b=2"}, {"method": "POST"}, {"method": "PUT"},
    {"method": "DELETE", "body": b"x"}, {"method": "HEAD_AS_GET"},
    {"headers": {"X-Own": "1", "accept": "a/b", "x-a": None}},
    {"headers": {"Accept-Encoding": None}},
    {"method": "POST", "headers": {"content-length": "99"}, "body": b"abc"},
    {"headers": {"Cookie": "own=1"}}, {"method": "GET", "body": b"body on a GET"},
    {"headers": {"X-First": "1", "host": "example.org:8080"}},
    {"path": "/echo?q=a b&r=\u00e9"}, {"path": "/echo?a=%7e&b=%41&c=%2F"},
]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "requests"])
@pytest.mark.parametrize("request_fields", REQUESTS, ids=lambda r: repr(r)[:40])
def test_the_bytes_sent_are_the_bytes_requests_sends(server, fast, request_fields):
    fields = dict(request_fields)
    path = fields.pop("path", "/echo")
    if fields.get("method") == "HEAD_AS_GET":  # HEAD gets no body back: GET with its rules
        fields["method"] = "GET"
    defaults = {"Accept": "text/html", "X-A": "1", "user-agent": "a default",
                "accept-encoding": "br"}
    fetcher = make_fetcher(fast, USER_AGENT="bot/2", DEFAULT_REQUEST_HEADERS=defaults)
    theirs = requests_like("bot/2", defaults)
    fetcher.fetch(Request(server.url("/set-cookie?sid=abc")))
    theirs.get(server.url("/set-cookie?sid=abc"))
    url = server.url(path)
    ours = wire(fetcher, url, **fields)
    assert (ours["method"], ours["target"], ours["fields"], ours["body"]) == \
        (lambda t: (t["method"], t["target"], t["fields"], t["body"]))(wire(theirs, url, **fields))
    own = request_fields.get("headers", {})
    expected = own.get("Cookie", None if "host" in own else "sid=abc")  # the jar goes by Host
    assert ours["headers"].get("Cookie") == expected


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "requests"])
def test_a_header_set_to_none_is_not_sent(server, fast):
    # the one difference: requests would send urllib3's own User-Agent instead of none
    got = wire(make_fetcher(fast), server.url("/echo"), headers={"User-Agent": None})
    assert "User-Agent" not in got["headers"]


def test_requests_preparation_only_for_what_it_must_rewrite(server, monkeypatch):
    fetcher = make_fetcher(True)
    calls = []
    original = requests.Session.prepare_request
    monkeypatch.setattr(requests.Session, "prepare_request",
                        lambda self, r: calls.append(r.url) or original(self, r))
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send",
                        lambda *a, **k: pytest.fail("requests' transport used"))
    fetcher.fetch(Request(server.url("/ok")))
    fetcher.fetch(Request(server.url("/echo"), method="POST", body=b"x"))
    fetcher.fetch(Request(server.url("/echo"), headers={"X-Own": "1"}))
    assert calls == []
    fetcher.fetch(Request(server.url("/echo?")))
    fetcher.fetch(Request(server.url("/echo"), headers={"X-Bytes": b"1"}))
    assert calls == [server.url("/echo?"), server.url("/echo")]


# -- the same outcomes both ways ---------------------------------------------------------------

@BOTH
def test_cookies_stored_sent_per_host_and_off(server, fast):
    fetcher = make_fetcher(fast, trusted=("127.0.0.1", "localhost"))
    fetcher.fetch(Request(server.url("/set-cookie?session=abc")))
    assert echo(fetcher, server.url("/echo"))["headers"].get("Cookie") == "session=abc"
    assert "Cookie" not in echo(fetcher, server.url("/echo", host="localhost"))["headers"]
    off = make_fetcher(fast, COOKIES_ENABLED=False)
    off.fetch(Request(server.url("/set-cookie?session=abc")))
    assert "Cookie" not in echo(off, server.url("/echo"))["headers"]


@BOTH
def test_redirect_bodies_are_read_under_the_caps(server, fast):
    fetcher = make_fetcher(fast, DOWNLOAD_MAXSIZE=1 << 20)
    resp = fetcher.fetch(Request(server.url("/redirect-gzip")))
    assert (resp.status, resp.headers["Location"], resp.body) == (301, "/ok", b"<p>moved</p>")
    assert reason(fetcher, server.url("/redirect-bomb")) == ("too_large", False)


@BOTH
@pytest.mark.parametrize("path, expected", [
    ("/trickle-body", ("timeout", True)), ("/trickle-headers", ("timeout", True)),
    ("/short", ("truncated", True)), ("/short-chunked", ("truncated", True)),
    ("/huge?mb=5&mode=chunked", ("too_large", False)),
    ("/huge?mb=5&mode=length", ("too_large", False)),
    ("/gzip-bomb?mb=5", ("too_large", False)),
])
def test_failures_have_the_same_reasons(server, fast, path, expected):
    fetcher = make_fetcher(fast, DOWNLOAD_TIMEOUT=0.5, DOWNLOAD_MAXSIZE=1 << 20)
    assert reason(fetcher, server.url(path)) == expected


@BOTH
def test_guard_and_refused_connections(server, fast):
    assert reason(make_fetcher(fast, trusted=()), server.url("/ok")) == \
        ("blocked_address", False)
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    assert reason(make_fetcher(fast), f"http://127.0.0.1:{port}/") == ("connection", True)


@BOTH
def test_deadline_cuts_a_reused_connection(server, fast):
    fetcher = make_fetcher(fast, DOWNLOAD_TIMEOUT=0.5)
    before = server.connections
    assert fetcher.fetch(Request(server.url("/ok"))).status == 200
    assert reason(fetcher, server.url("/trickle-headers")) == ("timeout", True)
    assert fetcher.fetch(Request(server.url("/ok"))).status == 200
    assert server.connections == before + 2  # the cut connection is not reused
