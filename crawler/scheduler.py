"""The master's side of the wire: what workers call, under one lock.

The Scheduler backs the registered url_queue (lease), result_queue (put) and
control (hello, bye, status) objects; the seen dict is the frontier's own.
Every method returns at once: nothing here ever waits for work to appear.
"""
from __future__ import annotations

import logging
import heapq
import threading
import time
from collections import Counter
from typing import Any, Callable

from .link import manager
from .feeds import warc
from .frontier import DONE, Frontier
from .frontier.journal import Journal
from .frontier.recrawl import Rounds
from .frontier.robots import RobotsRules
from .link.wire import ProtocolError
from .link.wirecheck import Checks

log = logging.getLogger(__name__)
SPIDER_ERRORS = "failed/spider_error"  # the counter CLOSESPIDER_ERRORCOUNT watches
_COMMIT_TRIES = 3  # journal commits failed in a row before the crawl is aborted
_SKIP_ROUNDS = 8  # leases tried in one call while a recrawl settles all it gets unchanged


class Scheduler:
    """Leases tasks to workers, settles their results, and decides when the crawl is over."""

    def __init__(self, frontier: Frontier, hello_reply: dict[str, Any],
                 emit_items: Callable[[list[tuple[int, dict]]], None], batch_size: int,
                 page_limit: int = 0, journal: Journal | None = None,
                 rounds: Rounds | None = None, checks: Checks | None = None,
                 keep_running: bool = False, media: Any = None, error_limit: int = 0) -> None:
        self.frontier, self.hello_reply, self.emit_items = frontier, hello_reply, emit_items
        self.checks = checks or Checks()  # what workers send, checked before it is applied
        self.media = media  # crawler.pipelines.downloads.MediaDownloads, when pipelines use it
        self.batch_size, self.page_limit, self.journal = batch_size, page_limit, journal
        self.error_limit = error_limit  # CLOSESPIDER_ERRORCOUNT
        stats = frontier.stats  # CLOSESPIDER_PAGECOUNT and _ERRORCOUNT count this run's
        self._done_before, self._errors_before = stats[DONE], stats[SPIDER_ERRORS]
        self.rounds = rounds  # with a journal: verdicts and validators (--recrawl)
        self._item_seq = 1  # numbers items when there is no journal to do it
        if journal is not None:
            frontier.changes = []
        self.lock = threading.Lock()
        self.ended = threading.Event()  # set by the put that ends the crawl: wakes the master
        self.workers: dict[str, float] = {}
        self.worker_info: dict[str, dict[str, Any]] = {}  # what each said in hello
        self.pages_by_worker: Counter = Counter()
        self.told_done: set[str] = set()
        self.joining: dict[str, str] = {}  # said hello, not yet leased: id -> its threads
        self.closing: str | None = None
        self.more_to_come = False  # start requests still to be admitted
        # A journal commit that failed: its (changes, items), tried again with the next one;
        # fatal says why the journal cannot go on (the master then aborts the crawl).
        self._unsaved: tuple[list, list[dict], list, list] = ([], [], [], [])
        self._robots: list[tuple[str, int, str, float]] = []  # fetched, to be journaled
        self._failed_commits = 0
        self.fatal: str | None = None
        self.first_lease: float | None = None  # monotonic time work was first handed out
        self.keep_running = keep_running  # KEEP_RUNNING: only close() ends the crawl

    # -- called by workers ----------------------------------------------------
    def hello(self, info: dict[str, Any]) -> dict[str, Any]:
        """Register a worker; reply with the crawl's configuration. It has joined when it
        first leases: it may still refuse the configuration (see bye)."""
        info = self.checks.hello(info)
        threads, joined = _threads(info.get("threads"), self.hello_reply.get("settings", {}))
        with self.lock:
            self.workers[info["worker"]] = time.monotonic()
            self.worker_info[info["worker"]] = _worker_info(info, threads)
            if self._over():  # a worker meeting the master after the end: told now, as
                # the master may stop answering before it would first lease
                self.told_done.add(info["worker"])
                return dict(self.hello_reply, done=True, closed_by=self.closing or "finished")
            self.joining[info["worker"]] = joined
        return self.hello_reply

    def lease(self, worker: str, want: int, renew: list[str] = ()) -> dict[str, Any]:
        """Up to `want` tasks (capped at BATCH_SIZE); 'wait' hints when to ask again.
        `renew` lists leases the worker still holds (a heartbeat)."""
        self.checks.lease(worker, want, renew)
        threads = self.joining.pop(worker, None) if self.joining else None
        if threads is not None:
            log.info("worker %s joined (%s)", worker, threads)
        with self.lock:
            self.workers[worker] = time.monotonic()
            self.frontier.renew(worker, renew)
            if self._over():
                self.told_done.add(worker)
                return {"tasks": [], "wait": 0.0, "done": True,
                        "closed_by": self.closing or "finished"}
            if self.closing or want <= 0:
                return {"tasks": [], "wait": 0.2, "done": False}
            for _ in range(_SKIP_ROUNDS):
                leases, wait = self.frontier.lease(worker, min(want, self.batch_size))
                if self.rounds is None or not leases:
                    break
                leases = self._skip_unchanged(leases)
                if leases:  # else all were settled unchanged: lease again
                    break
        tasks = [dict(task, lease=lease_id) for lease_id, task in leases]
        if tasks and self.first_lease is None:
            self.first_lease = time.monotonic()
        return {"tasks": tasks, "wait": wait, "done": False}

    def put(self, worker: str, results: list[dict[str, Any]]) -> list[str]:
        """Settle a batch of results; late or repeated ones are ignored. Returns the
        lease ids of the results taken. A batch with anything wrong in it is refused
        whole (none taken: its leases expire and go to other workers)."""
        items: list[dict] = []
        try:  # slow for many links or a big robots.txt: unlocked
            results = self.checks.results(results)
            self.checks.caller(worker)
        except ProtocolError as exc:
            return _refused(worker, exc)
        rules = [self._robots_rules(r) for r in results]
        if self.media is not None:
            self.media.store(results)  # files that came in results: stored before settled
        with self.lock:
            try:
                self.checks.held(worker, results, self.frontier.lease_of)
            except ProtocolError as exc:
                return _refused(worker, exc)
            self.workers[worker] = time.monotonic()
            accepted = [r["lease"] for r, robots in zip(results, rules)
                        if self._settle(r, robots, items)]
            self.pages_by_worker[worker] += len(accepted)
            self._close_if_asked()  # before another lease hands out what that page queued
            self._commit(items)
            if self._over():
                self.ended.set()
        return accepted

    def exchange(self, worker: str, results: list[dict[str, Any]], want: int,
                 renew: list[str] = ()) -> dict[str, Any]:
        """put, then lease, in one call: one round trip settles a worker's results and
        refills the slots they freed. The lease reply, plus "accepted" (put's answer)."""
        accepted = self.put(worker, results) if results else []
        return dict(self.lease(worker, want, renew), accepted=accepted)

    def admit(self, tasks: list[dict[str, Any]], more: bool | None = False) -> int:
        """Queue new tasks (start requests) and journal them; `more`: others will follow,
        so the crawl is not over before they came (None: as it was)."""
        with self.lock:
            new = self.frontier.admit(tasks)
            if more is not None:
                self.more_to_come = more
            self._commit([])
        return new

    def locked(self, change: Callable[[Frontier], Any]) -> Any:
        """Run change(frontier) under the lock and journal what it changed."""
        with self.lock:
            out = change(self.frontier)
            self._commit([])
        return out

    def _skip_unchanged(self, leases: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
        """Settle at once the revisits a sitemap says are unchanged (--recrawl)."""
        kept = []
        for lease_id, task in leases:
            if self.rounds.skippable(task):
                self.frontier.complete(lease_id, DONE)
                self.rounds.settled(task, {"outcome": DONE, "status": 304})
            else:
                kept.append((lease_id, task))
        if len(kept) < len(leases):
            self._commit([])
        return kept

    def _commit(self, items: list[dict]) -> None:
        """Journal what changed, before anyone is told; number the items and hand them to
        the sink (under the lock, so the sink sees items in journal order: it records
        "written up to seq N", which must never skip an earlier batch)."""
        numbered = self._journal(items)
        if numbered:
            self.emit_items(numbered)

    def _journal(self, items: list[dict]) -> list[tuple[int, dict]]:
        if self.journal is None:
            first, self._item_seq = self._item_seq, self._item_seq + len(items)
            return list(zip(range(first, self._item_seq), items))
        changes, self.frontier.changes = self.frontier.changes, []
        robots, self._robots = self._robots, []
        validators = self.rounds.take() if self.rounds is not None else []
        changes, items, robots, validators = (
            self._unsaved[0] + changes, self._unsaved[1] + items, self._unsaved[2] + robots,
            self._unsaved[3] + list(validators))
        if (not changes and not items and not robots and not validators) or self.fatal:
            self._unsaved = (changes, items, robots, validators)
            return []
        try:
            seqs = self.journal.record(changes, items, validators, robots)
        except Exception as exc:  # sqlite3.Error, OSError: disk full, database locked
            # Never raised to the worker calling put: kept to be tried again, then fatal.
            self._unsaved = (changes, items, robots, validators)
            self._failed_commits += 1
            log.error("journal commit failed (%d of %d tries): %r", self._failed_commits,
                      _COMMIT_TRIES, exc)
            if self._failed_commits >= _COMMIT_TRIES:
                self.fatal = f"the journal cannot be written ({exc})"
                self.close("aborted")
            return []
        self._unsaved, self._failed_commits = ([], [], [], []), 0
        return list(zip(seqs, items))

    def bye(self, worker: str, refused: str | None = None) -> int:
        """A worker leaves: its unsettled leases go back to the queue at once. `refused`:
        why it would not take part (it said hello, then refused the configuration)."""
        self.checks.bye(worker, refused)
        with self.lock:
            self.workers.pop(worker, None)
            self.joining.pop(worker, None)
            returned = self.frontier.release_worker(worker)
        if refused:
            log.warning("worker %s refused: %s", worker, refused)
        else:
            log.info("worker %s left, %d leases returned", worker, returned)
        return returned

    def status(self) -> dict[str, Any]:
        """Counters for monitoring."""
        with self.lock:
            return dict(self.frontier.stats, queued=self.frontier.queued,
                        leased=self.frontier.leased, workers=len(self.workers))

    def snapshot(self, top: int, workers_shown: int = 100) -> dict[str, Any]:
        """The frontier's snapshot (crawler.status renders it) plus the workers: the most
        recently seen `workers_shown`, with pages settled and leases held."""
        now = time.monotonic()
        with self.lock:
            snap = self.frontier.snapshot(top)
            leases = snap.pop("leases_by_worker")
            recent = heapq.nlargest(workers_shown, self.workers.items(), key=lambda kv: kv[1])
            snap["workers"] = [dict(self.worker_info.get(w, {}), id=w, seen_ago=now - seen,
                                    pages=self.pages_by_worker[w], leases=leases[w])
                               for w, seen in recent]
            snap["workers_known"] = len(self.workers)
            snap["closing"] = self.closing
            snap["recrawl"] = self.rounds.summary() if self.rounds is not None else None
        return snap

    # -- called by the master's own loop ---------------------------------------
    def tick(self) -> None:
        """Expire overdue leases and apply page limits."""
        with self.lock:
            self.frontier.expire()
            self._commit([])
            self._close_if_asked()  # on Redis workers settle there: this is where it is seen
            if self.page_limit or self.error_limit:
                self._close_at_limits(self.frontier.stats)

    def close(self, reason: str) -> None:
        """Stop handing out work; the crawl ends when leased work is settled."""
        if not self.closing:
            log.info("closing: %s", reason)
            self.closing = reason

    def _close_at_limits(self, stats: Counter) -> None:
        if self.page_limit and stats[DONE] - self._done_before >= self.page_limit:
            self.close("closespider_pagecount")
        if self.error_limit and stats[SPIDER_ERRORS] - self._errors_before >= self.error_limit:
            self.close("closespider_errorcount")

    def _close_if_asked(self) -> None:
        asked = self.frontier.close_asked()  # a spider raised CloseSpider
        if asked:
            self.close(asked)

    def over(self) -> bool:
        """True when nothing more will happen: all settled, or closing and none leased.
        Under the lock: a put between settling its last lease and admitting that page's
        links must not look like the end."""
        with self.lock:
            return self._over()

    def idle(self) -> bool:
        """Nothing queued or leased, and not closing: the moment for spider_idle."""
        with self.lock:
            return self.closing is None and self.frontier.finished()

    def _over(self) -> bool:
        if self.closing is None and self.frontier.finished():
            self._close_if_asked()  # on Redis a CloseSpider may settle before a tick sees it
        if self.closing is not None:
            return self.frontier.leased == 0
        return self.frontier.finished() and not self.more_to_come and not self.keep_running \
            and not (self.media is not None and self.media.busy())

    def workers_pending(self, within: float) -> list[str]:
        """Workers seen in the last `within` seconds that were not yet told the end."""
        now = time.monotonic()
        with self.lock:
            return [w for w, seen in self.workers.items()
                    if now - seen < within and w not in self.told_done]

    def _robots_rules(self, result: dict[str, Any]) -> RobotsRules | None:
        if "robots" not in result:
            return None
        return self.frontier.parse_robots(result.get("status", 0), result["robots"])

    def _settle(self, result: dict[str, Any], robots: RobotsRules | None,
                items: list[dict]) -> bool:
        outcome = result["outcome"]
        task = self.frontier.complete(result["lease"], outcome, result.get("reason"), robots)
        if task is not None and "latency" in result:
            self.frontier.feedback(task["host"], result["latency"], outcome == DONE and
                                   result.get("status", 0) < 400, result.get("retry_after"))
        if task is None:
            return False
        if robots is not None and outcome == DONE and self.journal is not None:
            # Kept with its fetch time, so a resumed crawl does not fetch it again.
            self._robots.append((task["url"][:-len("/robots.txt")], result.get("status", 0),
                                 result["robots"], time.time()))
        if "close" in result:  # the spider raised CloseSpider
            self.frontier.ask_close(result["close"])
        if "warc" in result:  # the fetch's WARC records: to the WARC feed, through the sink
            items.append({warc.RECORDS: result["warc"]})
        if "bytes" in result:
            self.frontier.stats["bytes"] += result["bytes"]
        if "media" in result and self.media is not None:
            self.media.settled_ok(task, result)
        if outcome != "retry" and robots is None:  # a failed callback may have yielded some
            stats = self.frontier.stats
            for reason, count in result.get("dropped", {}).items():
                stats[f"dropped/{reason}"] += count
            for name, count in result.get("stats", {}).items():  # the spider's stats.inc_value
                stats[f"spider/{name}"] += count
            self.frontier.admit(result.get("requests", ()))
            items.extend(result.get("items", ()))
            if self.rounds is not None:
                self.rounds.settled(task, result)
        return True


def _refused(worker: str, exc: ProtocolError) -> list[str]:
    log.warning("refused a result batch from worker %s: %s; its leases will expire and go to "
                "other workers", worker, exc)
    return []


def _threads(asked: int | None, settings: dict[str, Any]) -> tuple[int | None, str]:
    """A joining worker's threads, and how the log says it: its -c, else the crawl's."""
    if asked:
        return asked, f"{asked} threads"
    cap = settings.get("CONCURRENT_REQUESTS")
    if settings.get("AUTOSCALE_ENABLED"):
        return cap, f"threads sized by the autoscaler, up to {cap}"
    return cap, f"{cap} threads"


def _worker_info(info: dict[str, Any], threads: int | None) -> dict[str, Any]:
    peer = manager.peer_address()
    return {"address": f"{peer[0]}:{peer[1]}" if peer else None, "threads": threads,
            "pid": info.get("pid"), "version": info.get("version")}


class UrlQueue:
    """Registered as url_queue: workers lease tasks from it."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.lease, self.exchange = scheduler.lease, scheduler.exchange


class ResultQueue:
    """Registered as result_queue: workers put result batches in it."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.put = scheduler.put


class Control:
    """Registered as control: hello, bye and status."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.hello, self.bye, self.status = scheduler.hello, scheduler.bye, scheduler.status


def registered_objects(scheduler: Scheduler) -> dict[str, Any]:
    """The objects the manager serves, by registered name (distinct objects: the
    manager server keys what it exposes by object identity)."""
    return {"url_queue": UrlQueue(scheduler), "result_queue": ResultQueue(scheduler),
            "control": Control(scheduler), "seen": scheduler.frontier.seen}
