"""Response: a fetched page as the spider sees it (lives on the worker, never sent)."""
from __future__ import annotations

import codecs
import json
import logging
import re
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from w3lib.encoding import (html_body_declared_encoding, http_content_type_encoding, read_bom,
                            to_unicode)

from ..errors import CrawlerError
from .request import Request
from ..urls import Joiner, join

if TYPE_CHECKING:
    import parsel

log = logging.getLogger(__name__)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_SNIFF = 5000  # bytes looked at to tell HTML from XML when a body comes without a type
_REFRESH_HINTS = (b"efresh", b"EFRESH")  # cheap test before any parsing: most pages have none
_REFRESH_XPATH = "//meta[translate(@http-equiv, 'REFSH', 'refsh')='refresh']/@content"
# content="N", "N; url=...", "N;URL='...'", "N, ..." (as browsers read it)
_REFRESH_CONTENT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)[\d.]*\s*(?:[;,]\s*)?(?:url\s*=\s*)?(.*)",
                              re.I | re.S)
_XML_DECLARATION = re.compile(r"[\ufeff\s]*<\?xml[^>]*\?>")
_HTML_START = re.compile(rb"<(?:html|head|body|title|!doctype\s+html)[\s>]", re.I)


class _cached:
    """functools.cached_property without the lock it takes on each first access before
    Python 3.12 (four per page here); at worst two threads compute the same value."""

    def __init__(self, func: Any) -> None:
        self.func, self.name, self.__doc__ = func, func.__name__, func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value


