#!/usr/bin/env python
"""This project on Redis against scrapy-redis on the same Redis, and against the embedded master.

    python bench/redis_compare.py [--pages 5000] [--processes 2 4] [--redis URL]
                                  [--site broad [--hosts 200] [--host-pages 51]
                                   [--latency-ms 60]] [--repeat 1] [--json out.json]

Serves bench/run.py's generated site (nginx when installed) on 127.0.0.1, or with
`--site broad` bench/broadsite.py's (--hosts hosts on 127.1.x.y, --host-pages pages each,
every response delayed by a log-normal latency of median --latency-ms; one seed per host),
and starts a redis-server of its own (own folder, free loopback port, no persistence; or
uses --redis).
For each process count N, alternating, it crawls the site with:
  - ours-redis: `python -m crawler.master --backend redis://... --workers N` (N worker
    processes leasing from and settling into Redis; the master only reads items);
  - scrapy-redis: N `scrapy runspider` processes of one RedisSpider sharing the Redis
    (scrapy_redis's scheduler and dupefilter; the start URL pushed to <name>:start_urls;
    each process closes after MAX_IDLE_TIME_BEFORE_CLOSE=2 s without work);
  - ours-embedded: `python -m crawler.master --workers N` (the BaseManager master).
Reported per run: pages/s over the time until the last item was written (so scrapy-redis's
idle wait before closing is not counted against it), CPU ms per page of the crawl's own
processes (redis-server's CPU listed apart), and whether every page was written exactly once.
The network is 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for path in (REPO, HERE):
    if path not in sys.path:
        sys.path.insert(0, path)

import run  # noqa: E402  (bench/run.py: the site, its servers, the item check)
from broadsite import BroadServer, BroadSite  # noqa: E402
from crawler.sitegen import Site  # noqa: E402
from measure import child_env, code_state, free_port, run_measured  # noqa: E402

SCRAPY_REDIS_SPIDER = '''
from scrapy_redis.spiders import RedisSpider


class BenchRedisSpider(RedisSpider):
    """bench/run.py's BenchSpider on scrapy-redis: follow every link, one item per page."""
    name = "bench"
    redis_key = "%(key)s"
    link_xpath = "//a/@href | //area/@href | //link[@rel='next']/@href"
    custom_settings = {
        "LOG_LEVEL": "WARNING", "ROBOTSTXT_OBEY": False, "CONCURRENT_REQUESTS": 16,
        "CONCURRENT_REQUESTS_PER_DOMAIN": %(per_domain)d, "AUTOTHROTTLE_ENABLED": False,
        "DOWNLOAD_DELAY": 0, "TELNETCONSOLE_ENABLED": False, "HTTPPROXY_ENABLED": False,
        "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
        "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
        "SCHEDULER_PERSIST": True, "REDIS_URL": "%(redis)s",
        "SCHEDULER_QUEUE_KEY": "%(prefix)s:requests",
        "SCHEDULER_DUPEFILTER_KEY": "%(prefix)s:dupefilter",
        "MAX_IDLE_TIME_BEFORE_CLOSE": 2,
    }

    def parse(self, response):
        title = response.xpath("//title/text()").get()
        yield {"url": response.url, "status": response.status,
               "title": title.strip() if title else None,
               "depth": response.meta.get("depth", 0)}
        for href in response.xpath(self.link_xpath).getall():
            yield response.follow(href, callback=self.parse)
