"""Link extraction as Scrapy's LinkExtractor: which links of a page to follow, as Link objects.

Works on the page's lxml tree directly (the one `response.selector` parsed): one walk over
the elements named in `tags`, hrefs resolved against `<base href>` with the fast join of
crawler.urls. Only http(s) links are kept; the filters run in Scrapy's order.
"""
from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

from lxml import etree
from w3lib.url import safe_url_string

from .. import urls
from ..errors import UsageError
from ..http.response import Response

# Scrapy's IGNORED_EXTENSIONS (the default deny_extensions): archives, images, audio, video,
# office documents, and other files that are not pages.
IGNORED_EXTENSIONS = [
    # archives
    "7z", "7zip", "bz2", "rar", "tar", "tar.gz", "xz", "zip",
    # images
    "mng", "pct", "bmp", "gif", "jpg", "jpeg", "png", "pst", "psp", "tif", "tiff", "ai",
    "drw", "dxf", "eps", "ps", "svg", "cdr", "ico", "webp",
    # audio
    "mp3", "wma", "ogg", "wav", "ra", "aac", "mid", "au", "aiff",
    # video
    "3gp", "asf", "asx", "avi", "mov", "mp4", "mpg", "qt", "rm", "swf", "wmv", "m4a", "m4v",
    "flv", "webm",
    # office suites
    "xls", "xlsm", "xlsx", "xltm", "xltx", "potm", "potx", "ppt", "pptm", "pptx", "pps",
    "doc", "docb", "docm", "docx", "dotm", "dotx", "odt", "ods", "odg", "odp",
    # other
    "css", "pdf", "exe", "bin", "rss", "dmg", "iso", "apk", "jar", "sh", "rb", "js", "hta",
    "bat", "cpl", "msi", "msp", "py",
]

_XHTML = "{http://www.w3.org/1999/xhtml}"  # tags of an XHTML page parsed as XML
_HTTP = ("http://", "https://")
_PATH = re.compile(r"[^:/?#]+://[^/?#]*([^?#]*)")
_NETLOC = re.compile(r"[^/?#]*")
# What needs w3lib's safe_url_string (non-ASCII, spaces, controls); the rest is kept as is.
_UNSENDABLE = re.compile(r"[^\x21-\x7e]")
_UNSAFE = re.compile(r"[^\x21-\x7e]|[\"<>\\^`{|}]")


@dataclass(slots=True, unsafe_hash=True)
class Link:
    """A link found on a page: absolute `url`, the anchor's `text`, the URL's `fragment`
    (after '#'), and `nofollow` (rel="nofollow"). Mutable, as Scrapy's, for process_links."""

    url: str
    text: str = ""
    fragment: str = ""
    nofollow: bool = False


class LinkExtractor:
    """Scrapy's LinkExtractor (LxmlLinkExtractor): `extract_links(response)` gives the
    Links of a page that pass the filters.

    allow / deny: regexes (one or a list) the absolute URL must / must not match (re.search;
    deny wins). allow_domains / deny_domains: hosts, subdomains included. restrict_xpaths /
    restrict_css: only links inside the elements these select. tags / attrs: where links are
    (default <a> and <area>, href). canonicalize: URLs in their canonical form (below).
    unique: each URL once per page. process_value(url): may change the absolute URL, or return
    None to drop the link. deny_extensions: path endings to drop (default IGNORED_EXTENSIONS;
    [] drops none). restrict_text: regexes the link text must match.
    """

    def __init__(self, allow: Any = (), deny: Any = (), allow_domains: Any = (),
                 deny_domains: Any = (), restrict_xpaths: Any = (), tags: Any = ("a", "area"),
                 attrs: Any = ("href",), canonicalize: bool = False, unique: bool = True,
                 process_value: Callable[[str], str | None] | None = None,
                 deny_extensions: Any = None, restrict_css: Any = (),
                 restrict_text: Any = ()) -> None:
        self.allow_res = _regexes(allow, "allow")
        self.deny_res = _regexes(deny, "deny")
        self.restrict_text = _regexes(restrict_text, "restrict_text")
        self.allow_domains = _domains(allow_domains)
        self.deny_domains = _domains(deny_domains)
        self.restrict_xpaths = tuple(_many(restrict_xpaths)) + \
            tuple(_css_to_xpath(css) for css in _many(restrict_css))
        for query in self.restrict_xpaths:
            _compiled(query)  # a bad expression is an error now, not on the first page
        tags = [t.lower() for t in _many(tags)]
        self.tags = tuple(tags) + tuple(_XHTML + t for t in tags)
        self.attrs = tuple(_many(attrs))
        self.canonicalize, self.unique = canonicalize, unique
        if process_value is not None and not callable(process_value):
            raise UsageError(f"LinkExtractor process_value {process_value!r} is not callable")
        self.process_value = process_value
        extensions = IGNORED_EXTENSIONS if deny_extensions is None else _many(deny_extensions)
        self.deny_extensions = tuple("." + e.lower().lstrip(".") for e in extensions)
        self._per_thread = threading.local()

    def extract_links(self, response: Response) -> list[Link]:
        """The page's links that pass the filters, in document order. Pages that are neither
        HTML nor XML have none; an href too malformed to use is skipped, never raised."""
        if not (response.is_html or response.is_xml):
            return []
        links: list[Link] = []
        for doc in self._docs(response.selector.root):
            for el in doc.iter(*self.tags):
                for attr in self.attrs:
                    href = el.get(attr)
                    if href is not None:
                        link = self._link(el, href, response)
                        if link is not None:
                            links.append(link)
        if not self.unique:
            return links
        first: dict[str, Link] = {}
        for link in links:
            first.setdefault(link.url, link)
        return list(first.values())

    def matches(self, url: str) -> bool:
        """True when a URL passes allow, deny, allow_domains and deny_domains."""
        if self.allow_res and not _matches(url, self.allow_res):
            return False
        if self.deny_res and _matches(url, self.deny_res):
            return False
        if self.allow_domains or self.deny_domains:
            host = _host(url)
            if self.allow_domains and not urls.in_domains(host, self.allow_domains):
                return False
            if self.deny_domains and urls.in_domains(host, self.deny_domains):
                return False
        return True

    def _docs(self, root: Any) -> Iterable[Any]:
        if not self.restrict_xpaths:
            return (root,)
        found = self._xpaths()
        return [el for xpath in found for el in xpath(root) if hasattr(el, "iter")]

    def _xpaths(self) -> list[etree.XPath]:
        # One compiled copy per fetcher thread: threads never share an evaluator.
        compiled = getattr(self._per_thread, "xpaths", None)
        if compiled is None:
            compiled = self._per_thread.xpaths = [_compiled(q) for q in self.restrict_xpaths]
        return compiled

    def _link(self, el: Any, href: str, response: Response) -> Link | None:
        url = response.urljoin(href)
        if self.process_value is not None:
            url = self.process_value(url)
            if url is None:
                return None
            url = response.urljoin(url)  # it may have returned a relative URL
        url = _safe(url, response)
        if url is None or not self.matches(url) or self._denied_extension(url):
            return None
        text = (el.text or "") if not len(el) else "".join(el.itertext())  # string(el)
        if self.restrict_text and not _matches(text, self.restrict_text):
            return None
        fragment = url.partition("#")[2]
        if self.canonicalize:
            url = canonical(url)
            if url is None:
                return None
        rel = el.get("rel")
        return Link(url, text, fragment,
                    rel is not None and "nofollow" in rel.lower().replace(",", " ").split())

    def _denied_extension(self, url: str) -> bool:
        if not self.deny_extensions:
            return False
        path = _PATH.match(url)
        return path is not None and path.group(1).lower().endswith(self.deny_extensions)


