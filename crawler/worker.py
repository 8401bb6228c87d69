"""Worker node: `python -m crawler.worker HOST:PORT [--authkey-file F] [-c THREADS] [-p PROCS]`.

One coordinator thread talks to the master in batches (lease, put); fetcher
threads run the handler. A lost master is reconnected with capped backoff and
unacknowledged results are sent again (the master ignores repeats by lease id).
"""
from __future__ import annotations

import argparse
import logging
import os
import queue
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from multiprocessing import AuthenticationError
from typing import Any

from . import channel, coordinator, keyfile, manager, signals, wirecheck
from .errors import CrawlerError, RefusedError, UsageError
from .spider.handler import Handler, build_handler
from .spider.base import load_spider_class, make_spider, source_hash
from .status.progress import WorkerMeter
from .status.version import code_version

log = logging.getLogger(__name__)
_LOST = manager.LOST  # any error from the master: back off and reconnect, never die
_SEEN_CACHE_MAX = 500_000
# Before it first meets its master a worker polls often: a short crawl must not end
# unnoticed between two attempts (the master answers "over" for a while: master.py).
FIRST_CONNECT_CAP = 0.25
WAIT_REPORT_EVERY = 30.0  # seconds between two "still waiting for master" lines


class Worker:
    """One worker process: a coordinator loop and a pool of fetcher threads."""

    def __init__(self, address: tuple[str, int], key_path: str, threads: int | None = None,
                 max_wait: float = 600.0, parent: int | None = None) -> None:
        self.address, self.key_path, self.max_wait = address, key_path, max_wait
        self.parent = parent  # a local worker exits when the master that started it is gone
        self.threads = threads
        self.id = f"{socket.gethostname()}:{os.getpid()}:{random.randrange(1 << 16):04x}"
        self.stopping = False  # set by a signal handler: a plain flag, never a lock
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.wake = threading.Event()
        self.pending: list[dict] = []   # results not yet acknowledged
        self.held: set[str] = set()     # lease ids taken and not yet acknowledged
        self.last_renew = time.monotonic()
        self.next_lease = 0.0           # when to ask for work again after a short answer
        self.first_pending = 0.0        # when the oldest unsent result arrived
        self.sent_fps: set[bytes] = set()
        self.proxies: dict[str, Any] | None = None
        self.handler: Handler | None = None
        self.spider_hash = ""
        self.backoff = 0.1   # grows while the master is unreachable, reset by a good call
        self.meter = WorkerMeter(0.0, time.monotonic())  # interval set by the master

    # -- lifecycle --------------------------------------------------------------
    def run(self) -> int:
        """Crawl until the master says the crawl is over; return an exit status."""
        reply = self._connect()
        if reply is None:
            return 1
        try:
            self._configure(reply)
        except CrawlerError as exc:
            self._refuse(str(exc))
            raise
        try:  # the first connection was made before the master told us CALL_TIMEOUT
            self.proxies = coordinator.route(manager.connect(self.address, self.key), reply)
        except _LOST as exc:
            log.warning("lost the master (%r); the coordinator reconnects", exc)
        pool = [threading.Thread(target=self._fetch_loop, name=f"fetch-{i}", daemon=True)
                for i in range(self.threads)]
        for thread in pool:
            thread.start()
        try:
            status = self._coordinate()
        finally:
            for _ in pool:
                self.inbox.put(None)
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
        self.threads = self.threads or settings["CONCURRENT_REQUESTS"]
        self.batch, self.flush_interval = settings["BATCH_SIZE"], settings["FLUSH_INTERVAL"]
        self.reconnect_cap = settings["RECONNECT_MAX_DELAY"]
        self.renew_every = settings["LEASE_TIMEOUT"] / 3
        self.meter.interval = settings["LOGSTATS_INTERVAL"]
        manager.set_call_timeout(settings["CALL_TIMEOUT"])
        self.handler = build_handler(spider, settings, reply["allowed_domains"],
                                     reply["trusted"])
        self.handler.signals.send(signals.spider_opened, spider=spider)
        log.info("worker %s: spider %s, %d threads", self.id, reply["spider"], self.threads)

    def _refuse(self, reason: str) -> None:
        """Tell the master why this worker will not take part (it logs it)."""
        try:
            self.proxies["control"].bye(self.id, reason)
        except _LOST as exc:
            log.debug("could not tell the master: %r", exc)

    def _connect(self, cap: float = FIRST_CONNECT_CAP) -> dict[str, Any] | None:
        """Connect and say hello, retrying with capped exponential backoff and jitter;
        say so once, then every WAIT_REPORT_EVERY seconds."""
        self.proxies, started, report_at = None, time.monotonic(), 0.0
        while not self.stopping and not self._orphaned():
            key = self._read_key()
            try:
                if key is not None:
                    proxies = manager.connect(self.address, key)
                    reply = wirecheck.hello_reply(proxies["control"].hello(
                        {"worker": self.id, "threads": self.threads, "pid": os.getpid(),
                         "version": code_version()}))
                    self.proxies, self.key = coordinator.route(proxies, reply), key
                    return reply
            except AuthenticationError as exc:
                raise RefusedError(_refusal(self.address, self.key_path, exc)) from None
            except _LOST as exc:
                log.debug("master not reachable: %r", exc)
            waited = time.monotonic() - started
            if waited > self.max_wait:
                log.error("no master at %s for %.0f s; giving up", _fmt(self.address),
                          self.max_wait)
                return None
            if waited >= report_at:
                self._report_wait(waited, not report_at, key is None)
                report_at = waited + WAIT_REPORT_EVERY
            self._back_off(cap)
        return None

    def _read_key(self) -> bytes | None:
        """The key; None while the file may yet appear. A master creates its key file
        before it listens, so once something answers at the master's address, a key file
        still missing will not appear by itself: UsageError."""
        for _ in range(2):  # the file, and again if the master is up (it may just have)
            if os.path.exists(self.key_path):
                return keyfile.read(self.key_path)
            if not manager.listening(self.address):
                return None
        raise UsageError(f"authkey file {self.key_path} does not exist, and the master at "
                         f"{_fmt(self.address)} is up: copy its key file here")

    def _report_wait(self, waited: float, first: bool, no_key: bool) -> None:
        what = f"master at {_fmt(self.address)}"
        if no_key:
            what += f" and its key file {self.key_path} (the master creates it)"
        if first:
            log.info("waiting for %s (giving up after %.0f s)", what, self.max_wait)
        else:
            log.info("still waiting for %s after %.0f s", what, waited)

    def _back_off(self, cap: float) -> None:
        until = time.monotonic() + self.backoff * (0.5 + random.random())
        while not self.stopping and time.monotonic() < until:
            time.sleep(min(0.1, max(0.0, until - time.monotonic())))
        self.backoff = min(self.backoff * 2, cap)

    # -- coordinator ----------------------------------------------------------------
    def _coordinate(self) -> int:
        while True:
            self._collect()
            self._log_progress()
            if self._orphaned():
                return 1
            try:
                status = self._step(time.monotonic())
            except _LOST as exc:
                log.warning("lost the master (%r); reconnecting", exc)
                if not self._reconnect():
                    return 1
                self.next_lease = 0.0
                continue
            if status is not None:
                return status
            self.wake.wait(self._sleep_for())
            self.wake.clear()

    def _step(self, now: float) -> int | None:
        """One round with the master: flush results, then lease or renew. An exit status
        when the worker is done, else None."""
        stopping = self.stopping
        if self.pending and (self._hungry() or stopping or len(self.pending) >= self.batch
                             or now - self.first_pending >= self.flush_interval):
            self._flush()
            self.next_lease = 0.0  # our results freed capacity: ask at once
        if stopping:
            return self._leave()
        renew_due = now - self.last_renew >= self.renew_every
        if (self._hungry() and now >= self.next_lease) or renew_due:
            want = 2 * self.threads - len(self.held) if self._hungry() else 0
            reply = self._lease(want, renew_due)
            self.backoff = 0.1
            if reply["done"]:
                _log_end(self.id, reply.get("closed_by", "finished"))
                return 0
            if len(reply["tasks"]) < want:
                self.next_lease = now + min(max(reply["wait"], 0.005), 0.5)
        return None

    def _hungry(self) -> bool:
        """Some fetcher thread has nothing to do."""
        return len(self.held) - len(self.pending) < self.threads

    def _sleep_for(self) -> float:
        now, limits = time.monotonic(), [0.5]
        if self._hungry():
            limits.append(self.next_lease - now)
        if self.pending:
            limits.append(self.first_pending + self.flush_interval - now)
        return max(0.0, min(limits))

    def _collect(self) -> None:
        while True:
            try:
                result = self.outbox.get_nowait()
            except queue.Empty:
                return
            if not self.pending:
                self.first_pending = time.monotonic()
            self.pending.append(result)
            self.meter.pages += 1

    def _log_progress(self) -> None:
        # held = queued for a fetcher thread + being fetched + finished, not yet acknowledged
        busy = len(self.held) - len(self.pending) - self.inbox.qsize() - self.outbox.qsize()
        line = self.meter.line(time.monotonic(), max(0, min(busy, self.threads)), self.threads)
        if line:
            log.info("worker %s: %s", self.id, line)

    def _lease(self, want: int, renew: bool) -> dict[str, Any]:
        held = list(self.held) if renew else []
        reply = wirecheck.lease_reply(self.proxies["url_queue"].lease(self.id, max(want, 0),
                                                                      held))
        if renew:
            self.last_renew = time.monotonic()
        for task in reply["tasks"]:
            self.held.add(task["lease"])
            self.inbox.put(task)
        return reply

    def _orphaned(self) -> bool:
        if self.parent is not None and os.getppid() != self.parent:
            log.warning("worker %s: the master that started it is gone; exiting", self.id)
            return True
        return False

    def _flush(self) -> None:
        batch = self.pending[:]
        known = self._prefilter(batch)
        accepted = set(wirecheck.names(self.proxies["result_queue"].put(self.id, batch)))
        del self.pending[:len(batch)]
        self.held.difference_update(r["lease"] for r in batch)
        # Only links the master has taken may be skipped from now on: a result it
        # ignored (a late one, or sent to a master that died) must not hide its links.
        if len(self.sent_fps) > _SEEN_CACHE_MAX:
            self.sent_fps.clear()
        self.sent_fps.update(known)
        self.sent_fps.update(t["fp"] for r in batch if r["lease"] in accepted
                             for t in r.get("requests", ()))

    def _prefilter(self, batch: list[dict]) -> set[bytes]:
        """Drop links this worker already sent, then those the master's seen dict knows;
        return the fingerprints the master said it knows."""
        fresh = {t["fp"] for r in batch for t in r.get("requests", ())
                 if t["fp"] not in self.sent_fps and not t.get("dont_filter")}
        unseen = set(wirecheck.fingerprints(self.proxies["seen"].unseen(list(fresh)))) \
            if fresh else set()
        for result in batch:
            if result.get("requests"):
                result["requests"] = [t for t in result["requests"]
                                      if t["fp"] in unseen or t.get("dont_filter")]
                unseen.difference_update(t["fp"] for t in result["requests"])
        return fresh - unseen - {t["fp"] for r in batch for t in r.get("requests", ())}

    def _reconnect(self) -> bool:
        self.meter.reconnects += 1
        self._back_off(self.reconnect_cap)
        reply = self._connect(cap=self.reconnect_cap)
        if reply is None:
            return False
        if reply["spider_hash"] != self.spider_hash:
            raise RefusedError("the master now runs different spider code")
        return True

    def _leave(self) -> int:
        """Graceful stop: results are flushed above; unstarted leases go back now."""
        try:
            self.proxies["control"].bye(self.id)
        except _LOST as exc:
            log.warning("could not say goodbye (%r); leases will expire", exc)
        return 0

    # -- fetcher threads ----------------------------------------------------------------
    def _fetch_loop(self) -> None:
        while True:
            task = self.inbox.get()
            if task is None:
                return
            result = self.handler.handle(task)
            result["lease"] = task["lease"]
            self.outbox.put(result)
            self.wake.set()

    def stop(self) -> None:
        """Stop leasing; the coordinator flushes results and leaves (within 0.5 s).
        Called from a signal handler, so it takes no lock."""
        self.stopping = True


