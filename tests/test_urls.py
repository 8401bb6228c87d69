"""Table tests of crawler.urls: normalize, canonical, fingerprint, host_of, in_domains."""
import pytest

from crawler import default_settings, urls
from crawler.urls import canonical, fingerprint, host_of, in_domains, normalize, remove_dot_segments

IGNORE = default_settings.FINGERPRINT_IGNORE_PARAMS


@pytest.mark.parametrize("raw, expected", [
    # scheme and host lowercased, path added
    ("HTTP://Example.COM/Path", "http://example.com/Path"),
    ("https://WWW.Example.org", "https://www.example.org/"),
    ("http://example.com", "http://example.com/"),
    # IDN -> punycode
    ("http://Bücher.example/", "http://xn--bcher-kva.example/"),
    ("https://münchen.de/straße", "https://xn--mnchen-3ya.de/stra%C3%9Fe"),
    # ports
    ("http://example.com:80/a", "http://example.com/a"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("http://example.com:8080/a", "http://example.com:8080/a"),
    ("https://example.com:80/a", "https://example.com:80/a"),
    ("http://example.com:443/a", "http://example.com:443/a"),
    ("http://example.com:/a", "http://example.com/a"),
    # trailing dot of the host
    ("http://example.com./a", "http://example.com/a"),
    # dot segments
    ("http://example.com/a/./b/../c", "http://example.com/a/c"),
    ("http://example.com/../../a", "http://example.com/a"),
    ("http://example.com/a/b/..", "http://example.com/a/"),
    ("http://example.com/a/.hidden", "http://example.com/a/.hidden"),
    # fragment removed
    ("http://example.com/p#section", "http://example.com/p"),
    ("http://example.com/p?x=1#frag", "http://example.com/p?x=1"),
    # percent-encoding made uniform
    ("http://example.com/%7euser", "http://example.com/~user"),
    ("http://example.com/%41%62%2d%5F", "http://example.com/Ab-_"),
    ("http://example.com/a%2fb", "http://example.com/a%2Fb"),
    ("http://example.com/?q=%3d%26", "http://example.com/?q=%3D%26"),
    ("http://example.com/100%", "http://example.com/100%25"),
    ("http://example.com/a%zzb", "http://example.com/a%25zzb"),
    ("http://example.com/a b", "http://example.com/a%20b"),
    ("http://example.com/café", "http://example.com/caf%C3%A9"),
    ("http://example.com/s?q=ä ö", "http://example.com/s?q=%C3%A4%20%C3%B6"),
    # query order kept
    ("http://example.com/p?b=2&a=1", "http://example.com/p?b=2&a=1"),
    # whitespace around hrefs stripped
    ("  http://example.com/x \n", "http://example.com/x"),
    ("\thttp://example.com/x\r\n", "http://example.com/x"),
    # IPv6 hosts
    ("http://[2001:DB8::1]/x", "http://[2001:db8::1]/x"),
    ("http://[::1]:8080/", "http://[::1]:8080/"),
    ("http://[::1]:80/", "http://[::1]/"),
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw", [
    "javascript:void(0)",
    "JavaScript:alert(1)",
    "mailto:someone@example.com",
    "tel:+15551234567",
    "data:text/html,<p>hi</p>",
    "ftp://example.com/file.txt",
    "file:///etc/passwd",
    "http://example.com:99999/",   # port out of range
    "http://example.com:8o/",      # port not a number
    "http://exa mple.com/",        # space in host
    "http:///path",                # empty host
    "http://:80/",                 # empty host with port
    "http://",
    "http://[::1/",                # unterminated IPv6 literal
    "",
    "   ",
    "/relative/without/base",
])
def test_normalize_rejects_uncrawlable(raw):
    assert normalize(raw) is None


@pytest.mark.parametrize("href, base, expected", [
    ("../x", "http://example.com/b/c/d", "http://example.com/b/x"),
    ("page2.html", "http://example.com/dir/page1.html", "http://example.com/dir/page2.html"),
    ("/abs", "http://example.com/dir/page", "http://example.com/abs"),
    ("?q=1", "http://example.com/p", "http://example.com/p?q=1"),
    ("//Other.ORG/p", "https://example.com/", "https://other.org/p"),
    ("  next.html  ", "http://example.com/a/", "http://example.com/a/next.html"),
    ("#top", "http://example.com/p", "http://example.com/p"),
    ("https://elsewhere.net/", "http://example.com/", "https://elsewhere.net/"),
    ("mailto:x@example.com", "http://example.com/", None),
])
def test_normalize_relative_with_base(href, base, expected):
    assert normalize(href, base=base) == expected


def test_normalize_malformed_href_with_base_returns_none():
    # An unterminated IPv6 literal must be dropped, not raise, also when joined to a base.
    assert normalize("http://[oops/", base="http://example.com/") is None


@pytest.mark.parametrize("url, expected", [
    ("http://example.com/p?b=2&a=1", "http://example.com/p?a=1&b=2"),
    ("http://example.com/p?z=1&utm_source=news&utm_medium=mail&a=2",
     "http://example.com/p?a=2&z=1"),
    ("http://example.com/p?utm_campaign=x", "http://example.com/p"),
    ("http://example.com/p?id=3&PHPSESSID=abc", "http://example.com/p?id=3"),
    ("http://example.com/p?sid=9&page=2", "http://example.com/p?page=2"),
    ("http://example.com/p?JSESSIONID=9&page=2", "http://example.com/p?page=2"),
    ("http://example.com/p;jsessionid=ABC123?x=1", "http://example.com/p?x=1"),
    ("http://example.com/cart;JSESSIONID=ABC/item", "http://example.com/cart/item"),
    ("http://example.com/p?a=1&&b=2", "http://example.com/p?a=1&b=2"),
    ("http://example.com/p", "http://example.com/p"),
])
def test_canonical_with_ignore_list(url, expected):
    assert canonical(url, IGNORE) == expected


def test_canonical_without_ignore_list_keeps_params_but_sorts():
    assert canonical("http://example.com/p?utm_source=x&b=1") == \
        "http://example.com/p?b=1&utm_source=x"


@pytest.mark.parametrize("a, b", [
    ("HTTP://Example.COM:80/a/../b#x", "http://example.com/b"),
    ("http://example.com/p?b=2&a=1", "http://example.com/p?a=1&b=2"),
    ("http://example.com/p?a=1&utm_source=feed", "http://example.com/p?a=1"),
    ("http://example.com/p;jsessionid=XYZ", "http://example.com/p"),
    ("http://example.com/%7Euser", "http://example.com/~user"),
    ("http://Bücher.example/", "http://xn--bcher-kva.example/"),
])
def test_fingerprint_equal_for_equivalent_urls(a, b):
    fa = fingerprint(normalize(a), ignore_params=IGNORE)
    fb = fingerprint(normalize(b), ignore_params=IGNORE)
    assert fa == fb
    assert isinstance(fa, bytes) and len(fa) == 16


@pytest.mark.parametrize("a, b", [
    ("http://example.com/a", "http://example.com/b"),
    ("http://example.com/p?a=1", "http://example.com/p?a=2"),
    ("http://example.com/p", "https://example.com/p"),
    ("http://example.com/p", "http://example.com:8080/p"),
])
def test_fingerprint_differs_for_different_urls(a, b):
    assert fingerprint(normalize(a)) != fingerprint(normalize(b))


def test_fingerprint_post_differs_from_get():
    url = "http://example.com/form"
    assert fingerprint(url, "POST") != fingerprint(url, "GET")
    assert fingerprint(url, "POST", b"a=1") != fingerprint(url, "GET", b"")


def test_fingerprint_post_bodies():
    url = "http://example.com/form"
    assert fingerprint(url, "POST", b"a=1") != fingerprint(url, "POST", b"a=2")
    assert fingerprint(url, "POST", b"a=1") == fingerprint(url, "POST", b"a=1")


@pytest.mark.parametrize("url, expected", [
    ("http://example.com/x", "example.com"),
    ("http://example.com:8080/x", "example.com"),
    ("https://sub.example.com/", "sub.example.com"),
    ("http://[::1]:8080/", "::1"),
    ("not a url", ""),
])
def test_host_of(url, expected):
    assert host_of(url) == expected


@pytest.mark.parametrize("host, domains, expected", [
    ("example.com", ["example.com"], True),
    ("sub.example.com", ["example.com"], True),
    ("a.b.example.com", ["example.com"], True),
    ("badexample.com", ["example.com"], False),
    ("example.com.evil.org", ["example.com"], False),
    ("example.org", ["example.com", "example.org"], True),
    ("example.com", [], False),
    ("h7.example.com", frozenset(f"h{i}.example.com" for i in range(200)), True),
    ("h7.example.com.evil.org", frozenset(f"h{i}.example.com" for i in range(200)), False),
    ("h200.example.com", frozenset(f"h{i}.example.com" for i in range(200)), False),
    ("127.0.0.1", {"127.0.0.1", "127.0.0.2"}, True),
    ("127.0.0.12", {"127.0.0.1"}, False),
])
def test_in_domains(host, domains, expected):
    assert in_domains(host, domains) is expected


@pytest.mark.parametrize("path, expected", [
    ("/a/b/c/./../../g", "/a/g"),
    ("mid/content=5/../6", "mid/6"),
    ("/a/b/..", "/a/"),
    ("/a/b/.", "/a/b/"),
    ("/..", "/"),
    ("/../a", "/a"),
    ("/./a", "/a"),
    ("/a//b/../c", "/a//c"),
    ("/no/dots", "/no/dots"),
    ("/a/..b/c", "/a/..b/c"),
])
def test_remove_dot_segments(path, expected):
    assert remove_dot_segments(path) == expected


# -- hosts as browsers send them (UTS #46, non-transitional) and odd URLs -------------------
@pytest.mark.parametrize("url, expected", [
    ("http://straße.de/", "http://xn--strae-oqa.de/"),          # not strasse.de
    ("http://faß.de/", "http://xn--fa-hia.de/"),
    ("http://BÜCHER.de/", "http://xn--bcher-kva.de/"),
    ("http://例え。テスト/パス", "http://xn--r8jz45g.xn--zckzah/%E3%83%91%E3%82%B9"),
    ("http://ａｂｃ.com/", "http://abc.com/"),                 # full-width letters mapped
    ("http://☃.net/", "http://xn--n3h.net/"),                  # valid in browsers, not IDNA2008
    ("http://foo_bar.straße.de/x", "http://foo_bar.xn--strae-oqa.de/x"),
    ("http://xn--strae-oqa.de/", "http://xn--strae-oqa.de/"),
    ("http://straße.de/ä ö?q=ü é#frag", "http://xn--strae-oqa.de/%C3%A4%20%C3%B6?q=%C3%BC%20%C3%A9"),
])
def test_idn_hosts_as_browsers_send_them(url, expected):
    assert normalize(url) == expected


@pytest.mark.parametrize("url", [
    "http://ex ample.com/", "http://exa%20mple.com/", "http://ü.de:99999/", "http://[::1/",
    "http://\udcff.de/", "http://a\x00b.de/", "http://" + "ü" * 300 + ".de/", "http:///path",
    "http://%/", "http://[]/", "http://.\u3002./", "http://\u0378.de/",
])
def test_odd_urls_never_raise(url):
    assert normalize(url) in (None, normalize(normalize(url) or "http://x.invalid/"))


def test_allowed_domains_compare_in_punycode():
    from crawler.config import defaults
    from crawler.spider.handler import Rules
    assert Rules.from_settings(defaults(), ["Straße.de"]).allowed_domains == {"xn--strae-oqa.de"}


def test_a_page_of_odd_links_is_parsed_and_the_bad_ones_counted():
    from test_fetcher import URL, handle
    odd = ["http://straße.de/ä", "/pfad mit leerzeichen", "?q=ü é", "#only-fragment",
           "http://ex ample.com/", "http://[::1/", "http://\udcff.de/", "javascript:void(0)",
           "http://%/", "//☃.net/x", "mailto:a@b.c", " http://abc.com/\t"]
    body = "".join(f'<a href="{h}">x</a>' for h in odd).encode("utf-8", "surrogatepass")
    result = handle({URL: (200, {"Content-Type": "text/html; charset=utf-8"}, body)})
    assert result["outcome"] == "done"
    assert [r["url"] for r in result["requests"]] == [
        "http://xn--strae-oqa.de/%C3%A4", "http://example.com/pfad%20mit%20leerzeichen",
        "http://example.com/page?q=%C3%BC%20%C3%A9", "http://example.com/page",
        "http://xn--n3h.net/x", "http://abc.com/"]
    assert result["dropped"] == {"invalid_url": 6}


# RFC 3986, section 5.4: every example, normal and abnormal, against its base.
RFC_BASE = "http://a/b/c/d;p?q"
RFC_EXAMPLES = {
    "g:h": "g:h", "g": "http://a/b/c/g", "./g": "http://a/b/c/g", "g/": "http://a/b/c/g/",
    "/g": "http://a/g", "//g": "http://g", "?y": "http://a/b/c/d;p?y",
    "g?y": "http://a/b/c/g?y", "#s": "http://a/b/c/d;p?q#s", "g#s": "http://a/b/c/g#s",
    "g?y#s": "http://a/b/c/g?y#s", ";x": "http://a/b/c/;x", "g;x": "http://a/b/c/g;x",
    "g;x?y#s": "http://a/b/c/g;x?y#s", "": "http://a/b/c/d;p?q", ".": "http://a/b/c/",
    "./": "http://a/b/c/", "..": "http://a/b/", "../": "http://a/b/", "../g": "http://a/b/g",
    "../..": "http://a/", "../../": "http://a/", "../../g": "http://a/g",
    "../../../g": "http://a/g", "../../../../g": "http://a/g", "/./g": "http://a/g",
    "/../g": "http://a/g", "g.": "http://a/b/c/g.", ".g": "http://a/b/c/.g",
    "g..": "http://a/b/c/g..", "..g": "http://a/b/c/..g", "./../g": "http://a/b/g",
    "./g/.": "http://a/b/c/g/", "g/./h": "http://a/b/c/g/h", "g/../h": "http://a/b/c/h",
    "g;x=1/./y": "http://a/b/c/g;x=1/y", "g;x=1/../y": "http://a/b/c/y",
    "g?y/./x": "http://a/b/c/g?y/./x", "g?y/../x": "http://a/b/c/g?y/../x",
    "g#s/./x": "http://a/b/c/g#s/./x", "g#s/../x": "http://a/b/c/g#s/../x",
}


@pytest.mark.parametrize("ref", list(RFC_EXAMPLES))
def test_links_resolve_as_rfc_3986_says(ref):
    assert urls.Joiner(RFC_BASE)(ref) == RFC_EXAMPLES[ref]
    assert urls.join(RFC_BASE, ref) == RFC_EXAMPLES[ref]


@pytest.mark.parametrize("base", ["http://h", "https://u:p@h:8080/a/b/", "http://[::1]:81/x?q#f"])
@pytest.mark.parametrize("ref", ["x", "../x?y#z", "/x/./y", "mailto:a@b", "javascript:x()",
                                 " x.html\t", "x\ny", "HTTP://O/p", "http:x", "//o/p", "?q", "#f"])
def test_links_resolve_as_urljoin_does_where_it_follows_the_rfc(base, ref):
    from urllib.parse import urljoin
    assert urls.normalize(urls.Joiner(base)(ref)) == urls.normalize(urljoin(base, ref.strip()))


def test_the_generic_spider_asks_once_for_each_target_of_a_page():
    from test_fetcher import URL, handle
    hrefs = ["a.html#one", "a.html#two", "a.html", "#top", "#bottom", "b.html?x=1#f",
             "b.html?x=1"]
    body = "".join(f'<a href="{h}">x</a>' for h in hrefs).encode()
    result = handle({URL: (200, {"Content-Type": "text/html"}, body)})
    assert [r["url"] for r in result["requests"]] == [
        "http://example.com/a.html", "http://example.com/page", "http://example.com/b.html?x=1"]
