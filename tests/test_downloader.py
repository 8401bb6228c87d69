"""The downloader against real misbehaving servers (tests/badserver.py) on 127.0.0.1.

Deadlines, size caps, truncation, the address guard, proxies, cookies, TLS, and decoding of
hostile pages. The memory bounds are measured in a child process (its VmHWM), since a
fetch that holds a whole bomb in memory shows up there and nowhere else.
"""
from __future__ import annotations

import gzip
import json
import socket
import subprocess
import sys
import time
import zlib

import pytest

from badserver import CP1251_PAGE, BadServer, bomb_bytes, self_signed
from crawler import GenericSpider, Request, Response, config
from crawler.http import guard as addresses
from crawler.http.body import ACCEPT_ENCODING, BROTLI
from crawler.http.fetcher import FetchConfig, Fetcher, FetchError
from crawler.spider.handler import Handler, Rules
from crawler.http.response import decode_body
from procs import REPO, base_env

MiB = 1 << 20


@pytest.fixture(scope="module")
def server():
    with BadServer() as s:
        yield s


def make_fetcher(trusted=("127.0.0.1",), **overrides) -> Fetcher:
    return Fetcher(FetchConfig.from_settings(dict(config.defaults(), **overrides), trusted))


def fetch_error(fetcher: Fetcher, url: str, **request_kwargs) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetcher.fetch(Request(url, **request_kwargs))
    return info.value


def timed_error(fetcher: Fetcher, url: str) -> tuple[FetchError, float]:
    start = time.monotonic()
    error = fetch_error(fetcher, url)
    return error, time.monotonic() - start


# -- the deadline ----------------------------------------------------------------------------

def test_trickled_body_times_out_at_the_deadline(server):
    error, took = timed_error(make_fetcher(DOWNLOAD_TIMEOUT=1.0), server.url("/trickle-body"))
    assert (error.reason, error.retryable) == ("timeout", True)
    assert 0.9 <= took < 1.5


def test_trickled_headers_time_out_at_the_deadline(server):
    # each header byte comes well within any one wait: only the total deadline stops this
    error, took = timed_error(make_fetcher(DOWNLOAD_TIMEOUT=0.5), server.url("/trickle-headers"))
    assert (error.reason, error.retryable) == ("timeout", True)
    assert took < 1.0


def test_silent_server_times_out(server):
    error, took = timed_error(make_fetcher(DOWNLOAD_TIMEOUT=0.5), server.url("/silent"))
    assert error.reason == "timeout"
    assert took < 1.0


def test_tls_handshake_that_never_completes_times_out():
    # a listening socket that never accepts: TCP connects, the ClientHello is never answered
    with socket.create_server(("127.0.0.1", 0)) as listener:
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/"
        error, took = timed_error(make_fetcher(DOWNLOAD_TIMEOUT=0.5), url)
    assert error.reason == "timeout"
    assert took < 1.0


