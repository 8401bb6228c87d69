"""The total deadline of a fetch: DOWNLOAD_TIMEOUT for name lookup, connect, TLS, headers, body.

Socket timeouts bound one wait, not a request (a server that sends a byte a second never
trips them). So before every wait the transport gives the socket what is left of the
fetch's time (`remaining()`, which fails with a timeout once it is spent): a connect, a
TLS handshake (CPython bounds the whole handshake by the socket timeout), each send and
each recv. However the server trickles, a fetch ends within one wait of its deadline.
"""
from __future__ import annotations

import time

from .errors import FetchError


class Deadline:
    """When a fetch must be over."""

    __slots__ = ("timeout", "at")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.at = time.monotonic() + timeout

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def remaining(self, when: str = "") -> float:
        """The seconds left; FetchError timeout when there are none."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise FetchError("timeout", f"DOWNLOAD_TIMEOUT ({self.timeout} s) passed "
                             f"{when or 'before the fetch was over'}", True)
        return left
