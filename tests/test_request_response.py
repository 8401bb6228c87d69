"""crawler.Request (wire form) and crawler.Response (decoding, selectors, links)."""
import pytest
from bs4 import BeautifulSoup

from crawler import CrawlerError, Request, Response, Spider
from crawler.urls import fingerprint

HTML = {"Content-Type": "text/html; charset=utf-8"}


def page(body, url="http://example.com/dir/page.html", headers=HTML, **kwargs):
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Response(url, 200, headers, body, **kwargs)


class BookSpider(Spider):
    name = "bookspider"

    def parse_book(self, response):
        return []


# -- Request -----------------------------------------------------------------

def test_bound_method_callback_keeps_only_its_name():
    req = Request("http://example.com/", callback=BookSpider().parse_book)
    assert req.callback == "parse_book"


def test_request_normalizes_method_and_body():
    req = Request("http://example.com/", method="post", body="a=é")
    assert req.method == "POST"
    assert req.body == "a=é".encode("utf-8")


def test_request_url_must_be_a_string():
    with pytest.raises(CrawlerError, match="string"):
        Request(b"http://example.com/")


def test_to_task_minimal_holds_only_url_fp_host_depth():
    task = Request("HTTP://Example.COM:80/a/./b#frag").to_task(3)
    assert task == {"url": "http://example.com/a/b", "depth": 3, "host": "example.com",
                    "fp": fingerprint("http://example.com/a/b")}


def test_to_task_includes_non_default_fields():
    req = Request("http://example.com/form", callback="parse_form", method="POST",
                  headers={"X-Token": "1"}, body=b"q=1", meta={"page": 2}, priority=5,
                  dont_filter=True)
    task = req.to_task(1)
    assert task == {
        "url": "http://example.com/form", "depth": 1, "host": "example.com",
        "fp": fingerprint("http://example.com/form", "POST", b"q=1"),
        "callback": "parse_form", "method": "POST", "headers": {"X-Token": "1"},
        "body": b"q=1", "meta": {"page": 2}, "priority": 5, "dont_filter": True,
    }


def test_to_task_fingerprint_uses_ignore_params():
    a = Request("http://example.com/p?utm_source=x&id=1").to_task(0, ["utm_source"])
    b = Request("http://example.com/p?id=1").to_task(0, ["utm_source"])
    assert a["url"] == "http://example.com/p?utm_source=x&id=1"
    assert a["fp"] == b["fp"]


@pytest.mark.parametrize("url", ["mailto:me@example.com", "javascript:void(0)",
                                 "ftp://example.com/f", "http://example.com:99999/"])
def test_to_task_of_non_crawlable_url_is_none(url):
    assert Request(url).to_task(0) is None


def test_from_task_round_trip():
    req = Request("http://example.com/form", callback="parse_form", method="POST",
                  headers={"X-Token": "1"}, body=b"q=1", meta={"page": 2}, priority=5)
    assert Request.from_task(req.to_task(4)) == req


def test_from_task_round_trip_keeps_dont_filter():
    req = Request("http://example.com/again", dont_filter=True)
    assert Request.from_task(req.to_task(0)).dont_filter is True


def test_from_task_round_trip_of_defaults():
    req = Request.from_task(Request("http://example.com/x").to_task(0))
    assert req == Request("http://example.com/x")


# -- Response: decoding ----------------------------------------------------------

def test_text_charset_from_header():
    r = page("<p>привет</p>".encode("cp1251"),
             headers={"Content-Type": "text/html; charset=windows-1251"})
    assert r.text == "<p>привет</p>"
    assert r.encoding == "cp1251"


def test_text_utf8_bom_without_header_charset():
    r = page(b"\xef\xbb\xbf<p>caf\xc3\xa9</p>", headers={"Content-Type": "text/html"})
    assert r.text == "<p>café</p>"
    assert r.encoding == "utf-8"


def test_text_meta_charset_only_in_body():
    html = "<html><head><meta charset=windows-1251></head><body>привет</body></html>"
    r = page(html.encode("cp1251"), headers={"Content-Type": "text/html"})
    assert "привет" in r.text
    assert r.encoding == "cp1251"


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8",
                                          "text/html; charset=no-such-charset", "text/html"])
def test_undecodable_bytes_never_raise(content_type):
    r = page(b"<p>ok \xff\xfe\xc3 end</p>", headers={"Content-Type": content_type})
    text = r.text
    assert text.startswith("<p>ok ") and text.endswith(" end</p>")


# -- Response: selectors ----------------------------------------------------------

def test_css_and_xpath():
    r = page("<html><body><h1>Title</h1><p class='price'>3.50</p><p>x</p></body></html>")
    assert r.css("h1::text").get() == "Title"
    assert r.css("p.price::text").getall() == ["3.50"]
    assert r.xpath("//p/text()").getall() == ["3.50", "x"]


def test_soup_is_beautifulsoup_created_lazily():
    r = page("<html><head><title>T</title></head><body></body></html>")
    assert "soup" not in r.__dict__
    soup = r.soup
    assert isinstance(soup, BeautifulSoup)
    assert soup.title.string == "T"
    assert r.soup is soup


def test_soup_decodes_with_response_encoding():
    r = page("<html><body><p>привет</p></body></html>".encode("cp1251"),
             headers={"Content-Type": "text/html; charset=windows-1251"})
    assert r.soup.p.string == "привет"


# -- Response: links ----------------------------------------------------------------