@functools.lru_cache(maxsize=1 << 14)
def canonical(url: str) -> str | None:
    """canonicalize=True's form (w3lib's canonicalize_url, by crawler.urls.normalize): scheme
    and host lowercased, IDN as punycode, default port and fragment dropped, dot segments
    resolved, percent-escapes made uniform, query parameters sorted by name then value.
    None when the URL is not a crawlable http(s) URL."""
    normalized = urls.normalize(url)
    if normalized is None or "?" not in normalized:
        return normalized
    head, _, query = normalized.partition("?")
    pairs = sorted((p for p in query.split("&") if p), key=lambda p: p.partition("=")[::2])
    return f"{head}?{'&'.join(pairs)}" if pairs else head


def _safe(url: str, response: Response) -> str | None:
    """An http(s) URL as Scrapy's links are (w3lib's safe_url_string: host lowercased, in
    punycode, non-ASCII and spaces percent-encoded), or None for any other scheme or a URL
    that cannot be made so. Most URLs need none of it, and are checked for that first."""
    if not url.startswith(_HTTP):  # urljoin lowercased the scheme of any it joined
        return None
    try:
        if "[" in url:
            urlsplit(url)  # an IPv6 host: raises when malformed (urljoin gave it back as is)
        if _UNSAFE.search(url) is not None:
            url = safe_url_string(url, encoding=response.encoding)
            # what it could not make safe (a space in the host) is no URL to follow
            return url if _UNSENDABLE.search(url) is None else None
        return url if url.islower() else _lower_host(url)
    except (ValueError, UnicodeError):
        return None


def _lower_host(url: str) -> str:
    start = url.index("://") + 3
    end = _NETLOC.match(url, start).end()
    return url[:start] + url[start:end].lower() + url[end:]


def _host(url: str) -> str:
    try:
        return urls.host_of(url)
    except ValueError:  # an unclosed IPv6 bracket and the like: matches no domain
        return ""


def _matches(text: str, regexes: tuple[re.Pattern, ...]) -> bool:
    return any(r.search(text) for r in regexes)


def _many(value: Any) -> list:
    """Scrapy's arg_to_iter: None is none, a string (or one regex) is one, else a list."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, re.Pattern)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def _regexes(value: Any, name: str) -> tuple[re.Pattern, ...]:
    try:
        return tuple(r if isinstance(r, re.Pattern) else re.compile(r) for r in _many(value))
    except (re.error, TypeError) as exc:
        raise UsageError(f"LinkExtractor {name}={value!r}: not a regular expression: "
                         f"{exc}") from None


def _domains(value: Any) -> frozenset[str]:
    names = (d.strip().lower().rstrip(".") for d in _many(value))
    return frozenset(urls.to_ascii_host(d) or d for d in names if d)


def _compiled(query: str) -> etree.XPath:
    try:
        return etree.XPath(query, smart_strings=False)
    except (etree.XPathSyntaxError, TypeError) as exc:
        raise UsageError(f"LinkExtractor restrict_xpaths {query!r}: {exc}") from None


def _css_to_xpath(css: str) -> str:
    from parsel.csstranslator import HTMLTranslator
    from cssselect import SelectorError
    try:
        return HTMLTranslator().css_to_xpath(css)
    except (SelectorError, TypeError) as exc:
        raise UsageError(f"LinkExtractor restrict_css {css!r}: {exc}") from None
