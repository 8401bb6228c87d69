"""The frontier in Redis: the same steps as the embedded one, each one atomic Lua script
per shard, batched (one round trip per batch of tasks or results, never one per URL).

Keys live under `crawler:<crawl>:{<crawl>.<shard>}:` (layout in crawler/frontier/redis_keys.py):
a host belongs to one shard (crc32 of its name), and all of a shard's keys share a hash tag,
so on a Redis Cluster each step touches one slot. Workers lease from and settle into Redis
themselves; the master only admits start requests, expires leases and reads the items.
"""
from __future__ import annotations

import logging
import random
import zlib
from collections import Counter
from typing import Any, Callable, Iterable, Mapping

from . import redis_args
from . import redis_keys
from .embedded import FAILED
from .redis_codec import media_outcome, unpack_member
from .redis_scripts import SOURCES, ScriptPipeline
from .redis_snapshot import snapshot
from .robots import RobotsRules
from .throttle import Throttle

log = logging.getLogger(__name__)
_ROBOTS_CACHE_MAX = 10_000


# A running crawl's state becomes "closing"; a state the master set (over:...) stays.
_CLOSING = "if (redis.call('GET', KEYS[1]) or 'running') == 'running' then " \
           "redis.call('SET', KEYS[1], 'closing') end"


