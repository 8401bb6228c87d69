"""What the master takes from workers, checked before any of it is applied.

The restricted unpickler (crawler.wire.loads) already makes every message plain data;
here its shape is checked: the right types and ranges, only http(s) URLs of bounded
length, host and fingerprint recomputed from the URL, depth an int (the page's or one
more), items dicts of plain data, only known counters, and each lease settled only by
the worker that took it, from the address that worker said hello from. A result batch
with anything wrong in it is refused whole (ProtocolError), before anything was applied.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from . import manager, urls, wire
from .wire import ProtocolError

OUTCOMES = frozenset({"done", "failed", "retry"})
# What a worker's handler counts as dropped (crawler.spider.handler): nothing else is taken.
DROP_REASONS = frozenset({"depth", "url_too_long", "invalid_url", "trap", "offsite"})
# Task fields only the master sets: a worker asking for them is refused.
MASTER_FIELDS = frozenset({"robots", "attempt", "lease"})
_NAME_MAX = 200       # characters in a worker id, lease id, callback name, reason
_TEXT_MAX = 1 << 20   # characters in a robots.txt (the handler sends 500 KiB at most)
_COUNT_MAX = 1 << 40


class Checks:
    """The master's checks on what workers send, with the crawl's settings."""

    def __init__(self, ignore_params: Iterable[str] = (), url_limit: int = 2083,
                 depth_limit: int = 0) -> None:
        self.ignore = tuple(ignore_params)
        # A worker checks the length before normalizing, which may percent-encode (x3).
        self.url_max = 3 * url_limit if url_limit else 1 << 16
        self.depth_limit = depth_limit
        self.addresses: dict[str, str] = {}  # worker id -> the IP it said hello from

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "Checks":
        return cls(settings["FINGERPRINT_IGNORE_PARAMS"], settings["URLLENGTH_LIMIT"],
                   settings["DEPTH_LIMIT"])

    # -- calls ---------------------------------------------------------------------------
    def hello(self, info: Any) -> dict[str, Any]:
        """A worker's hello, checked; remembers where it came from."""
        _check(isinstance(info, dict), "hello takes a dict")
        worker = _name(info.get("worker"), "worker id")
        _opt(info.get("threads"), _is_count, "threads")
        _opt(info.get("pid"), _is_count, "pid")
        _opt(info.get("version"), lambda v: isinstance(v, str) and len(v) <= _NAME_MAX,
             "version")
        peer = manager.peer_address()
        if peer is not None:
            self.addresses[worker] = peer[0]
        return info

    def caller(self, worker: Any) -> str:
        """The worker id of a call, checked against the address its hello came from."""
        worker = _name(worker, "worker id")
        peer, known = manager.peer_address(), self.addresses.get(worker)
        if peer is not None and known is not None and peer[0] != known:
            raise ProtocolError(f"worker {worker} said hello from {known}, not {peer[0]}")
        return worker

    def lease(self, worker: Any, want: Any, renew: Any) -> None:
        self.caller(worker)
        _check(_is_count(want), f"want={want!r}: a count")
        _check(isinstance(renew, (list, tuple)) and all(isinstance(r, str) for r in renew),
               "renew: a list of lease ids")

    def bye(self, worker: Any, refused: Any) -> None:
        self.caller(worker)
        _opt(refused, lambda v: isinstance(v, str) and len(v) <= _TEXT_MAX, "refused")

    def results(self, results: Any) -> list[dict[str, Any]]:
        """The batch, checked (items as plain data, tasks' host and fp as their URL's).
        Holds no lock: call held() under the frontier's lock for what depends on leases."""
        _check(isinstance(results, list), "results: a list")
        return [self._result(r) for r in results]

    def held(self, worker: str, results: list[dict[str, Any]],
             lease_of: Callable[[str], tuple[str, dict[str, Any]] | None]) -> None:
        """Each lease still out is held by `worker`; what each result carries fits its task
        (robots rules only for a robots.txt task, links at the page's depth or one more)."""
        for result in results:
            held = lease_of(result["lease"])
            if held is None:
                continue  # a late result: ignored as it always was
            holder, task = held
            _check(holder == worker, f"lease {result['lease']} is held by another worker")
            if task.get("robots"):
                _check(not result.get("requests") and not result.get("items"),
                       f"lease {result['lease']}: links or items from a robots.txt")
            else:
                _check("robots" not in result,
                       f"lease {result['lease']}: robots rules for a page")
            depth = task.get("depth", 0)
            for new in result.get("requests", ()):
                _check(new["depth"] in (depth, depth + 1),
                       f"a link at depth {new['depth']} from a page at depth {depth}")

    # -- the parts ---------------------------------------------------------------------------
    def _result(self, result: Any) -> dict[str, Any]:
        _check(isinstance(result, dict), "a result: a dict")
        _name(result.get("lease"), "lease id")
        _check(result.get("outcome") in OUTCOMES, f"outcome {result.get('outcome')!r}")
        _opt(result.get("reason"), lambda v: isinstance(v, str) and len(v) <= _NAME_MAX,
             "reason")
        _opt(result.get("status"), lambda v: _is_int(v) and 0 <= v < 1000, "status")
        for name in ("latency", "retry_after"):
            _opt(result.get(name), _is_seconds, name)
        _opt(result.get("bytes"), _is_count, "bytes")
        _opt(result.get("robots"), lambda v: isinstance(v, str) and len(v) <= _TEXT_MAX,
             "robots")
        dropped = result.get("dropped", {})
        _check(isinstance(dropped, dict) and all(k in DROP_REASONS and _is_count(v)
                                                 for k, v in dropped.items()),
               f"dropped: counts of {sorted(DROP_REASONS)}")
        clean = dict(result)
        items = result.get("items", [])
        _check(isinstance(items, list) and all(isinstance(i, dict) for i in items),
               "items: a list of dicts")
        try:
            clean["items"] = [wire.plain(item) for item in items]
        except wire.NotPlainData as exc:
            raise ProtocolError(str(exc)) from None
        requests = result.get("requests", [])
        _check(isinstance(requests, list), "requests: a list")
        for task in requests:
            self._task(task)
        return clean

    def _task(self, task: Any) -> None:
        _check(isinstance(task, dict), "a request: a dict")
        _check(not MASTER_FIELDS & task.keys(), f"a request with {sorted(MASTER_FIELDS)}")
        url = task.get("url")
        _check(isinstance(url, str) and url.startswith(("http://", "https://"))
               and len(url) <= self.url_max, f"url {str(url)[:100]!r}: http(s), at most "
               f"{self.url_max} characters")
        _check(_is_int(task.get("depth")) and task["depth"] >= 0, "depth: an int")
        _check(not self.depth_limit or task["depth"] <= self.depth_limit,
               f"depth {task['depth']} beyond DEPTH_LIMIT")
        _check(task.get("host") == urls.host_of(url), f"host {task.get('host')!r} is not "
               f"{url[:100]!r}'s")
        method, body = task.get("method", "GET"), task.get("body", b"")
        _check(isinstance(method, str) and method.isalpha() and len(method) <= 20
               and isinstance(body, bytes), "method: a word, body: bytes")
        _check(task.get("fp") == urls.fingerprint(url, method, body, self.ignore),
               f"fp is not {url[:100]!r}'s")
        for name in ("callback", "errback"):
            _opt(task.get(name), lambda v: isinstance(v, str) and len(v) <= _NAME_MAX, name)
        _opt(task.get("priority"), _is_int, "priority")
        _opt(task.get("dont_filter"), lambda v: isinstance(v, bool), "dont_filter")
        for name in ("meta", "cb_kwargs", "headers"):
            _opt(task.get(name), lambda v: isinstance(v, dict), name)
        try:
            wire.plain({k: v for k, v in task.items() if k != "fp"}, "request")
        except wire.NotPlainData as exc:
            raise ProtocolError(str(exc)) from None


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ProtocolError(f"not a valid message: {what}")


def _opt(value: Any, test: Callable[[Any], bool], what: str) -> None:
    if value is not None:
        _check(test(value), f"{what}={value!r:.100}")


def _name(value: Any, what: str) -> str:
    _check(isinstance(value, str) and 0 < len(value) <= _NAME_MAX, f"{what}: a short string")
    return value


def _is_int(value: Any) -> bool:
    return type(value) is int


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value < _COUNT_MAX


def _is_seconds(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and 0 <= value < 1e7
