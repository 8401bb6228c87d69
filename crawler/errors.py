"""The one exception base of the framework, and its few kinds."""


class CrawlerError(Exception):
    """Base of every error this framework raises on purpose."""


class UsageError(CrawlerError):
    """Bad command line, settings, seeds or spider name: exit status 2."""


class RefusedError(CrawlerError):
    """The master refused this worker (different spider code, bad hello)."""
