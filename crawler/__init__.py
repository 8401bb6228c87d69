"""crawler: a distributed web-crawler framework. Public API."""
from . import signals
from .errors import (CloseSpider, CrawlerError, DropItem, IgnoreRequest, PageError,
                     RefusedError, UsageError)
from .http.form import FormRequest, JsonRequest
from .http.request import Request
from .http.response import Response
from .spider.base import GenericSpider, SitemapSpider, Spider
from .spider.crawl import CrawlSpider, Rule
from .spider.failure import Failure, HttpError
from .spider.items import Field, Item
from .spider.links import Link, LinkExtractor

__all__ = ["CloseSpider", "CrawlSpider", "CrawlerError", "DropItem", "Failure", "Field",
           "FormRequest", "GenericSpider", "HttpError", "IgnoreRequest", "Item", "ItemLoader",
           "JsonRequest", "Link", "LinkExtractor", "PageError", "RefusedError", "Request",
           "Response", "Rule", "SitemapSpider", "Spider", "UsageError", "signals"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # ItemLoader brings itemloaders, itemadapter and jmespath: only spiders that use it pay
    # for their import, not every worker's start.
    if name == "ItemLoader":
        from .spider.loader import ItemLoader
        return ItemLoader
    raise AttributeError(f"module 'crawler' has no attribute {name!r}")
