"""Downloader and spider middlewares, as Scrapy's, run on the workers around each fetch and
each callback.

Downloader middlewares (DOWNLOADER_MIDDLEWARES, lowest order nearest the spider's side):
`process_request(request, spider)` in order may return None (go on), a Response (no fetch), or
a Request (fetched instead, as a new task), or raise IgnoreRequest; `process_response(request,
response, spider)` in reverse order returns a Response or a Request; `process_exception(request,
exception, spider)` in reverse order may return None, a Response or a Request.
Spider middlewares (SPIDER_MIDDLEWARES): `process_spider_output(response, result, spider)`
returns what the callback yielded, changed as it likes.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from ..errors import CrawlerError, IgnoreRequest
from ..http.errors import FetchError
from ..http.request import Request
from ..http.response import Response


class Middlewares:
    """The middlewares of one worker process, by the method they have."""

    def __init__(self, spider: Any, downloader: Iterable[Any] = (),
                 spider_side: Iterable[Any] = ()) -> None:
        self.spider = spider
        downloader = list(downloader)
        self._requests = [m.process_request for m in downloader
                          if hasattr(m, "process_request")]
        self._responses = [m.process_response for m in reversed(downloader)
                           if hasattr(m, "process_response")]
        self._exceptions = [m.process_exception for m in reversed(downloader)
                            if hasattr(m, "process_exception")]
        self._outputs = [m.process_spider_output for m in reversed(list(spider_side))
                         if hasattr(m, "process_spider_output")]

    def download(self, request: Request, fetch: Callable[[Request], Response]
                 ) -> Response | Request:
        """The response for a request (or a Request to fetch instead), through the chain.
        FetchError or IgnoreRequest when nothing turned a failure into a response."""
        response = None
        try:
            for method in self._requests:
                out = _checked(method(request, self.spider), method, none_ok=True)
                if isinstance(out, Request):
                    return out
                if out is not None:
                    response = out
                    break
            if response is None:
                response = fetch(request)
        except (FetchError, IgnoreRequest) as exc:
            handled = self._exception(request, exc)
            if handled is None:
                raise
            if isinstance(handled, Request):
                return handled
            response = handled
        return self._response(request, response)

    def _response(self, request: Request, response: Response) -> Response | Request:
        for method in self._responses:
            response = _checked(method(request, response, self.spider), method)
            if isinstance(response, Request):
                return response
        return response

    def _exception(self, request: Request, exc: Exception) -> Response | Request | None:
        for method in self._exceptions:
            out = _checked(method(request, exc, self.spider), method, none_ok=True)
            if out is not None:
                return out
        return None

    @property
    def see_output(self) -> bool:
        """True when some spider middleware reads what callbacks yield."""
        return bool(self._outputs)

    def spider_output(self, response: Response, result: Iterable[Any]) -> Iterable[Any]:
        """What a callback yielded, through process_spider_output (highest order first)."""
        for method in self._outputs:
            result = method(response, result, self.spider)
        return result


def _checked(out: Any, method: Callable, none_ok: bool = False) -> Any:
    if isinstance(out, (Request, Response)) or (out is None and none_ok):
        return out
    raise CrawlerError(f"{method.__qualname__} returned {type(out).__name__}: return "
                       f"{'None, ' if none_ok else ''}a Response or a Request")