def test_urljoin_relative_to_page():
    r = page("<html><body></body></html>")
    assert r.urljoin("other.html") == "http://example.com/dir/other.html"
    assert r.urljoin("  /top ") == "http://example.com/top"


def test_urljoin_honours_base_href():
    r = page("<html><head><base href='http://cdn.example.net/root/'></head></html>")
    assert r.urljoin("x.html") == "http://cdn.example.net/root/x.html"


def test_urljoin_honours_relative_base_href():
    r = page("<html><head><base href='/other/'></head></html>")
    assert r.urljoin("x.html") == "http://example.com/other/x.html"


def test_urljoin_ignores_base_in_non_html():
    r = page("<base href='http://cdn.example.net/'>", headers={"Content-Type": "text/plain"})
    assert r.urljoin("x.html") == "http://example.com/dir/x.html"


def test_follow_string():
    r = page("<html></html>")
    req = r.follow("next.html", callback="parse_next", meta={"k": 1}, priority=3)
    assert req == Request("http://example.com/dir/next.html", callback="parse_next",
                          meta={"k": 1}, priority=3)


def test_follow_a_selector_and_href_selector():
    r = page("<html><body><a class='n' href='/n2'>next</a></body></html>")
    assert r.follow(r.css("a.n")[0]).url == "http://example.com/n2"
    assert r.follow(r.css("a.n::attr(href)")[0]).url == "http://example.com/n2"


def test_follow_rejects_other_objects():
    with pytest.raises(CrawlerError):
        page("<html></html>").follow(42)


LINKS = """<html><body>
<a class="book" href="b1.html">1</a>
<a class="book" href=" /b2.html ">2</a>
<a class="other" href="http://elsewhere.org/">x</a>
</body></html>"""


def test_follow_all_css():
    reqs = list(page(LINKS).follow_all(css="a.book", callback="parse_book"))
    assert [r.url for r in reqs] == ["http://example.com/dir/b1.html", "http://example.com/b2.html"]
    assert all(r.callback == "parse_book" for r in reqs)


def test_follow_all_xpath_href():
    reqs = list(page(LINKS).follow_all(xpath="//a/@href"))
    assert [r.url for r in reqs] == ["http://example.com/dir/b1.html",
                                     "http://example.com/b2.html", "http://elsewhere.org/"]


def test_follow_all_urls():
    reqs = list(page(LINKS).follow_all(["a", "/b"], meta={"m": 1}))
    assert [(r.url, r.meta) for r in reqs] == [("http://example.com/dir/a", {"m": 1}),
                                              ("http://example.com/b", {"m": 1})]


def test_follow_all_css_skips_anchors_without_href():
    r = page("<html><body><a name='top'>top</a><a href='/x'>x</a></body></html>")
    assert [req.url for req in r.follow_all(css="a")] == ["http://example.com/x"]


@pytest.mark.parametrize("kwargs", [{}, {"urls": ["a"], "css": "a"},
                                    {"css": "a", "xpath": "//a/@href"},
                                    {"urls": ["a"], "xpath": "//a/@href"}])
def test_follow_all_needs_exactly_one_source(kwargs):
    with pytest.raises(CrawlerError, match="exactly one"):
        list(page(LINKS).follow_all(**kwargs))


def test_meta_carried_from_request():
    req = Request("http://example.com/", meta={"page": 7})
    r = Response("http://example.com/", 200, HTML, b"", request=req, depth=2)
    assert r.meta == {"page": 7}
    assert r.meta is req.meta
    assert r.depth == 2


def test_meta_defaults_to_empty_request():
    r = Response("http://example.com/", 200, {}, b"")
    assert r.meta == {}
    assert r.request.url == "http://example.com/"


@pytest.mark.parametrize("content_type, media, html", [
    ("text/html; charset=utf-8", "text/html", True),
    ("Text/HTML", "text/html", True),
    ("application/xhtml+xml", "application/xhtml+xml", True),
    (None, "", True),
    ("application/json", "application/json", False),
    ("image/png", "image/png", False),
    ("text/plain; charset=utf-8", "text/plain", False),
])
def test_content_type_and_is_html(content_type, media, html):
    headers = {} if content_type is None else {"Content-Type": content_type}
    r = Response("http://example.com/", 200, headers, b"")
    assert r.content_type == media
    assert r.is_html is html


# -- JSON ----------------------------------------------------------------------
def test_json_request_posts_its_data_as_json_with_json_headers():
    from crawler import JsonRequest
    request = JsonRequest("http://example.com/api", data={"q": "b", "n": [1]},
                          dumps_kwargs={"sort_keys": True})
    assert (request.method, request.body) == ("POST", b'{"n": [1], "q": "b"}')
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"].startswith("application/json")


def test_json_request_without_data_is_a_get_and_headers_given_win_whatever_their_case():
    from crawler import JsonRequest
    request = JsonRequest("http://example.com/api", headers={"accept": "text/plain"})
    assert (request.method, request.body) == ("GET", b"")
    assert request.headers == {"Content-Type": "application/json", "accept": "text/plain"}
    put = JsonRequest("http://example.com/api", data=[1], method="put")
    assert (put.method, put.body) == ("PUT", b"[1]")


def test_response_json_parses_the_body_and_raises_on_other_text():
    assert page('{"a": [1, "é"]}', headers={"Content-Type": "application/json"}).json() == \
        {"a": [1, "é"]}
    with pytest.raises(ValueError):
        page("<html>not json</html>").json()