def _log_end(worker: str, closed_by: str) -> None:
    if closed_by == "finished":
        log.info("worker %s: crawl over", worker)
    else:
        log.info("worker %s: the master stopped the crawl (%s)", worker, closed_by)


def _refusal(address: tuple[str, int], key_path: str, exc: AuthenticationError) -> str:
    if "TLS" in str(exc):
        return f"master at {_fmt(address)}: {exc}"
    return f"master at {_fmt(address)} refused the authkey in {key_path}"


def _fmt(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m crawler.worker",
                                     description="Fetch and parse pages for a crawler master.")
    parser.add_argument("master", help="HOST:PORT of the master")
    parser.add_argument("--authkey-file", default=os.environ.get(keyfile.ENV_VAR),
                        help=f"file holding the crawl's key (or ${keyfile.ENV_VAR})")
    parser.add_argument("-c", "--threads", type=int, help="fetcher threads per process "
                        "(default: the master's CONCURRENT_REQUESTS)")
    parser.add_argument("-p", "--processes", type=int, default=1, help="worker processes")
    parser.add_argument("--max-wait", type=float, default=600.0,
                        help="seconds to keep trying to reach the master before giving up")
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--tls-ca", metavar="FILE", help="talk TLS to the master and check its "
                     "certificate against this CA bundle (PEM) and the master's HOST")
    tls.add_argument("--tls-fingerprint", metavar="SHA256", help="talk TLS to the master and "
                     "accept only the certificate with this SHA-256 fingerprint (the master "
                     "prints it)")
    tls.add_argument("--insecure", action="store_true", help="talk plain TCP to a master "
                     "that is not on this host (anyone on the path can read and alter it)")
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
        manager.set_tls(_client_tls(args, address))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    children = [_spawn_copy(argv) for _ in range(args.processes - 1)]
    status = _run_one(address, args, children)
    for child in children:
        status = max(status, child.wait())
    return status


def _client_tls(args: argparse.Namespace, address: tuple[str, int]) -> channel.ClientTls | None:
    """TLS as the flags ask; UsageError for plain TCP to another host without --insecure."""
    if args.tls_fingerprint is not None:
        pin = channel.parse_fingerprint(args.tls_fingerprint)
        if pin is None:
            raise UsageError(f"--tls-fingerprint {args.tls_fingerprint!r}: expected 64 hex "
                             "digits (a SHA-256, colons allowed)")
        return channel.ClientTls(fingerprint=pin)
    if args.tls_ca is not None:
        try:
            return channel.ClientTls(ca=args.tls_ca)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--tls-ca {args.tls_ca}: {exc.strerror or exc}") from None
    if not (args.insecure or manager.is_loopback(address[0])):
        raise UsageError(f"the master at {_fmt(address)} is not on this host: give --tls-ca "
                         "or --tls-fingerprint to talk TLS to it, or --insecure for plain TCP")
    return None


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
