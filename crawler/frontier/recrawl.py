"""Recrawling what changed: the master's side of the rounds of a JOBDIR.

A finished crawl run again with --recrawl starts a new round: every URL it knows is queued
again, its task carrying "revisit" (the ETag and Last-Modified its last response gave), which
the worker turns into If-None-Match / If-Modified-Since. Each settled page of a round gets a
verdict: unchanged (304), changed (fetched in full again), new (first seen this round),
gone (404 or 410); its validators are journaled with it for the next round.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Any

from ..spider.sitemap import LASTMOD, SitemapMixin
from . import DONE

VERDICTS = ("unchanged", "changed", "new", "gone")
_GONE = ("http_404", "http_410")
SITEMAP_CALLBACK = SitemapMixin._parse_sitemap.__name__


def revisit(task: dict[str, Any], etag: str | None, last_modified: str | None) -> dict:
    """The task that revisits a known URL: a fresh attempt, with its validators. Sitemaps
    go before the other URLs of their host, so that what they list with an unchanged
    <lastmod> is known before those URLs are due (Rounds.skippable)."""
    task.pop("attempt", None)
    task["revisit"] = {k: v for k, v in (("etag", etag), ("last_modified", last_modified))
                       if v}
    if task.get("callback") == SITEMAP_CALLBACK:
        task["priority"] = task.get("priority", 0) + 1
    return task


def verdict(task: dict[str, Any], result: dict[str, Any], round_: int) -> str | None:
    """What a settled result says about its page in round `round_` (None: nothing to
    count, as in the first round, or a failure other than gone)."""
    revisited = "revisit" in task
    if result["outcome"] == DONE:
        status = result.get("status")
        if status == 304:
            return "unchanged"
        if status is not None and 300 <= status < 400:  # followed: its target is counted
            return None
        return "changed" if revisited else ("new" if round_ else None)
    return "gone" if revisited and result.get("reason") in _GONE else None


class Rounds:
    """Verdicts and validators of the current round, collected for the journal (which
    commits them with the state changes: Scheduler._commit)."""

    def __init__(self, round_: int, counts: dict[str, int] | None = None) -> None:
        self.round = round_
        self.counts: Counter = Counter(counts or {})
        self._rows: list[tuple] = []
        self._listed: dict[bytes, str] = {}  # fp -> <lastmod> a sitemap lists it with now

    def settled(self, task: dict[str, Any], result: dict[str, Any]) -> None:
        """Note a final result (done or failed) of a page."""
        if task.get("robots"):
            return
        self._listed.update(result.get("listed", ()))
        found = verdict(task, result, self.round)
        if found is not None:
            self.counts[found] += 1
        validators = result.get("validators")
        if validators is None and found == "unchanged":  # a 304 may not repeat them
            old = task.get("revisit") or {}
            validators = (old.get("etag"), old.get("last_modified"))
        if validators is not None or self.round:  # a round > 0 forgets stale ones too
            etag, modified = validators or (None, None)
            self._rows.append((task["fp"], self.round, found, etag, modified))

    def skippable(self, task: dict[str, Any]) -> bool:
        """A revisit a sitemap lists with a <lastmod> no newer than when it was last
        listed: unchanged, without a request."""
        listed = self._listed.get(task["fp"])
        before = (task.get("meta") or {}).get(LASTMOD)
        if "revisit" not in task or listed is None or not before:
            return False
        new, old = _when(listed), _when(before)
        return new is not None and old is not None and new <= old

    def take(self) -> list[tuple]:
        """The rows noted since the last take, for Journal.record."""
        rows, self._rows = self._rows, []
        return rows

    def summary(self) -> dict[str, int] | None:
        """{verdict: URLs} of a recrawl round (None in the first round)."""
        return {v: self.counts[v] for v in VERDICTS} if self.round else None


def _when(lastmod: str) -> float | None:
    """A W3C datetime (2024-05-01, 2024-05-01T10:00:00+00:00, ...) as a timestamp; a date
    or time without a zone counts as UTC."""
    try:
        when = datetime.fromisoformat(lastmod.strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
