"""Signals, as Scrapy's: connect a receiver to a signal; the process where a thing happens
sends it. On workers: spider_opened, spider_closed, response_received, request_dropped (links
a worker drops: offsite, depth, ...). On the master: spider_opened, spider_closed, spider_idle,
item_scraped, item_dropped, item_error, request_dropped (duplicates)."""
from __future__ import annotations

import inspect
import logging
import threading
from typing import Any, Callable

log = logging.getLogger(__name__)

spider_opened = object()
spider_closed = object()
spider_idle = object()
item_scraped = object()
item_dropped = object()
item_error = object()  # a pipeline raised, or no feed could encode the item
request_dropped = object()
response_received = object()

NAMES = {spider_opened: "spider_opened", spider_closed: "spider_closed",
         spider_idle: "spider_idle", item_scraped: "item_scraped", item_dropped: "item_dropped",
         item_error: "item_error",
         request_dropped: "request_dropped", response_received: "response_received"}


class SignalManager:
    """Receivers by signal; send() calls each with the signal's keyword arguments (those a
    receiver does not take are left out, as Scrapy does) and returns their results."""

    def __init__(self) -> None:
        # signal -> [(receiver, the keyword names it takes, None for all)]
        self._receivers: dict[object, list[tuple[Callable, frozenset | None]]] = {}
        self._lock = threading.Lock()

    def connect(self, receiver: Callable, signal: object) -> None:
        with self._lock:
            self._receivers.setdefault(signal, []).append((receiver, _accepts(receiver)))

    def disconnect(self, receiver: Callable, signal: object) -> None:
        with self._lock:
            self._receivers[signal] = [r for r in self._receivers.get(signal, [])
                                       if r[0] != receiver]

    def has_receivers(self, signal: object) -> bool:
        return bool(self._receivers.get(signal))

    def send(self, signal: object, **kwargs: Any) -> list[Any]:
        """Call every receiver; one that raises is logged and the others still run."""
        results = []
        for receiver, names in list(self._receivers.get(signal, ())):
            given = kwargs if names is None else {k: v for k, v in kwargs.items() if k in names}
            try:
                results.append(receiver(**given))
            except Exception:
                log.exception("receiver %r of %s failed", receiver, NAMES.get(signal, signal))
        return results


def _accepts(receiver: Callable) -> frozenset | None:
    try:
        params = inspect.signature(receiver).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return frozenset(params)
