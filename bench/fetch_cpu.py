#!/usr/bin/env python
"""CPU per Fetcher.fetch of one page, over HTTP and over HTTPS, from nginx on 127.0.0.1.

    python bench/fetch_cpu.py [--fetches 20000] [--threads 4] [--size-kb 8] [--rounds 3]
                              [--only http|https]

Serves bench/run.py's site (nginx, and the same pages over TLS with a CA made for the run,
bench/pki.py), then in this process fetches its pages round-robin with one Fetcher
(`--threads` threads, each with its kept-alive connections, as a worker's), HTTP and HTTPS
alternately for `--rounds` rounds. Reports the process CPU (user + system) per fetch, and
the ratio HTTPS/HTTP. Nothing but the fetch runs, so this is the transport's cost alone; the
crawl's cost per page is bench/run.py's. For a profile of one scheme, run
`py-spy record -- python bench/fetch_cpu.py --only https`.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as bench  # noqa: E402  (bench/run.py)
from pki import Pki  # noqa: E402

from crawler import Request, config  # noqa: E402
from crawler.http.fetcher import FetchConfig, Fetcher  # noqa: E402
from crawler.sitegen import Site  # noqa: E402


def cpu() -> float:
    times = os.times()
    return times.user + times.system


def measure(urls: list[str], fetches: int, threads: int, ca: str) -> float:
    """CPU seconds per fetch for `fetches` fetches of urls over `threads` threads."""
    settings = dict(config.defaults(), TLS_CA_BUNDLE=ca)
    fetcher = Fetcher(FetchConfig.from_settings(settings, ["127.0.0.1"], env={}))
    each = fetches // threads
    failures: list[Exception] = []

    def work(offset: int) -> None:
        try:
            for i in range(each):
                fetcher.fetch(Request(urls[(offset + i) % len(urls)]))
        except Exception as exc:  # reported below: a benchmark that fails says so
            failures.append(exc)
        finally:
            fetcher.session.close()

    workers = [threading.Thread(target=work, args=(n * 997,)) for n in range(threads)]
    started = cpu()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise SystemExit(f"error: a fetch failed: {failures[0]!r}")
    return (cpu() - started) / (each * threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fetches", type=int, default=20000)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--pages", type=int, default=5000)
    p.add_argument("--size-kb", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", choices=("http", "https"), help="measure this scheme alone")
    args = p.parse_args(argv)
    pages = bench.render_site(Site(args.pages, 20, args.size_kb))
    workdir = tempfile.mkdtemp(prefix="crawler-fetch-cpu-")
    os.chmod(workdir, 0o755)  # nginx workers may run as another user
    servers = []
    try:
        tls = Pki(os.path.join(workdir, "pki"))
        for name, pki in (("http", None), ("https", tls)):
            if args.only not in (None, name):
                continue
            os.makedirs(os.path.join(workdir, name))
            servers.append((name, bench.NginxServer(pages, os.path.join(workdir, name), 2, pki)))
        paths = sorted(pages)
        results: dict[str, list[float]] = {name: [] for name, _ in servers}
        for _ in range(args.rounds):
            for name, server in servers:
                urls = [f"{name}://127.0.0.1:{server.port}{path}" for path in paths]
                results[name].append(measure(urls, args.fetches, args.threads, tls.ca))
                time.sleep(0.5)
        for name, values in results.items():
            us = [round(v * 1e6, 1) for v in values]
            print(f"{name:5} CPU per fetch: median {statistics.median(us)} us (runs {us})")
        if len(results) == 2:
            ratio = statistics.median(results["https"]) / statistics.median(results["http"])
            print(f"HTTPS / HTTP: {ratio:.2f}x")
    finally:
        for _, server in servers:
            server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
