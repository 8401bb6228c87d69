"""The frontier: seen states, per-host queues, politeness clock and leases.

Pure Python and single-threaded: the caller holds a lock. No sockets here. Queued URLs past
`memory_queue` wait in a Spill on disk, and a resume rebuilds the frontier from its journal
(both in restore.py); fingerprints past `seen_dict_max` go to the compact table (seen.py).
Every admitted fingerprint moves QUEUED -> LEASED -> DONE or FAILED, possibly back to QUEUED
for a retry or when a lease expires.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import random
import time
from collections import Counter, defaultdict, deque
from typing import Any, Callable, Iterable, Mapping

from ..http.request import CORE_FIELDS, extra_fields
from ..urls import fingerprint
from .hosts import Host, summary
from .leases import Leases
from .restore import PRIORITY_STEP, Restorable
from .robots import RobotsRules
from .seen import DONE, FAILED, LEASED, QUEUED, SeenStore
from .spill import Spill
from .throttle import Throttle

log = logging.getLogger(__name__)
_EXAMPLES = 3  # failed URLs kept per reason for the status page


class Frontier(Restorable):
    """Decides what is fetched next, by whom, and when each URL is finished."""

    def __init__(self, *, per_host: int = 8, delay: float = 0.0, randomize_delay: bool = False,
                 lease_timeout: float = 60.0, retry_times: int = 2, epoch: str = "0",
                 robots_agent: str | None = None, throttle: Throttle | None = None,
                 host_page_limit: int = 0, robots_max_delay: float = float("inf"),
                 slots: Mapping[str, Mapping[str, Any]] | None = None,
                 seen_dict_max: int = 2_000_000, memory_queue: int = 0,
                 spill_dir: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 rng: Callable[[], float] = random.random) -> None:
        self.per_host, self.host_page_limit = per_host, host_page_limit
        self.throttle = throttle or Throttle(delay, randomize_delay)
        self.robots_agent = robots_agent  # None: robots.txt is not obeyed
        self.robots_max_delay = robots_max_delay
        self.slots = dict(slots or {})  # DOWNLOAD_SLOTS: per-host concurrency and delay
        self.lease_timeout, self.retry_times = lease_timeout, retry_times
        self.clock, self.rng = clock, rng
        self.seen = SeenStore(seen_dict_max)
        self.stats: Counter = Counter()
        self.failures: list[tuple[str, str]] = []
        self._examples: defaultdict[str, deque] = defaultdict(lambda: deque(maxlen=_EXAMPLES))
        self._hosts: dict[str, Host] = {}
        self._ready: list[tuple[float, int, str]] = []  # (time, seq, host)
        self._leases = Leases(epoch, lease_timeout)
        self._close_asked: str | None = None  # a spider's CloseSpider reason
        self._delayed: list[tuple[float, int, dict]] = []  # retries waiting for backoff
        self._seq = itertools.count()
        self.queued = 0
        self.memory_queue, self.spill_dir = memory_queue, spill_dir  # 0: no memory bound
        self._spill: Spill | None = None
        # When a list, every durable state change is appended as (fp, state, reason, task)
        # for the caller to journal.
        self.changes: list[tuple[bytes, str, str | None, dict]] | None = None
        # Called as on_failed(task, reason) when a task with a "kind" (a media download)
        # fails for good, whichever way (a worker's result, robots.txt, retries used up).
        self.on_failed: Callable[[dict[str, Any], str | None], None] | None = None

    # -- admission ---------------------------------------------------------
    def admit(self, tasks: Iterable[dict[str, Any]]) -> int:
        """Queue tasks whose fingerprint ("fp") is new; return how many were new."""
        # The hot loop of a busy master (20 links a page): locals, no calls for the
        # common task (core fields only, known host).
        seen, hosts, changes, limit = self.seen, self._hosts, self.changes, self.host_page_limit
        front, table, front_max = seen.front, seen.table, seen.dict_max
        obey, bound = self.robots_agent is not None, self.memory_queue
        new = duplicates = capped = 0
        for task in tasks:
            fp = task["fp"]
            known = fp in front or (table.count and fp in table)
            if known and not task.get("dont_filter"):
                duplicates += 1
                continue
            name = task["host"]
            host = hosts.get(name)
            if host is None:
                host = self._new_host(name)
            elif limit and host.admitted >= limit:
                capped += 1
                continue
            if obey:  # inline: a call per link costs the master ~2% (a page has 20)
                origin = task["url"][:task["url"].find("/", 8)]  # a normalized URL has a path
                if origin not in host.robots:
                    self._ask_robots(host, name, origin)
            if known:
                seen[fp] = QUEUED
            elif len(front) < front_max:
                front[fp] = QUEUED
            else:
                table.add(fp, QUEUED)
            if len(task) == len(CORE_FIELDS):  # only url, fp, host, depth: flat, in line
                entry = (next(self._seq), task["url"].encode(), fp, task["depth"], None)
                self.queued += 1
                if 0 < bound < self.queued and bound < self.queued - self.spilled:
                    self._spill_entry(host, entry)
                else:
                    heapq.heappush(host.queue, entry)
            else:
                self._enqueue(host, task)
            if not host.scheduled:
                self._schedule(name, host)
            host.admitted += 1
            if changes is not None:
                changes.append((fp, QUEUED, None, task))
            new += 1
        for key, count in (("admitted", new), ("duplicates", duplicates),
                           ("dropped/host_page_limit", capped)):
            if count:
                self.stats[key] += count
        return new

    def _push(self, task: dict[str, Any]) -> None:
        host = self._hosts.get(task["host"]) or self._new_host(task["host"])
        url = task["url"]
        if self.robots_agent is not None and not task.get("robots"):
            origin = url[:url.find("/", 8)]
            if origin not in host.robots:
                self._ask_robots(host, task["host"], origin)
        self._enqueue(host, task)
        self._schedule(task["host"], host)

    def _new_host(self, name: str) -> Host:
        slot, throttle = self.slots.get(name, {}), self.throttle
        floor = slot.get("delay", throttle.delay)
        host = self._hosts[name] = Host(
            id=len(self._hosts), limit=slot.get("concurrency", self.per_host), floor=floor,
            delay=max(floor, throttle.initial()) if throttle.auto else floor,
            randomize=slot.get("randomize_delay", throttle.randomize))
        return host

    def _ask_robots(self, host: Host, name: str, origin: str) -> None:
        """A new origin's robots.txt goes first; nothing else of its host leaves the queue
        before it is settled."""
        host.robots[origin] = None
        host.robots_pending += 1
        robots = origin + "/robots.txt"
        # Its own fingerprint: a page request for the same URL (a SitemapSpider's) must not
        # count as a duplicate of it.
        self._enqueue(host, {"url": robots, "host": name, "depth": 0, "robots": True,
                             "fp": fingerprint(robots, method="ROBOTS")})

    def _enqueue(self, host: Host, task: dict[str, Any]) -> None:
        # One key orders by priority, then first come first served (seq < 2**40).
        key = float("-inf") if task.get("robots") else \
            next(self._seq) - task.get("priority", 0) * PRIORITY_STEP
        extra = extra_fields(task)  # the core fields are kept flat in host queues
        entry = (key, task["url"].encode(), task["fp"], task.get("depth", 0), extra)
        self.queued += 1
        if self._full() and not task.get("robots"):  # robots.txt goes first: in memory
            self._spill_entry(host, entry)
        else:
            heapq.heappush(host.queue, entry)

    def _schedule(self, name: str, host: Host) -> None:
        if (host.queue or host.spilled) and not host.scheduled and host.inflight < host.limit \
                and not host.blocked():
            host.scheduled = True
            heapq.heappush(self._ready, (host.next_time, next(self._seq), name))

    def _changed(self, task: dict[str, Any], state: str, reason: str | None = None) -> None:
        if self.changes is not None and not task.get("robots"):
            self.changes.append((task["fp"], state, reason, task))

    # -- leasing -------------------------------------------------------------
    def lease(self, worker: str, n: int) -> tuple[list[tuple[str, dict]], float]:
        """Up to n (lease_id, task) pairs that politeness allows now, and seconds to wait
        before asking again when none could be given."""
        now = self.clock()
        self._release_delayed(now)
        out: list[tuple[str, dict]] = []
        while len(out) < n and self._ready and self._ready[0][0] <= now:
            due, _, name = heapq.heappop(self._ready)
            host = self._hosts[name]
            if host.next_time > due:  # pushed back since it was scheduled
                heapq.heappush(self._ready, (host.next_time, next(self._seq), name))
                continue
            host.scheduled = False
            self._take(name, host, worker, n - len(out), now, out)
            self._schedule(name, host)
        return out, self._wait_hint(now)

    def _take(self, name: str, host: Host, worker: str, room: int, now: float,
              out: list) -> None:
        take = min(room, host.limit - host.inflight, 1 if host.spaced else room)
        while take > 0 and not host.blocked():
            if host.spilled and (not host.queue or host.queue[0][0] > host.spill_min):
                self._spill.take(host)
            if not host.queue:
                break
            _, url, fp, depth, extra = heapq.heappop(host.queue)
            task = {"url": url.decode(), "fp": fp, "host": name, "depth": depth, **(extra or {})}
            self.queued -= 1
            rules = host.robots.get(url[:url.find(b"/", 8)].decode()) if host.robots else None
            if rules is not None and not rules.allowed(task["url"]) and \
                    not (extra and (extra.get("meta") or {}).get("dont_obey_robotstxt")):
                self._finish(task, FAILED, rules.refusal)
                continue
            lease_id = self._leases.grant(task, worker, now)
            self.seen[task["fp"]] = LEASED
            host.inflight += 1
            out.append((lease_id, task))
            take -= 1
        if host.spaced:
            host.next_time = now + self._spacing(host)

    def _spacing(self, host: Host) -> float:
        # Only DOWNLOAD_DELAY/AutoThrottle's delay is randomized; Crawl-delay is a floor.
        spacing = host.delay * (0.5 + self.rng()) if host.randomize else host.delay
        return max(host.crawl_delay, spacing)

    def feedback(self, name: str, latency: float | None, ok: bool,
                 retry_after: float | None = None) -> None:
        """What a response says about its host: its latency (AutoThrottle) and any
        Retry-After, which pauses the host."""
        host = self._hosts.get(name)
        if host is None:
            return
        now = self.clock()
        if latency is not None and self.throttle.auto:
            host.delay = self.throttle.adjust(host.delay, host.floor, latency, ok)
            host.next_time = max(host.next_time, now + self._spacing(host))
        if retry_after:
            host.next_time = max(host.next_time, now + self.throttle.pause(retry_after))

    def _wait_hint(self, now: float) -> float:
        times = [t for t in (self._ready[0][0] if self._ready else None,
                             self._delayed[0][0] if self._delayed else None) if t is not None]
        if times:
            return max(0.0, min(times) - now)
        # Hosts at their in-flight cap free up as results arrive: ask again soon.
        return 0.05 if self._leases else 0.5

    # -- results ---------------------------------------------------------------
    def parse_robots(self, status: int, body: str) -> RobotsRules:
        """The rules of a robots.txt response. The slow part of settling one (a big file
        takes a while): call it before taking the lock, then pass the rules to complete()."""
        return RobotsRules.from_status(status, body, self.robots_agent or "*",
                                       self.robots_max_delay)

    def complete(self, lease_id: str, outcome: str, reason: str | None = None,
                 robots: RobotsRules | None = None) -> dict | None:
        """Settle a lease: outcome is DONE, FAILED or "retry"; `robots` the parsed rules
        (parse_robots) for a robots.txt task. Returns the task, or None when the lease is
        unknown or expired (a late result, to be ignored)."""
        lease = self._leases.pop(lease_id)
        if lease is None:
            self.stats["stale_results"] += 1
            return None
        host = self._hosts[lease.task["host"]]
        host.inflight -= 1
        if outcome == "retry":
            self._retry(lease.task, reason or "error")
        elif lease.task.get("robots"):
            self._set_robots(host, lease.task, outcome, robots, reason)
        else:
            self._finish(lease.task, outcome, reason)
        if host.spaced:
            # Space the next start from this response too (after any Crawl-delay was
            # learnt), so jitter in when a worker really started cannot bring two
            # requests closer than the delay.
            host.next_time = max(host.next_time, self.clock() + self._spacing(host))
        self._schedule(lease.task["host"], host)
        return lease.task

    def _set_robots(self, host: Host, task: dict[str, Any], outcome: str,
                    robots: RobotsRules | None, reason: str | None) -> None:
        rules = robots if outcome == DONE else None
        self.stats[host.learn_robots(task["url"], rules, reason, self.robots_agent,
                                     self.robots_max_delay)] += 1

    def _retry(self, task: dict[str, Any], reason: str) -> None:
        attempt = task.get("attempt", 0) + 1
        if attempt > (task.get("meta") or {}).get("max_retry_times", self.retry_times):
            if task.get("robots"):
                self._set_robots(self._hosts[task["host"]], task, FAILED, None, reason)
            else:
                self._finish(task, FAILED, reason)
            return
        self.stats["retries"] += 1
        self._hosts[task["host"]].last_error = reason
        task = dict(task, attempt=attempt)
        self.seen[task["fp"]] = QUEUED
        self._changed(task, QUEUED)
        self.queued += 1
        backoff = min(30.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + self.rng())
        heapq.heappush(self._delayed, (self.clock() + backoff, next(self._seq), task))

    def _finish(self, task: dict[str, Any], outcome: str, reason: str | None) -> None:
        self.seen[task["fp"]] = outcome
        self._changed(task, outcome, reason)
        host = self._hosts[task["host"]]
        if outcome == FAILED:
            self.stats[f"failed/{reason}"] += 1
            self.failures.append((task["url"], reason or "error"))
            self._examples[reason or "error"].append(task["url"])
            host.failed += 1
            host.last_error = reason
            if self.on_failed is not None and "kind" in task:
                self.on_failed(task, reason)
        else:
            host.done += 1
        self.stats[outcome] += 1

    def _release_delayed(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            task = heapq.heappop(self._delayed)[2]
            self.queued -= 1
            self._push(task)

    def lease_of(self, lease_id: str) -> tuple[str, dict[str, Any]] | None:
        """(worker, task) of a lease still out, or None (unknown, settled or expired)."""
        lease = self._leases.get(lease_id)
        return None if lease is None else (lease.worker, lease.task)

    # -- failure handling ----------------------------------------------------------
    def renew(self, worker: str, lease_ids: Iterable[str]) -> None:
        """Heartbeat: extend the leases a live worker still holds."""
        self._leases.renew(worker, lease_ids, self.clock())

    def expire(self) -> int:
        """Return tasks whose lease ran out to the queue (counted as an attempt)."""
        overdue = self._leases.overdue(self.clock())
        for lease_id in overdue:
            self.stats["leases_expired"] += 1
            self.complete(lease_id, "retry", "lease_expired")
        return len(overdue)

    def release_worker(self, worker: str) -> int:
        """Requeue every task leased to a worker that is gone, without counting an attempt."""
        ids = self._leases.of_worker(worker)
        for lease_id in ids:
            task = self._leases.pop(lease_id).task
            host = self._hosts[task["host"]]
            host.inflight -= 1
            self.seen[task["fp"]] = QUEUED
            self._enqueue(host, task)
            self._schedule(task["host"], host)
        return len(ids)

    # -- monitoring ------------------------------------------------------------------
    def snapshot(self, top: int = 20) -> dict[str, Any]:
        """Plain-dict state for crawler.status, taken under the caller's lock: totals and
        the `top` hosts by queue and by failures (see hosts.summary: never walks URLs)."""
        return {
            "stats": dict(self.stats), "queued": self.queued, "spilled": self.spilled,
            "in_flight": len(self._leases),
            "hosts": summary(self._hosts, self.clock(), top, self.robots_agent is not None),
            "failure_examples": {r: list(urls) for r, urls in self._examples.items()},
            "leases_by_worker": self._leases.by_worker(),
        }

    @property
    def leased(self) -> int:
        """Tasks out with workers now."""
        return len(self._leases)

    def finished(self) -> bool:
        """Nothing queued, nothing waiting for a retry, nothing leased."""
        return self.queued == 0 and not self._leases

    def ask_close(self, reason: str) -> None:
        self._close_asked = self._close_asked or reason

    def close_asked(self) -> str | None:
        return self._close_asked

    def media_states(self, tasks: list[dict[str, Any]]) -> list[str | None]:
        """Per media task: None (never admitted), "pending" (queued or leased), or "again"
        (settled by a run before a restart: its outcome is not kept here)."""
        states = [self.seen.get(task["fp"]) for task in tasks]
        return [None if s is None else "pending" if s in (QUEUED, LEASED) else "again"
                for s in states]
