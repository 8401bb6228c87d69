"""What the master tells its user on the terminal: where it listens, how remote workers
join, what is resumed or appended, and the summary."""
from __future__ import annotations

import shlex
import sys
from typing import Any

from .link import remote
from .plan import Plan, is_loopback
from .status.summary import summary_lines


def worker_tls(plan: Plan) -> list[str]:
    """How a worker checks this master: its certificate pinned, or plain TCP."""
    if plan.tls_fingerprint:
        return ["--tls-fingerprint", plan.tls_fingerprint]
    return [] if is_loopback(plan.bind[0]) else ["--insecure"]


def print_summary(summary: dict[str, Any]) -> None:
    print("\n".join(summary_lines(summary)))


def print_resume_hint(plan: Plan) -> None:
    if plan.jobdir:
        print(f"  to resume: {plan.command}")
    else:
        print("  this crawl cannot be resumed: it ran without --jobdir")


def tell_start(master: Any, resuming: bool) -> None:
    """What the user should know before the crawl starts: a resume, an appended file."""
    if resuming:
        where = master.plan.jobdir or f"crawl {master.plan.redis.crawl!r} in Redis"
        print(f"resuming {where}: {master.done_before} done, "
              f"{master.frontier.queued} queued", flush=True)
    for feed in master.sink.feeds:
        if feed.held_before:
            print(f"warning: {feed.path} already holds {feed.held_before} items; this crawl's "
                  "are appended (-O replaces the file)", file=sys.stderr, flush=True)


def announce(address: tuple[str, int], plan: Plan) -> None:
    where = f"{address[0]}:{address[1]}"
    starts = f"{len(plan.starts.first)}{'' if plan.starts.exhausted else '+'}"
    print(f"master listening on {where}; {starts} start requests; spider "
          f"{plan.spider_cls.name}; {plan.workers} local workers", flush=True)
    if not is_loopback(address[0]) and not plan.tls:
        print("warning: --insecure: workers talk to this master in plain TCP; anyone on the "
              "path can read and alter what they say", file=sys.stderr)
    if plan.key_path:
        print(f"remote workers: python -m crawler.worker {where} --authkey-file "
              f"{shlex.join([plan.key_path, *worker_tls(plan)])}", flush=True)
    if plan.settings["KEEP_RUNNING"]:
        print(remote.hint(where, plan.key_path, worker_tls(plan)), flush=True)


def announce_status(master: Any) -> None:
    server = master.status_server
    if server is not None:
        token = master.plan.status_token
        print(f"status page: {server.url}" + (f"?token={token}" if token else ""), flush=True)
