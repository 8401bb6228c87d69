"""The one snapshot: a plain dict every view renders (field names are documented in README).

The scheduler hands over its counters and the top hosts, taken under its lock; this adds the
sink's numbers and the crawl's identity and derives the summary fields.
"""
from __future__ import annotations

import time
from typing import Any, Iterable

SCHEMA = 1
_SHORT = 200  # characters of an item value shown on the status page


def compose(sched: dict[str, Any], *, crawl: dict[str, Any], seconds: float, done_before: int,
            items: int, items_dropped: int, last_items: Iterable[dict],
            connected_within: float, item_errors: int = 0,
            spider_stats: dict[str, int] | None = None) -> dict[str, Any]:
    """The snapshot from a Scheduler.snapshot() and the master's own numbers (with
    `spider_stats`, the counts the spider's code made on the master)."""
    stats = sched["stats"]
    this_run = stats.get("done", 0) - done_before
    workers = sched["workers"]
    for w in workers:
        w["connected"] = w["seen_ago"] < connected_within
        w["seen_ago"] = round(w["seen_ago"], 3)
    return {
        "schema": SCHEMA, **crawl, "updated_at": round(time.time(), 3),
        "state": "closing" if sched["closing"] else "running",
        "pages_done": stats.get("done", 0), "pages_failed": stats.get("failed", 0),
        "failed_by_reason": _by_prefix(stats, "failed/"),
        "dropped": _by_prefix(stats, "dropped/"),
        "spider_stats": _added(_by_prefix(stats, "spider/"), spider_stats or {}),
        "items": items, "items_dropped": items_dropped, "item_errors": item_errors,
        "admitted": stats.get("admitted", 0), "retries": stats.get("retries", 0),
        "duplicates": stats.get("duplicates", 0),
        "stale_results": stats.get("stale_results", 0),
        "leases_expired": stats.get("leases_expired", 0),
        "robots_fetched": stats.get("robots_fetched", 0),
        "robots_unavailable": stats.get("robots_unavailable", 0),
        "bytes": stats.get("bytes", 0),
        "closed_by": sched["closing"],
        "seconds": round(seconds, 3),
        "pages_done_this_run": this_run,
        "pages_per_second": round(this_run / seconds, 1) if seconds else 0.0,
        "queued": sched["queued"], "spilled": sched.get("spilled", 0),
        "in_flight": sched["in_flight"],
        "hosts": sched["hosts"],
        "workers_connected": sum(w["connected"] for w in workers),
        "workers_known": sched["workers_known"], "workers": workers,
        "failure_examples": sched["failure_examples"],
        "last_items": [_shorten(item) for item in last_items],
        "recrawl": sched.get("recrawl"),  # a --recrawl round: {unchanged, changed, new, gone}
    }


def finished(snap: dict[str, Any]) -> dict[str, Any]:
    """The snapshot of a crawl that is over: closed_by says why (finished when nothing
    closed it early)."""
    return dict(snap, state="over", closed_by=snap["closed_by"] or "finished")


def _by_prefix(stats: dict[str, int], prefix: str) -> dict[str, int]:
    return {k[len(prefix):]: v for k, v in stats.items() if k.startswith(prefix)}


def _added(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in sorted(a.keys() | b.keys())}


def _shorten(item: dict) -> dict[str, Any]:
    out = {}
    for key, value in item.items():
        if not isinstance(value, (int, float, bool, type(None))):
            value = value if isinstance(value, str) else repr(value)
            value = value if len(value) <= _SHORT else value[:_SHORT] + "…"
        out[str(key)] = value
    return out