class RedisFrontier:
    """A Frontier whose state is in Redis, shared by every process of a crawl."""

    def __init__(self, client: Any, crawl: str, *, shards: int = 1, per_host: int = 8,
                 delay: float = 0.0, randomize_delay: bool = False,
                 lease_timeout: float = 60.0, retry_times: int = 2,
                 robots_agent: str | None = None, throttle: Throttle | None = None,
                 host_page_limit: int = 0, robots_max_delay: float = float("inf"),
                 slots: Mapping[str, Mapping[str, Any]] | None = None,
                 clock: Callable[[], float] | None = None,
                 rng: Callable[[], float] = random.random, **_: Any) -> None:
        self.client, self.crawl, self.shards = client, crawl, shards
        self.per_host, self.host_page_limit = per_host, host_page_limit
        self.throttle = throttle or Throttle(delay, randomize_delay)
        self.robots_agent, self.robots_max_delay = robots_agent, robots_max_delay
        self.slots = dict(slots or {})
        self.lease_timeout, self.retry_times = lease_timeout, retry_times
        self.clock, self.rng = clock, rng  # clock None: Redis's own (one for all hosts)
        self.prefixes = [redis_keys.shard_prefix(crawl, k) for k in range(shards)]
        self._sha = self._load_scripts()
        self._robots: dict[str, RobotsRules] = {}
        self._leased: dict[str, dict] = {}  # tasks this process leased, by lease id
        self.seen = _SeenView(self)  # as the embedded frontier's seen dict, for its proxy

    # -- helpers -----------------------------------------------------------------------
    def shard_of(self, host: str) -> int:
        return zlib.crc32(host.encode()) % self.shards if self.shards > 1 else 0

    def _lease_shard(self, lease_id: str) -> int:
        head = lease_id.partition("-")[0]  # ids are <shard>-<n>; others are stale anyway
        return int(head) if head.isdigit() and int(head) < self.shards else 0

    def _header(self) -> list[Any]:
        now = "" if self.clock is None else repr(self.clock())
        return [now, ",".join(repr(self.rng()) for _ in range(8))]

    def _load_scripts(self) -> dict[str, str]:
        return {step: self.client.script_load(text) for step, text in SOURCES.items()}

    def _call(self, step: str, shard: int, args: list[Any], pipe: Any) -> None:
        pipe.evalsha(self._sha[step], 1, self.prefixes[shard] + "stats", *self._header(), *args)

    def _pipeline(self) -> Any:
        return ScriptPipeline(self)

    def _admit_call(self, shard: int, tasks: list[dict], pipe: Any) -> None:
        section = redis_args.links_section(self, tasks)
        self._call("admit", shard, redis_args.obey_args(self) + section, pipe)

    def _by_shard(self, tasks: Iterable[dict[str, Any]]) -> dict[int, list[dict]]:
        groups: dict[int, list[dict]] = {}
        for task in tasks:
            groups.setdefault(self.shard_of(task["host"]), []).append(task)
        return groups

    # -- admission ---------------------------------------------------------------------
    def admit(self, tasks: Iterable[dict[str, Any]]) -> int:
        """Queue tasks whose fingerprint is new (one script per shard, one round trip)."""
        groups = self._by_shard(tasks)
        if not groups:
            return 0
        pipe = self._pipeline()
        for shard, group in groups.items():
            self._admit_call(shard, group, pipe)
        return sum(int(n) for n in pipe.execute())

    def unseen(self, fingerprints: list[bytes]) -> list[bytes]:
        """The fingerprints not known yet (workers pre-filter links with it); with shards,
        all of them (a fingerprint does not say its host): the settle step dedups anyway."""
        if self.shards > 1 or not fingerprints:
            return list(fingerprints)
        known = self.client.smismember(self.prefixes[0] + "seen", fingerprints)
        return [fp for fp, k in zip(fingerprints, known) if not k]

    def media_states(self, tasks: list[dict[str, Any]]) -> list[Any]:
        """Per media task: None (never admitted), "pending" (queued, leased or waiting for
        a retry), or its outcome, kept in Redis for the whole crawl ({"checksum",
        "status"} or {"reason"}). One round trip."""
        pipe = self.client.pipeline(transaction=False)
        for task in tasks:
            prefix = self.prefixes[self.shard_of(task["host"])]
            pipe.hget(prefix + "media", task["fp"].hex())
            pipe.sismember(prefix + "seen", task["fp"])
        replies = pipe.execute() if tasks else []
        return [media_outcome(kept) if kept is not None else "pending" if seen else None
                for kept, seen in zip(replies[::2], replies[1::2])]

    def media_failed(self, task: dict[str, Any], reason: str) -> None:
        """Keep a download's outcome as failed (the master could not store its files)."""
        prefix = self.prefixes[self.shard_of(task["host"])]
        self.client.hset(prefix + "media", task["fp"].hex(), f"failed\t{reason}")

    # -- leasing -----------------------------------------------------------------------
    def lease(self, worker: str, n: int, renew: Iterable[str] = ()) -> tuple[list, float]:
        """Up to n (lease id, task) pairs; `renew` lease ids are extended in the same trip.
        Tasks robots.txt disallows are settled failed(robots) here, not returned."""
        out, wait, _ = self.lease_state(worker, n, renew)
        return out, wait

    def lease_state(self, worker: str, n: int,
                    renew: Iterable[str] = ()) -> tuple[list, float, str]:
        """lease(), plus the crawl's state as the master set it (running, closing, over:...)."""
        pipe = self._pipeline()
        self._lease_calls(worker, n, renew, pipe)
        return self._leases_from(worker, pipe.execute())

    def exchange(self, worker: str, results: list[dict[str, Any]], n: int,
                 renew: Iterable[str] = ()) -> tuple[list[str], list, float, str]:
        """settle(results), then lease_state(), in one round trip: the accepted lease ids,
        then what lease_state() gives."""
        pipe = self._pipeline()
        skip, count = self._settle_calls(results, pipe)
        self._lease_calls(worker, n, renew, pipe)
        replies = pipe.execute()
        accepted = self._accepted(replies[skip:skip + count])
        return (accepted, *self._leases_from(worker, replies[skip + count:]))

    def _lease_calls(self, worker: str, n: int, renew: Iterable[str], pipe: Any) -> None:
        renewals: dict[int, list[str]] = {}
        for lease_id in renew:
            renewals.setdefault(self._lease_shard(lease_id), []).append(lease_id)
        each = -(-n // self.shards) if n > 0 else 0
        for shard in range(self.shards):
            self._call("lease", shard, [worker, each, self.lease_timeout, shard,
                                        *renewals.get(shard, ())], pipe)

    def _leases_from(self, worker: str, replies: list) -> tuple[list, float, str]:
        out, waits, state = [], [], "running"
        for reply in replies:
            state = reply[0].decode() if reply[0] != b"running" else state
            waits.append(float(reply[1]))
            for i in range(2, len(reply), 3):
                task = unpack_member(reply[i + 2])
                if reply[i + 1] == b"-inf":
                    task["robots"] = True
                out.append((reply[i].decode(), task))
        out = self._vet_robots(worker, out)
        for lease_id, task in out:
            self._leased[lease_id] = task
        return out, min(waits) if waits else 0.5, state

    def _vet_robots(self, worker: str, leased: list) -> list:
        if self.robots_agent is None:
            return leased
        self._load_robots([t for _, t in leased if not t.get("robots")])
        allowed, refused = [], []
        for lease_id, task in leased:
            rules = None if task.get("robots") else self._robots.get(_origin(task["url"]))
            if rules is not None and not rules.allowed(task["url"]) and \
                    not (task.get("meta") or {}).get("dont_obey_robotstxt"):
                refused.append({"lease": lease_id, "outcome": FAILED, "reason": rules.refusal})
            else:
                allowed.append((lease_id, task))
        if refused:
            self.settle(refused)
        return allowed

    def _load_robots(self, tasks: list[dict]) -> None:
        missing: dict[str, str] = {}
        for task in tasks:
            origin = _origin(task["url"])
            if origin not in self._robots:
                missing[origin] = task["host"]
        if not missing:
            return
        if len(self._robots) > _ROBOTS_CACHE_MAX:
            self._robots.clear()
        pipe = self.client.pipeline(transaction=False)
        for origin, host in missing.items():
            pipe.hget(self.prefixes[self.shard_of(host)] + "robots:" + host, origin)
        for origin, value in zip(missing, pipe.execute()):
            if value:  # settled; "" (pending) cannot be: its host leases nothing else
                self._robots[origin] = self._rules(value.decode("utf-8", "replace"))

    def _rules(self, value: str) -> RobotsRules:
        kind, _, rest = value.partition("\t")
        if kind == "ok":
            status, _, body = rest.partition("\t")
            return self.parse_robots(int(status), body)
        return RobotsRules(None, self.robots_agent or "*", unavailable=rest or "error")

    def parse_robots(self, status: int, body: str) -> RobotsRules:
        rules = RobotsRules.from_status(status, body, self.robots_agent or "*",
                                        self.robots_max_delay)
        rules.source = (status, body)  # what Redis keeps, for every other process to parse
        return rules

    # -- results -----------------------------------------------------------------------
    def complete(self, lease_id: str, outcome: str, reason: str | None = None,
                 robots: RobotsRules | None = None, **result: Any) -> dict | None:
        """Settle one lease (the batched form is settle())."""
        one = dict(result, lease=lease_id, outcome=outcome, reason=reason)
        if robots is not None:
            one["_rules"] = robots
        task = self._leased.get(lease_id)
        accepted = self.settle([one])
        return (task or {"lease": lease_id}) if accepted else None

    def settle(self, results: list[dict[str, Any]]) -> list[str]:
        """Settle a batch of worker results (outcome, reason, robots, latency, items,
        requests, ...): one script per shard in one round trip, each with one links section
        for all its pages (dedup and queue updates once per batch). The accepted lease ids."""
        pipe = self._pipeline()
        skip, count = self._settle_calls(results, pipe)
        return self._accepted(pipe.execute()[skip:skip + count])

    def _settle_calls(self, results: list[dict[str, Any]], pipe: Any) -> tuple[int, int]:
        """Queue settle()'s calls: how many admit calls, then how many complete calls."""
        per_shard: dict[int, tuple[list[Any], list[dict]]] = {}
        foreign: list[dict] = []  # links of hosts in another shard than their page's
        for result in results:
            shard = self._lease_shard(result["lease"])
            links = result.get("requests") or ()
            if self.shards > 1 and links:
                foreign += [t for t in links if self.shard_of(t["host"]) != shard]
                links = [t for t in links if self.shard_of(t["host"]) == shard]
            heads, tasks = per_shard.setdefault(shard, ([], []))
            heads += redis_args.result_args(self, result, len(links))
            tasks += links
        # Other shards' links first: a worker dying mid-way may then fetch a page again,
        # never lose its links.
        foreign_groups = self._by_shard(foreign)
        for shard, group in foreign_groups.items():
            self._admit_call(shard, group, pipe)
        head = redis_args.obey_args(self) + redis_args.throttle_args(self)
        for shard, (heads, tasks) in per_shard.items():
            self._call("complete", shard, head + [len(heads) // redis_args.RESULT_ARGS, *heads,
                                                  *redis_args.links_section(self, tasks)], pipe)
        return len(foreign_groups), len(per_shard)

    def _accepted(self, replies: list) -> list[str]:
        accepted = [i.decode() for reply in replies for i in reply]
        for lease_id in accepted:
            self._leased.pop(lease_id, None)
        return accepted

    def feedback(self, name: str, latency: float | None, ok: bool,
                 retry_after: float | None = None) -> None:
        """AutoThrottle and Retry-After for a host (settle() does this for each result)."""
        pause = self.throttle.pause(retry_after) if retry_after else 0
        pipe = self._pipeline()
        self._call("feedback", self.shard_of(name), [
            name, "" if latency is None else repr(float(latency)), "1" if ok else "0",
            repr(float(pause)), *redis_args.throttle_args(self)], pipe)
        pipe.execute()

    # -- failure handling --------------------------------------------------------------
    def renew(self, worker: str, lease_ids: Iterable[str]) -> None:
        """Heartbeat (lease() renews in the same round trip; this asks for no tasks)."""
        self.lease_state(worker, 0, lease_ids)

    def expire(self) -> int:
        return self._each_shard("expire", [])

    def release_worker(self, worker: str) -> int:
        return self._each_shard("release", [worker])

    def _each_shard(self, step: str, args: list[Any]) -> int:
        pipe = self._pipeline()
        for shard in range(self.shards):
            self._call(step, shard, list(args), pipe)
        return sum(int(n) for n in pipe.execute())

    # -- state -------------------------------------------------------------------------
    def set_state(self, state: str) -> None:
        """What workers hear when they lease: running, closing, or over:<closed_by>."""
        pipe = self.client.pipeline(transaction=False)
        for prefix in self.prefixes:
            pipe.set(prefix + "state", state)
        if state == "running":  # a CloseSpider of an earlier run is not this run's
            pipe.delete(self.prefixes[0] + "close")
        pipe.execute()

    def ask_close(self, reason: str) -> None:
        """A spider raised CloseSpider on a worker: no more leases from now on (as the
        embedded master does), and the master reads the reason (the first one wins)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.prefixes[0] + "close", reason, nx=True)
        for prefix in self.prefixes:  # one key per call: each shard's key is in its own slot
            pipe.eval(_CLOSING, 1, prefix + "state")
        pipe.execute()

    def close_asked(self) -> str | None:
        value = self.client.get(self.prefixes[0] + "close")
        return value.decode() if value is not None else None

    def _totals(self) -> list[dict[bytes, bytes]]:
        pipe = self.client.pipeline(transaction=False)
        for prefix in self.prefixes:
            pipe.hgetall(prefix + "stats")
            pipe.hlen(prefix + "leases")
        replies = pipe.execute()
        return [dict(replies[i], leased=replies[i + 1]) for i in range(0, len(replies), 2)]

    @property
    def stats(self) -> Counter:
        """Counters summed over the shards (as the embedded frontier's stats)."""
        total: Counter = Counter()
        for shard in self._totals():
            for key, value in shard.items():
                name = key.decode() if isinstance(key, bytes) else key
                if name not in ("queued", "leased") and int(value):
                    total[name] += int(value)
        return total

    @property
    def queued(self) -> int:
        return sum(int(s.get(b"queued", 0)) for s in self._totals())

    @property
    def leased(self) -> int:
        return sum(int(s["leased"]) for s in self._totals())

    def finished(self) -> bool:
        totals = self._totals()
        return all(int(s.get(b"queued", 0)) == 0 and int(s["leased"]) == 0 for s in totals)

    @property
    def failures(self) -> list[tuple[str, str]]:
        """(url, reason) of every failed URL."""
        out = []
        for prefix in self.prefixes:
            for line in self.client.lrange(prefix + "failures", 0, -1):
                reason, _, url = line.decode().partition("\t")
                out.append((url, reason))
        return out

    def lease_of(self, lease_id: str) -> tuple[str, dict[str, Any]] | None:
        """None: on Redis workers settle their leases in Redis, never through the master."""
        return None

    def close(self) -> None:
        """Nothing to release: the crawl's state stays in Redis (to resume it)."""

    def snapshot(self, top: int = 20) -> dict[str, Any]:
        """As the embedded frontier's, from every shard in two round trips."""
        return snapshot(self, top)


class _SeenView:
    """What a worker may ask of the master's seen dict, answered from Redis."""

    def __init__(self, frontier: RedisFrontier) -> None:
        self.frontier, self.unseen = frontier, frontier.unseen

    def __contains__(self, fp: bytes) -> bool:
        return not self.unseen([fp])

    def get(self, fp: bytes, default: Any = None) -> Any:
        return "known" if fp in self else default

    def __len__(self) -> int:
        return self.frontier.stats["admitted"]


def _origin(url: str) -> str:
    return url[:url.find("/", 8)]


