#!/usr/bin/env python
"""Broad-crawl benchmark: many hosts at internet-like latency (bench/broadsite.py), crawled by
this project at its defaults, at fixed sizes, with 1/2/4 workers, and by Scrapy at its
defaults and with its documented broad-crawl settings, in one run.

    python bench/broad.py [--hosts 200] [--pages 51] [--latency-ms 60] [--sigma 0.5]
                          [--per-domain 8] [--workers 2] [--fixed 32,64,128,256]
                          [--scaling 1,2,4] [--tls] [--no-scrapy] [--json F] [--smoke]

For each crawl: pages, wall s, pages/s, CPU ms per page (user+sys of the whole process
tree, os.wait4), requests in flight at the server (mean and max, sampled every 50 ms while
the crawl runs), peak RSS per process, the server's CPU, and the load average before it.
`--smoke`: 8 hosts x 10 pages at 5 ms, our default crawl only; exit 1 unless every page
was written exactly once (CI). Nothing here talks to anything but 127.0.0.0/8.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [p for p in (REPO, HERE) if p not in sys.path]

from broadsite import BroadServer, BroadSite  # noqa: E402
from measure import (child_env, code_state, compile_code, find_scrapy_python,  # noqa: E402
                     run_measured)
from pki import Pki  # noqa: E402
from run import check_items  # noqa: E402

SCRAPY_SPIDER = '''
import scrapy

class BroadSpider(scrapy.Spider):
    """The generic spider's equivalent: follow every link, one item per page."""
    name = "broad"
    custom_settings = %(settings)r

    def __init__(self, seeds=None, **kwargs):
        super().__init__(**kwargs)
        with open(seeds) as f:
            self.seeds = [line.strip() for line in f if line.strip()]
        self.allowed_domains = [u.split("/")[2].split(":")[0] for u in self.seeds]

    async def start(self):
        for url in self.seeds:
            yield scrapy.Request(url)

    def start_requests(self):
        for url in self.seeds:
            yield scrapy.Request(url)

    def parse(self, response):
        title = response.xpath("//title/text()").get()
        yield {"url": response.url, "status": response.status,
               "title": title.strip() if title else None,
               "depth": response.meta.get("depth", 0)}
        for href in response.xpath("//a/@href").getall():
            yield response.follow(href, callback=self.parse)
