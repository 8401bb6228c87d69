"""The generic spider's links, as written on a page, turned into tasks in one pass.

A Scrapy spider yields one Request per link, and each is checked and turned into a task
(Handler._vet). The generic spider's links carry nothing but their URL, so it hands the
handler the page's hrefs instead (`Hrefs`), and `LinkVetter` resolves and vets them with
the same rules and in the same order (too long, not crawlable, a trap, off-site), giving the
same tasks and drop counts. What a link resolves to and how it is vetted depends only on the
href and the page's directory, and sites repeat their links from page to page, so that is
remembered: most links cost one lookup.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from .. import urls
from ..http.response import Response
from .rules import Rules

CACHE_SIZE = 1 << 16  # vetted links remembered per worker (cleared when full)
_HTTP = ("http://", "https://")
_CONTEXT = frozenset(":\t\n\r")  # hrefs whose join may need more of the base than its directory


@dataclass(slots=True)
class Hrefs:
    """A page's links as written (not yet resolved), for the handler to vet."""

    response: Response
    hrefs: list[str]


class LinkVetter:
    """Turns a page's hrefs into tasks with a handler's rules; safe to share between
    threads (the cache is a dict: each get and set is atomic)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self._vetted: dict[Any, tuple] = {}

    def tasks(self, links: Hrefs, child: int, dropped: Counter) -> list[dict[str, Any]]:
        """The tasks of the links at depth `child`; what is dropped is counted by reason."""
        rules = self.rules
        if rules.depth_limit and child > rules.depth_limit:
            dropped["depth"] += len(links.hrefs)
            return []
        priority = -child * rules.depth_priority
        joiner = links.response.joiner
        folder = joiner.directory_url if joiner.origin is not None else None
        vetted, tasks = self._vetted, []
        for href in links.hrefs:
            got = vetted.get((folder, href))
            if got is None:
                got = self._vet(joiner(href))
                if folder is not None and _cacheable(href.strip()):  # as the join strips it
                    if len(vetted) >= CACHE_SIZE:
                        vetted.clear()
                    vetted[folder, href] = got
            if got[0] is not None:
                dropped[got[0]] += 1
                continue
            task = {"url": got[1], "depth": child, "host": got[2], "fp": got[3]}
            if priority:
                task["priority"] = priority
            tasks.append(task)
        return tasks

    def _vet(self, url: str) -> tuple:
        """(None, url, host, fp) for a link to follow, else (reason,)."""
        rules = self.rules
        if len(url) > rules.url_length_limit:
            return ("url_too_long",)
        identity = urls.identify(url, rules.ignore_params)
        if identity is None:
            return ("invalid_url",)
        url, host, fp = identity
        if rules.trap_repeat and urls.repeats_segment(url, rules.trap_repeat):
            return ("trap",)
        if rules.allowed_domains and not urls.in_domains(host, rules.allowed_domains):
            return ("offsite",)
        return None, url, host, fp


def _cacheable(href: str) -> bool:
    """Whether the join of a stripped href depends on nothing but it and the base's
    directory (which includes its origin): true of absolute http(s) URLs, absolute paths and
    relative paths. Fragments and queries alone need the whole base, and a colon or a tab
    may make urljoin read it."""
    if href.startswith(_HTTP):
        return True
    return bool(href) and href[0] not in "#?" and not href.startswith("//") and \
        _CONTEXT.isdisjoint(href)