'''


class OwnRedis:
    """redis-server on a free loopback port in a folder of its own, without persistence."""

    def __init__(self, folder: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--dir", folder, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        client = _client(self.url)
        for _ in range(200):
            try:
                client.ping()
                return
            except Exception:
                time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _client(url: str):
    from crawler.frontier.redis_keys import client_for
    return client_for(url, retry_for=0)


def _redis_cpu(client) -> float:
    info = client.info("cpu")
    return info["used_cpu_sys"] + info["used_cpu_user"]


def _finish(result: dict, outputs: list[str], expected: set[str], started: float,
            redis_cpu: float, workdir: str) -> dict:
    merged = os.path.join(workdir, "merged.jsonl")
    with open(merged, "w", encoding="utf-8") as out:
        for path in outputs:
            if os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    shutil.copyfileobj(f, out)
    result["check"] = run.check_items(merged, expected)
    last = max((os.path.getmtime(p) for p in outputs if os.path.exists(p)), default=started)
    result["until_last_item_s"] = round(last - started, 3)
    result["redis_cpu_s"] = round(redis_cpu, 3)
    return result


def crawl_ours(kind: str, n: int, bases: list[str], expected: set[str], workdir: str, args,
               redis_url: str, client) -> dict:
    seeds = os.path.join(workdir, "seeds.txt")
    with open(seeds, "w") as f:
        f.write("".join(base + "\n" for base in bases))
    out = os.path.join(workdir, f"{kind}-{n}.jsonl")
    argv = [sys.executable, "-m", "crawler.master", seeds, "--workers", str(n), "-O", out,
            "--status", "off", "-s", "LOG_LEVEL=WARNING", "-s", "ROBOTSTXT_OBEY=false",
            "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={args.per_domain}"]
    if kind == "ours-redis":
        argv += ["--backend", redis_url, "--crawl", f"bench-{os.getpid()}-{time.time_ns()}"]
    env = child_env()
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cpu0, started = _redis_cpu(client), time.time()
    result = run_measured(kind, argv, workdir, env, args.timeout, args._server_pids)
    return _finish(result, [out], expected, started, _redis_cpu(client) - cpu0, workdir)


def crawl_scrapy_redis(python: str, n: int, bases: list[str], expected: set[str],
                       workdir: str, args, redis_url: str, client) -> dict:
    prefix = f"bench-{time.time_ns()}"
    spider = os.path.join(workdir, "bench_redis_spider.py")
    with open(spider, "w") as f:
        f.write(SCRAPY_REDIS_SPIDER % {"per_domain": args.per_domain, "redis": redis_url,
                                       "key": f"{prefix}:start_urls", "prefix": prefix})
    client.rpush(f"{prefix}:start_urls", *bases)
    outputs = [os.path.join(workdir, f"scrapy-redis-{n}-{i}.jsonl") for i in range(n)]
    # N processes in one measured tree: a shell that starts them all and waits for them.
    commands = " & ".join(f"{python} -m scrapy runspider {spider} -O {out} -L WARNING"
                          for out in outputs) + " & wait"
    cpu0, started = _redis_cpu(client), time.time()
    result = run_measured("scrapy-redis", ["sh", "-c", commands], workdir, child_env(),
                          args.timeout, args._server_pids)
    return _finish(result, outputs, expected, started, _redis_cpu(client) - cpu0, workdir)


def row(name: str, r: dict) -> dict:
    s = run.summarize(r)
    pages = r["check"]["items"]
    secs = r["until_last_item_s"]
    return {"name": name, "pages_per_s": round(pages / secs, 1) if secs else None,
            "wall_s": s.get("wall_s"), "until_last_item_s": secs,
            "cpu_ms_per_page": s.get("cpu_ms_per_page"),
            "redis_cpu_ms_per_page": round(1000 * r["redis_cpu_s"] / pages, 4) if pages else None,
            "ok": r["check"]["ok"], "items": pages, "duplicated": r["check"]["duplicated"],
            "missing": r["check"]["missing"]}


def _serve(args, workdir: str) -> tuple:
    """The site's server, its seed URLs and every page's URL."""
    if args.site == "broad":
        site = BroadSite(args.hosts, args.host_pages)
        server = BroadServer(site, args.latency_ms / 1000, args.sigma)
        return (server, [f"http://{ip}:{server.port}/" for ip in site.ips],
                site.urls("http", server.port))
    site = Site(args.pages, args.links, args.size_kb)
    server = run.start_server("auto", run.render_site(site), workdir, 2)
    base = f"http://127.0.0.1:{server.port}/"
    return server, [base], {base + path.lstrip("/") for path in site.paths()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=5000)
    p.add_argument("--links", type=int, default=20)
    p.add_argument("--size-kb", type=float, default=8.0)
    p.add_argument("--processes", type=int, nargs="+", default=[2, 4])
    p.add_argument("--per-domain", type=int, default=16)
    p.add_argument("--redis", help="use this Redis instead of starting one (keys are "
                   "namespaced per run)")
    p.add_argument("--scrapy-python", help="a Python with scrapy and scrapy-redis")
    p.add_argument("--skip", nargs="*", default=[], choices=("ours-redis", "scrapy-redis",
                                                             "ours-embedded"))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--site", choices=("run", "broad"), default="run",
                   help="bench/run.py's one-host site (run) or bench/broadsite.py's")
    p.add_argument("--hosts", type=int, default=200, help="broad site: hosts (200)")
    p.add_argument("--host-pages", type=int, default=51, help="broad site: pages a host (51)")
    p.add_argument("--latency-ms", type=float, default=60.0,
                   help="broad site: median response latency (60)")
    p.add_argument("--sigma", type=float, default=0.5, help="broad site: latency's sigma")
    p.add_argument("--json")
    args = p.parse_args(argv)
    python = args.scrapy_python or sys.executable
    workdir = tempfile.mkdtemp(prefix="crawler-redis-bench-")
    server = own = None
    rows, results = [], {"code": code_state(), "config": vars(args), "load": [], "runs": []}
    try:
        own = None if args.redis else OwnRedis(workdir)
        redis_url = args.redis or own.url
        client = _client(redis_url)
        server, bases, expected = _serve(args, workdir)
        args._server_pids = server.pids
        print(f"site: {len(expected)} pages; server: {server.description}; redis {redis_url}",
              flush=True)
        for _ in range(args.repeat):
            for n in args.processes:
                for kind in ("ours-redis", "scrapy-redis", "ours-embedded"):
                    if kind in args.skip:
                        continue
                    load = os.getloadavg()[0]
                    print(f"{kind} with {n} processes (load {load:.2f})...", flush=True)
                    if kind == "scrapy-redis":
                        r = crawl_scrapy_redis(python, n, bases, expected, workdir, args,
                                               redis_url, client)
                    else:
                        r = crawl_ours(kind, n, bases, expected, workdir, args, redis_url,
                                       client)
                    rows.append(dict(row(f"{kind} x{n}", r), load_before=round(load, 2)))
                    print(f"  {rows[-1]}", flush=True)
                    results["runs"].append({k: v for k, v in r.items()
                                            if k not in ("stdout", "stderr")})
    finally:
        if server is not None:
            server.close()
        if own is not None:
            own.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{'run':22} {'pages/s':>9} {'CPU ms/page':>12} {'redis ms/page':>14} "
          f"{'exactly once':>13} load")
    for r in rows:
        print(f"{r['name']:22} {r['pages_per_s']!s:>9} {r['cpu_ms_per_page']!s:>12} "
              f"{r['redis_cpu_ms_per_page']!s:>14} {str(r['ok']):>13} {r['load_before']}")
    by = {r["name"]: r for r in rows}
    for n in args.processes:
        a, b = by.get(f"ours-redis x{n}"), by.get(f"scrapy-redis x{n}")
        if a and b and b["pages_per_s"]:
            print(f"ours-redis / scrapy-redis at {n} processes: pages/s "
                  f"x{a['pages_per_s'] / b['pages_per_s']:.2f}, CPU per page "
                  f"x{(a['cpu_ms_per_page'] or 0) / (b['cpu_ms_per_page'] or 1):.3f}")
    results["rows"] = rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
    return 0 if all(r["ok"] for r in rows if r["name"].startswith("ours")) else 1


if __name__ == "__main__":
    sys.exit(main())
