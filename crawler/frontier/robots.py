"""robots.txt rules per host, parsed with Protego on the master.

The rule for a robots.txt that cannot be had: a 4xx answer allows everything
(as Google and Scrapy do); 5xx answers and network errors are retried like any
request, and when retries run out the host counts as disallow-all for this
crawl, so its URLs end failed(robots_unavailable:<cause>), the cause being the robots.txt
fetch's own failure reason (tls, connection, http_503, ...).
"""
from __future__ import annotations

from protego import Protego


class RobotsRules:
    """What one host's robots.txt allows for our user agent."""

    def __init__(self, body: str | None, user_agent: str, unavailable: str | None = None) -> None:
        self.agent = user_agent.split("/")[0].strip() or "*"
        self.unavailable = unavailable  # why robots.txt could not be had: disallow all
        self.max_delay = float("inf")
        self._parser = Protego.parse(body) if body else None

    @classmethod
    def from_status(cls, status: int, body: str, user_agent: str,
                    max_delay: float = float("inf")) -> "RobotsRules":
        """Rules from a robots.txt response (anything but 2xx allows all); a Crawl-delay
        above max_delay counts as max_delay."""
        rules = cls(body if 200 <= status < 300 else None, user_agent)
        rules.max_delay = max_delay
        return rules

    def allowed(self, url: str) -> bool:
        """May we fetch this URL?"""
        if self.unavailable is not None:
            return False
        return self._parser is None or self._parser.can_fetch(url, self.agent)

    @property
    def refusal(self) -> str:
        """The failure reason of a URL these rules do not allow."""
        if self.unavailable is None:
            return "robots"
        if self.unavailable == "blocked_address":  # the guard's refusal, for every URL there
            return "blocked_address"
        return f"robots_unavailable:{self.unavailable}"

    @property
    def crawl_delay(self) -> float:
        """The host's Crawl-delay for us (at most max_delay), 0 when it sets none."""
        if self._parser is None:
            return 0.0
        delay = float(self._parser.crawl_delay(self.agent) or 0.0)
        return min(delay, self.max_delay) if delay == delay else 0.0  # NaN: none
