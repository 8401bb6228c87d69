"""The one exception base of the framework, and its few kinds."""


class CrawlerError(Exception):
    """Base of every error this framework raises on purpose."""


class UsageError(CrawlerError):
    """Bad command line, settings, seeds or spider name: exit status 2."""


class RefusedError(CrawlerError):
    """The master refused this worker (different spider code, bad hello)."""


class PageError(CrawlerError):
    """Raised by a callback to fail its page with a reason of its own (e.g. a sitemap that
    is not XML): the page ends failed(<reason>), the crawl goes on."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason


class CloseSpider(CrawlerError):
    """Raised by a callback or errback to end the crawl, as Scrapy's: what it yielded before
    is kept, no more work is handed out, work already leased is settled; `reason` is the
    crawl's closed_by (with a JOBDIR the crawl is not finished: the same command goes on)."""

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason


class IgnoreRequest(CrawlerError):
    """Raised by a downloader middleware to drop a request: it ends failed(ignored), and its
    errback, if any, is called."""


class DropItem(CrawlerError):
    """Raise in a pipeline's process_item to drop the item."""
