"""A worker's calls to its coordinator, behind one small object: hello, lease, put,
exchange (put and lease in one round trip), bye. Today the master's BaseManager proxies;
another backend (a shared store the workers lease from) slots in by offering the same
calls."""
from __future__ import annotations

import argparse
import logging
import os
import random
import ssl
import time
from multiprocessing import AuthenticationError
from typing import Any, Callable

from . import channel, coordinator, keyfile, manager, wirecheck
from ..errors import RefusedError, UsageError

log = logging.getLogger(__name__)
WAIT_REPORT_EVERY = 30.0  # seconds between two "still waiting for master" lines

# What a call raises when the coordinator is gone or misbehaves: back off and reconnect.
LOST = manager.LOST


class MasterLink:
    """The master's registered objects, as the worker calls them; every reply checked for
    the shape the worker relies on (crawler.wirecheck)."""

    def __init__(self, proxies: dict[str, Any]) -> None:
        self._proxies = proxies
        self._control, self._urls = proxies["control"], proxies["url_queue"]
        self._results = proxies["result_queue"]

    def routed(self, reply: dict[str, Any]) -> "MasterLink":
        """This link, or one whose leases and results go where the master's hello reply
        says the frontier lives (crawler.coordinator: Redis)."""
        routed = coordinator.route(self._proxies, reply)
        return self if routed is self._proxies else MasterLink(routed)

    @classmethod
    def connect(cls, address: tuple[str, int], key: bytes) -> "MasterLink":
        return cls(manager.connect(address, key))

    def hello(self, info: dict[str, Any]) -> dict[str, Any]:
        """Join the crawl; the reply carries its configuration."""
        return wirecheck.hello_reply(self._control.hello(info))

    def lease(self, worker: str, want: int, renew: list[str]) -> dict[str, Any]:
        """Up to `want` tasks, renewing the leases in `renew`."""
        return wirecheck.lease_reply(self._urls.lease(worker, want, renew))

    def put(self, worker: str, results: list[dict]) -> list[str]:
        """Settle results; the lease ids taken."""
        return wirecheck.names(self._results.put(worker, results))

    def exchange(self, worker: str, results: list[dict], want: int,
                 renew: list[str]) -> dict[str, Any]:
        """put, then lease, in one round trip: the lease reply plus "accepted" (the lease
        ids of the results taken)."""
        reply = wirecheck.lease_reply(self._urls.exchange(worker, results, want, renew))
        wirecheck.names(reply.get("accepted"))
        return reply

    def bye(self, worker: str, refused: str | None = None) -> None:
        """Leave the crawl (its unsettled leases go back); `refused`: why it will not join."""
        if refused is None:
            self._control.bye(worker)
        else:
            self._control.bye(worker, refused)


class Dialer:
    """Connects a worker to its master and says hello, retrying with capped exponential
    backoff and jitter until `giving_up()` or `max_wait` seconds; says so once, then every
    WAIT_REPORT_EVERY seconds."""

    def __init__(self, address: tuple[str, int], key_path: str, max_wait: float,
                 giving_up: Callable[[], bool]) -> None:
        self.address, self.key_path, self.max_wait = address, key_path, max_wait
        self.giving_up = giving_up
        self.key: bytes | None = None
        self.backoff = 0.1   # grows while the master is unreachable, reset by a good call

    def dial(self, hello: dict[str, Any], cap: float) -> tuple[MasterLink, dict] | None:
        """The link and the master's reply to `hello`; None when giving up."""
        started, report_at, why = time.monotonic(), 0.0, ""
        while not self.giving_up():
            key = self._read_key()
            try:
                if key is not None:
                    link = MasterLink.connect(self.address, key)
                    reply = link.hello(hello)
                    self.key = key
                    return link.routed(reply), reply
            except AuthenticationError as exc:
                raise RefusedError(_refusal(self.address, self.key_path, exc)) from None
            except LOST as exc:
                why = f": {type(exc).__name__}: {exc}"
            waited = time.monotonic() - started
            if waited > self.max_wait:
                log.error("no master at %s for %.0f s; giving up", fmt(self.address),
                          self.max_wait)
                return None
            if waited >= report_at:
                self._report_wait(waited, not report_at, key is None, why)
                report_at = waited + WAIT_REPORT_EVERY
            self.back_off(cap)
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
                         f"{fmt(self.address)} is up: copy its key file here")

    def _report_wait(self, waited: float, first: bool, no_key: bool, why: str) -> None:
        what = f"master at {fmt(self.address)}"
        if no_key:
            what += f" and its key file {self.key_path} (the master creates it)"
        if first:
            log.info("waiting for %s (giving up after %.0f s)%s", what, self.max_wait, why)
        else:
            log.info("still waiting for %s after %.0f s%s", what, waited, why)

    def back_off(self, cap: float) -> None:
        """Sleep about `backoff` seconds (until giving up), then double it up to `cap`."""
        until = time.monotonic() + self.backoff * (0.5 + random.random())
        while not self.giving_up() and time.monotonic() < until:
            time.sleep(min(0.1, max(0.0, until - time.monotonic())))
        self.backoff = min(self.backoff * 2, cap)


def _refusal(address: tuple[str, int], key_path: str, exc: AuthenticationError) -> str:
    if "TLS" in str(exc):
        return f"master at {fmt(address)}: {exc}"
    return f"master at {fmt(address)} refused the authkey in {key_path}"


def fmt(address: tuple[str, int]) -> str:
    """HOST:PORT."""
    return f"{address[0]}:{address[1]}"


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    """--tls-ca, --tls-fingerprint, --insecure: how a client (a worker, crawler.add,
    crawler.stop) checks its master; read back by tls_from_args."""
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--tls-ca", metavar="FILE", help="talk TLS to the master and check its "
                     "certificate against this CA bundle (PEM) and the master's HOST")
    tls.add_argument("--tls-fingerprint", metavar="SHA256", help="talk TLS to the master and "
                     "accept only the certificate with this SHA-256 fingerprint (the master "
                     "prints it)")
    tls.add_argument("--insecure", action="store_true", help="talk plain TCP to a master "
                     "that is not on this host (anyone on the path can read and alter it)")


def tls_from_args(args: argparse.Namespace,
                  address: tuple[str, int]) -> channel.ClientTls | None:
    """How to check the master, from the options add_tls_options added; UsageError for
    plain TCP to another host without --insecure."""
    fingerprint, ca = args.tls_fingerprint, args.tls_ca
    if fingerprint is not None:
        pin = channel.parse_fingerprint(fingerprint)
        if pin is None:
            raise UsageError(f"--tls-fingerprint {fingerprint!r}: expected 64 hex digits (a "
                             "SHA-256, colons allowed)")
        return channel.ClientTls(fingerprint=pin)
    if ca is not None:
        try:
            return channel.ClientTls(ca=ca)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--tls-ca {ca}: {exc.strerror or exc}") from None
    if not (args.insecure or manager.is_loopback(address[0])):
        raise UsageError(f"the master at {fmt(address)} is not on this host: give --tls-ca "
                         "or --tls-fingerprint to talk TLS to it, or --insecure for plain TCP")
    return None
