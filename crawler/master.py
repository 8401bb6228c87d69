"""Master node: `python -m crawler.master [SEEDS] [--spider NAME] [--workers N] ...`.

Holds the frontier, the dedup dict and the sink; serves them to workers over
BaseManager; starts local workers; decides when the crawl is over.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

from . import components, feeds, signals
from .errors import CrawlerError, UsageError
from .feeds.warc import WarcFeed
from .frontier import DONE, from_settings as frontier_from_settings
from .frontier.recrawl import Rounds, revisit
from .pipelines.downloads import MediaDownloads, media_pipelines
from .console import (announce, announce_status, print_resume_hint, print_summary, tell_start,
                      worker_tls)
from .feeder import Feeder
from .local import LocalWorkers
from .plan import Plan, parse_args, prepare
from .scheduler import Scheduler, registered_objects
from .sink import Sink
from .link import keyfile, manager, remote
from .link.wirecheck import Checks
from .spider.base import GenericSpider, source_hash
from .status import live, snapshot
from .status.monitor import Monitor
from .status.server import StatusServer
from .status.summary import write_or_log
from .urls import host_of

log = logging.getLogger("crawler.master")
TOP_HOSTS = 20  # hosts shown by queue and by failures

class Master:
    """A running crawl: frontier, scheduler, manager server, sink, local workers."""

    def __init__(self, plan: Plan) -> None:
        self.plan, s = plan, plan.settings
        self.local = LocalWorkers()
        # First, while this process has one thread and holds no frontier (see crawler.local).
        self.local.prefork(plan.workers, _screen_wanted(s))
        self.spider = plan.starts.spider
        self.signals = self.spider.crawler.signals
        self.frontier = plan.redis.make_frontier(s) if plan.redis else \
            frontier_from_settings(s, plan.jobdir)
        media = self.spider.crawler.media = MediaDownloads()  # for media pipelines
        pipelines = components.load("ITEM_PIPELINES", s["ITEM_PIPELINES"], self.spider.crawler)
        journal = plan.journal
        rounds = None
        if journal is not None:
            for origin, status, body, _ in journal.robots(time.time() - s["ROBOTSTXT_MAX_AGE"]):
                self.frontier.know_robots(origin, self.frontier.parse_robots(status, body))
            self.frontier.restore(journal.urls())
            rounds = Rounds(journal.round(), journal.verdicts(journal.round()))
            journal.compact_in_background()
        self.done_before = self.frontier.stats[DONE]  # by earlier runs of this JOBDIR
        # Items a killed run committed but had not recorded as written: handed to the sink
        # again, so pipelines may have seen them already (those since its last flush).
        self.replay = journal.unwritten_items() if journal is not None else []
        self.spider.resume_state = {
            "jobdir": plan.jobdir, "resumed": journal is not None and not journal.is_new(),
            "replayed_items": len(self.replay), "closed_by": None, "resumable": None}
        outputs = [self._feed(spec, path) for spec, path in plan.feeds]
        if plan.warc is not None:
            outputs.append(self._warc_feed(*plan.warc))
        store = journal or plan.redis  # where the feeds' progress is recorded
        self.sink = Sink(outputs, pipelines,
                         self.spider, store.mark_written if store else None, self.signals)
        self.scheduler = Scheduler(self.frontier, self._hello_reply(), self.sink.put_many,
                                   s["BATCH_SIZE"], s["CLOSESPIDER_PAGECOUNT"], journal, rounds,
                                   Checks.from_settings(s), keep_running=s["KEEP_RUNNING"],
                                   media=media if media.pipelines else None,
                                   error_limit=s["CLOSESPIDER_ERRORCOUNT"])
        # Close conditions count this run's pages, items and seconds: a JOBDIR crawl they
        # closed is not finished, and the same command continues it for as many again.
        self.items_before = self.sink.count
        self.remote = remote.for_scheduler(self.scheduler, plan.starts.from_urls)
        self.feeder = Feeder(plan.starts, self.frontier, self.scheduler, self.spider,
                             tuple(s["FINGERPRINT_IGNORE_PARAMS"]), plan.redis, self.remote.add)
        if media.pipelines:
            media.bind(self.scheduler, self._unfinished)
            self.frontier.on_failed = media.failed
        self.monitor: Monitor | None = None
        self.status_server: StatusServer | None = None

    def _unfinished(self) -> int:
        """Items not written yet; on Redis also those still in its streams (1 for all)."""
        behind = 0 if self.plan.redis is None or self.plan.redis.caught_up() else 1
        return self.sink.unfinished() + behind

    def _progress(self, spec: feeds.FeedSpec) -> tuple | None:
        """How far a resumed crawl had written this feed (from the JOBDIR or Redis)."""
        store = self.plan.journal or self.plan.redis
        progress = store.feed_progress(spec.key) if store else None
        return progress[1:] if progress else None

    def _feed(self, spec: feeds.FeedSpec, path: str) -> feeds.Feed:
        return feeds.Feed(spec, path, self._progress(spec))

    def _warc_feed(self, spec: feeds.FeedSpec, path: str) -> WarcFeed:
        return WarcFeed(spec, path, self._progress(spec), self.plan.settings["WARC_MAX_SIZE"])

    def _hello_reply(self) -> dict[str, Any]:
        domains = list(self.spider.allowed_domains or [])
        origins = self.plan.starts.origins
        if not domains and self.plan.spider_cls is GenericSpider:
            domains = sorted({host_of(origin + "/") for origin in origins})
        backend = {"backend": self.plan.redis.hello()} if self.plan.redis else {}
        return {**backend, "spider": self.plan.spider_cls.name, "settings": self.plan.settings,
                "spider_args": self.plan.spider_args,
                "spider_hash": source_hash(self.plan.spider_cls), "allowed_domains": domains,
                "media_pipelines": media_pipelines(self.plan.settings["ITEM_PIPELINES"]),
                # the seeds' origins (scheme://host:port), exempt from the address guard
                "trusted": sorted(origins)}

    def seed(self) -> int:
        """Queue the seeds not seen before; hand over items a killed run had not written."""
        journal = self.plan.journal
        if journal is not None:
            if any(journal.feed_progress(feed.key) is None for feed in self.sink.feeds
                   if feed.resumable):  # a new crawl: where each feed starts
                journal.mark_written(journal.written_seq(), self.sink.progress())
            self.sink.put_many(self.replay)
            self.replay = []
        return self.feeder.first()

    def start(self) -> tuple[str, int]:
        """Serve the queues and start local workers; return the bound address."""
        self._start_status()  # first: a port in use stops it before anything is made
        key_path = self.plan.key_path or self._temp_key_path()
        key = keyfile.read_or_create(key_path)
        address = manager.serve(dict(registered_objects(self.scheduler), crawl=self.remote),
                                self.plan.bind, key, self.plan.limits, self.plan.tls)
        self.sink.start()
        if self.plan.redis:
            media = self.spider.crawler.media
            self.plan.redis.start_items(self.sink.put_many, media if media.pipelines else None)
        self.signals.send(signals.spider_opened, spider=self.spider)
        self.local.spawn(self.plan.workers, [
            f"{address[0]}:{address[1]}", "--authkey-file", key_path, *worker_tls(self.plan),
            "--log-level", self.plan.settings["LOG_LEVEL"]], self.monitor.live)
        return address

    def _start_status(self) -> None:
        """Start the monitor (progress lines, or a live line on a terminal) and the page."""
        interval = self.plan.settings["LOGSTATS_INTERVAL"]
        screen = live.LiveLine(sys.stderr) if _screen_wanted(self.plan.settings) else None
        if self.plan.status is not None:
            try:
                self.status_server = StatusServer(self.plan.status, self.current_snapshot,
                                                  self.plan.status_token)
            except OSError as exc:
                host, port = self.plan.status
                raise UsageError(f"cannot listen on {host}:{port} for the status page: "
                                 f"{exc.strerror}") from None
        self.monitor = Monitor(self.snapshot, interval, screen)
        self.monitor.start()
        if self.status_server is not None:
            self.status_server.start()

    def current_snapshot(self) -> dict[str, Any]:
        """The latest snapshot the monitor took (what the status page shows)."""
        return self.monitor.current()

    def snapshot(self) -> dict[str, Any]:
        """The one snapshot every view renders (see crawler.status.snapshot)."""
        plan = self.plan
        return snapshot.compose(
            self.scheduler.snapshot(TOP_HOSTS),
            crawl={"spider": plan.spider_cls.name, "jobdir": plan.jobdir,
                   "output": ", ".join(feed.path for feed in self.sink.feeds),
                   "feeds": [feed.path for feed in self.sink.feeds],
                   "appended": {feed.path: feed.held_before for feed in self.sink.feeds
                                if feed.held_before},  # items each appended file held before
                   "started_at": round(time.time() - self.elapsed(), 3)},
            seconds=self.elapsed(), done_before=self.done_before, items=self.sink.count,
            items_dropped=self.sink.dropped, last_items=self.sink.recent.copy(),
            item_errors=len(self.sink.item_errors), connected_within=plan.settings[
                "LEASE_TIMEOUT"] / 2, spider_stats=self.spider.crawler.stats.get_stats())

    def _temp_key_path(self) -> str:
        folder = tempfile.mkdtemp(prefix="crawler-key-")
        self.plan.temp_dirs.append(folder)
        return os.path.join(folder, "authkey")

    def run_until_over(self) -> None:
        """Tick the scheduler until the crawl is over (or closed and settled); CrawlerError
        when every local worker has died."""
        s = self.plan.settings
        while not self.scheduler.over():
            self.check_failures()
            self.local.check()
            self.feeder.feed()
            self.scheduler.tick()
            if s["CLOSESPIDER_ITEMCOUNT"] and \
                    self.sink.count - self.items_before >= s["CLOSESPIDER_ITEMCOUNT"]:
                self.scheduler.close("closespider_itemcount")
            if s["CLOSESPIDER_TIMEOUT"] and self.elapsed() >= s["CLOSESPIDER_TIMEOUT"]:
                self.scheduler.close("closespider_timeout")
            if self.plan.redis and self.scheduler.closing:
                self.plan.redis.tell("closing")
            self.scheduler.ended.wait(0.05)
        self.check_failures()  # the journal failing closes the crawl too
        self._tell_over()

    def check_failures(self) -> None:
        """CrawlerError when the journal or the sink cannot go on: the crawl is aborted (with
        a JOBDIR it resumes from what was committed)."""
        if self.scheduler.fatal:
            raise CrawlerError(self.scheduler.fatal)
        if self.sink.failure is not None:
            raise CrawlerError(f"writing items failed: {self.sink.failure}")

    def _tell_over(self) -> None:
        """Workers on Redis hear the end there (embedded ones when they next lease)."""
        if self.plan.redis:
            self.plan.redis.tell(f"over:{self.scheduler.closing or 'finished'}")

    def drain(self, grace: float) -> None:
        """Wait (bounded) for workers to hear the crawl is over, then for local ones to exit.
        Without local workers, answer for at least 0.6 s: remote workers still waiting
        to meet the master poll every 0.25 s and must hear that the crawl is over."""
        now = time.monotonic()
        deadline, linger = now + grace, now + (0.6 if not self.plan.workers else 0.0)
        while time.monotonic() < deadline and (time.monotonic() < linger or
                                               not self.plan.redis and
                                               self.scheduler.workers_pending(
                                                   self.plan.settings["LEASE_TIMEOUT"])):
            time.sleep(0.01)
        self.local.wait(deadline)

    def finish(self, finished: bool) -> tuple[dict[str, Any], bool]:
        """Close the sink, write stats and failures, remove temporary keys; the summary, and
        whether the crawl finished (not when writing its last items failed). Only a crawl
        that finished is recorded so in the JOBDIR: any other can be resumed."""
        closed_by = self.scheduler.closing or "finished"
        self.spider.resume_state.update(  # what close_spider sees
            closed_by=closed_by, resumable=bool(self.plan.jobdir or self.plan.redis) and not (
                finished and closed_by == "finished"))
        if self.plan.redis:
            self._tell_over()
            self.plan.redis.stop_items()  # every settled page's items, into the feeds
        # Resumable (a JOBDIR, or Redis): items still held stay unwritten, to be written
        # when it is resumed (on Redis, their stream entries stay unacknowledged).
        resumable = self.plan.journal is not None or self.plan.redis is not None
        self.sink.close(resumable=not finished and resumable)
        self.frontier.close()
        finished = finished and self.sink.failure is None and not self.scheduler.fatal
        self.signals.send(signals.spider_closed, spider=self.spider,
                          reason=self.scheduler.closing or "finished")
        for folder in self.plan.temp_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        summary = self.summary()
        jobdir = self.plan.jobdir
        if self.frontier.failures or self.sink.item_errors:
            summary["failures_file"] = self._write_failures()
        if self.plan.stats_file:
            write_or_log(self.plan.stats_file, json.dumps(summary, indent=1))
        if jobdir and finished and self.scheduler.closing is None:
            try:
                self.plan.journal.put_meta({"finished": 1})
            except Exception as exc:  # sqlite3.Error: a full disk at the very end
                log.error("cannot record the crawl as finished: %r", exc)
                finished = False
        if self.plan.redis and finished and self.scheduler.closing is None:  # else: goes on
            self.plan.redis.put_finished()
        return summary, finished

    def _write_failures(self) -> str:
        jobdir = self.plan.jobdir
        files = [feed.path for feed in self.sink.feeds if feed.resumable]
        stem = files[0] if files else self.plan.spider_cls.name
        path = os.path.join(jobdir, "failures.tsv") if jobdir else stem + ".failures.tsv"
        rows = self.frontier.failures + [(url, "item_error") for url, _ in self.sink.item_errors]
        write_or_log(path, "".join(f"{reason}\t{url}\n" for url, reason in rows))
        return path

    def elapsed(self) -> float:
        """Seconds since work was first handed out (reading seeds and starting up are not
        the crawl's time)."""
        first = self.scheduler.first_lease
        return 0.0 if first is None else time.monotonic() - first

    def summary(self) -> dict[str, Any]:
        """The final snapshot (with the time series): the summary and stats.json."""
        if self.monitor is None:
            return snapshot.finished(self.snapshot())
        summary = self.monitor.stop(snapshot.finished)
        if self.status_server is not None:
            self.status_server.close()
        return summary


def _screen_wanted(settings: dict[str, Any]) -> bool:
    """Progress shows as a live line on stderr (else as log lines)."""
    return bool(settings["LOGSTATS_INTERVAL"]) and live.wanted(sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        plan = prepare(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=plan.settings["LOG_LEVEL"].upper(),
                        format="%(asctime)s master %(levelname)s %(name)s: %(message)s")
    plan.command = shlex.join(["python", "-m", "crawler.master",
                               *(sys.argv[1:] if argv is None else map(str, argv))])
    try:
        return _run(plan)
    except CrawlerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1


def _run(plan: Plan) -> int:
    if plan.new_round:
        count = plan.journal.begin_round(revisit)
        print(f"recrawl {plan.jobdir} (round {plan.journal.round()}): {count} known URLs "
              "to revisit", flush=True)
    elif plan.journal is not None and plan.journal.get("finished"):
        print(f"nothing to do: the crawl in {plan.jobdir} has finished (summary in "
              f"{os.path.join(plan.jobdir, 'stats.json')}); remove that folder to crawl "
              "again, or give --recrawl to fetch what changed")
        return 0
    if plan.redis is not None and plan.redis.get("finished"):
        print(f"nothing to do: crawl {plan.redis.crawl!r} in Redis has finished; remove its "
              f"keys (crawler:{plan.redis.crawl}:*) or choose another --crawl name to crawl again")
        return 0
    resuming = plan.journal is not None and not plan.journal.is_new() and \
        not plan.new_round or plan.redis is not None and plan.redis.resuming
    master = Master(plan)
    master.seed()
    tell_start(master, resuming)
    # The frontier holds millions of long-lived objects and holds no cycles worth
    # chasing: full collections over it stalled lease calls (p99 116 ms -> 14 ms off).
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    address = master.start()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:  # a SIGTERM right after "master listening" is an interrupt too, not a kill
        announce(address, plan)
        announce_status(master)
        master.run_until_over()
        master.drain(plan.settings["SHUTDOWN_GRACE"])
        status = 0
    except KeyboardInterrupt:
        status = 130
        _stop_gracefully(master)
    except CrawlerError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        master.scheduler.close("aborted")
        status = 1
    # A crawl stopped by crawler.stop may still have queued work: its JOBDIR stays resumable.
    stopped = master.scheduler.closing == "stopped"
    summary, finished = master.finish(finished=status == 0 and not stopped)
    if status == 0 and not finished and not stopped:
        print("error: the crawl's last items could not be written", file=sys.stderr)
        status = 1
    print_summary(summary)
    if status != 0 or summary["closed_by"] != "finished":
        print_resume_hint(plan)
    return status


def _stop_gracefully(master: Master) -> None:
    """Stop handing out work, wait (bounded) for work in flight; a second signal: now."""
    master.scheduler.close("interrupted")
    if master.plan.redis:  # workers on Redis hear it there
        master.plan.redis.tell("closing")
    print("interrupted: waiting up to 10 s for work in flight (again to stop now)",
          file=sys.stderr, flush=True)
    try:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not master.scheduler.over():
            master.scheduler.tick()
            time.sleep(0.05)
        master.drain(2.0)
    except KeyboardInterrupt:
        master.local.kill()


if __name__ == "__main__":
    sys.exit(main())
