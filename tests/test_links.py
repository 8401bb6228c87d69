"""LinkExtractor and Link: every argument, <base href>, XHTML, odd hrefs, nofollow, fragments,
text; and, when Scrapy is installed, the same links as Scrapy's LinkExtractor."""
from __future__ import annotations

import re

import pytest

from crawler import Link, LinkExtractor, Response, UsageError
from crawler.spider.links import IGNORED_EXTENSIONS, canonical

HTML = {"Content-Type": "text/html; charset=utf-8"}
PAGE = "http://example.com/dir/page.html"


def page(body: str, url: str = PAGE, headers=HTML) -> Response:
    return Response(url, 200, headers, body.encode("utf-8", "surrogatepass"))


def urls_of(body: str, url: str = PAGE, **kwargs) -> list[str]:
    return [link.url for link in LinkExtractor(**kwargs).extract_links(page(body, url))]


LINKS = """<html><body>
<div id="nav"><a href="/catalogue/page-2.html">next</a><a href="/about.html">about</a></div>
<div class="books"><a href="/book/1.html">one</a><a href="http://shop.example.com/book/2.html">two</a></div>
<a href="http://other.org/x.html">other</a>
</body></html>"""


def test_defaults_give_every_a_and_area_href_resolved_in_document_order():
    body = '<a href="a.html">a</a><map><area href="/b.html"></map><a href="c.html#top">c</a>' \
           '<link href="/style.html"><img src="/i.html"><a name="x">no href</a>'
    assert urls_of(body) == ["http://example.com/dir/a.html", "http://example.com/b.html",
                             "http://example.com/dir/c.html#top"]


def test_link_fields_text_fragment_nofollow():
    body = ('<a href="/a.html#part-2" rel="NoFollow noopener">  Part <b>two</b><!-- x -->\n</a>'
            '<a href="/b.html" rel="external,nofollow">b</a><a href="/c.html" rel="nofollowed">c</a>'
            '<area href="/d.html">')
    assert LinkExtractor().extract_links(page(body)) == [
        Link("http://example.com/a.html#part-2", "  Part two\n", "part-2", True),
        Link("http://example.com/b.html", "b", "", True),
        Link("http://example.com/c.html", "c", "", False),
        Link("http://example.com/d.html", "", "", False)]


def test_link_is_hashable_and_mutable_as_scrapys():
    link = Link("http://a/")
    assert link == Link("http://a/", "", "", False) and len({link, Link("http://a/")}) == 1
    link.url = "http://b/"
    assert link.url == "http://b/" and link != Link("http://a/")


def test_base_href_is_honoured_relative_and_absolute():
    body = '<head><base href="http://cdn.example.net/root/"></head><a href="x.html">x</a>' \
           '<a href="/y.html">y</a>'
    assert urls_of(body) == ["http://cdn.example.net/root/x.html", "http://cdn.example.net/y.html"]
    assert urls_of('<base href="/sub/"><a href="x.html">x</a>') == ["http://example.com/sub/x.html"]


def test_xhtml_page_starting_with_xml_declaration():
    body = ('<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 '
            'Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n<html xmlns='
            '"http://www.w3.org/1999/xhtml"><head><title>t</title><base href="/x/"/></head><body>'
            '<p><a href="a.html">A</a></p></body></html>')
    for headers in (HTML, {"Content-Type": "application/xhtml+xml"}, {}):
        response = page(body, headers=headers)
        assert [(l.url, l.text) for l in LinkExtractor().extract_links(response)] == \
            [("http://example.com/x/a.html", "A")], headers


def test_xhtml_served_as_xml_is_read_with_its_namespace():
    body = ('<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body>'
            '<a href="/a.html">A</a></body></html>')
    response = page(body, headers={"Content-Type": "application/xml"})
    assert response.is_xml
    assert [l.url for l in LinkExtractor().extract_links(response)] == ["http://example.com/a.html"]


