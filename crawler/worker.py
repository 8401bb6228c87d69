"""Worker node: `python -m crawler.worker HOST:PORT [--authkey-file F] [-c THREADS] [-p PROCS]`.

One coordinator thread talks to the master in batches (lease, put) through a MasterLink;
a pool of fetcher threads runs the handler, sized by an autoscaler (crawler.autoscale) up
to CONCURRENT_REQUESTS, or fixed (-c, AUTOSCALE_ENABLED=False). A lost master is
reconnected with capped backoff and unacknowledged results are sent again (the master
ignores repeats by lease id).
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from . import signals
from .autoscale import Autoscaler, Driver, Limits
from .ledger import Ledger
from .link import keyfile, manager
from .link.calls import LOST, Dialer, MasterLink, add_tls_options, tls_from_args
from .pool import FetchPool
from .errors import CrawlerError, RefusedError, UsageError
from .spider.handler import Handler, build_handler
from .spider.base import load_spider_class, make_spider, source_hash
from .status.progress import WorkerMeter
from .status.version import code_version

log = logging.getLogger(__name__)
# Before it first meets its master a worker polls often: a short crawl must not end
# unnoticed between two attempts (the master answers "over" for a while: master.py).
FIRST_CONNECT_CAP = 0.25
AHEAD_RETRY = 1.0  # seconds before a worker tries to lease ahead again after a short answer
# A recrawl's unchanged pages (304, nothing parsed) come back in a fraction of a millisecond:
# sent one or two at a time, the round trips cost more CPU than the pages. They wait up to
# UNCHANGED_WAIT seconds for company, until UNCHANGED_BATCH of them (their slots held as long).
UNCHANGED_WAIT = 0.005
UNCHANGED_BATCH = 16


class Worker:
    """One worker process: a coordinator loop and a pool of fetcher threads. `threads`:
    a fixed pool size (None: the crawl's settings decide)."""

    def __init__(self, address: tuple[str, int], key_path: str, threads: int | None = None,
                 max_wait: float = 600.0, parent: int | None = None) -> None:
        self.address = address
        self.dialer = Dialer(address, key_path, max_wait, self._giving_up)
        self.parent = parent  # a local worker exits when the master that started it is gone
        self.threads = threads  # fixed size asked for on the command line, or None
        self.id = f"{socket.gethostname()}:{os.getpid()}:{random.randrange(1 << 16):04x}"
        self.stopping = False  # set by a signal handler: a plain flag, never a lock
        self.ledger = Ledger()
        self.wake = threading.Event()
        self.last_renew = time.monotonic()
        self.next_lease = 0.0           # when to ask for work again after a short answer
        self.ahead_after = 0.0          # when to try leasing ahead again (see _target)
        self.link: MasterLink | None = None
        self.pool: FetchPool | None = None
        self.scaler: Autoscaler | None = None
        self.handler: Handler | None = None
        self.spider_hash = ""
        self.meter = WorkerMeter(0.0, time.monotonic())  # interval set by the master

    # -- lifecycle --------------------------------------------------------------
    def run(self) -> int:
        """Crawl until the master says the crawl is over; return an exit status."""
        reply = self._connect()
        if reply is None:
            return 1
        if self._told_over(reply):
            return 0
        try:
            self._configure(reply)
        except CrawlerError as exc:
            self._refuse(str(exc))
            raise
        try:  # the first connection was made before the master told us CALL_TIMEOUT
            self.link = MasterLink.connect(self.address, self.dialer.key).routed(reply)
        except LOST as exc:
            log.warning("lost the master (%r); the coordinator reconnects", exc)
        driver = self._start_pool()
        try:
            status = self._coordinate()
        finally:
            if driver is not None:
                driver.stop()
            self.pool.close()
            self.handler.fetcher.close()
        self.handler.signals.send(signals.spider_closed, spider=self.handler.spider,
                                  reason="finished" if status == 0 else "shutdown")
        return status

    def _configure(self, reply: dict[str, Any]) -> None:
        settings = reply["settings"]
        cls = load_spider_class(reply["spider"], settings["SPIDER_MODULES"])
        self.spider_hash = source_hash(cls)
        if self.spider_hash != reply["spider_hash"]:
            raise RefusedError(f"spider {reply['spider']!r} differs from the master's "
                               f"(code hash {self.spider_hash} vs {reply['spider_hash']}); "
                               "run the same project code on every host")
        spider = make_spider(cls, settings, reply.get("spider_args"))
        spider.allowed_domains = reply["allowed_domains"]
        limits = Limits.from_settings(settings)
        if self.threads is None and settings["AUTOSCALE_ENABLED"]:
            self.scaler = Autoscaler(limits, time.monotonic(), time.process_time())
        size = self.scaler.size if self.scaler else self.threads or limits.cap
        self.batch, self.flush_interval = settings["BATCH_SIZE"], settings["FLUSH_INTERVAL"]
        self.reconnect_cap = settings["RECONNECT_MAX_DELAY"]
        self.renew_every = settings["LEASE_TIMEOUT"] / 3
        self.meter.interval = settings["LOGSTATS_INTERVAL"]
        manager.set_call_timeout(settings["CALL_TIMEOUT"])
        self.handler = build_handler(spider, settings, reply["allowed_domains"],
                                     reply["trusted"], reply.get("media_pipelines", ()))
        self.handler.signals.send(signals.spider_opened, spider=spider)
        # A thread that leaves closes its connections.
        self.pool = FetchPool(self.handler.handle, self._done, self.handler.fetcher.close_session)
        self.pool.resize(size)
        log.info("worker %s: spider %s, %d threads%s", self.id, reply["spider"], size,
                 f" (autoscaled up to {limits.cap})" if self.scaler else "")

    def _start_pool(self) -> Driver | None:
        """The autoscaler's thread, when the pool sizes itself."""
        if self.scaler is None:
            return None
        driver = Driver(self.scaler, self.pool, lambda: (self.meter.pages, self.ledger.pushback))
        threading.Thread(target=driver.run, name="autoscale", daemon=True).start()
        return driver

    def _refuse(self, reason: str) -> None:
        """Tell the master why this worker will not take part (it logs it)."""
        try:
            self.link.bye(self.id, reason)
        except LOST as exc:
            log.debug("could not tell the master: %r", exc)

    def _connect(self, cap: float = FIRST_CONNECT_CAP) -> dict[str, Any] | None:
        """Connect and say hello (crawler.link.calls.Dialer); the master's reply, or None."""
        self.link = None
        got = self.dialer.dial({"worker": self.id, "threads": self.threads, "pid": os.getpid(),
                                "version": code_version()}, cap)
        if got is None:
            return None
        self.link, reply = got
        return reply

    # -- coordinator ----------------------------------------------------------------
    def _coordinate(self) -> int:
        while True:
            self.meter.pages += self.ledger.collect()
            self._log_progress()
            if self._orphaned():
                return 1
            try:
                status = self._step(time.monotonic())
            except LOST as exc:
                log.warning("lost the master (%r); reconnecting", exc)
                reply = self._reconnect()
                if reply is None:
                    return 1
                if self._told_over(reply):
                    return 0
                self.next_lease = 0.0
                continue
            if status is not None:
                return status
            self.wake.wait(self._sleep_for())
            self.wake.clear()

    def _step(self, now: float) -> int | None:
        """One round trip with the master: settle results and lease (or renew) in one
        call. An exit status when the worker is done, else None."""
        ledger = self.ledger
        low = self._low(now) and not self._unchanged_waiting(now)
        flush = bool(ledger.pending) and (low or self.stopping or
                                          len(ledger.pending) >= self.batch or
                                          now - ledger.first_pending >= self.flush_interval)
        if self.stopping:
            if flush:
                batch = ledger.batch()
                ledger.settled(batch, self.link.put(self.id, batch))
            return self._leave()
        renew_due = now - self.last_renew >= self.renew_every
        lease_due = low and (flush or now >= self.next_lease)
        if not (flush or lease_due or renew_due):
            return None
        want = self._target(now) - ledger.outstanding() if lease_due else 0
        reply = self._exchange(ledger.batch() if flush else [], want, renew_due)
        self.dialer.backoff = 0.1
        if self._told_over(reply):
            return 0
        if len(reply["tasks"]) < want:
            self.next_lease = now + min(max(reply["wait"], 0.005), 0.5)
            self.ahead_after = now + AHEAD_RETRY
        else:
            self.next_lease = 0.0
        return None

    def _told_over(self, reply: dict[str, Any]) -> bool:
        """Whether the master's reply (to a hello or a lease) says the crawl is over."""
        if not reply.get("done"):
            return False
        closed_by = reply.get("closed_by", "finished")
        if closed_by == "finished":
            log.info("worker %s: crawl over", self.id)
        else:
            log.info("worker %s: the master stopped the crawl (%s)", self.id, closed_by)
        return True

    def _unchanged_waiting(self, now: float) -> bool:
        """Only a few unchanged pages' results are pending, not for long, and more are
        being fetched: they wait."""
        pending = self.ledger.pending
        return bool(pending) and len(pending) < UNCHANGED_BATCH and \
            self.ledger.outstanding() > 0 and \
            now - self.ledger.first_pending < UNCHANGED_WAIT and \
            all(r.get("status") == 304 and not r.get("requests") for r in pending)

    def _target(self, now: float) -> int:
        """Tasks to hold, queued or running: twice the pool, so that a thread that finishes
        finds its next task waiting rather than a round trip to the master; but only the
        pool while the master has less to give than asked (politeness bounds the crawl):
        a task waiting here holds one of its host's slots that another worker's idle
        thread could use."""
        return self.pool.size * (2 if now >= self.ahead_after else 1)

    def _low(self, now: float) -> bool:
        """Time to settle results and lease more. Leasing ahead, once half the tasks held
        ahead are taken: threads still find work queued, and one call settles and refills
        many (a call per result or two cost the master and the worker more CPU than any
        other part of the exchange). Else at once: every result frees a host's slot."""
        size, outstanding = self.pool.size, self.ledger.outstanding()
        if now >= self.ahead_after:
            return outstanding < size + size // 2
        return outstanding < size

    def _sleep_for(self) -> float:
        now, limits = time.monotonic(), [0.5]
        waiting = self._unchanged_waiting(now)
        if self._low(now) and not waiting:
            limits.append(self.next_lease - now)
        if self.ledger.pending:
            limits.append(self.ledger.first_pending - now +
                          (UNCHANGED_WAIT if waiting else self.flush_interval))
        return max(0.0, min(limits))

    def _log_progress(self) -> None:
        line = self.meter.line(time.monotonic(), self.pool.busy, self.pool.size)
        if line:
            log.info("worker %s: %s", self.id, line)

    def _exchange(self, batch: list[dict], want: int, renew: bool) -> dict[str, Any]:
        """Settle `batch` and lease up to `want` tasks in one call."""
        held = self.ledger.renewals(batch) if renew else []
        reply = self.link.exchange(self.id, batch, max(want, 0), held)
        self.ledger.settled(batch, reply["accepted"])
        if renew:
            self.last_renew = time.monotonic()
        self.ledger.leased(reply["tasks"])
        for task in reply["tasks"]:
            self.pool.put(task)
        return reply

    def _giving_up(self) -> bool:
        return self.stopping or self._orphaned()

    def _orphaned(self) -> bool:
        if self.parent is not None and os.getppid() != self.parent:
            log.warning("worker %s: the master that started it is gone; exiting", self.id)
            return True
        return False

    def _reconnect(self) -> dict[str, Any] | None:
        """The master's hello reply, or None when giving up."""
        self.meter.reconnects += 1
        self.dialer.back_off(self.reconnect_cap)
        reply = self._connect(cap=self.reconnect_cap)
        if reply is not None and reply["spider_hash"] != self.spider_hash:
            raise RefusedError("the master now runs different spider code")
        return reply

    def _leave(self) -> int:
        """Graceful stop: results are flushed above; unstarted leases go back now."""
        try:
            self.link.bye(self.id)
        except LOST as exc:
            log.warning("could not say goodbye (%r); leases will expire", exc)
        return 0

    # -- fetcher threads ----------------------------------------------------------------
    def _done(self, task: dict, result: dict) -> None:
        self.ledger.done(task, result)
        if not self.wake.is_set():  # set() takes a lock and notifies: 7% of a busy worker
            self.wake.set()

    def stop(self) -> None:
        """Stop leasing; the coordinator flushes results and leaves (within 0.5 s).
        Called from a signal handler, so it takes no lock."""
        self.stopping = True


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m crawler.worker",
                                     description="Fetch and parse pages for a crawler master.")
    parser.add_argument("master", help="HOST:PORT of the master")
    parser.add_argument("--authkey-file", default=os.environ.get(keyfile.ENV_VAR),
                        help=f"file holding the crawl's key (or ${keyfile.ENV_VAR})")
    parser.add_argument("-c", "--threads", type=int, help="a fixed number of fetcher threads "
                        "per process (default: sized by the autoscaler up to the master's "
                        "CONCURRENT_REQUESTS)")
    parser.add_argument("-p", "--processes", type=int, default=1, help="worker processes")
    parser.add_argument("--max-wait", type=float, default=600.0,
                        help="seconds to keep trying to reach the master before giving up")
    add_tls_options(parser)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format=f"%(asctime)s worker[{os.getpid()}] %(levelname)s %(message)s")
    try:
        address = manager.parse_address(args.master)
        if not args.authkey_file:
            raise UsageError(f"no authkey: give --authkey-file or set ${keyfile.ENV_VAR}")
        if args.threads is not None and args.threads < 1 or args.processes < 1:
            raise UsageError("-c and -p take a number of at least 1")
        manager.set_tls(tls_from_args(args, address))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    children = [_spawn_copy(argv) for _ in range(args.processes - 1)]
    status = _run_one(address, args, children)
    for child in children:
        status = max(status, child.wait())
    return status


def _spawn_copy(argv: list[str] | None) -> subprocess.Popen:
    args = list(sys.argv[1:] if argv is None else argv) + ["-p", "1"]
    return subprocess.Popen([sys.executable, "-m", "crawler.worker", *args])


def _run_one(address: tuple[str, int], args: argparse.Namespace,
             children: list[subprocess.Popen]) -> int:
    worker = Worker(address, args.authkey_file, args.threads, args.max_wait, args.parent)

    def stop(signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and worker.stopping:
            raise KeyboardInterrupt  # a second Ctrl-C: now
        worker.stop()
        for child in children:  # -p N: the copies stop with this one
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)  # Ctrl-C stops as gracefully as SIGTERM
    try:
        return worker.run()
    except CrawlerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