class Response:
    """A downloaded page: status, headers, body, and Scrapy's selector API on top."""

    def __init__(self, url: str, status: int, headers: Mapping[str, str], body: bytes,
                 request: Request | None = None, depth: int = 0) -> None:
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body
        self.request = request or Request(url)
        self.depth = depth
        self.exchange = None  # the bytes on the wire, when the fetcher keeps them (WARC)

    def __repr__(self) -> str:
        return f"<{self.status} {self.url}>"

    @property
    def meta(self) -> dict[str, Any]:
        """The meta dict of the request that produced this response."""
        return self.request.meta

    @property
    def content_type(self) -> str:
        """The media type without parameters, lowercased ('' when absent)."""
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def is_html(self) -> bool:
        """True for HTML and XHTML bodies (parsed as HTML, whatever their first bytes), and
        for bodies served with no type that look like HTML or at least not like XML or a
        known binary format (PDF, images, archives)."""
        media = self.content_type
        if media:
            return media in _HTML_TYPES
        return not _looks_binary(self.body) and not self._sniffs_xml

    @property
    def is_xml(self) -> bool:
        """True for XML types (application/xml, text/xml, */*+xml but XHTML): sitemaps,
        feeds. Their selector parses XML, with namespaces, as Scrapy's XmlResponse."""
        media = self.content_type
        if media:
            return media.endswith(("/xml", "+xml")) and media not in _HTML_TYPES
        return self._sniffs_xml

    @_cached
    def _sniffs_xml(self) -> bool:
        # No type: an XML declaration makes it XML unless HTML markup follows (XHTML).
        head = self.body[:_SNIFF].lstrip(b"\xef\xbb\xbf \t\r\n")
        return head.startswith(b"<?xml") and _HTML_START.search(head) is None

    @_cached
    def _decoded(self) -> tuple[str, str]:
        return decode_body(self.headers.get("Content-Type"), self.body,
                           guess=self.is_html or _is_textual(self.content_type))

    @property
    def encoding(self) -> str:
        """Encoding used for .text: BOM, then header charset, then <meta>, then a guess."""
        return self._decoded[0]

    @property
    def text(self) -> str:
        """The body decoded; undecodable bytes become U+FFFD, never an exception."""
        return self._decoded[1]

    @_cached
    def selector(self) -> parsel.Selector:
        """A parsel Selector over the page (lxml underneath): HTML for every response but
        XML ones (is_xml). parsel alone would take an XHTML page's <?xml ...?> for XML."""
        import parsel  # here, not at the top: the master never parses, and starts faster
        return parsel.Selector(text=self.text, base_url=self.url,
                               type="xml" if self.is_xml else "html")

    def css(self, query: str) -> parsel.SelectorList:
        """Scrapy's response.css()."""
        return self.selector.css(query)

    def xpath(self, query: str, **kwargs: Any) -> parsel.SelectorList:
        """Scrapy's response.xpath()."""
        return self.selector.xpath(query, **kwargs)

    def json(self) -> Any:
        """The body as JSON (Scrapy's response.json()); ValueError when it is not JSON."""
        return json.loads(self.text)

    @_cached
    def soup(self):
        """The page as BeautifulSoup, parsed on first use: lxml's HTML parser (XHTML too),
        or its XML parser for XML responses."""
        from bs4 import BeautifulSoup
        if self.is_xml:
            return BeautifulSoup(self.text, "xml")
        # Without its <?xml ...?> (the HTML parser ignores it anyway): with it, bs4 warns that
        # XML is parsed as HTML, which for XHTML served as HTML is the right parser.
        text = self.text
        declaration = _XML_DECLARATION.match(text)
        return BeautifulSoup(text[declaration.end():] if declaration else text, "lxml")

    @_cached
    def base_url(self) -> str:
        """The URL relative links resolve against: <base href> if the page has one."""
        return join(self.url, base) if (base := self._base_href()) else self.url

    def _base_href(self) -> str:
        # string(//base/@href): the first <base> with an href, in document order (a walk
        # in C; the XPath would be compiled again on every page)
        if not self.is_html:
            return ""
        for base in self.selector.root.iter("base"):
            href = base.get("href")
            if href is not None:
                return href
        return ""

    @_cached
    def joiner(self) -> Joiner:
        """Resolves links against base_url (crawler.urls.Joiner)."""
        return Joiner(self.base_url)

    def meta_refresh(self) -> tuple[float, str] | None:
        """(delay in seconds, absolute URL) of the page's first <meta http-equiv="refresh">
        when it names a URL; None otherwise (and for malformed ones)."""
        if not self.is_html or not any(h in self.body for h in _REFRESH_HINTS):
            return None
        for content in self.selector.root.xpath(_REFRESH_XPATH)[:1]:
            found = parse_refresh(content)
            if found is not None:
                return found[0], self.urljoin(found[1])
        return None

    def urljoin(self, url: str) -> str:
        """Resolve a relative URL against this page (honouring <base href>)."""
        return self.joiner(url)

    def follow(self, url: Any, callback: Any = None, **kwargs: Any) -> Request:
        """A Request for a link: a URL string or an <a>/<link>/<area> selector."""
        return Request(self.urljoin(_href(url)), callback=callback, **kwargs)

    def follow_all(self, urls: Iterable[Any] | None = None, callback: Any = None,
                   css: str | None = None, xpath: str | None = None,
                   **kwargs: Any) -> Iterator[Request]:
        """Requests for many links, given as urls, or as a css or xpath query."""
        if sum(x is not None for x in (urls, css, xpath)) != 1:
            raise CrawlerError("follow_all() takes exactly one of urls, css, xpath")
        if urls is None:
            urls = self.css(css) if css is not None else self.xpath(xpath)
        for url in urls:
            href = _href(url, strict=False)
            if href:
                yield Request(self.urljoin(href), callback=callback, **kwargs)


def parse_refresh(content: str) -> tuple[float, str] | None:
    """(delay, URL as written) from a refresh content attribute, or None without a URL."""
    match = _REFRESH_CONTENT.match(content)
    if match is None:
        return None
    url = match.group(2).strip()
    if url[:1] in ("'", '"'):
        url = url[1:].split(url[0], 1)[0].strip()
    return (float(match.group(1)), url) if url else None


def _href(link: Any, strict: bool = True) -> str | None:
    if isinstance(link, str):
        return link
    parsel = sys.modules.get("parsel")  # not imported yet: no Selector exists
    if parsel is not None and isinstance(link, parsel.Selector):
        if isinstance(link.root, str):
            return link.root
        href = link.root.get("href") if hasattr(link.root, "get") else None
        if href is None and strict:
            raise CrawlerError(f"selector {link!r} has no href")
        return href
    raise CrawlerError(f"cannot follow {type(link).__name__}: give a URL or an <a> selector")


# -- decoding --------------------------------------------------------------------------------