def test_responses_that_are_not_html_or_xml_have_no_links():
    png = Response(PAGE, 200, {"Content-Type": "image/png"}, b"\x89PNG<a href='/x'>")
    assert LinkExtractor().extract_links(png) == []
    assert LinkExtractor().extract_links(page("")) == []


ODD = ["", " ", "#", "?", "#frag", "//", "http://", "https:///x", "http://[::1", "http://[zz]/",
       "http://a:99999/", "http://a:port/", "javascript:go('x')", "mailto:a@b.c", "tel:+1",
       "data:text/html,<a>", "ftp://x/y", "file:///etc/passwd", "\x00\x01", "%zz%", "http://%/",
       "http://ex ample.com/", "http://exa\u2603mple.com/", "http://xn--/", "/caf\u00e9 \u00fc",
       "http://a/b?q=\ud800", "\\\\server\\share", "http:\\\\a\\b", "x" * 100_000,
       "http://" + "a." * 200 + "com/", "  \t\n/spaced.html\n ", "HTTP://UPPER.example/Path"]


def test_odd_hrefs_never_raise_and_only_http_urls_come_out():
    body = "".join(f'<a href="{h.replace(chr(34), "&quot;")}">x</a>' for h in ODD) + \
        "<a href=>e</a><a href='\u200b'>z</a>"
    for kwargs in ({}, {"canonicalize": True}, {"allow_domains": "a"}, {"unique": False},
                   {"deny": "zz"}, {"restrict_css": "a"}):
        links = LinkExtractor(**kwargs).extract_links(page(body))
        assert links, kwargs
        assert all(l.url.startswith(("http://", "https://")) for l in links), kwargs
        assert all(re.fullmatch(r"[\x21-\x7e]+", l.url) for l in links), kwargs
    found = urls_of(body)
    assert "http://example.com/spaced.html" in found
    assert "http://upper.example/Path" in found
    assert "http://example.com/caf%C3%A9%20%C3%BC" in found
    assert not any(u.startswith("http://[") for u in found)


def test_allow_and_deny_are_regexes_searched_deny_wins():
    assert urls_of(LINKS, allow=r"/book/") == ["http://example.com/book/1.html",
                                              "http://shop.example.com/book/2.html"]
    assert urls_of(LINKS, allow=[r"page-\d", re.compile(r"ABOUT", re.I)]) == [
        "http://example.com/catalogue/page-2.html", "http://example.com/about.html"]
    assert urls_of(LINKS, allow=r"/book/", deny=r"shop\.") == ["http://example.com/book/1.html"]
    assert urls_of(LINKS, deny=[r"\.example\.com", r"other"]) == [
        "http://example.com/catalogue/page-2.html", "http://example.com/about.html",
        "http://example.com/book/1.html"]


def test_allow_domains_and_deny_domains_include_subdomains_and_ignore_ports():
    assert urls_of(LINKS, allow_domains="example.com") == [
        "http://example.com/catalogue/page-2.html", "http://example.com/about.html",
        "http://example.com/book/1.html", "http://shop.example.com/book/2.html"]
    assert urls_of(LINKS, allow_domains=["other.org"]) == ["http://other.org/x.html"]
    assert urls_of(LINKS, deny_domains=["shop.example.com", "OTHER.org"]) == [
        "http://example.com/catalogue/page-2.html", "http://example.com/about.html",
        "http://example.com/book/1.html"]
    assert urls_of('<a href="http://127.0.0.1:8000/a">a</a><a href="http://notexample.com/">n</a>',
                   allow_domains=["127.0.0.1", "example.com"]) == ["http://127.0.0.1:8000/a"]
    assert urls_of('<a href="http://xn--bcher-kva.de/a">a</a>', allow_domains="b\u00fccher.de") == \
        ["http://xn--bcher-kva.de/a"]


