"""crawler.http.http1 and crawler.http.client, the transport: framing, keep-alive, RFC 9112's
rejections, and the responses servers get wrong, against tests/badserver.py. Every request
goes over it, whether prepared quickly or by requests (BOTH: the same answer either way)."""
from __future__ import annotations

import gzip
import resource
import socket
import threading

import pytest

from badserver import BadServer
from crawler import Request, config
from crawler.http import client
from crawler.http.deadline import Deadline
from crawler.http.guard import Guard
from crawler.http.idle import MAX_IDLE, IdleConnections
from crawler.http.tls import Tls
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
    # RFC 9112: Transfer-Encoding is a list; chunked counts only as the last coding
    "/te-not-chunked": raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: notchunked\r\n\r\n"
                           b"5\r\nhello", False),
    "/te-chunked-not-last": raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, x\r\n\r\n"
                                b"2\r\nok\r\n0\r\n\r\n", False),
    "/te-list": raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\nTransfer-Encoding: "
                    b"Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    # a transfer coding without chunked: read until close, whatever Content-Length says
    "/te-and-length": raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\nContent-Length: 2"
                          b"\r\n\r\nall of it", False),
    "/te-chunked-and-length": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    "/space-before-colon": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Bad : 1\r\n\r\nok",
                               False),
    "/not-a-token": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX(Bad): 1\r\n\r\nok", False),
    "/no-colon": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Bad\r\n\r\nok", False),
    "/fold-first": raw(b"HTTP/1.1 200 OK\r\n X-Folded: 1\r\nContent-Length: 2\r\n\r\nok",
                       False),
    "/status-99": raw(b"HTTP/1.1 099 Too Low\r\nContent-Length: 2\r\n\r\nok", False),
    "/status-000": raw(b"HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nok", False),
    "/http2-status": raw(b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False),
    "/bad-length": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2a\r\n\r\nok", False),
    "/no-reason": raw(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"),
    "/head": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
}


def chunked_with_size(size: bytes):
    return raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size +
               b"\r\nhello\r\n0\r\n\r\n", False)


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


def test_requests_reuse_one_connection(server):
    fetcher = make_fetcher()
    for path in ("/ok", "/chunked", "/no-content", "/continue", "/headers", "/ok"):
        fetch(fetcher, server, path)
    fetcher.fetch(Request(server.url("/echo"), method="POST", body=b"x"))
    fetcher.fetch(Request(server.url("/echo"), headers={"X-Own": "1"}))
    fetcher.fetch(Request(server.url("/echo?")))  # prepared by requests
    fetch(fetcher, server, "/te-list")
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


def test_threads_share_kept_connections(server):
    """A host's next request reuses its idle connection whichever thread sends it."""
    fetcher = make_fetcher()
    for path in ("/ok", "/chunked", "/ok"):
        thread = threading.Thread(target=fetch, args=(fetcher, server, path))
        thread.start()
        thread.join(10)
    assert len(server.received) == 3
    assert server.connections == 1


def test_a_closed_fetcher_keeps_no_connection(server):
    fetcher = make_fetcher()
    fetch(fetcher, server, "/ok")
    fetcher.close()  # closes the idle one, and each one given back from now on
    fetch(fetcher, server, "/ok")
    fetch(fetcher, server, "/ok")
    assert server.connections == 3


def test_idle_connections_are_capped_least_recent_first():
    servers = [BadServer().start() for _ in range(5)]
    idle = IdleConnections(cap=3)
    pool = client.Client(Guard(False), Tls(True), idle)
    try:
        for s in servers:
            out = client.Outgoing("GET", s.url("/ok"), "http", "127.0.0.1", s.port, "/ok", {},
                                  b"", f"127.0.0.1:{s.port}")
            response = pool.send(out, Deadline(5.0))
            while response.read1():
                pass
            response.close()
        assert len(idle) == 3
        kept = [idle.take(("http", "127.0.0.1", s.port)) for s in servers]
        assert [conn is not None for conn in kept] == [False, False, True, True, True]
        assert all(isinstance(conn.sock, socket.socket) for conn in kept[2:])
        for conn in kept[2:]:
            idle.put(conn)
    finally:
        pool.close()  # the pool was given: its connections are not this client's to close
        assert len(idle) == 3
        idle.close()
        for s in servers:
            s.close()
    assert len(idle) == 0
    assert [s.connections for s in servers] == [1] * len(servers)


def test_idle_connections_leave_most_file_descriptors_free():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))
    try:
        assert IdleConnections().cap == 50
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert IdleConnections().cap == min(MAX_IDLE, soft // 4)


# -- RFC 9112: what a response may not do ------------------------------------------------------

@pytest.mark.parametrize("path, body", [
    ("/te-not-chunked", b"5\r\nhello"),  # "chunked" inside another coding's name
    ("/te-and-length", b"all of it"),  # not chunked: until close, Content-Length ignored
    ("/te-chunked-and-length", b"ok"),  # chunked wins over Content-Length
    ("/te-list", b"ok"),  # the list spread over two fields, chunked last
    ("/no-reason", b"ok"),
])
def test_transfer_encoding_is_a_list(server, path, body):
    assert fetch(make_fetcher(), server, path).body == body


def test_transfer_codings_besides_chunked_are_decoded(server):
    packed = gzip.compress(b"<p>transfer-coded</p>")
    server.routes["/te-gzip-chunked"] = raw(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" +
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(packed), packed))
    server.routes["/te-gzip-close"] = raw(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: gzip\r\n\r\n" +
        gzip.compress(gzip.compress(b"<p>twice</p>")), False)
    fetcher = make_fetcher()
    assert fetch(fetcher, server, "/te-gzip-chunked").body == b"<p>transfer-coded</p>"
    assert fetch(fetcher, server, "/te-gzip-close").body == b"<p>twice</p>"


def test_a_response_with_both_framings_is_not_reused(server):
    fetcher = make_fetcher()
    fetch(fetcher, server, "/te-chunked-and-length")
    fetch(fetcher, server, "/ok")
    assert server.connections == 2


@BOTH
@pytest.mark.parametrize("path", [
    "/te-chunked-not-last", "/space-before-colon", "/not-a-token", "/no-colon", "/fold-first",
    "/status-99", "/status-000", "/http2-status", "/bad-length",
])
def test_malformed_responses_are_refused(server, fast, path):
    fetcher = make_fetcher(fast)
    with pytest.raises(FetchError) as info:
        fetch(fetcher, server, path)
    assert (info.value.reason, info.value.retryable) == ("connection", True)
    assert "malformed response" in str(info.value)


@pytest.mark.parametrize("size", [b"0x5", b"+5", b" 5", b"0_5", b"5 5", b"-5", b"g"])
def test_chunk_sizes_are_plain_hex(server, size):
    server.routes["/odd-chunk"] = chunked_with_size(size)
    assert failure(make_fetcher(), server, "/odd-chunk") == ("connection", True)


@pytest.mark.parametrize("size", [b"5", b"05", b"5;name=value", b"5 ;x", b"0000000000000005"])
def test_chunk_sizes_with_extensions_are_read(server, size):
    server.routes["/chunk"] = chunked_with_size(size)
    assert fetch(make_fetcher(), server, "/chunk").body == b"hello"


def test_a_head_response_has_no_body_whatever_its_length(server):
    fetcher = make_fetcher()
    response = fetcher.fetch(Request(server.url("/head"), method="HEAD"))
    assert (response.status, response.body, response.headers["Content-Length"]) == \
        (200, b"", "1000")
    fetch(fetcher, server, "/ok")
    assert server.connections == 1
