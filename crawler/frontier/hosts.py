"""One host's share of the frontier: its queue, its politeness clock and its counters."""
from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field
from typing import Any

from .robots import RobotsRules

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Host:
    """A host's queue and politeness state; slots, since a broad crawl knows millions."""

    # Heap of (key, url as bytes, fp, depth, extra): flat tuples, since a big crawl
    # queues millions of URLs (a task dict and its host string cost ~250 bytes more,
    # a str 16 more than bytes).
    queue: list = field(default_factory=list)
    inflight: int = 0
    next_time: float = 0.0
    scheduled: bool = False
    limit: int = 8  # requests in flight at most: CONCURRENT_REQUESTS_PER_DOMAIN or its slot's
    delay: float = 0.0  # DOWNLOAD_DELAY (or its slot's), or AutoThrottle's
    randomize: bool = False  # spacing randomized x0.5..1.5 (RANDOMIZE_DOWNLOAD_DELAY)
    floor: float = 0.0  # the least delay AutoThrottle may set: DOWNLOAD_DELAY
    crawl_delay: float = 0.0  # robots.txt's Crawl-delay: a floor, never randomized
    admitted: int = 0
    # robots.txt rules by origin (scheme://host:port, as sites serve one per origin);
    # None while that robots.txt is being fetched
    robots: dict[str, RobotsRules | None] = field(default_factory=dict)
    robots_pending: int = 0  # robots.txt files not settled yet: lease nothing else
    done: int = 0    # counted as the frontier works, so a snapshot never walks URLs
    failed: int = 0
    last_error: str | None = None
    id: int = 0  # its key in the spill
    spilled: int = 0  # entries in the spill (on disk), besides those in `queue`
    spill_min: float = float("inf")  # the smallest key among them

    @property
    def queued(self) -> int:
        """Entries waiting, in memory and on disk."""
        return len(self.queue) + self.spilled

    @property
    def spaced(self) -> bool:
        """Requests to this host are spaced in time: one at a time, then a pause."""
        return bool(self.delay or self.crawl_delay)

    def blocked(self) -> bool:
        """Waiting for robots.txt, and that task is not first in line (leased or delayed)."""
        return self.robots_pending > 0 and not (self.queue and self.queue[0][4] is not None
                                                and self.queue[0][4].get("robots"))

    def learn_robots(self, url: str, rules: RobotsRules | None, reason: str | None,
                     agent: str | None, max_delay: float) -> str:
        """Settle the robots.txt at `url`: its rules, or None when it could not be had
        (then its origin's URLs fail). Returns the stat to count."""
        self.robots_pending -= 1
        origin = url[:-len("/robots.txt")]
        if rules is not None:
            self.robots[origin] = rules
            self.crawl_delay = max(self.crawl_delay, rules.crawl_delay)
            if rules.crawl_delay >= max_delay:
                log.warning("%s: Crawl-delay capped at ROBOTSTXT_MAX_CRAWL_DELAY (%s s)",
                            url, max_delay)
            return "robots_fetched"
        cause = reason or "error"
        rules = self.robots[origin] = RobotsRules(None, agent, unavailable=cause)
        self.last_error = f"robots_unavailable:{cause}"
        log.warning("%s: unavailable (%s); the origin's URLs fail as %s", url, cause,
                    rules.refusal)
        return "robots_unavailable"

    def row(self, name: str, now: float, obey_robots: bool) -> dict[str, Any]:
        """This host as the status page shows it."""
        return {"host": name, "queued": self.queued, "in_flight": self.inflight,
                "done": self.done, "failed": self.failed, "delay": self.delay,
                "next_in": round(max(0.0, self.next_time - now), 3),
                "robots": self.robots_state(obey_robots), "last_error": self.last_error}

    def robots_state(self, obey_robots: bool) -> str:
        """off, pending (being fetched), unavailable (treated as disallowing) or ok."""
        if not obey_robots:
            return "off"
        if self.robots_pending or not self.robots:
            return "pending"
        settled = [rules for rules in self.robots.values() if rules is not None]
        return "unavailable" if any(r.unavailable for r in settled) else "ok"


def summary(hosts: dict[str, Host], now: float, top: int, obey_robots: bool) -> dict[str, Any]:
    """The hosts part of a snapshot: counts, and the `top` hosts by queue and by failures.
    Per-host numbers are kept as the frontier works, so this walks the hosts once (plus
    two nlargest), never the URLs."""
    with_work = waiting = 0
    for host in hosts.values():
        if host.queue or host.spilled or host.inflight:
            with_work += 1
            waiting += bool(host.queue or host.spilled) and host.next_time > now
    by_queue = heapq.nlargest(top, hosts.items(), key=lambda kv: kv[1].queued)
    by_failures = heapq.nlargest(top, hosts.items(), key=lambda kv: kv[1].failed)
    return {"known": len(hosts), "with_work": with_work, "waiting": waiting,
            "by_queue": [h.row(n, now, obey_robots) for n, h in by_queue if h.queued],
            "by_failures": [h.row(n, now, obey_robots) for n, h in by_failures if h.failed]}
