"""The frontier's slow paths: its rebuild from a journal at a resume, and the spill that
bounds its memory (queued URLs past FRONTIER_MEMORY_QUEUE wait on disk).

A mixin of embedded.Frontier, apart from the per-link code. A resume handles every URL of
a crawl (millions) before the master listens: the seen store takes the journal's dict as
it is, and each host's queue is the journal's entries of its URLs, in the order queued.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import os
from operator import countOf, itemgetter

from ..urls import host_of
from .hosts import Host
from .robots import RobotsRules
from .saved import Saved, collector_paused
from .seen import DONE, FAILED
from .spill import Spill

log = logging.getLogger(__name__)
PRIORITY_STEP = 1 << 40  # a queue key is its order less priority * PRIORITY_STEP


class Restorable:
    """Frontier.restore and know_robots, and the spill behind `memory_queue`."""

    def restore(self, saved: Saved) -> None:
        """Rebuild a new frontier (after know_robots) from a journal (Journal.urls()):
        settled URLs are only remembered; queued ones, and those leased when the master
        died, are queued again, in each host in the order they were queued, with their
        fields (retries, depth, priority...)."""
        with collector_paused():
            self._restore(saved)

    def _restore(self, saved: Saved) -> None:
        self.stats["admitted"] += len(saved.states)
        self.stats[DONE] += countOf(saved.states.values(), DONE)
        self.seen.load(saved.states)  # takes the dict over: counted first
        for _, url, reason in saved.failed:
            self.stats[FAILED] += 1
            self.stats[f"failed/{reason}"] += 1
            self.failures.append((url, reason or "error"))
        self._seq = itertools.count(max(next(self._seq), saved.rows))  # after every order
        self._requeue(saved.queued)

    def _requeue(self, entries: list[tuple]) -> None:
        """Saved entries back in their hosts' queues, past the memory bound in the spill."""
        keyed = any(map(itemgetter(4), entries))  # extra fields: maybe a priority
        if keyed:
            entries = [_keyed(*entry) for entry in entries]
        bound = self.memory_queue
        room = max(0, bound - self.queued + self.spilled) if bound else len(entries)
        for origin, group in _by_origin(entries[:room]).items():
            name, host = self._saved_host(origin, group[0][1])
            if keyed or host.queue:
                host.queue += group
                heapq.heapify(host.queue)
            else:  # in order: a heap already
                host.queue = group
            self._queued_again(name, host, origin, len(group))
        for origin, group in _by_origin(entries[room:]).items():
            name, host = self._saved_host(origin, group[0][1])
            for entry in group:
                self._spill_entry(host, entry)
            self._queued_again(name, host, origin, len(group))

    def _saved_host(self, origin: bytes, url: bytes) -> tuple[str, Host]:
        name = host_of(url.decode())
        return name, self._hosts.get(name) or self._new_host(name)

    def _queued_again(self, name: str, host: Host, origin: bytes, count: int) -> None:
        self.queued += count
        if self.robots_agent is not None and origin.decode() not in host.robots:
            self._ask_robots(host, name, origin.decode())
        self._schedule(name, host)

    def know_robots(self, origin: str, rules: RobotsRules) -> None:
        """The rules of an origin's robots.txt fetched before (by an earlier run of a JOBDIR):
        it is not fetched again. Call before restore()."""
        name = host_of(origin + "/")
        host = self._hosts.get(name) or self._new_host(name)
        host.robots[origin] = rules
        host.crawl_delay = max(host.crawl_delay, rules.crawl_delay)

    # -- the spill ---------------------------------------------------------------
    def _full(self) -> bool:
        """More entries in memory than the bound, counting the one just queued (`spilled`,
        a property, only when the total is past it: as admit checks in line)."""
        bound = self.memory_queue
        return 0 < bound < self.queued and bound < self.queued - self.spilled

    def _spill_entry(self, host: Host, entry: tuple) -> None:
        if self._spill is None:
            self._spill = Spill(self.spill_dir)
            log.info("more than %d URLs queued: the rest go to a spill file in %s",
                     self.memory_queue, os.path.dirname(self._spill.path))
        self._spill.put(host, entry)

    @property
    def spilled(self) -> int:
        """Queued entries on disk."""
        return self._spill.count if self._spill is not None else 0

    def close(self) -> None:
        """Let go of the spill file (nothing in it is needed once the crawl ends)."""
        if self._spill is not None:
            self._spill.close()
            self._spill = None


def _keyed(order: int, url: bytes, fp: bytes, depth: int, extra: dict | None) -> tuple:
    """A saved entry keyed as Frontier._enqueue keys a task: by priority, then order."""
    if extra and extra.get("priority"):
        return order - extra["priority"] * PRIORITY_STEP, url, fp, depth, extra
    return order, url, fp, depth, extra


def _by_origin(entries: list[tuple]) -> dict[bytes, list[tuple]]:
    """Entries by their URL's origin (scheme://host:port), each list in the given order."""
    groups: dict[bytes, list[tuple]] = {}
    for entry in entries:
        url = entry[1]
        origin = url[:url.find(b"/", 8)]  # a normalized URL has a path
        group = groups.get(origin)
        if group is None:
            groups[origin] = [entry]
        else:
            group.append(entry)
    return groups
