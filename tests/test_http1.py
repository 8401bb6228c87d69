"""crawler.http.http1, the fast path's client for plain http:// GETs: framing, keep-alive, and the
responses servers get wrong, against tests/badserver.py. Where requests has an answer too,
both paths must give the same one."""
from __future__ import annotations

import socket

import pytest

from badserver import BadServer
from crawler import Request, config
from crawler.http import http1
from crawler.http.fetcher import FetchConfig, Fetcher, FetchError

BOTH = pytest.mark.parametrize("fast", [True, False], ids=["fast", "requests"])


def raw(data: bytes, keep: bool = True):
    """A behaviour that writes `data` as it is; `keep`: serve another request after it."""
    return lambda ex: ex.send(data) and keep


ROUTES = {
    "/chunked": raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"),
    "/http10": raw(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "/conn-close": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
    "/until-close": raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it", False),
    "/continue": raw(b"HTTP/1.1 100 Continue\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "/no-content": raw(b"HTTP/1.1 204 No Content\r\n\r\n"),
    "/headers": raw(b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n two\r\nX-Twice: 1\r\nX-Twice: 2\r\n"
                    b"Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/\r\n"
                    b"Content-Length: 0\r\n\r\n"),
    "/lf-only": raw(b"HTTP/1.1 200 OK\nContent-Length: 9\n\nab\r\n\r\ncd\n"),
    "/bad-status": raw(b"HTCPCP/1.0 418 I'm a teapot\r\n\r\n", False),
    "/empty-head": raw(b"\r\n\r\n", False),
    "/many-headers": raw(b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 150 + b"\r\n", False),
    "/bad-chunk": raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"),
    "/switching": raw(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
    "/two-lengths": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok", False),
    "/drop": lambda ex: False,  # closes the connection without a word
    "/then-close": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
}


@pytest.fixture()
def server():
    with BadServer() as s:
        s.routes.update(ROUTES)
        yield s


def make_fetcher(fast: bool = True, **overrides) -> Fetcher:
    fetcher = Fetcher(FetchConfig.from_settings(dict(config.defaults(), **overrides),
                                                ("127.0.0.1",)))
    fetcher.fast_path = fast
    return fetcher


def fetch(fetcher: Fetcher, server: BadServer, path: str):
    return fetcher.fetch(Request(server.url(path)))


def failure(fetcher: Fetcher, server: BadServer, path: str) -> tuple[str, bool]:
    with pytest.raises(FetchError) as info:
        fetch(fetcher, server, path)
    return info.value.reason, info.value.retryable


def test_plain_gets_reuse_one_connection(server):
    fetcher = make_fetcher()
    for path in ("/ok", "/chunked", "/no-content", "/continue", "/headers", "/ok"):
        fetch(fetcher, server, path)
    assert server.connections == 1


@BOTH
@pytest.mark.parametrize("path, body", [
    ("/chunked", b"hello world"), ("/http10", b"ok"), ("/conn-close", b"ok"),
    ("/until-close", b"all of it"), ("/continue", b"ok"), ("/no-content", b""),
    ("/lf-only", b"ab\r\n\r\ncd\n"),
])
def test_framing(server, fast, path, body):
    response = fetch(make_fetcher(fast), server, path)
    assert (response.status, response.body) == (204 if path == "/no-content" else 200, body)


@pytest.mark.parametrize("path", ["/http10", "/conn-close", "/until-close", "/switching"])
def test_connections_the_server_closes_are_not_reused(server, path):
    fetcher = make_fetcher()
    fetch(fetcher, server, path)
    fetch(fetcher, server, "/ok")
    assert server.connections == 2


def test_a_kept_connection_the_server_closed_is_replaced(server):
    fetcher = make_fetcher()
    fetch(fetcher, server, "/then-close")  # no "Connection: close", yet it closes
    assert fetch(fetcher, server, "/ok").status == 200
    assert server.connections == 2


def test_a_reused_connection_dropped_on_arrival_is_tried_once_more(server):
    fetcher = make_fetcher()
    fetch(fetcher, server, "/ok")
    assert failure(fetcher, server, "/drop") == ("connection", True)
    assert [r.path for r in server.received] == ["/ok", "/drop", "/drop"]
    assert server.connections == 2


@BOTH
def test_folded_repeated_headers_and_cookies(server, fast):
    fetcher = make_fetcher(fast)
    headers = fetch(fetcher, server, "/headers").headers
    assert (headers["x-folded"], headers["X-Twice"]) == ("one two", "1, 2")
    cookie = fetch(fetcher, server, "/echo").body
    assert b'"Cookie": "a=1; b=2"' in cookie or b'"Cookie": "b=2; a=1"' in cookie


@BOTH
@pytest.mark.parametrize("path", ["/bad-status", "/empty-head", "/many-headers"])
def test_broken_responses_fail_as_connection_errors(server, fast, path):
    assert failure(make_fetcher(fast), server, path) == ("connection", True)


@pytest.mark.parametrize("path", ["/two-lengths", "/bad-chunk"])
def test_bad_framing_fails(server, path):
    assert failure(make_fetcher(), server, path) == ("connection", True)


def test_idle_connections_per_thread_are_capped():
    servers = [BadServer().start() for _ in range(http1.MAX_IDLE + 2)]
    pool = http1.Pool()
    try:
        for s in servers:
            response = pool.get("127.0.0.1", s.port, "/ok", [], 5.0)
            while response.read1():
                pass
            response.close()
        assert len(pool._idle) == http1.MAX_IDLE
        assert all(isinstance(sock, socket.socket) for sock in pool._idle.values())
    finally:
        pool.close()
        for s in servers:
            s.close()
    assert pool._idle == {}
