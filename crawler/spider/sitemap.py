"""Sitemaps (sitemaps.org): reading them safely, and the sitemap callback spiders mix in.

A sitemap is read on the worker, as a page: its request carries meta["download_maxsize"] =
SITEMAP_MAXSIZE, so the fetcher caps it (and decodes any Content-Encoding) at the protocol's
50 MB instead of DOWNLOAD_MAXSIZE. A gzip file (`.xml.gz`, found by its magic bytes) is
uncompressed here under the same cap, step by step (crawler.http.bodies), so a bomb fails
as too_large. XML is parsed incrementally with lxml, without entities, DTDs, network or
huge-tree mode, and without recovery: malformed XML fails the sitemap as sitemap_invalid.
"""
from __future__ import annotations

import io
import itertools
import logging
import re
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

from lxml import etree
from protego import Protego

from .. import default_settings, urls
from ..errors import PageError, UsageError
from ..http.bodies import BodyDecoder
from ..http.failures import FetchError
from ..http.request import Request
from ..http.response import Response

log = logging.getLogger(__name__)

LASTMOD = "lastmod"  # the Request.meta key holding a sitemap entry's <lastmod>
INVALID = "sitemap_invalid"  # the failure reason of a sitemap that cannot be read
KINDS = ("urlset", "sitemapindex")
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_PIECE = 4096  # compressed bytes fed at a time: at most ~4 MiB once inflated


def uncompressed(body: bytes, cap: int) -> bytes:
    """The body, gunzipped when it is gzip data; PageError too_large past cap bytes."""
    if not body.startswith(_GZIP_MAGIC):
        return body
    decoder = BodyDecoder("gzip", cap)
    try:
        # In small pieces, so one piece of a bomb never inflates to much past the cap.
        for start in range(0, len(body), _GZIP_PIECE):
            decoder.feed(body[start:start + _GZIP_PIECE])
    except FetchError as exc:
        if exc.reason == "too_large":
            raise PageError("too_large", f"over {cap} bytes uncompressed "
                            "(SITEMAP_MAXSIZE)") from None
        raise PageError(INVALID, f"not valid gzip: {exc}") from None
    return decoder.result()


