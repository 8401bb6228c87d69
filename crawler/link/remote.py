"""A running crawl, driven from outside: `python -m crawler.add` and `python -m crawler.stop`.

The master serves a `crawl` object (add, stop) next to the workers' queues, behind the
same authkey. Added URLs are start URLs: they go through the spider's seed_requests(), then
dedup and politeness like any other. This module holds both ends: the master's object, and
the client the two commands share.
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import shlex
import sys
from typing import Any, Callable

from . import calls, keyfile, manager
from ..errors import UsageError

log = logging.getLogger(__name__)
BATCH = 1000  # URLs per call: each is settled under the master's lock


class CrawlRemote:
    """Registered as `crawl`. `make_tasks(urls)` turns URLs into start tasks and says why
    any was refused; `admit(tasks)` queues them; `close(reason)` ends the crawl."""

    def __init__(self, make_tasks: Callable[[list[str]], tuple[list[dict], list[list[str]]]],
                 admit: Callable[[list[dict]], int], close: Callable[[str], None],
                 closing: Callable[[], str | None]) -> None:
        self._make_tasks, self._admit, self._close, self._closing = \
            make_tasks, admit, close, closing

    def add(self, urls: list[str]) -> dict[str, Any]:
        """Queue start URLs; reply how many were new, already known, refused (and why)."""
        if self._closing():
            return {"added": 0, "known": 0, "refused": [], "closing": self._closing()}
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            return {"added": 0, "known": 0, "refused": [["", "expected a list of URLs"]],
                    "closing": None}
        tasks, refused = self._make_tasks(urls)
        added = self._admit(tasks)
        log.info("crawler.add: %d URLs added, %d already known, %d refused", added,
                 len(tasks) - added, len(refused))
        return {"added": added, "known": len(tasks) - added, "refused": refused,
                "closing": None}

    def stop(self) -> dict[str, Any]:
        """End the crawl as SIGTERM does: no new work; it is over once work in flight
        is settled."""
        log.info("crawler.stop: stopping")
        self._close("stopped")
        return {"closing": self._closing()}


def for_scheduler(scheduler: Any, make_tasks: Callable) -> CrawlRemote:
    """The `crawl` object of a master whose crawler.scheduler.Scheduler is `scheduler`."""
    return CrawlRemote(make_tasks, lambda tasks: scheduler.admit(tasks, more=None),
                       scheduler.close, lambda: scheduler.closing)


def hint(where: str, key_path: str | None, tls: list[str]) -> str:
    """What a crawl that keeps running tells its user; `tls` are the options a client
    checks this master with."""
    if not key_path:
        return ("keeping running: give --authkey-file to add URLs from outside; stop it "
                "with SIGTERM or Ctrl-C")
    key = shlex.join(["--authkey-file", key_path, *tls])
    return (f"keeping running: add URLs with python -m crawler.add {where} {key} URL..., "
            f"stop with python -m crawler.stop {where} {key}")


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options both commands take: the master's address, its key file and how to
    check a TLS master."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("master", metavar="HOST:PORT", help="the master's address")
    p.add_argument("--authkey-file", default=os.environ.get(keyfile.ENV_VAR),
                   help=f"the crawl's key file (default: ${keyfile.ENV_VAR})")
    calls.add_tls_options(p)
    return p


def connect(args: argparse.Namespace) -> Any:
    """The master's `crawl` proxy; UsageError (exit 2) for a bad address or key, OSError
    when no master answers there."""
    address = manager.parse_address(args.master)
    if not args.authkey_file:
        raise UsageError(f"no key: give --authkey-file (or set ${keyfile.ENV_VAR}): the "
                         "master's, which it printed as it started")
    key = keyfile.read(args.authkey_file)
    manager.set_tls(calls.tls_from_args(args, address))
    try:
        return manager.connect(address, key)["crawl"]
    except multiprocessing.AuthenticationError:
        raise UsageError(f"the master at {args.master} refused the key in "
                         f"{args.authkey_file}") from None


def run(main: Callable[[], int]) -> int:
    """Run a command's body: usage errors exit 2, an unreachable master 1."""
    try:
        return main()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, EOFError) as exc:
        print(f"error: no master answers there: {exc}", file=sys.stderr)
        return 1