def test_restrict_xpaths_and_restrict_css_limit_to_regions():
    assert urls_of(LINKS, restrict_xpaths="//div[@id='nav']") == [
        "http://example.com/catalogue/page-2.html", "http://example.com/about.html"]
    assert urls_of(LINKS, restrict_css="div.books") == [
        "http://example.com/book/1.html", "http://shop.example.com/book/2.html"]
    both = urls_of(LINKS, restrict_xpaths=["//div[@class='books']"], restrict_css=["#nav"])
    assert both == ["http://example.com/book/1.html", "http://shop.example.com/book/2.html",
                    "http://example.com/catalogue/page-2.html", "http://example.com/about.html"]
    # an expression selecting the <a> itself, or attributes (not elements: ignored)
    assert urls_of(LINKS, restrict_xpaths="//a[text()='other'] | //a/@href") == [
        "http://other.org/x.html"]
    assert urls_of(LINKS, restrict_css="section") == []


def test_tags_and_attrs():
    body = '<img src="/i.html"><script src="/s.html"></script><a href="/a.html" data-x="/d.html">a</a>'
    assert urls_of(body, tags="img", attrs="src") == ["http://example.com/i.html"]
    assert urls_of(body, tags=["IMG", "script"], attrs=("src",)) == [
        "http://example.com/i.html", "http://example.com/s.html"]
    assert urls_of(body, attrs=["href", "data-x"]) == ["http://example.com/a.html",
                                                       "http://example.com/d.html"]


def test_unique_per_page_keeps_the_first_and_canonicalize_widens_it():
    body = '<a href="/a.html">1</a><a href="/a.html">2</a><a href="/a.html#x">3</a>' \
           '<a href="/q?b=2&a=1">4</a><a href="/q?a=1&b=2">5</a><a href="HTTP://EXAMPLE.com:80/a.html">6</a>'
    extractor = LinkExtractor()
    assert [(l.url, l.text) for l in extractor.extract_links(page(body))] == [
        ("http://example.com/a.html", "1"), ("http://example.com/a.html#x", "3"),
        ("http://example.com/q?b=2&a=1", "4"), ("http://example.com/q?a=1&b=2", "5"),
        ("http://example.com:80/a.html", "6")]
    assert [l.text for l in LinkExtractor(unique=False).extract_links(page(body))] == list("123456")
    canon = LinkExtractor(canonicalize=True).extract_links(page(body))
    assert [(l.url, l.text, l.fragment) for l in canon] == [
        ("http://example.com/a.html", "1", ""), ("http://example.com/q?a=1&b=2", "4", "")]
    again = LinkExtractor(canonicalize=True, unique=False).extract_links(page(body))
    assert [l.fragment for l in again] == ["", "", "x", "", "", ""]
    # each call is a page of its own
    assert len(extractor.extract_links(page(body))) == 5


def test_canonical_form():
    assert canonical("HTTP://Ex.COM:80/a/./b/../c?b=2&a=1&a=0&&#frag") == \
        "http://ex.com/a/c?a=0&a=1&b=2"
    assert canonical("http://b\u00fccher.de/%7euser/caf\u00e9?") == \
        "http://xn--bcher-kva.de/~user/caf%C3%A9"
    assert canonical("https://ex.com:443/?a-b=1&a=2") == "https://ex.com/?a=2&a-b=1"
    assert canonical("mailto:x@y") is None


def test_process_value_gets_the_absolute_url_may_change_it_or_drop_it():
    body = '<a href="javascript:goToPage(\'../other/page.html\'); return false">g</a>' \
           '<a href="/keep.html">k</a><a href="/drop.html">d</a>'
    seen = []

    def value(url: str) -> str | None:
        seen.append(url)
        found = re.search(r"javascript:goToPage\('(.*?)'", url)
        if found:
            return found.group(1)  # relative: resolved against the page
        return None if "drop" in url else url

    assert urls_of(body, process_value=value) == ["http://example.com/other/page.html",
                                                  "http://example.com/keep.html"]
    assert seen[1:] == ["http://example.com/keep.html", "http://example.com/drop.html"]


