"""Request: what a spider asks to fetch. Plain data; the callback travels by name."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .. import urls
from ..errors import CrawlerError


# The fields every task has; to_task() adds others only when they differ from the defaults.
CORE_FIELDS = frozenset({"url", "fp", "host", "depth"})
# The task fields from_task() reads besides the url: without any, the Request is Request(url).
_REQUEST_FIELDS = frozenset({"callback", "method", "headers", "body", "meta", "priority",
                             "dont_filter", "errback", "cb_kwargs", "own_cookies"})


def extra_fields(task: dict[str, Any]) -> dict[str, Any] | None:
    """A task's fields beyond the core ones (which every task has), or None."""
    if len(task) == len(CORE_FIELDS):  # the common case, per link: no loop
        return None
    return {k: v for k, v in task.items() if k not in CORE_FIELDS} or None


@dataclass
class Request:
    """A page to fetch and the spider method (by name) that parses it.

    `callback` and `errback` may be given as bound methods of the spider; only their names
    travel. `cb_kwargs` are passed to the callback as keyword arguments (plain data).
    """

    url: str
    callback: str | Callable | None = None
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    meta: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    dont_filter: bool = False
    errback: str | Callable | None = None
    cb_kwargs: dict[str, Any] = field(default_factory=dict)
    cookies: dict[str, str] | list[dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Runs for every link a page yields: the common case (a GET with a callback name
        # or none) takes one test per field.
        if not isinstance(self.url, str):
            raise CrawlerError(f"Request url must be a string, got {type(self.url).__name__}")
        if self.callback is not None and callable(self.callback):
            self.callback = self.callback.__name__
        if self.errback is not None and callable(self.errback):
            self.errback = self.errback.__name__
        if self.headers is None:
            self.headers = {}
        if type(self.body) is not bytes and isinstance(self.body, str):
            self.body = self.body.encode("utf-8")
        if self.method != "GET":
            self.method = self.method.upper()

    def to_task(self, depth: int, ignore_params: Iterable[str] = ()) -> dict[str, Any] | None:
        """The wire form, or None when the URL is not crawlable.

        A dict holding the normalized url, its fingerprint ("fp") and host, and
        only those fields that differ from their defaults.
        """
        if self.method == "GET" and not self.body:
            identity = urls.identify(self.url, tuple(ignore_params))
        else:
            identity = urls.identify_uncached(self.url, tuple(ignore_params), self.method,
                                              self.body)
        if identity is None:
            return None
        url, host, fp = identity
        task: dict[str, Any] = {"url": url, "depth": depth, "host": host, "fp": fp}
        # Only what differs from the defaults travels (one test each: this runs per link).
        if self.dont_filter:
            task["dont_filter"] = True
        if self.callback is not None:
            task["callback"] = self.callback
        if self.method != "GET":
            task["method"] = self.method
        if self.headers:
            task["headers"] = self.headers
        if self.body:
            task["body"] = self.body
        if self.priority:
            task["priority"] = self.priority
        if self.meta:
            task["meta"] = self.meta
        if self.errback is not None:
            task["errback"] = self.errback
        if self.cb_kwargs:
            task["cb_kwargs"] = self.cb_kwargs
        if self.cookies:
            task["own_cookies"] = self.cookies
        return task

    def replace(self, **changes: Any) -> "Request":
        """A copy with some attributes changed, as Scrapy's Request.replace()."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_task(cls, task: dict[str, Any]) -> "Request":
        """Rebuild a Request from its wire form."""
        if _REQUEST_FIELDS.isdisjoint(task):  # most links: nothing but the defaults
            return cls(task["url"])
        return cls(url=task["url"], callback=task.get("callback"), method=task.get("method", "GET"),
                   headers=dict(task.get("headers") or {}), body=task.get("body", b""),
                   meta=dict(task.get("meta") or {}), priority=task.get("priority", 0),
                   dont_filter=task.get("dont_filter", False), errback=task.get("errback"),
                   cb_kwargs=dict(task.get("cb_kwargs") or {}),
                   cookies=task.get("own_cookies") or {})