def read_sitemap(body: bytes, max_urls: int,
                 url: str = "sitemap") -> tuple[str, list[dict[str, Any]]]:
    """(kind, entries) of a sitemap: kind "urlset" or "sitemapindex"; entries as Scrapy's,
    dicts of each <url>/<sitemap> child's text by local name (loc, lastmod, ...) plus
    "alternate", the hrefs of its <xhtml:link>s. PageError(sitemap_invalid) when the XML is
    malformed or the root is not a sitemap's: the whole file is read first, so a broken
    sitemap gives nothing. After max_urls entries the rest are ignored, with a warning."""
    events = etree.iterparse(io.BytesIO(body), events=("start", "end"), recover=False,
                             resolve_entities=False, load_dtd=False, no_network=True,
                             huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = next(events)[1]
        kind = _local(root.tag)
        if kind not in KINDS:
            raise PageError(INVALID, f"root element <{kind}> is not <urlset> or "
                            "<sitemapindex>")
        return kind, list(_entries(events, root, max_urls, url))
    except etree.XMLSyntaxError as exc:
        raise PageError(INVALID, f"not well-formed XML: {exc}") from None


def _entries(events: Iterator, root: Any, max_urls: int, url: str) -> Iterator[dict[str, Any]]:
    count = 0
    for event, element in events:
        if event != "end" or element.getparent() is not root:
            continue
        entry = _entry(element)
        element.clear()  # what was read is dropped: the tree stays small however long
        while element.getprevious() is not None:
            del root[0]
        if entry is None:
            continue
        if count == max_urls:
            log.warning("%s lists more than %d URLs (SITEMAP_MAX_URLS); the rest are ignored",
                        url, max_urls)
            return
        count += 1
        yield entry


def _entry(element: Any) -> dict[str, Any] | None:
    entry: dict[str, Any] = {}
    for child in element:
        if not isinstance(child.tag, str):  # an entity left unresolved
            continue
        name = _local(child.tag)
        if name == "link":
            href = (child.get("href") or "").strip()
            if href:
                entry.setdefault("alternate", []).append(href)
        else:
            entry[name] = (child.text or "").strip()
    return entry if entry.get("loc") else None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def robots_sitemaps(text: str, base: str) -> list[str]:
    """The absolute URLs of a robots.txt's Sitemap: lines."""
    return [urls.join(base, url) for url in Protego.parse(text).sitemaps]


def is_robots(url: str) -> bool:
    """True for a robots.txt URL (its sitemap lines are read, not its XML)."""
    return urlsplit(url).path == "/robots.txt"


class SitemapMixin:
    """The sitemap callback and Scrapy's sitemap knobs, for a Spider subclass.

    `sitemap_rules`: (regex, callback) pairs; a urlset URL goes to the callback of the first
    regex that matches it (re.search), none: not followed. `sitemap_follow`: regexes; an
    index's sitemaps are followed when one matches. `sitemap_alternate_links`: also follow
    each entry's <xhtml:link> alternates. `sitemap_filter(entries)`: override to filter.
    """

    sitemap_rules: list = [("", "parse")]
    sitemap_follow: list = [""]
    sitemap_alternate_links: bool = False
    settings: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sitemap_callbacks = [(_regex(r), self._callback_name(c))
                                   for r, c in self.sitemap_rules]
        self._sitemap_follow = [_regex(r) for r in self.sitemap_follow]
        self._sitemap_maxsize = self.settings.get("SITEMAP_MAXSIZE",
                                                  default_settings.SITEMAP_MAXSIZE)
        self._sitemap_max_urls = self.settings.get("SITEMAP_MAX_URLS",
                                                   default_settings.SITEMAP_MAX_URLS)

    def _callback_name(self, callback: Any) -> str:
        # Callbacks travel by name, so each must be a method of this spider.
        name = callback if isinstance(callback, str) else getattr(callback, "__name__", "")
        if not name or not callable(getattr(self, name, None)):
            raise UsageError(f"sitemap_rules: {callback!r} is not a method of "
                             f"{type(self).__name__}")
        return name

    def sitemap_filter(self, entries: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        """The entries to follow (override to filter, e.g. by entry["lastmod"])."""
        return entries

    def sitemap_request(self, url: str, meta: dict[str, Any] | None = None) -> Request:
        """A request for a sitemap (or a robots.txt listing sitemaps), up to SITEMAP_MAXSIZE."""
        return Request(url, callback=self._parse_sitemap,
                       meta=dict(meta or {}, download_maxsize=self._sitemap_maxsize))

    def _parse_sitemap(self, response: Response) -> Iterable[Request]:
        if is_robots(response.url):
            return self._robots_requests(response)
        body = uncompressed(response.body, self._sitemap_maxsize)
        kind, entries = read_sitemap(body, self._sitemap_max_urls, response.url)
        return self._entry_requests(kind, self.sitemap_filter(entries))

    def _robots_requests(self, response: Response) -> list[Request]:
        # Only a robots.txt that is there lists sitemaps (a 404 may be let through).
        found = robots_sitemaps(response.text, response.url) \
            if 200 <= response.status < 300 else []
        return [self.sitemap_request(url) for url in found[:self._sitemap_max_urls]]

    def _entry_requests(self, kind: str, entries: Iterable[dict[str, Any]]) -> Iterator[Request]:
        for loc, lastmod in _locations(entries, self.sitemap_alternate_links):
            meta = {LASTMOD: lastmod} if lastmod else None
            if kind == "sitemapindex":
                if any(r.search(loc) for r in self._sitemap_follow):
                    yield self.sitemap_request(loc, meta)
                continue
            callback = next((c for r, c in self._sitemap_callbacks if r.search(loc)), None)
            if callback is not None:
                yield Request(loc, callback=callback, meta=meta or {})


def _locations(entries: Iterable[dict[str, Any]],
               alternates: bool) -> Iterator[tuple[str, str | None]]:
    for entry in entries:
        lastmod = entry.get("lastmod") or None
        yield entry["loc"], lastmod
        if alternates:
            yield from zip(entry.get("alternate", ()), itertools.repeat(lastmod))


def _regex(pattern: Any) -> re.Pattern:
    if isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise UsageError(f"sitemap rule {pattern!r} is not a regular expression: {exc}") \
            from None