# The encodings of the WHATWG Encoding Standard (what browsers decode), as Python codec names,
# plus UTF-32 (BOM only). A label naming anything else (rot13, base64, idna, unicode_escape,
# utf-7, ...) is ignored like an unknown one: such codecs raise on decode, or turn inert bytes
# into markup.
_WEB_ENCODINGS = frozenset(codecs.lookup(name).name for name in (
    "utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "cp866", "iso8859-2",
    "iso8859-3", "iso8859-4", "iso8859-5", "iso8859-6", "iso8859-7", "iso8859-8", "iso8859-10",
    "iso8859-13", "iso8859-14", "iso8859-15", "iso8859-16", "koi8-r", "koi8-u", "mac-roman",
    "mac-cyrillic", "cp874", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255",
    "cp1256", "cp1257", "cp1258", "gb18030", "gbk", "gb2312", "big5", "big5hkscs", "euc-jp",
    "iso2022-jp", "shift-jis", "cp932", "euc-kr", "cp949", "latin-1", "ascii",
))
_GUESS_SAMPLE = 32 * 1024  # bytes around the first non-UTF-8 byte given to the detector
_BINARY_MAGIC = (b"%PDF-", b"\x89PNG", b"GIF87a", b"GIF89a", b"\xff\xd8\xff", b"PK\x03\x04",
                 b"\x1f\x8b", b"RIFF", b"\x00\x00\x01\x00", b"OggS", b"\x7fELF",
                 b"wOFF", b"wOF2", b"7z\xbc\xaf")


@lru_cache(maxsize=64)
def _web_encoding(name: str | None) -> str | None:
    """The codec for an encoding label already resolved by w3lib, or None if not usable."""
    if not name:
        return None
    name = {"utf-16": "utf-16-le", "utf-32": "utf-32-le"}.get(name, name)
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return None
    return codec if codec in _WEB_ENCODINGS else None


def _looks_binary(body: bytes) -> bool:
    return body.startswith(_BINARY_MAGIC)


def _is_textual(media: str) -> bool:
    return (media.startswith("text/") or media.endswith(("+xml", "/xml", "/json", "+json"))
            or media in ("application/javascript", "application/ecmascript"))


def decode_body(content_type: str | None, body: bytes, guess: bool = True) -> tuple[str, str]:
    """(encoding, text) for a body; never raises, undecodable bytes become U+FFFD.

    Order: a byte order mark (it cannot be wrong, browsers let it win), then the
    Content-Type charset, then <meta charset> / http-equiv / <?xml encoding?> in the first
    4 KB, then (when guess) UTF-8 if the body is valid UTF-8, else a statistical guess
    (charset_normalizer) on a sample, else windows-1252. Without guess (binary types) the
    fallback is UTF-8 at once. Unknown labels and non-web codecs are skipped."""
    try:
        return _decode(content_type, body, guess)
    except Exception:  # a codec misbehaving must not break the spider
        log.debug("decoding failed, falling back to UTF-8", exc_info=True)
        return "utf-8", body.decode("utf-8", "replace")


def _decode(content_type: str | None, body: bytes, guess: bool) -> tuple[str, str]:
    bom_encoding, bom = read_bom(body)
    if bom_encoding is not None:
        return bom_encoding, to_unicode(body[len(bom):], bom_encoding)
    encoding = _web_encoding(http_content_type_encoding(content_type))
    if encoding is None:
        declared = _web_encoding(html_body_declared_encoding(body))
        if declared is not None and declared.startswith(("utf-16", "utf-32")):
            declared = "utf-8"  # a declaration readable as ASCII is not in UTF-16 (WHATWG)
        encoding = declared
    if encoding is not None:
        return encoding, to_unicode(body, encoding)
    try:
        return "utf-8", body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not guess:
            return "utf-8", body.decode("utf-8", "replace")
        start = max(0, exc.start - _GUESS_SAMPLE // 4)
        encoding = _guess(body[start:start + _GUESS_SAMPLE]) or "cp1252"
        return encoding, to_unicode(body, encoding)


def _guess(sample: bytes) -> str | None:
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - requests depends on it
        return None
    best = from_bytes(sample).best()
    encoding = _web_encoding(best.encoding) if best is not None else None
    return None if encoding in (None, "ascii", "utf-8") else encoding
