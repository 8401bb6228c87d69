"""What the master takes from workers, checked before any of it is applied (and the shape
of what a worker takes from its master).

The restricted unpickler (crawler.wire.loads) already makes every message plain data;
here its shape is checked: the right types and ranges, only http(s) URLs of bounded
length, host and fingerprint recomputed from the URL, depth an int (the page's or one
more), items dicts of plain data, only known counters, and each lease settled only by
the worker that took it, from the address that worker said hello from. A result batch
with anything wrong in it is refused whole (ProtocolError), before anything was applied.
"""
from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Callable, Iterable

from .. import urls
from . import manager, wire
from .wire import ProtocolError

OUTCOMES = frozenset({"done", "failed", "retry"})
# What a worker's handler counts as dropped (crawler.spider.handler): nothing else is taken.
DROP_REASONS = frozenset({"depth", "url_too_long", "invalid_url", "trap", "offsite",
                          "links_per_page"})
# Task fields only the master sets: a worker asking for them is refused.
MASTER_FIELDS = frozenset({"robots", "attempt", "lease", "revisit"})
_NAME_MAX = 200       # characters in a worker id, lease id, callback name, reason
_STATS_MAX = 1000     # names of a spider's own stats counted on one page
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

    # -- the parts (per result and per link: a busy master's hot path) ----------------------
    def _result(self, result: Any) -> dict[str, Any]:
        if type(result) is dict and result.get("status") == 304 and \
                result.keys() <= _UNCHANGED and _unchanged(result):
            return result  # a recrawl's commonest result: nothing in it but these few
        if not (type(result) is dict and result.get("outcome") in OUTCOMES):
            _fail(f"a result {str(result)[:100]}: a dict with an outcome")
        _name(result.get("lease"), "lease id")
        for name, test in _RESULT_FIELDS:
            value = result.get(name)
            if value is not None and not test(value):
                _fail(f"{name}={value!r:.100}")
        counts = result.get("stats") or {}
        if type(counts) is not dict or len(counts) > _STATS_MAX or not all(
                type(k) is str and len(k) <= 100 and _is_count(v) for k, v in counts.items()):
            _fail(f"stats={counts!r:.100}: at most {_STATS_MAX} counts by name")
        dropped = result.get("dropped") or {}
        if type(dropped) is not dict or not all(k in DROP_REASONS and _is_count(v)
                                                for k, v in dropped.items()):
            _fail(f"dropped={dropped!r:.100}: counts of {sorted(DROP_REASONS)}")
        clean = dict(result)
        items = result.get("items") or []
        if type(items) is not list or not all(type(i) is dict for i in items):
            _fail("items: a list of dicts")
        if items:
            clean["items"] = [_plain(item, "item") for item in items]
        requests = result.get("requests") or []
        if type(requests) is not list:
            _fail("requests: a list")
        for task in requests:
            self._task(task)
        return clean

    def _task(self, task: Any) -> None:
        if type(task) is not dict:
            _fail("a request: a dict")
        url, host, depth = task.get("url"), task.get("host"), task.get("depth")
        if not (type(url) is str and url.startswith(("http://", "https://"))
                and len(url) <= self.url_max):
            _fail(f"url {str(url)[:100]!r}: http(s), at most {self.url_max} characters")
        if not (type(depth) is int and 0 <= depth and
                (not self.depth_limit or depth <= self.depth_limit)):
            _fail(f"depth={depth!r:.20}: an int, within DEPTH_LIMIT")
        if not (type(host) is str and _host_matches(url, host)):
            _fail(f"host {host!r:.100} is not {url[:100]!r}'s")
        if len(task) == 4:  # url, fp, host, depth: most links
            method, body = "GET", b""
        else:
            method, body = self._extra(task)
        if task.get("fp") != _fingerprint(url, method, body, self.ignore):
            _fail(f"fp is not {url[:100]!r}'s")

    def _extra(self, task: dict[str, Any]) -> tuple[str, bytes]:
        if MASTER_FIELDS & task.keys():
            _fail(f"a request with {sorted(MASTER_FIELDS & task.keys())}")
        for name, test in _TASK_FIELDS:
            value = task.get(name)
            if value is not None and not test(value):
                _fail(f"{name}={value!r:.100}")
        _plain({k: v for k, v in task.items() if k != "fp"}, "request")
        return task.get("method", "GET"), task.get("body", b"")


# The fields of an unchanged page's result (a 304 that repeated the validators sent).
_UNCHANGED = frozenset({"outcome", "status", "latency", "bytes", "lease"})


