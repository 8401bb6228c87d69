"""What an errback receives: Scrapy's Failure, reduced to what crosses no wire."""
from __future__ import annotations

from typing import Any

from ..errors import CrawlerError
from ..http.request import Request
from ..http.response import Response


class HttpError(CrawlerError):
    """A non-2xx response no callback handles (Scrapy's HttpError); `.response` holds it."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"HTTP {response.status} on {response.url}")
        self.response = response


class Failure:
    """Why a request failed, for its errback: `.request`, `.reason` (the failure reason the
    crawl records: http_404, timeout, connection, ...), `.value` (the exception: HttpError
    for a status, else crawler.http.failures.FetchError), `.response` when there was one."""

    def __init__(self, request: Request, reason: str, value: Exception,
                 response: Response | None = None) -> None:
        self.request, self.reason, self.value, self.response = request, reason, value, response

    def check(self, *kinds: type) -> type | None:
        """The first of `kinds` the failure is an instance of, else None (as Twisted's)."""
        return next((kind for kind in kinds if isinstance(self.value, kind)), None)

    def getErrorMessage(self) -> str:  # noqa: N802 - Twisted's name, which Scrapy users call
        return str(self.value)

    def __repr__(self) -> str:
        return f"<Failure {self.reason} {self.request.url}>"

    @property
    def meta(self) -> dict[str, Any]:
        return self.request.meta
