"""How long to wait between two requests to one host.

DOWNLOAD_DELAY (or a host's DOWNLOAD_SLOTS delay) is the floor AutoThrottle keeps to (the
frontier randomizes it x0.5..1.5 when asked, as Scrapy does, and never goes below a robots.txt
Crawl-delay); AutoThrottle moves the delay toward
latency / AUTOTHROTTLE_TARGET_CONCURRENCY; a Retry-After pauses the host.
Pure arithmetic: the frontier applies it with its own clock.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Throttle:
    """Politeness timing, from settings."""

    delay: float = 0.0
    randomize: bool = False
    auto: bool = False
    target_concurrency: float = 1.0
    start_delay: float = 5.0
    max_delay: float = 60.0
    retry_after_max: float = 60.0

    @classmethod
    def from_settings(cls, s: dict[str, Any]) -> "Throttle":
        return cls(s["DOWNLOAD_DELAY"], s["RANDOMIZE_DOWNLOAD_DELAY"], s["AUTOTHROTTLE_ENABLED"],
                   s["AUTOTHROTTLE_TARGET_CONCURRENCY"], s["AUTOTHROTTLE_START_DELAY"],
                   s["AUTOTHROTTLE_MAX_DELAY"], s["RETRY_AFTER_MAX"])

    def initial(self) -> float:
        """A new host's delay."""
        return max(self.delay, self.start_delay) if self.auto else self.delay

    def adjust(self, delay: float, floor: float, latency: float, ok: bool) -> float:
        """AutoThrottle: the next delay after a response that took `latency` seconds.
        Error responses may slow a host down, never speed it up."""
        if not self.auto:
            return delay
        proposed = (delay + latency / self.target_concurrency) / 2
        if not ok and proposed < delay:
            return delay
        return min(max(proposed, floor), max(self.max_delay, floor))

    def pause(self, retry_after: float) -> float:
        """How long to leave a host alone after a Retry-After (capped)."""
        return max(0.0, min(retry_after, self.retry_after_max))
