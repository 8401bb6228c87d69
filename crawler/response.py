"""Response: a fetched page as the spider sees it (lives on the worker, never sent)."""
from __future__ import annotations

from functools import cached_property
from typing import Any, Iterable, Iterator, Mapping
import parsel
from w3lib.encoding import html_to_unicode

from .errors import CrawlerError
from .request import Request
from .urls import join


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
        """True for HTML and XHTML bodies (and for bodies served with no type)."""
        return self.content_type in ("", "text/html", "application/xhtml+xml")

    @cached_property
    def _decoded(self) -> tuple[str, str]:
        return html_to_unicode(self.headers.get("Content-Type"), self.body)

    @property
    def encoding(self) -> str:
        """Encoding used for .text: header charset, then BOM, then <meta>, then a guess."""
        return self._decoded[0]

    @property
    def text(self) -> str:
        """The body decoded; undecodable bytes become U+FFFD, never an exception."""
        return self._decoded[1]

    @cached_property
    def selector(self) -> parsel.Selector:
        """A parsel Selector over the page (lxml underneath)."""
        return parsel.Selector(text=self.text, base_url=self.url)

    def css(self, query: str) -> parsel.SelectorList:
        """Scrapy's response.css()."""
        return self.selector.css(query)

    def xpath(self, query: str, **kwargs: Any) -> parsel.SelectorList:
        """Scrapy's response.xpath()."""
        return self.selector.xpath(query, **kwargs)

    @cached_property
    def soup(self):
        """The page as BeautifulSoup (lxml parser), parsed on first use."""
        from bs4 import BeautifulSoup
        return BeautifulSoup(self.body, "lxml", from_encoding=self.encoding)

    def urljoin(self, url: str) -> str:
        """Resolve a relative URL against this page (honouring <base href>)."""
        base = self.selector.xpath("//base/@href").get() if self.is_html else None
        return join(join(self.url, base) if base else self.url, url)

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


def _href(link: Any, strict: bool = True) -> str | None:
    if isinstance(link, str):
        return link
    if isinstance(link, parsel.Selector):
        if isinstance(link.root, str):
            return link.root
        href = link.root.get("href") if hasattr(link.root, "get") else None
        if href is None and strict:
            raise CrawlerError(f"selector {link!r} has no href")
        return href
    raise CrawlerError(f"cannot follow {type(link).__name__}: give a URL or an <a> selector")