def test_deny_extensions_default_is_scrapys_list():
    assert len(IGNORED_EXTENSIONS) == 91 and {"pdf", "jpg", "zip", "tar.gz", "mp4", "docx",
                                              "webm", "7z", "apk", "css", "js"} <= set(IGNORED_EXTENSIONS)
    body = ('<a href="/f.PDF">p</a><a href="/f.tar.gz">t</a><a href="/f.jpg?x=1">j</a>'
            '<a href="/page.html?file=x.pdf">q</a><a href="/f.pdf#page=2">f</a>'
            '<a href="http://files.zip/">host</a><a href="/dir.zip/">dir</a><a href="/x.gz">gz</a>')
    assert urls_of(body) == ["http://example.com/page.html?file=x.pdf", "http://files.zip/",
                             "http://example.com/dir.zip/", "http://example.com/x.gz"]
    assert len(urls_of(body, deny_extensions=[])) == 8
    assert urls_of(body, deny_extensions=["gz", ".html"]) == [
        "http://example.com/f.PDF", "http://example.com/f.jpg?x=1", "http://example.com/f.pdf#page=2",
        "http://files.zip/", "http://example.com/dir.zip/"]


def test_restrict_text():
    assert urls_of(LINKS, restrict_text=[r"^o", "abo"]) == [
        "http://example.com/about.html", "http://example.com/book/1.html", "http://other.org/x.html"]


def test_matches_checks_regexes_and_domains():
    extractor = LinkExtractor(allow=r"/book/", deny_domains="shop.example.com")
    assert extractor.matches("http://example.com/book/1.pdf")
    assert not extractor.matches("http://shop.example.com/book/1.html")
    assert not extractor.matches("http://example.com/about.html")


@pytest.mark.parametrize("kwargs", [{"allow": "("}, {"deny": ["ok", "[z"]}, {"restrict_text": 3},
                                    {"restrict_xpaths": "//a["}, {"restrict_css": "a[["},
                                    {"process_value": "strip"}])
def test_bad_arguments_are_usage_errors(kwargs):
    with pytest.raises(UsageError, match="LinkExtractor"):
        LinkExtractor(**kwargs)


def test_one_extractor_serves_many_threads():
    from concurrent.futures import ThreadPoolExecutor
    extractor = LinkExtractor(restrict_xpaths="//div[@class='books']")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: [l.url for l in extractor.extract_links(page(LINKS))],
                                range(64)))
    assert results == [["http://example.com/book/1.html", "http://shop.example.com/book/2.html"]] * 64


# -- against Scrapy's, when installed (pip install -e '.[bench]') --------------------------------
REFERENCE = (LINKS + '<base href="/sub/"><a href="a.html#f" rel="nofollow"> A <i>b</i></a>'
             '<a href="a.html">dup</a><a href="x?b=2&a=1">q</a><a href=" /sp ace.html ">s</a>'
             '<a href="/caf\u00e9">c</a><a href="http://B\u00fccher.DE/x">i</a><a href="/f.pdf">p</a>'
             '<a href="/f.tar.gz">t</a><a href="/a|b{c}^">pipe</a><a href="http://[::1">bad</a><a href="">e</a><area href="/m">')


@pytest.mark.parametrize("kwargs", [{}, {"unique": False}, {"allow": "/book/|/sub/"},
                                    {"deny": "example"}, {"allow_domains": "example.com"},
                                    {"deny_domains": "shop.example.com"}, {"deny_extensions": []},
                                    {"restrict_css": ".books"}, {"restrict_xpaths": "//div"},
                                    {"restrict_text": "o"}, {"tags": "area"}])
def test_same_links_as_scrapys_link_extractor(kwargs):
    scrapy_le = pytest.importorskip("scrapy.linkextractors")
    from scrapy.http import HtmlResponse
    theirs = scrapy_le.LinkExtractor(**kwargs).extract_links(
        HtmlResponse(PAGE, body=REFERENCE.encode(), encoding="utf-8"))
    ours = LinkExtractor(**kwargs).extract_links(page(REFERENCE))
    assert [(l.url, l.text, l.nofollow) for l in ours] == \
        [(l.url, l.text, l.nofollow) for l in theirs]
