"""The frontier: what is fetched next, by whom and when, and what each URL became.

`base.FrontierBackend` is the interface the scheduler uses. `Frontier` is the embedded
(in-process) implementation, made of hosts (a host's queue and politeness clock), leases,
seen (the fingerprint store) and spill (queued URLs past the memory bound, on disk);
`redis.RedisFrontier` is the one in Redis (Lua steps in redis_scripts/). The journal keeps
the embedded one's changes for resume; robots and throttle are the politeness rules both
apply.
"""
import os
from typing import Any, Mapping

from .embedded import Frontier
from .seen import DONE, FAILED, LEASED, QUEUED
from .throttle import Throttle

__all__ = ["DONE", "FAILED", "LEASED", "QUEUED", "Frontier", "from_settings"]


def from_settings(s: Mapping[str, Any], jobdir: str | None) -> Frontier:
    """The embedded frontier a master's settings describe; its spill file goes to
    FRONTIER_SPILL_DIR, else the JOBDIR, else the temporary folder."""
    return Frontier(per_host=s["CONCURRENT_REQUESTS_PER_DOMAIN"],
                    throttle=Throttle.from_settings(s), host_page_limit=s["HOST_PAGE_LIMIT"],
                    lease_timeout=s["LEASE_TIMEOUT"], retry_times=s["RETRY_TIMES"],
                    epoch=os.urandom(4).hex(),  # lease ids unique across restarts
                    robots_agent=s["USER_AGENT"] if s["ROBOTSTXT_OBEY"] else None,
                    robots_max_delay=s["ROBOTSTXT_MAX_CRAWL_DELAY"], slots=s["DOWNLOAD_SLOTS"],
                    seen_dict_max=s["FRONTIER_SEEN_DICT"], memory_queue=s["FRONTIER_MEMORY_QUEUE"],
                    spill_dir=s["FRONTIER_SPILL_DIR"] or jobdir)