@pytest.fixture()
def slow_dns(monkeypatch):
    """slow.test takes 3 s to resolve (to 127.0.0.1); every other name is looked up as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "slow.test":
            time.sleep(3)
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "requests"])
@pytest.mark.parametrize("trusted", [("slow.test",), ()], ids=["trusted", "guarded"])
def test_a_slow_name_lookup_times_out_at_the_deadline(server, slow_dns, fast, trusted):
    fetcher = make_fetcher(trusted=trusted, DOWNLOAD_TIMEOUT=0.5)
    fetcher.fast_path = fast
    error, took = timed_error(fetcher, server.url("/ok", host="slow.test"))
    assert (error.reason, error.retryable) == ("timeout", True)
    assert took < 2.0  # not the resolver's 3 s


def test_hung_lookups_hold_a_bounded_number_of_threads(monkeypatch):
    import threading
    release, real = threading.Event(), socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "hang.test":
            release.wait(30)
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    def lookups(name: str = "") -> int:
        return sum(t.name.startswith(f"resolve-{name}") for t in threading.enumerate())

    def hung() -> int:
        return lookups("hang.test")

    deadline = time.monotonic() + 5  # lookups of earlier tests hold slots until they end
    while lookups() and time.monotonic() < deadline:
        time.sleep(0.01)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        for _ in range(addresses.MAX_LOOKUPS + 8):
            with pytest.raises(TimeoutError):
                addresses.resolve("hang.test", 80, 0.02)
        assert hung() == addresses.MAX_LOOKUPS
    finally:
        release.set()
    deadline = time.monotonic() + 5
    while hung() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert addresses.resolve("hang.test", 80, 1.0) == ["127.0.0.1"]  # the slots are free


def test_deadline_also_cuts_a_reused_keep_alive_connection(server):
    fetcher = make_fetcher(DOWNLOAD_TIMEOUT=0.5)
    before = server.connections
    assert fetcher.fetch(Request(server.url("/ok"))).status == 200
    error, took = timed_error(fetcher, server.url("/trickle-headers"))
    assert error.reason == "timeout" and took < 1.0
    assert server.connections == before + 1  # the second request went over the first socket


def test_concurrent_fetches_leak_no_descriptors(server):
    """Many threads, each with its own session, some fetches cut at their deadline: every
    connection a fetch gave up is closed, and the idle ones when the fetcher closes."""
    import os
    import threading

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc/self/fd here")
    fetcher = make_fetcher(DOWNLOAD_TIMEOUT=0.3)
    outcomes: list[str] = []
    before = open_fds()

    def work(n: int) -> None:
        for i in range(12):
            path = "/trickle-headers" if (n + i) % 6 == 0 else "/ok"
            try:
                fetcher.fetch(Request(server.url(path)))
                outcomes.append("ok")
            except FetchError as exc:
                outcomes.append(exc.reason)
        fetcher.session.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(outcomes) == 72
    assert set(outcomes) == {"ok", "timeout"}
    assert outcomes.count("timeout") == 12
    fetcher.close()
    deadline = time.monotonic() + 3
    while open_fds() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds() <= before


def test_connection_refused_is_retryable():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    error = fetch_error(make_fetcher(), f"http://127.0.0.1:{port}/")
    assert (error.reason, error.retryable) == ("connection", True)


# -- sizes, truncation, decompression --------------------------------------------------------

def test_gzip_bomb_is_too_large(server):
    assert len(bomb_bytes(10)) < 20_000
    error = fetch_error(make_fetcher(DOWNLOAD_MAXSIZE=MiB), server.url("/gzip-bomb?mb=10"))
    assert (error.reason, error.retryable) == ("too_large", False)


def test_gzip_page_under_the_cap_is_decoded(server):
    body = make_fetcher(DOWNLOAD_MAXSIZE=MiB).fetch(Request(server.url("/gzip-bomb?mb=1"))).body
    assert body == bytes(MiB)


@pytest.mark.parametrize("mode", ["chunked", "close"])
def test_huge_body_without_content_length_is_too_large(server, mode):
    error = fetch_error(make_fetcher(), server.url(f"/huge?mb=50&mode={mode}"))
    assert error.reason == "too_large"


def test_content_length_over_cap_refused_before_reading(server):
    error = fetch_error(make_fetcher(), server.url("/huge?mb=50&mode=length"))
    assert error.reason == "too_large" and "Content-Length" in str(error)


@pytest.mark.parametrize("path", ["/short", "/short-chunked"])
def test_body_cut_short_is_truncated(server, path):
    error, took = timed_error(make_fetcher(), server.url(path))
    assert (error.reason, error.retryable) == ("truncated", True)
    assert took < 1.0


def test_accept_encoding_sent(server):
    headers = json.loads(make_fetcher().fetch(Request(server.url("/echo"))).body)["headers"]
    assert headers["Accept-Encoding"] == ACCEPT_ENCODING
    assert ("br" in ACCEPT_ENCODING) is BROTLI


def test_redirect_loop_is_returned_untouched(server):
    before = len(server.received)
    resp = make_fetcher().fetch(Request(server.url("/loop")))
    assert (resp.status, resp.headers["Location"], resp.body) == (302, "/loop", b"")
    assert len(server.received) == before + 1


# -- memory bounds, measured in a child process -----------------------------------------------

_CHILD = r"""
import json, sys
from crawler import Request, config
from crawler.http.fetcher import FetchConfig, Fetcher, FetchError

def hwm():  # peak resident set size so far, MiB
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

