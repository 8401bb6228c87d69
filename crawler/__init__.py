"""crawler: a distributed web-crawler framework. Public API."""
from . import signals
from .errors import (CrawlerError, DropItem, IgnoreRequest, PageError, RefusedError,
                     UsageError)
from .http.form import FormRequest
from .http.request import Request
from .http.response import Response
from .spider.base import GenericSpider, SitemapSpider, Spider
from .spider.crawl import CrawlSpider, Rule
from .spider.failure import Failure, HttpError
from .spider.links import Link, LinkExtractor

__all__ = ["CrawlSpider", "CrawlerError", "DropItem", "Failure", "FormRequest", "GenericSpider",
           "HttpError", "IgnoreRequest", "Link", "LinkExtractor", "PageError", "RefusedError",
           "Request", "Response", "Rule", "SitemapSpider", "Spider", "UsageError", "signals"]
__version__ = "0.1.0"