def _unchanged(result: dict[str, Any]) -> bool:
    return result.get("outcome") == "done" and _is_seconds(result.get("latency", 0)) and \
        _is_count(result.get("bytes", 0)) and bool(_name(result.get("lease"), "lease id"))


def _fail(what: str) -> None:
    raise ProtocolError(f"not a valid message: {what}")


def _plain(value: Any, where: str) -> Any:
    try:
        return wire.plain(value, where)
    except wire.NotPlainData as exc:
        raise ProtocolError(str(exc)) from None


# A host name urlsplit returns as written (lowercase, no user info, port or brackets), and
# what may follow it in the URL for that name to be the whole host: a path, or a port and one.
_SIMPLE_HOST = re.compile(r"[a-z0-9._-]+")
_AFTER_HOST = re.compile(r"/|:[0-9]+/")


def _host_matches(url: str, host: str) -> bool:
    """host is url's (the politeness key): the common forms (scheme://host/... and
    scheme://host:port/...) checked by their prefix, 5x cheaper than parsing the URL."""
    start = url.index("//") + 2
    if url.startswith(host, start) and _SIMPLE_HOST.fullmatch(host) and \
            _AFTER_HOST.match(url, start + len(host)):
        return True
    return urls.host_of(url) == host


_PLAIN_URL = re.compile(r"[?;#\t\r\n]")


def _fingerprint(url: str, method: str, body: bytes, ignore: tuple[str, ...]) -> bytes:
    """urls.fingerprint(), computed directly when the URL's dedup form is itself (no query,
    no path parameters, no fragment, nothing urlsplit would drop): 4x cheaper."""
    if method == "GET" and not body and not _PLAIN_URL.search(url):
        return hashlib.blake2b(url.encode(), digest_size=16).digest()
    return urls.fingerprint(url, method, body, ignore)


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


def _is_short(value: Any) -> bool:
    return type(value) is str and len(value) <= _NAME_MAX


_RESULT_FIELDS: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("reason", _is_short), ("close", _is_short), ("status", lambda v: type(v) is int and 0 <= v < 1000),
    ("latency", _is_seconds), ("retry_after", _is_seconds), ("bytes", _is_count),
    ("robots", lambda v: type(v) is str and len(v) <= _TEXT_MAX),
    ("warc", lambda v: type(v) is bytes),  # the exchange's gzipped WARC records
    ("validators", lambda v: type(v) in (tuple, list) and len(v) == 2
     and all(x is None or type(x) is str for x in v)),  # (ETag, Last-Modified)
    ("listed", lambda v: type(v) is list and all(  # (fp, <lastmod>) a sitemap lists
        type(x) in (tuple, list) and len(x) == 2 and type(x[0]) is bytes
        and type(x[1]) is str for x in v)))
_TASK_FIELDS: tuple[tuple[str, Callable[[Any], bool]], ...] = (
    ("callback", _is_short), ("errback", _is_short), ("priority", _is_int),
    ("dont_filter", lambda v: type(v) is bool), ("meta", lambda v: type(v) is dict),
    ("cb_kwargs", lambda v: type(v) is dict), ("headers", lambda v: type(v) is dict),
    ("method", lambda v: type(v) is str and v.isalpha() and len(v) <= 20),
    ("body", lambda v: type(v) is bytes))


# -- what a worker takes from its master: the shapes its code relies on ---------------------------
def hello_reply(reply: Any) -> dict[str, Any]:
    _check(isinstance(reply, dict) and isinstance(reply.get("spider"), str)
           and isinstance(reply.get("settings"), dict)
           and isinstance(reply.get("spider_hash"), str)
           and isinstance(reply.get("allowed_domains"), list)
           and isinstance(reply.get("trusted"), list), "a hello reply")
    return reply


def lease_reply(reply: Any) -> dict[str, Any]:
    _check(isinstance(reply, dict) and isinstance(reply.get("tasks"), list)
           and isinstance(reply.get("done"), bool) and _is_seconds(reply.get("wait")),
           "a lease reply")
    for task in reply["tasks"]:
        _check(isinstance(task, dict) and isinstance(task.get("url"), str)
               and isinstance(task.get("lease"), str), "a leased task")
    return reply


def names(reply: Any) -> list[str]:
    _check(isinstance(reply, list) and all(isinstance(n, str) for n in reply), "lease ids")
    return reply


def fingerprints(reply: Any) -> list[bytes]:
    _check(isinstance(reply, list) and all(isinstance(f, bytes) for f in reply),
           "fingerprints")
    return reply
