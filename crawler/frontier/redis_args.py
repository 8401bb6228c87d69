"""The arguments of the Redis frontier's Lua steps, built from tasks and results (the
formats are described at the top of each step's .lua file)."""
from __future__ import annotations

import logging
import struct
from typing import Any, Iterable

from ..urls import fingerprint
from .embedded import DONE
from ..feeds.warc import RECORDS
from .redis_codec import MEDIA_FILES, pack, pack_member

log = logging.getLogger(__name__)
RESULT_ARGS = 12  # what result_args() gives per result
# A task's head, as common.lua's struct.unpack('>IlIBHI') reads it: host index, priority,
# origin index, dont_filter, then the lengths of its fingerprint and member that follow it.
_HEAD = struct.Struct(">IqI?HI")
_PRIORITY_MAX = 2 ** 53  # exact in Lua's numbers (priorities beyond it are clamped)


def links_section(f: Any, tasks: Iterable[dict[str, Any]]) -> list[Any]:
    """A links section: hosts (name, settings), origins (robots.txt), then the count of
    tasks and ONE argument holding them all, each its head (_HEAD), fingerprint and member:
    redis-py's encoding of each argument apart was a third of a worker's exchange."""
    hosts: dict[str, int] = {}
    origins: dict[str, int] = {}
    host_args: list[Any] = []
    origin_args: list[Any] = []
    task_args: list[Any] = []
    obey = f.robots_agent is not None
    for task in tasks:
        name = task["host"]
        hi = hosts.get(name)
        if hi is None:
            hi = hosts[name] = len(hosts) + 1
            host_args += host_params(f, name)
        oi = 0
        if obey and not task.get("robots"):
            url = task["url"]
            origin = url[:url.find("/", 8)]
            oi = origins.get(origin, 0)
            if not oi:
                oi = origins[origin] = len(origins) + 1
                origin_args += [origin, _robots_member(f, origin, name)]
        prio = max(-_PRIORITY_MAX, min(_PRIORITY_MAX, task.get("priority", 0)))
        fp, member = task["fp"], pack_member(task, _max_retries(f, task))
        task_args += [_HEAD.pack(hi, prio, oi, bool(task.get("dont_filter")), len(fp),
                                 len(member)), fp, member]
    return [len(hosts), *host_args, len(origins), *origin_args, len(task_args) // 3,
            b"".join(task_args)]


def host_params(f: Any, name: str) -> list[Any]:
    """A host's name and the settings it gets when new: "concurrency delay randomized
    floor" (read only for a new host)."""
    slot, throttle = f.slots.get(name, {}), f.throttle
    floor = slot.get("delay", throttle.delay)
    delay = max(floor, throttle.initial()) if throttle.auto else floor
    rnd = "1" if slot.get("randomize_delay", throttle.randomize) else "0"
    return [name, f"{slot.get('concurrency', f.per_host)} {float(delay)!r} {rnd} {float(floor)!r}"]


def _robots_member(f: Any, origin: str, host: str) -> bytes:
    url = origin + "/robots.txt"
    task = {"url": url, "host": host, "depth": 0, "robots": True,
            "fp": fingerprint(url, method="ROBOTS")}
    return pack_member(task, f.retry_times)


def _max_retries(f: Any, task: dict[str, Any]) -> int:
    meta = task.get("meta")
    return meta.get("max_retry_times", f.retry_times) if meta else f.retry_times


def obey_args(f: Any) -> list[Any]:
    return ["1" if f.robots_agent is not None else "0", f.host_page_limit]


def throttle_args(f: Any) -> list[Any]:
    """AutoThrottle's settings, as common.lua's throttle() reads them."""
    t = f.throttle
    return ["1" if t.auto else "0", repr(float(t.target_concurrency)), repr(float(t.max_delay))]


def result_args(f: Any, result: dict[str, Any], links: int) -> list[Any]:
    """One result of a complete step; its `links` are in the step's links section."""
    robots_value, crawl_delay = "", 0.0
    if "robots" in result or "_rules" in result:
        rules = result.get("_rules") or f.parse_robots(result.get("status", 0), result["robots"])
        crawl_delay = rules.crawl_delay
        if crawl_delay >= f.robots_max_delay:
            log.warning("robots.txt: Crawl-delay capped at ROBOTSTXT_MAX_CRAWL_DELAY (%s s)",
                        f.robots_max_delay)
        status, body = rules.source
        robots_value = f"ok\t{status}\t{body or ''}"
    latency = result.get("latency")
    ok = result["outcome"] == DONE and result.get("status", 0) < 400
    pause = f.throttle.pause(result["retry_after"]) if result.get("retry_after") else 0
    dropped = ",".join([*(f"dropped/{r}={c}" for r, c in (result.get("dropped") or {}).items()),
                        *(f"spider/{k}={c}" for k, c in (result.get("stats") or {}).items())])
    items = _items(f, result)
    reason = result.get("reason") or "error"
    media = result.get("media")
    if media is not None and result["outcome"] == DONE:  # kept as the download's outcome
        reason = f"{media['status']}\t{media['checksum']}"
    return [result["lease"], result["outcome"], reason,
            robots_value, repr(float(crawl_delay)),
            "" if latency is None else repr(float(latency)), "1" if ok else "0",
            repr(float(pause)), int(result.get("bytes", 0)), dropped, items, links]


def _items(f: Any, result: dict[str, Any]) -> bytes:
    """What the result adds to the items stream: its page's items (not a retry's), its WARC
    records, and a download's files for the master to store."""
    items = list(result.get("items") or ()) if result["outcome"] != "retry" else []
    if result.get("warc"):
        items.append({RECORDS: result["warc"]})
    if result.get("blobs") and result["outcome"] == DONE:
        task = f._leased.get(result["lease"]) or {}
        items.append({MEDIA_FILES: {"fp": task.get("fp"), "host": task.get("host"),
                                    "media": result["media"],
                                    "blobs": result["blobs"]}})
    return pack(items) if items else b""
