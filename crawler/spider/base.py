"""Spider base class, SitemapSpider, the built-in generic spider, and finding spiders by name."""
from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import os
import pkgutil
import re
import sys
import threading
from functools import cached_property
from typing import Any, Iterable, Iterator

from lxml import etree

from ..components import Crawler
from ..errors import UsageError
from ..signals import SignalManager
from ..http.request import Request
from ..http.response import Response
from ..urls import join
from .sitemap import SitemapMixin

_CLIENT_ERRORS = list(range(400, 500))
_ASCII_SPACE = re.compile(r"[\t\n\f\r ]+")


class Spider:
    """Subclass this: set `name`, then write `parse(response)` yielding dicts and Requests."""

    name: str = ""
    allowed_domains: list[str] = []
    start_urls: list[str] = []
    custom_settings: dict[str, Any] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> "Spider":
        """Make the spider: `crawler.settings` and `crawler.signals` are this process's; the
        spider arguments go to __init__ (so a Scrapy-style `__init__(self, category=None,
        *args, **kwargs)` works), and self.settings and self.crawler are there before it
        runs. Override it, as in Scrapy, to connect signals."""
        spider = cls.__new__(cls)
        spider.settings, spider.crawler = crawler.settings, crawler
        spider.__init__(*args, **kwargs)
        return spider

    def __init__(self, settings: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if settings is not None or not hasattr(self, "settings"):  # make_spider set them
            self.settings = settings or {}
        self.__dict__.update(kwargs)  # spider arguments (-a NAME=VALUE) become attributes
        self.logger = logging.getLogger(f"spider.{self.name or type(self).__name__}")

    def start_requests(self) -> Iterable[Request]:
        """Requests to start from when no seeds file is given (default: start_urls)."""
        for url in self.start_urls:
            yield Request(url)

    def seed_requests(self, urls: list[str]) -> Iterable[Request]:
        """Requests to start from for the URLs of a seeds file (default: one each)."""
        for url in urls:
            yield Request(url)

    def parse(self, response: Response) -> Iterable[Any]:
        """The default callback."""
        raise NotImplementedError(f"{type(self).__name__}.parse is not defined")


class SitemapSpider(SitemapMixin, Spider):
    """Scrapy's SitemapSpider: crawls the URLs that sitemaps list (crawler.spider.sitemap).

    Starts from `sitemap_urls`, or from the seeds file's URLs when one is given: sitemaps,
    sitemap indexes, or robots.txt files whose Sitemap: lines are followed."""

    sitemap_urls: list[str] = []

    def start_requests(self) -> Iterable[Request]:
        for url in self.sitemap_urls:
            yield self.sitemap_request(url)

    def seed_requests(self, urls: list[str]) -> Iterable[Request]:
        for url in urls:
            yield self.sitemap_request(url)


class GenericSpider(SitemapMixin, Spider):
    """Follows every in-scope link; one item per page with url, status, title and depth.
    With SITEMAP_FROM_ROBOTS it also crawls the sitemaps each seed host's robots.txt lists."""

    name = "generic"
    link_xpath = "//a/@href | //area/@href | //link[@rel='next']/@href"

    def seed_requests(self, urls: list[str]) -> Iterable[Request]:
        yield from super().seed_requests(urls)
        if self.settings.get("SITEMAP_FROM_ROBOTS"):
            for robots in dict.fromkeys(join(u, "/robots.txt") for u in urls):
                # A host without robots.txt simply lists no sitemaps: not a failure.
                yield self.sitemap_request(robots, {"handle_httpstatus_list": _CLIENT_ERRORS})

    def parse(self, response: Response) -> Iterator[Any]:
        item, hrefs = self.page(response)
        yield item
        yield from response.follow_all(hrefs)

    def page(self, response: Response) -> tuple[dict[str, Any], list[str]]:
        """The page's item and its links' hrefs as written, one per target. (The handler
        calls this instead of parse when nothing but it would see parse's Requests: it
        resolves and vets the hrefs itself, crawler.spider.linkpath.)"""
        root = response.selector.root if response.is_html else None
        title_of, links_of = self._xpaths()
        title = _browser_title(title_of(root)) if root is not None else ""
        item = {"url": response.url, "status": response.status, "title": title or None,
                "depth": response.depth}
        if root is None:
            return item, []
        # One request per target: a fragment never changes what is fetched, and pages
        # link to their own sections (Sphinx: 7 links of 8 repeat a target on the page).
        # "#" stays for the fragment-only ones: with a <base href> it is another page.
        return item, list(dict.fromkeys(href.partition("#")[0] or "#"
                                        for href in links_of(root)))

    def _xpaths(self) -> tuple[etree.XPath, etree.XPath]:
        # lxml directly, plain strings (no Selector object per link), compiled once per
        # fetcher thread, so threads never share an evaluator.
        compiled = getattr(self._per_thread, "xpaths", None)
        if compiled is None:
            compiled = self._per_thread.xpaths = (
                etree.XPath("string(//title)", smart_strings=False),
                etree.XPath(self.link_xpath, smart_strings=False))
        return compiled

    @cached_property
    def _per_thread(self) -> threading.local:
        return threading.local()


def _browser_title(text: str) -> str:
    """A title as browsers show it: ASCII whitespace collapsed and stripped (a no-break
    space is kept)."""
    return _ASCII_SPACE.sub(" ", text).strip(" ")


def make_spider(cls: type[Spider], settings: dict[str, Any],
                args: dict[str, str] | None = None) -> Spider:
    """The spider of this process, made as Scrapy makes one: through its from_crawler(),
    with the spider arguments as keyword arguments."""
    crawler = Crawler(settings, SignalManager())
    crawler.spider = cls.from_crawler(crawler, **(args or {}))
    return crawler.spider


def load_spider_class(name: str | None, modules: Iterable[str]) -> type[Spider]:
    """The Spider subclass called `name` in the given packages (None: the generic spider)."""
    if name in (None, GenericSpider.name):
        return GenericSpider
    found = find_spiders(modules)
    if name not in found:
        known = ", ".join(sorted(found)) or "none found"
        raise UsageError(f"no spider named {name!r} in {list(modules)} (known: {known})")
    return found[name]


def find_spiders(modules: Iterable[str]) -> dict[str, type[Spider]]:
    """Every named Spider subclass defined in the packages, by name."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    found: dict[str, type[Spider]] = {}
    for module in _walk(modules):
        for obj in vars(module).values():
            if _is_spider(obj, module):
                if obj.name in found and found[obj.name] is not obj:
                    raise UsageError(f"two spiders are named {obj.name!r}: "
                                     f"{found[obj.name].__module__} and {obj.__module__}")
                found[obj.name] = obj
    return found


def source_hash(cls: type[Spider]) -> str:
    """A hash of the file defining the spider, so every host runs the same code."""
    source = inspect.getsource(sys.modules[cls.__module__])
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _walk(packages: Iterable[str]):
    for name in packages:
        try:
            package = importlib.import_module(name)
        except ImportError as exc:
            raise UsageError(f"cannot import spider package {name!r}: {exc}") from exc
        except Exception as exc:
            raise UsageError(f"spider package {name!r} fails to import: {exc!r}") from exc
        yield package
        for info in pkgutil.walk_packages(getattr(package, "__path__", []), name + "."):
            try:
                yield importlib.import_module(info.name)
            except Exception as exc:
                raise UsageError(f"spider module {info.name} fails to import: {exc!r}") from exc


def _is_spider(obj: Any, module: Any) -> bool:
    return (inspect.isclass(obj) and issubclass(obj, Spider) and obj is not Spider
            and obj.__module__ == module.__name__ and bool(obj.name))
