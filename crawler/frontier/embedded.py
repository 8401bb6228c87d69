"""The frontier: seen states, per-host queues, politeness clock and leases.

Pure Python and single-threaded: the caller holds a lock. No sockets here.
Every admitted fingerprint moves QUEUED -> LEASED -> DONE or FAILED, possibly
back to QUEUED for a retry or when a lease expires.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import random
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..http.request import CORE_FIELDS, extra_fields
from .robots import RobotsRules
from .throttle import Throttle
from ..urls import fingerprint, host_of

log = logging.getLogger(__name__)
QUEUED, LEASED, DONE, FAILED = "queued", "leased", "done", "failed"
_PRIORITY_STEP = 1 << 40
_EXAMPLES = 3  # failed URLs kept per reason for the status page


class SeenDict(dict):
    """Fingerprint -> state; shared with workers as a registered proxy dict."""

    def unseen(self, fingerprints: list[bytes]) -> list[bytes]:
        """The fingerprints not yet known, in one call (workers pre-filter with it)."""
        return [fp for fp in fingerprints if fp not in self]


@dataclass
class _Host:
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

    @property
    def spaced(self) -> bool:
        """Requests to this host are spaced in time: one at a time, then a pause."""
        return bool(self.delay or self.crawl_delay)

    def blocked(self) -> bool:
        """Waiting for robots.txt, and that task is not first in line (leased or delayed)."""
        return self.robots_pending > 0 and not (self.queue and self.queue[0][4] is not None
                                                and self.queue[0][4].get("robots"))


@dataclass
class _Lease:
    task: dict[str, Any]
    worker: str
    deadline: float


class Frontier:
    """Decides what is fetched next, by whom, and when each URL is finished."""

    def __init__(self, *, per_host: int = 8, delay: float = 0.0, randomize_delay: bool = False,
                 lease_timeout: float = 60.0, retry_times: int = 2, epoch: str = "0",
                 robots_agent: str | None = None, throttle: Throttle | None = None,
                 host_page_limit: int = 0, robots_max_delay: float = float("inf"),
                 slots: Mapping[str, Mapping[str, Any]] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 rng: Callable[[], float] = random.random) -> None:
        self.per_host, self.host_page_limit = per_host, host_page_limit
        self.throttle = throttle or Throttle(delay, randomize_delay)
        self.robots_agent = robots_agent  # None: robots.txt is not obeyed
        self.robots_max_delay = robots_max_delay
        self.slots = dict(slots or {})  # DOWNLOAD_SLOTS: per-host concurrency and delay
        self.lease_timeout, self.retry_times = lease_timeout, retry_times
        self.clock, self.rng = clock, rng
        self.seen = SeenDict()
        self.stats: Counter = Counter()
        self.failures: list[tuple[str, str]] = []
        self._examples: defaultdict[str, deque] = defaultdict(lambda: deque(maxlen=_EXAMPLES))
        self._hosts: dict[str, _Host] = {}
        self._ready: list[tuple[float, int, str]] = []  # (time, seq, host)
        self._leases: dict[str, _Lease] = {}
        self._expiry: list[tuple[float, str]] = []
        self._delayed: list[tuple[float, int, dict]] = []  # retries waiting for backoff
        self._seq = itertools.count()
        self._lease_ids = (f"{epoch}-{n}" for n in itertools.count())
        self.queued = 0
        # When a list, every durable state change is appended as (fp, state, reason, task)
        # for the caller to journal.
        self.changes: list[tuple[bytes, str, str | None, dict]] | None = None

    # -- admission ---------------------------------------------------------
    def admit(self, tasks: Iterable[dict[str, Any]]) -> int:
        """Queue tasks whose fingerprint ("fp") is new; return how many were new."""
        # The hot loop of a busy master (20 links a page): locals, no calls for the
        # common task (core fields only, known host).
        seen, hosts, changes, limit = self.seen, self._hosts, self.changes, self.host_page_limit
        obey = self.robots_agent is not None
        new = duplicates = capped = 0
        for task in tasks:
            fp = task["fp"]
            if fp in seen and not task.get("dont_filter"):
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
            seen[fp] = QUEUED
            if len(task) == len(CORE_FIELDS):  # nothing beyond url, fp, host, depth
                heapq.heappush(host.queue, (next(self._seq), task["url"].encode(), fp,
                                            task["depth"], None))
                self.queued += 1
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

    def _new_host(self, name: str) -> _Host:
        slot, throttle = self.slots.get(name, {}), self.throttle
        floor = slot.get("delay", throttle.delay)
        host = self._hosts[name] = _Host(
            limit=slot.get("concurrency", self.per_host), floor=floor,
            delay=max(floor, throttle.initial()) if throttle.auto else floor,
            randomize=slot.get("randomize_delay", throttle.randomize))
        return host

    def _ask_robots(self, host: _Host, name: str, origin: str) -> None:
        """A new origin's robots.txt goes first; nothing else of its host leaves the queue
        before it is settled."""
        host.robots[origin] = None
        host.robots_pending += 1
        robots = origin + "/robots.txt"
        # Its own fingerprint: a page request for the same URL (a SitemapSpider's) must not
        # count as a duplicate of it.
        self._enqueue(host, {"url": robots, "host": name, "depth": 0, "robots": True,
                             "fp": fingerprint(robots, method="ROBOTS")})

    def _enqueue(self, host: _Host, task: dict[str, Any]) -> None:
        # One key orders by priority, then first come first served (seq < 2**40).
        key = float("-inf") if task.get("robots") else \
            next(self._seq) - task.get("priority", 0) * _PRIORITY_STEP
        extra = extra_fields(task)  # the core fields are kept flat in host queues
        heapq.heappush(host.queue, (key, task["url"].encode(), task["fp"],
                                    task.get("depth", 0), extra))
        self.queued += 1

    def _schedule(self, name: str, host: _Host) -> None:
        if host.queue and not host.scheduled and host.inflight < host.limit \
                and not host.blocked():
            host.scheduled = True
            heapq.heappush(self._ready, (host.next_time, next(self._seq), name))

    def restore(self, rows: Iterable[tuple[bytes, str, str, str | None, dict | None]]) -> None:
        """Rebuild from journal rows (fp, state, url, reason, task): settled URLs are
        only remembered; queued ones (and those leased when the master died) are queued."""
        # A resume reads every URL of the crawl (millions): locals, counts kept in ints.
        seen, stats, push, queue = self.seen, self.stats, self._push, self._queue_core
        done = admitted = 0
        for fp, state, url, reason, task in rows:
            admitted += 1
            if state == DONE:
                seen[fp] = DONE
                done += 1
            elif state == FAILED:
                seen[fp] = FAILED
                stats[FAILED] += 1
                stats[f"failed/{reason}"] += 1
                self.failures.append((url, reason or "error"))
            else:
                seen[fp] = QUEUED
                if len(task) == len(CORE_FIELDS):
                    queue(task)
                else:
                    push(task)
        stats[DONE] += done
        stats["admitted"] += admitted

    def _queue_core(self, task: dict[str, Any]) -> None:
        """_push for a task of core fields only, as admit() queues one (a resume's bulk)."""
        name, url = task["host"], task["url"]
        host = self._hosts.get(name) or self._new_host(name)
        if self.robots_agent is not None:
            origin = url[:url.find("/", 8)]
            if origin not in host.robots:
                self._ask_robots(host, name, origin)
        heapq.heappush(host.queue, (next(self._seq), url.encode(), task["fp"], task["depth"],
                                    None))
        self.queued += 1
        if not host.scheduled:
            self._schedule(name, host)

    def know_robots(self, origin: str, rules: RobotsRules) -> None:
        """The rules of an origin's robots.txt fetched before (by an earlier run of a JOBDIR):
        it is not fetched again. Call before restore()."""
        name = host_of(origin + "/")
        host = self._hosts.get(name) or self._new_host(name)
        host.robots[origin] = rules
        host.crawl_delay = max(host.crawl_delay, rules.crawl_delay)

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

    def _take(self, name: str, host: _Host, worker: str, room: int, now: float,
              out: list) -> None:
        take = min(room, host.limit - host.inflight, 1 if host.spaced else room)
        while take > 0 and host.queue and not host.blocked():
            _, url, fp, depth, extra = heapq.heappop(host.queue)
            task = {"url": url.decode(), "fp": fp, "host": name, "depth": depth, **(extra or {})}
            self.queued -= 1
            rules = host.robots.get(url[:url.find(b"/", 8)].decode()) if host.robots else None
            if rules is not None and not rules.allowed(task["url"]) and \
                    not (extra and (extra.get("meta") or {}).get("dont_obey_robotstxt")):
                self._finish(task, FAILED, rules.refusal)
                continue
            lease_id = next(self._lease_ids)
            self._leases[lease_id] = _Lease(task, worker, now + self.lease_timeout)
            heapq.heappush(self._expiry, (now + self.lease_timeout, lease_id))
            self.seen[task["fp"]] = LEASED
            host.inflight += 1
            out.append((lease_id, task))
            take -= 1
        if host.spaced:
            host.next_time = now + self._spacing(host)

    def _spacing(self, host: _Host) -> float:
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
        lease = self._leases.pop(lease_id, None)
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

    def _set_robots(self, host: _Host, task: dict[str, Any], outcome: str,
                    robots: RobotsRules | None, reason: str | None) -> None:
        host.robots_pending -= 1
        origin = task["url"][:-len("/robots.txt")]
        if outcome == DONE and robots is not None:
            host.robots[origin] = robots
            host.crawl_delay = max(host.crawl_delay, robots.crawl_delay)
            if robots.crawl_delay >= self.robots_max_delay:
                log.warning("%s: Crawl-delay capped at ROBOTSTXT_MAX_CRAWL_DELAY (%s s)",
                            task["url"], self.robots_max_delay)
            self.stats["robots_fetched"] += 1
        else:
            cause = reason or "error"
            rules = host.robots[origin] = RobotsRules(None, self.robots_agent, unavailable=cause)
            host.last_error = f"robots_unavailable:{cause}"
            self.stats["robots_unavailable"] += 1
            log.warning("%s: unavailable (%s); the origin's URLs fail as %s", task["url"], cause,
                        rules.refusal)

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
        deadline = self.clock() + self.lease_timeout
        for lease_id in lease_ids:
            lease = self._leases.get(lease_id)
            if lease is not None and lease.worker == worker:
                lease.deadline = deadline
                heapq.heappush(self._expiry, (deadline, lease_id))

    def expire(self) -> int:
        """Return tasks whose lease ran out to the queue (counted as an attempt)."""
        now, count = self.clock(), 0
        while self._expiry and self._expiry[0][0] <= now:
            lease_id = heapq.heappop(self._expiry)[1]
            lease = self._leases.get(lease_id)
            if lease is not None and lease.deadline <= now:
                self.stats["leases_expired"] += 1
                self.complete(lease_id, "retry", "lease_expired")
                count += 1
        return count

    def release_worker(self, worker: str) -> int:
        """Requeue every task leased to a worker that is gone, without counting an attempt."""
        ids = [i for i, lease in self._leases.items() if lease.worker == worker]
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
        the `top` hosts by queue and by failures. Per-host numbers are kept as the frontier
        works, so this walks the hosts once (plus two nlargest), never the URLs."""
        now, hosts = self.clock(), self._hosts
        with_work = waiting = 0
        for host in hosts.values():
            if host.queue or host.inflight:
                with_work += 1
                waiting += bool(host.queue) and host.next_time > now
        by_queue = heapq.nlargest(top, hosts.items(), key=lambda kv: len(kv[1].queue))
        by_failures = heapq.nlargest(top, hosts.items(), key=lambda kv: kv[1].failed)
        return {
            "stats": dict(self.stats), "queued": self.queued, "in_flight": len(self._leases),
            "hosts": {"known": len(hosts), "with_work": with_work, "waiting": waiting,
                      "by_queue": [self._host_row(n, h, now) for n, h in by_queue if h.queue],
                      "by_failures": [self._host_row(n, h, now) for n, h in by_failures
                                      if h.failed]},
            "failure_examples": {r: list(urls) for r, urls in self._examples.items()},
            "leases_by_worker": Counter(lease.worker for lease in self._leases.values()),
        }

    def _host_row(self, name: str, host: _Host, now: float) -> dict[str, Any]:
        return {"host": name, "queued": len(host.queue), "in_flight": host.inflight,
                "done": host.done, "failed": host.failed, "delay": host.delay,
                "next_in": round(max(0.0, host.next_time - now), 3),
                "robots": self._robots_state(host), "last_error": host.last_error}

    def _robots_state(self, host: _Host) -> str:
        if self.robots_agent is None:
            return "off"
        if host.robots_pending or not host.robots:
            return "pending"
        settled = [rules for rules in host.robots.values() if rules is not None]
        return "unavailable" if any(r.unavailable for r in settled) else "ok"

    @property
    def leased(self) -> int:
        """Tasks out with workers now."""
        return len(self._leases)

    def finished(self) -> bool:
        """Nothing queued, nothing waiting for a retry, nothing leased."""
        return self.queued == 0 and not self._leases