'''
# Scrapy's documented broad-crawl settings (docs/topics/broad-crawls.rst), the log level
# aside (kept at WARNING for both crawlers).
SCRAPY_BROAD = {"CONCURRENT_REQUESTS": 100, "REACTOR_THREADPOOL_MAXSIZE": 20,
                "COOKIES_ENABLED": False, "RETRY_ENABLED": False, "DOWNLOAD_TIMEOUT": 15,
                "REDIRECT_ENABLED": False, "AJAXCRAWL_ENABLED": True,
                "SCHEDULER_PRIORITY_QUEUE": "scrapy.pqueues.DownloaderAwarePriorityQueue"}


class InFlight:
    """Samples the server's held requests every 50 ms on a thread of its own."""

    def __init__(self, server: BroadServer) -> None:
        self.server, self.samples, self._stop = server, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "InFlight":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append(self.server.in_flight())

    def summary(self) -> dict:
        busy = [s for s in self.samples if s] or [0]  # start-up and shutdown aside
        return {"mean": round(sum(busy) / len(busy), 1), "max": max(busy)}


def crawl(name: str, argv: list[str], workdir: str, out: str, env: dict, server: BroadServer,
          expected: set[str], timeout: float) -> dict:
    if os.path.exists(out):
        os.remove(out)
    load = os.getloadavg()
    with InFlight(server) as inflight:
        result = run_measured(name.split()[0], argv, workdir, env, timeout, server.pids)
    check = check_items(out, expected)
    pages = check["items"]
    row = {"name": name, "pages": pages, "wall_s": result["wall_s"],
           "pages_per_s": round(pages / result["wall_s"], 1) if result["wall_s"] else 0.0,
           "cpu_ms_per_page": round(1000 * result["cpu_s"] / pages, 3) if pages else None,
           "in_flight": inflight.summary(), "server_cpu_s": result["server_cpu_s"],
           "peak_rss_mb": [result["top_hwm_mb"], *result["children_hwm_mb"]],
           "load_before": [round(x, 2) for x in load], "ok": check["ok"],
           "exit_status": result["exit_status"], "command": " ".join(argv)}
    if not check["ok"] or result["exit_status"]:
        row["check"] = check
        row["stderr"] = result["stderr"][-1500:]
    print(_line(row), flush=True)
    return row


def ours(workdir: str, seeds: str, args, workers: int, *settings: str) -> tuple[list, str]:
    out = os.path.join(workdir, "ours.jsonl")
    argv = [sys.executable, "-m", "crawler.master", seeds, "--workers", str(workers), "-o",
            out, "--overwrite", "-s", "LOG_LEVEL=WARNING", "-s", "ROBOTSTXT_OBEY=false",
            "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={args.per_domain}", *args.crawler_set,
            *[x for s in settings for x in ("-s", s)]]
    return argv, out


def theirs(python: str, workdir: str, seeds: str, args, broad: bool) -> tuple[list, str]:
    settings = {"LOG_LEVEL": "WARNING", "ROBOTSTXT_OBEY": False, "TELNETCONSOLE_ENABLED": False,
                "CONCURRENT_REQUESTS_PER_DOMAIN": args.per_domain, "HTTPPROXY_ENABLED": False,
                **(SCRAPY_BROAD if broad else {})}
    spider = os.path.join(workdir, "broad_spider.py")
    with open(spider, "w") as f:
        f.write(SCRAPY_SPIDER % {"settings": settings})
    out = os.path.join(workdir, "scrapy.jsonl")
    return [python, "-m", "scrapy", "runspider", spider, "-O", out, "-a", f"seeds={seeds}",
            "-L", "WARNING"], out


def plan(args, scrapy: str | None) -> list[tuple[str, str, tuple]]:
    """(name, kind, parameters) of every crawl, in the order run."""
    runs = [(f"ours defaults ({args.workers} workers)", "ours", (args.workers,))] \
        if args.defaults else []
    runs += [(f"ours fixed {n} ({args.workers} workers)", "ours",
              (args.workers, "AUTOSCALE_ENABLED=false", f"CONCURRENT_REQUESTS={n}"))
             for n in args.fixed]
    runs += [(f"ours defaults ({w} workers)", "ours", (w,)) for w in args.scaling
             if w != args.workers]
    if scrapy:
        runs += [("scrapy defaults", "scrapy", (False,)), ("scrapy broad", "scrapy", (True,))]
    return runs


def _line(row: dict) -> str:
    f = row["in_flight"]
    flag = "" if row["ok"] and not row["exit_status"] else "  !!! NOT EXACTLY ONCE"
    return (f"{row['name']:32} {row['pages']:>6} {row['wall_s']:>7.2f} s "
            f"{row['pages_per_s']:>8.1f}/s {row['cpu_ms_per_page'] or 0:>7.3f} ms/page  "
            f"in flight {f['mean']:>6.1f} (max {f['max']:>4})  RSS MB "
            f"{'+'.join(f'{x:.0f}' for x in row['peak_rss_mb'])}  server CPU "
            f"{row['server_cpu_s']} s  load {row['load_before'][0]}{flag}")


def report(rows: list[dict], args) -> dict:
    by = {r["name"]: r for r in rows}
    default = by.get(f"ours defaults ({args.workers} workers)")
    fixed = [r for r in rows if r["name"].startswith("ours fixed") and r["ok"]]
    out: dict = {}
    if default and fixed:
        best = max(fixed, key=lambda r: r["pages_per_s"])
        out["defaults_over_best_fixed"] = round(default["pages_per_s"] / best["pages_per_s"], 3)
        print(f"ours at defaults / our best fixed ({best['name']}): "
              f"x{out['defaults_over_best_fixed']}")
    for scrapy in ("scrapy defaults", "scrapy broad"):
        if default and scrapy in by and by[scrapy]["pages_per_s"]:
            ratio = round(default["pages_per_s"] / by[scrapy]["pages_per_s"], 2)
            out[f"defaults_over_{scrapy.replace(' ', '_')}"] = ratio
            print(f"ours at defaults / {scrapy}: pages/s x{ratio}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hosts", type=int, default=200)
    p.add_argument("--pages", type=int, default=51, help="pages per host (51)")
    p.add_argument("--links", type=int, default=10, help="links per page, within its host")
    p.add_argument("--size-kb", type=float, default=8.0)
    p.add_argument("--latency-ms", type=float, default=60.0, help="median latency (60)")
    p.add_argument("--sigma", type=float, default=0.5, help="log-normal sigma (0.5)")
    p.add_argument("--per-domain", type=int, default=8,
                   help="CONCURRENT_REQUESTS_PER_DOMAIN for both crawlers (8)")
    p.add_argument("--workers", type=int, default=2, help="our local worker processes (2)")
    p.add_argument("--fixed", default="32,64,128,256",
                   help="fixed CONCURRENT_REQUESTS to compare with, comma-separated ('' none)")
    p.add_argument("--defaults", action=argparse.BooleanOptionalAction, default=True,
                   help="crawl at our defaults first (--no-defaults: only the fixed sizes)")
    p.add_argument("--scaling", default="1,2,4", help="worker counts crawled at defaults")
    p.add_argument("--server-processes", type=int, default=2)
    p.add_argument("--tls", action="store_true", help="serve over HTTPS (a CA made for it)")
    p.add_argument("--scrapy", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--scrapy-python")
    p.add_argument("--crawler-set", action="append", default=[], metavar="NAME=VALUE",
                   help="extra setting for every crawl of ours")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--code", metavar="DIR", help="crawl with the crawler package of this "
                   "checkout (default: this one): A/B against another")
    p.add_argument("--json")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.hosts, args.pages, args.latency_ms, args.fixed, args.scaling = 8, 10, 5.0, "", ""
        args.scrapy, args.timeout = False, 60.0
    args.fixed = [int(x) for x in args.fixed.split(",") if x]
    args.scaling = [int(x) for x in args.scaling.split(",") if x]
    args.crawler_set = [x for s in args.crawler_set for x in ("-s", s)]
    scrapy = None if args.scrapy is False else find_scrapy_python(args.scrapy_python)
    if args.scrapy and not scrapy:
        raise SystemExit("error: Scrapy not found (--scrapy-python or $BENCH_SCRAPY_PYTHON)")

    site = BroadSite(args.hosts, args.pages, args.links, args.size_kb)
    workdir = tempfile.mkdtemp(prefix="crawler-broad-")
    server, rows = None, []
    try:
        pki = Pki(os.path.join(workdir, "pki"), site.ips[0], tuple(site.ips[1:])) \
            if args.tls else None
        server = BroadServer(site, args.latency_ms / 1000, args.sigma, args.server_processes,
                             pki.server_context() if pki else None)
        scheme = "https" if pki else "http"
        if pki:
            args.crawler_set += ["-s", f"TLS_CA_BUNDLE={pki.ca}"]
        seeds = os.path.join(workdir, "seeds.txt")
        with open(seeds, "w") as f:
            f.write("".join(f"{scheme}://{ip}:{server.port}/\n" for ip in site.ips))
        expected = site.urls(scheme, server.port)
        print(f"site: {len(expected)} pages; server: {server.description}", flush=True)
        env = child_env()
        compile_code(args.code or REPO)
        env["PYTHONPATH"] = (args.code or REPO) + (os.pathsep + env["PYTHONPATH"]
                                                   if env.get("PYTHONPATH") else "")
        for name, kind, params in plan(args, scrapy):
            argv, out = ours(workdir, seeds, args, *params) if kind == "ours" else \
                theirs(scrapy, workdir, seeds, args, *params)
            rows.append(crawl(name, argv, workdir, out, env if kind == "ours" else child_env(),
                              server, expected, args.timeout))
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    ratios = report(rows, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": {k: v for k, v in vars(args).items()}, "code": code_state(),
                       "cpus": os.cpu_count(), "runs": rows, "ratios": ratios}, f, indent=2)
    failed = [r["name"] for r in rows if r["name"].startswith("ours")
              and (not r["ok"] or r["exit_status"])]
    if failed:
        print(f"FAILED: not every page exactly once: {failed}", file=sys.stderr)
        for r in rows:
            if r["name"] in failed:
                print(r.get("check"), r.get("stderr"), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
