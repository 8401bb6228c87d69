"""crawler: a distributed web-crawler framework. Public API."""
from . import signals
from .errors import CrawlerError, IgnoreRequest, PageError, RefusedError, UsageError
from .http.form import FormRequest
from .http.request import Request
from .http.response import Response
from .sink import DropItem
from .spider.base import GenericSpider, SitemapSpider, Spider
from .spider.failure import Failure, HttpError

__all__ = ["CrawlerError", "DropItem", "Failure", "FormRequest", "GenericSpider", "HttpError",
           "IgnoreRequest", "PageError", "RefusedError", "Request", "Response", "SitemapSpider",
           "Spider", "UsageError", "signals"]
__version__ = "0.1.0"
