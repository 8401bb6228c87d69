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

from ..urls import fingerprint
from . import redis_keys
from .embedded import DONE, FAILED
from .redis_codec import pack, pack_member, unpack_member
from .redis_scripts import SOURCES, ScriptPipeline
from .redis_snapshot import snapshot
from .robots import RobotsRules
from .throttle import Throttle

log = logging.getLogger(__name__)
_ROBOTS_CACHE_MAX = 10_000




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

    def _links(self, tasks: Iterable[dict[str, Any]]) -> list[Any]:
        """The links section of a step's arguments: hosts, origins (robots.txt), tasks."""
        hosts: dict[str, int] = {}
        origins: dict[str, int] = {}
        host_args: list[Any] = []
        origin_args: list[Any] = []
        task_args: list[Any] = []
        obey = self.robots_agent is not None
        for task in tasks:
            name = task["host"]
            hi = hosts.get(name)
            if hi is None:
                hi = hosts[name] = len(hosts) + 1
                host_args += self._host_params(name)
            oi = 0
            if obey and not task.get("robots"):
                url = task["url"]
                origin = url[:url.find("/", 8)]
                oi = origins.get(origin, 0)
                if not oi:
                    oi = origins[origin] = len(origins) + 1
                    origin_args += [origin, self._robots_member(origin, name)]
            task_args += [task["fp"], hi, task.get("priority", 0), oi,
                          "1" if task.get("dont_filter") else "0",
                          pack_member(task, self._max_retries(task))]
        section = [len(hosts), *host_args, len(origins), *origin_args,
                   len(task_args) // 6, *task_args]
        return [len(section), *section]

    def _host_params(self, name: str) -> list[Any]:
        slot, throttle = self.slots.get(name, {}), self.throttle
        floor = slot.get("delay", throttle.delay)
        delay = max(floor, throttle.initial()) if throttle.auto else floor
        return [name, slot.get("concurrency", self.per_host), repr(float(delay)),
                "1" if slot.get("randomize_delay", throttle.randomize) else "0",
                repr(float(floor))]

    def _robots_member(self, origin: str, host: str) -> bytes:
        url = origin + "/robots.txt"
        task = {"url": url, "host": host, "depth": 0, "robots": True,
                "fp": fingerprint(url, method="ROBOTS")}
        return pack_member(task, self.retry_times)

    def _max_retries(self, task: dict[str, Any]) -> int:
        meta = task.get("meta")
        return meta.get("max_retry_times", self.retry_times) if meta else self.retry_times

    def _by_shard(self, tasks: Iterable[dict[str, Any]]) -> dict[int, list[dict]]:
        groups: dict[int, list[dict]] = {}
        for task in tasks:
            groups.setdefault(self.shard_of(task["host"]), []).append(task)
        return groups

    def _obey_args(self) -> list[Any]:
        return ["1" if self.robots_agent is not None else "0", self.host_page_limit]

    # -- admission ---------------------------------------------------------------------
    def admit(self, tasks: Iterable[dict[str, Any]]) -> int:
        """Queue tasks whose fingerprint is new (one script per shard, one round trip)."""
        groups = self._by_shard(tasks)
        if not groups:
            return 0
        pipe = self._pipeline()
        for shard, group in groups.items():
            self._call("admit", shard, self._obey_args() + self._links(group), pipe)
        return sum(int(n) for n in pipe.execute())

    def unseen(self, fingerprints: list[bytes]) -> list[bytes]:
        """The fingerprints not known yet (workers pre-filter links with it); with shards,
        all of them (a fingerprint does not say its host): the settle step dedups anyway."""
        if self.shards > 1 or not fingerprints:
            return list(fingerprints)
        known = self.client.smismember(self.prefixes[0] + "seen", fingerprints)
        return [fp for fp, k in zip(fingerprints, known) if not k]

    # -- leasing -----------------------------------------------------------------------
    def lease(self, worker: str, n: int, renew: Iterable[str] = ()) -> tuple[list, float]:
        """Up to n (lease id, task) pairs; `renew` lease ids are extended in the same trip.
        Tasks robots.txt disallows are settled failed(robots) here, not returned."""
        out, wait, _ = self.lease_state(worker, n, renew)
        return out, wait

    def lease_state(self, worker: str, n: int,
                    renew: Iterable[str] = ()) -> tuple[list, float, str]:
        """lease(), plus the crawl's state as the master set it (running, closing, over:...)."""
        renewals: dict[int, list[str]] = {}
        for lease_id in renew:
            renewals.setdefault(self._lease_shard(lease_id), []).append(lease_id)
        pipe = self._pipeline()
        each = -(-n // self.shards) if n > 0 else 0
        for shard in range(self.shards):
            self._call("lease", shard, [worker, each, self.lease_timeout, shard,
                                        *renewals.get(shard, ())], pipe)
        out, waits, state = [], [], "running"
        for reply in pipe.execute():
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
        requests, ...): one script per shard in one round trip. The accepted lease ids."""
        per_shard: dict[int, list[Any]] = {}
        foreign: list[dict] = []  # links of hosts in another shard than their page's
        for result in results:
            shard = self._lease_shard(result["lease"])
            links = result.get("requests") or ()
            if self.shards > 1 and links:
                mine = [t for t in links if self.shard_of(t["host"]) == shard]
                foreign += [t for t in links if self.shard_of(t["host"]) != shard]
                links = mine
            per_shard.setdefault(shard, []).append(self._result_args(result, links))
        pipe = self._pipeline()
        # Other shards' links first: a worker dying mid-way may then fetch a page again,
        # never lose its links.
        foreign_groups = self._by_shard(foreign)
        for shard, group in foreign_groups.items():
            self._call("admit", shard, self._obey_args() + self._links(group), pipe)
        auto = self.throttle
        for shard, args in per_shard.items():
            head = self._obey_args() + ["1" if auto.auto else "0",
                                        repr(float(auto.target_concurrency)),
                                        repr(float(auto.max_delay)), len(args)]
            self._call("complete", shard, head + [a for one in args for a in one], pipe)
        replies = pipe.execute()[len(foreign_groups):]
        accepted = [i.decode() for reply in replies for i in reply]
        for lease_id in accepted:
            self._leased.pop(lease_id, None)
        return accepted

    def _result_args(self, result: dict[str, Any], links: Iterable[dict]) -> list[Any]:
        robots_value, crawl_delay = "", 0.0
        if "robots" in result or "_rules" in result:
            rules = result.get("_rules") or self.parse_robots(result.get("status", 0),
                                                              result["robots"])
            crawl_delay = rules.crawl_delay
            if crawl_delay >= self.robots_max_delay:
                log.warning("robots.txt: Crawl-delay capped at ROBOTSTXT_MAX_CRAWL_DELAY (%s s)",
                            self.robots_max_delay)
            status, body = rules.source
            robots_value = f"ok\t{status}\t{body or ''}"
        latency = result.get("latency")
        ok = result["outcome"] == DONE and result.get("status", 0) < 400
        pause = self.throttle.pause(result["retry_after"]) if result.get("retry_after") else 0
        dropped = ",".join(f"{r}={c}" for r, c in (result.get("dropped") or {}).items())
        items = pack(result["items"]) if result.get("items") else b""
        return [result["lease"], result["outcome"], result.get("reason") or "error",
                robots_value, repr(float(crawl_delay)),
                "" if latency is None else repr(float(latency)), "1" if ok else "0",
                repr(float(pause)), int(result.get("bytes", 0)), dropped, items,
                *self._links(links)]

    def feedback(self, name: str, latency: float | None, ok: bool,
                 retry_after: float | None = None) -> None:
        """AutoThrottle and Retry-After for a host (settle() does this for each result)."""
        t = self.throttle
        pipe = self._pipeline()
        self._call("feedback", self.shard_of(name), [
            name, "" if latency is None else repr(float(latency)), "1" if ok else "0",
            repr(float(t.pause(retry_after) if retry_after else 0)), "1" if t.auto else "0",
            repr(float(t.target_concurrency)), repr(float(t.max_delay))], pipe)
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
        pipe.execute()

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