settings = dict(config.defaults(), **json.loads(sys.argv[1]))
fetcher = Fetcher(FetchConfig.from_settings(settings, ["127.0.0.1"]))
fetcher.fetch(Request(sys.argv[2] + "/ok"))
out = {"start": hwm()}
for path in sys.argv[3:]:
    try:
        response = fetcher.fetch(Request(sys.argv[2] + path))
        out[path] = {"size": len(response.body)}
        if path.startswith("/links"):
            out[path]["links"] = len(response.css("a::attr(href)").getall())
    except FetchError as exc:
        out[path] = {"reason": exc.reason}
    out[path]["peak"] = hwm()
print(json.dumps(out))
"""


def run_child(server, settings: dict, *paths: str) -> dict:
    if not open("/proc/self/status").read().count("VmHWM"):
        pytest.skip("no /proc/self/status VmHWM here")
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(settings),
                           server.url("").rstrip("/"), *paths], cwd=REPO, env=base_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_memory_stays_bounded_on_bomb_and_huge_bodies(server):
    bomb_bytes(200)  # 200 MiB of zeros in about 200 KB: plain requests peaks over 400 MiB
    out = run_child(server, {"DOWNLOAD_MAXSIZE": 10 * MiB},
                    "/gzip-bomb?mb=200", "/huge?mb=50&mode=chunked", "/huge?mb=50&mode=close")
    for path in ("/gzip-bomb?mb=200", "/huge?mb=50&mode=chunked", "/huge?mb=50&mode=close"):
        assert out[path]["reason"] == "too_large"
        assert out[path]["peak"] < 200, out
        assert out[path]["peak"] - out["start"] < 64, out  # cap 10 MiB: body + one copy + slack


def test_200k_links_page_parses_within_bounded_memory(server):
    out = run_child(server, {}, "/links?n=200000")["/links?n=200000"]
    assert out["links"] == 200_000
    assert out["size"] < 10 * MiB
    assert out["peak"] < 400, out  # lxml's tree: about 25 bytes per byte of this dense page


# -- the address guard -----------------------------------------------------------------------

def test_loopback_refused_when_host_not_trusted(server):
    before = server.connections
    error = fetch_error(make_fetcher(trusted=()), server.url("/ok"))
    assert (error.reason, error.retryable) == ("blocked_address", False)
    assert "127.0.0.1" in str(error)
    assert server.connections == before  # refused before connecting


def test_loopback_fetched_when_host_trusted(server):
    assert make_fetcher(trusted=("127.0.0.1",)).fetch(Request(server.url("/ok"))).status == 200


def test_loopback_fetched_when_guard_off(server):
    fetcher = make_fetcher(trusted=(), ADDRESS_GUARD=False)
    assert fetcher.fetch(Request(server.url("/ok"))).status == 200


def test_names_resolving_to_loopback_are_refused(server):
    error = fetch_error(make_fetcher(trusted=("127.0.0.1",)), server.url("/ok", host="localhost"))
    assert error.reason == "blocked_address"
    trusted = make_fetcher(trusted=("LocalHost.",))  # compared lowercased, without the dot
    assert trusted.fetch(Request(server.url("/ok", host="localhost"))).status == 200


def test_every_redirect_hop_is_checked(server):
    target = server.url("/ok", host="localhost")
    server.routes["/to-localhost"] = lambda ex: ex.respond("302 Found", b"",
                                                           headers={"Location": target})
    fetcher = make_fetcher(trusted=("127.0.0.1",))
    rules = Rules.from_settings(config.defaults(), [])
    result = Handler(GenericSpider(), fetcher, rules).handle(
        Request(server.url("/to-localhost")).to_task(0))
    assert [t["url"] for t in result["requests"]] == [target]
    hop = Handler(GenericSpider(), fetcher, rules).handle(result["requests"][0])
    assert (hop["outcome"], hop["reason"]) == ("failed", "blocked_address")


@pytest.fixture
def no_connections(monkeypatch):
    """Any attempt to open a TCP connection fails the test (and sends nothing): for tests
    whose fake DNS answers name addresses we must never contact."""
    attempts = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"tried to connect to {address}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_any_private_address_among_several_refuses_the_host(monkeypatch, no_connections):
    monkeypatch.setattr(addresses, "resolve", lambda host, port, timeout=None: ["8.8.8.8", "10.0.0.1"])
    error = fetch_error(make_fetcher(trusted=()), "http://mixed.test/")
    assert error.reason == "blocked_address" and "10.0.0.1" in str(error)
    assert no_connections == []


def test_connects_only_to_the_addresses_it_checked(server, monkeypatch):
    # pinned.test has no DNS entry: the fetch works only if the guard connects to its answer
    # instead of looking the name up again (which is what makes DNS rebinding possible)
    lookups = []

    def fake_resolve(host, port, timeout=None):
        lookups.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(addresses, "resolve", fake_resolve)
    monkeypatch.setattr(addresses, "refused", lambda found: [])  # let loopback pass, here only
    resp = make_fetcher(trusted=()).fetch(Request(server.url("/echo", host="pinned.test")))
    assert json.loads(resp.body)["headers"]["Host"] == f"pinned.test:{server.port}"
    assert lookups == ["pinned.test"]


def test_unresolvable_name_is_a_retryable_connection_error(monkeypatch):
    def fail(host, port, timeout=None):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(addresses, "resolve", fail)
    error = fetch_error(make_fetcher(trusted=()), "http://nowhere.test/")
    assert (error.reason, error.retryable) == ("connection", True)


@pytest.mark.parametrize("address", [
    "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "127.0.0.1",
    "127.8.9.10", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "240.0.0.1",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",
    "2002:7f00:1::", "64:ff9b::a00:1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:db8::1", "[::1]", "not-an-address", "",
])
def test_addresses_refused(address):
    assert addresses.is_public(address) is False


@pytest.mark.parametrize("address", [
    "8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700::", "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8", "64:ff9b::808:808", "[2606:4700::1111]",
])
def test_addresses_allowed(address):
    assert addresses.is_public(address) is True


def test_refused_lists_the_bad_ones_in_order():
    assert addresses.refused(["8.8.8.8", "10.0.0.1", "2606:4700::", "::1"]) == \
        ["10.0.0.1", "::1"]
    assert addresses.refused([]) == []


def test_trusted_host_comparison():
    assert addresses.is_trusted("Example.COM.", ["example.com"])
    assert addresses.is_trusted("[::1]", ["::1"])
    assert not addresses.is_trusted("sub.example.com", ["example.com"])


# -- proxies and cookies ---------------------------------------------------------------------

def test_http_proxy_setting_used_for_every_request(server):
    fetcher = make_fetcher(ADDRESS_GUARD=False, HTTP_PROXY=server.url("").rstrip("/"))
    echo = json.loads(fetcher.fetch(Request("http://example.invalid/echo")).body)
    assert echo["target"] == "http://example.invalid/echo"  # absolute form: sent to a proxy


def test_meta_proxy_wins_over_setting(server):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    fetcher = make_fetcher(ADDRESS_GUARD=False, HTTP_PROXY=dead)
    req = Request("http://example.invalid/echo", meta={"proxy": server.url("").rstrip("/")})
    assert json.loads(fetcher.fetch(req).body)["target"] == "http://example.invalid/echo"


def test_meta_proxy_none_means_direct(server):
    fetcher = make_fetcher(HTTP_PROXY="http://127.0.0.1:9")
    resp = fetcher.fetch(Request(server.url("/echo"), meta={"proxy": None}))
    assert json.loads(resp.body)["target"] == "/echo"


def test_proxy_refusing_connect_is_a_proxy_error(server):
    fetcher = make_fetcher(ADDRESS_GUARD=False, HTTP_PROXY=server.url("").rstrip("/"))
    error = fetch_error(fetcher, "https://example.invalid/")
    assert (error.reason, error.retryable) == ("proxy", True)
    assert server.received[-1].method == "CONNECT"


def test_guard_checks_the_target_before_a_proxy(server, monkeypatch):
    monkeypatch.setattr(addresses, "resolve", lambda host, port, timeout=None: ["192.168.0.10"])
    fetcher = make_fetcher(HTTP_PROXY=server.url("").rstrip("/"))
    before = len(server.received)
    error = fetch_error(fetcher, "http://intranet.test/")
    assert error.reason == "blocked_address"
    assert len(server.received) == before  # the proxy was never asked


def test_guard_refuses_names_it_cannot_resolve_before_a_proxy(monkeypatch):
    def fail(host, port, timeout=None):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(addresses, "resolve", fail)
    error = fetch_error(make_fetcher(HTTP_PROXY="http://127.0.0.1:9"), "http://only-proxy.test/")
    assert error.reason == "blocked_address" and "ADDRESS_GUARD" in str(error)


def cookie_header(fetcher: Fetcher, url: str) -> str | None:
    return json.loads(fetcher.fetch(Request(url)).body)["headers"].get("Cookie")


def test_cookies_kept_per_host(server):
    fetcher = make_fetcher(trusted=("127.0.0.1", "localhost"))
    fetcher.fetch(Request(server.url("/set-cookie?session=abc")))
    assert cookie_header(fetcher, server.url("/echo")) == "session=abc"
    assert cookie_header(fetcher, server.url("/echo", host="localhost")) is None


def test_cookies_off_keeps_none(server):
    fetcher = make_fetcher(COOKIES_ENABLED=False)
    fetcher.fetch(Request(server.url("/set-cookie?session=abc")))
    assert cookie_header(fetcher, server.url("/echo")) is None
    assert len(fetcher.session.cookies) == 0


# -- TLS -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    import ssl
    files = self_signed(str(tmp_path_factory.mktemp("tls")))
    if files is None:
        pytest.skip("no openssl command to make a certificate")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*files)
    with BadServer(tls=context) as s:
        yield s


def test_untrusted_certificate_is_a_tls_error(tls_server):
    error = fetch_error(make_fetcher(), tls_server.url("/ok"))
    assert (error.reason, error.retryable) == ("tls", False)
    assert "certificate" in str(error).lower()


# -- pages that are hard to decode or parse --------------------------------------------------

def test_windows_1251_declared_only_in_meta(server):
    resp = make_fetcher().fetch(Request(server.url("/cp1251-meta")))
    assert resp.headers["Content-Type"] == "text/html"
    assert resp.encoding == "cp1251"
    assert resp.text == CP1251_PAGE
    assert resp.css("title::text").get() == "Привет"
    assert resp.css("p.x::text").get().startswith("Съешь же ещё")


def test_nul_bytes_and_unclosed_tags(server):
    resp = make_fetcher().fetch(Request(server.url("/nul")))
    assert "\x00" in resp.text
    assert resp.css("a::attr(href)").getall() == ["/x"]
    assert len(resp.css("div.a")) == 2
    assert "one" in resp.css("div.a::text").get()
    assert resp.soup.find("a")["href"] == "/x"


def test_binary_body_is_not_html_and_text_is_safe(server):
    resp = make_fetcher().fetch(Request(server.url("/binary")))
    assert resp.is_html is False
    assert resp.text.startswith("\ufffdPNG")
    assert resp.encoding == "utf-8"  # no charset detector run on binary types


@pytest.mark.parametrize("content_type, body, encoding, expected", [
    # a charset name Python does not know: <meta> decides
    ("text/html; charset=no-such-charset",
     "<meta charset=windows-1251><p>привет</p>".encode("cp1251"), "cp1251", "привет"),
    # codecs that are no web encodings (they raise, or turn bytes into markup): ignored
    ("text/html; charset=rot13", b"<p>ok</p>", "utf-8", "<p>ok</p>"),
    ("text/html; charset=base64", b"<p>ok</p>", "utf-8", "<p>ok</p>"),
    ("text/html; charset=idna", b"<p>ok \xff</p>", "cp1252", "ok \xff"),
    ("text/html; charset=unicode_escape", b"<p>\\x3c</p>", "utf-8", "\\x3c"),
    ("text/html; charset=utf-7", b"<p>+ADw-</p>", "utf-8", "+ADw-"),
    ("text/html", b"<meta charset=rot13><p>ok</p>", "utf-8", "<p>ok</p>"),
    # a BOM cannot be wrong: it wins over the header, as in browsers
    ("text/html; charset=iso-8859-1", b"\xef\xbb\xbf<p>caf\xc3\xa9</p>", "utf-8", "café"),
    # <meta> claiming UTF-16 in a page readable as ASCII means UTF-8 (WHATWG)
    ("text/html", "<meta charset=utf-16><p>café</p>".encode(), "utf-8", "café"),
    # no declaration at all: valid UTF-8 is UTF-8, anything else is guessed
    (None, "<p>naïve</p>".encode(), "utf-8", "naïve"),
    ("text/html", ("<p>" + "Привет, как дела? Хорошо. " * 40 + "</p>").encode("cp1251"),
     "cp1251", "Привет, как дела?"),
    # declared UTF-8, bytes that are not: replaced, never raised
    ("text/html; charset=utf-8", b"<p>ok \xff\xfe end</p>", "utf-8", "ok \ufffd\ufffd end"),
])
def test_decode_body(content_type, body, encoding, expected):
    got_encoding, text = decode_body(content_type, body)
    assert got_encoding == encoding
    assert expected in text


def test_2mb_pages_decode_fast():
    utf8 = ("<p>" + "ünïcödé text " * 150_000 + "</p>").encode()
    cp1251 = ("<p>" + "Привет, как дела? " * 120_000 + "</p>").encode("cp1251")
    for body in (utf8, cp1251):
        assert len(body) > 2 * MiB
        start = time.monotonic()
        resp = Response("http://example.com/", 200, {"Content-Type": "text/html"}, body)
        assert len(resp.text) > MiB
        assert time.monotonic() - start < 1.0
    assert resp.encoding == "cp1251"


@pytest.mark.parametrize("content_type, body, html", [
    ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00", False),
    ("application/pdf", b"%PDF-1.7\n\xe2\xe3", False),
    ("application/octet-stream", bytes(range(256)), False),
    (None, b"%PDF-1.4\n", False),
    (None, b"\x89PNG\r\n\x1a\n", False),
    (None, b"<html>x</html>", True),
    (None, b"", True),
])
def test_non_html_bodies(content_type, body, html):
    headers = {} if content_type is None else {"Content-Type": content_type}
    resp = Response("http://example.com/f", 200, headers, body)
    assert resp.is_html is html
    assert isinstance(resp.text, str)
    resp.css("a")  # never raises either


# -- decompression ---------------------------------------------------------------------------

def encoded(server, body: bytes, encoding: str) -> str:
    """A URL of server that answers with body and this Content-Encoding."""
    path = f"/encoded-{len(server.routes)}"
    server.routes[path] = lambda ex: ex.respond("200 OK", body, headers={
        "Content-Encoding": encoding})
    return server.url(path)


@pytest.mark.parametrize("encoding, packed", [
    ("deflate", zlib.compress(b"<p>deflated</p>")),
    ("deflate", zlib.compress(b"<p>deflated</p>")[2:-4]),  # raw deflate, as some servers send
    ("gzip", gzip.compress(b"<p>deflated") + gzip.compress(b"</p>")),  # two gzip members
    ("gzip, gzip", gzip.compress(gzip.compress(b"<p>deflated</p>"))),
    ("x-gzip", gzip.compress(b"<p>deflated</p>")),
    ("identity", b"<p>deflated</p>"),
])
def test_content_encodings_decoded(server, encoding, packed):
    url = encoded(server, packed, encoding)
    assert make_fetcher().fetch(Request(url)).body == b"<p>deflated</p>"


def test_unknown_content_encoding_kept_as_sent(server):
    url = encoded(server, b"\x28\xb5\x2f\xfd...", "zstd-ish")
    assert make_fetcher().fetch(Request(url)).body == b"\x28\xb5\x2f\xfd..."


def test_corrupt_gzip_is_bad_encoding(server):
    url = encoded(server, b"\x1f\x8b\x08\x00garbage-not-deflate", "gzip")
    error = fetch_error(make_fetcher(), url)
    assert (error.reason, error.retryable) == ("bad_encoding", False)


def test_stacked_bomb_is_too_large(server):
    packed = gzip.compress(gzip.compress(bytes(20 * MiB)))
    assert len(packed) < 2000
    url = encoded(server, packed, "gzip, gzip")
    assert fetch_error(make_fetcher(DOWNLOAD_MAXSIZE=MiB), url).reason == "too_large"


def test_brotli_bounded_when_installed(server):
    brotli = pytest.importorskip("brotli")
    if not BROTLI:
        pytest.skip("this brotli cannot bound its output")
    url = encoded(server, brotli.compress(b"<p>br</p>"), "br")
    assert make_fetcher().fetch(Request(url)).body == b"<p>br</p>"
    url = encoded(server, brotli.compress(bytes(50 * MiB)), "br")
    assert fetch_error(make_fetcher(DOWNLOAD_MAXSIZE=MiB), url).reason == "too_large"
