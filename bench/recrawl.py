#!/usr/bin/env python
"""Recrawl benchmark: a first crawl of a generated site, then `--recrawl` of the unchanged site.

    python bench/recrawl.py [--pages 5000] [--links 20] [--size-kb 8] [--workers 2]
                            [--repeat 3] [--json out.json]

Serves crawler.sitegen.Site as static files with nginx (which gives every file an ETag and a
Last-Modified and answers If-None-Match / If-Modified-Since with 304, as it does for any
static site), crawls it with a JOBDIR (`python -m crawler.master`, local workers), then runs
the same command with --recrawl: every known URL is asked again with a conditional request,
each answered 304, nothing parsed, nothing written. CPU is the whole process tree's (master
and workers, from os.wait4), so it includes starting Python and the workers; the startup is
also measured alone (a one-page site) to give the figures without it. The package is
byte-compiled first, as an install does (bench/measure.py compile_code). First crawls and
recrawls alternate, each recrawl on the JOBDIR of the first crawl just before it. The target
(issue 18): a recrawl costs under a fifth of the first crawl's CPU.

Nothing here talks to anything but 127.0.0.1.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [p for p in (REPO, HERE) if p not in sys.path]

from crawler.sitegen import Site  # noqa: E402
from measure import child_env, compile_code, run_measured  # noqa: E402
from run import NginxServer, render_site  # noqa: E402

_RECRAWL = re.compile(r"recrawl: (\d+) unchanged, (\d+) changed, (\d+) new, (\d+) gone")


def crawl(base: str, workdir: str, name: str, jobdir: str, args, recrawl: bool,
          server_pids: list[int]) -> dict:
    seeds = os.path.join(workdir, "seeds.txt")
    with open(seeds, "w") as f:
        f.write(base + "\n")
    out = os.path.join(workdir, f"{name}.jsonl")
    argv = [sys.executable, "-m", "crawler.master", seeds, "--workers", str(args.workers),
            "-O", out, "--jobdir", jobdir, "-s", "LOG_LEVEL=WARNING",
            "-s", "ROBOTSTXT_OBEY=false", "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={args.per_domain}",
            "--status", "off", *(["--recrawl"] if recrawl else [])]
    env = child_env()
    env["PYTHONPATH"] = REPO
    result = run_measured(name, argv, workdir, env, args.timeout, server_pids)
    if result["exit_status"] != 0:
        raise SystemExit(f"{name} failed ({result['exit_status']}):\n{result['stderr']}")
    with open(out) as f:
        result["items"] = sum(1 for _ in f)
    found = _RECRAWL.search(result["stdout"])
    result["verdicts"] = dict(zip(("unchanged", "changed", "new", "gone"),
                                  map(int, found.groups()))) if found else None
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=5000, help="books on the site (5000)")
    p.add_argument("--links", type=int, default=20, help="related links per book (20)")
    p.add_argument("--size-kb", type=float, default=8.0, help="page size in KB (8)")
    p.add_argument("--workers", type=int, default=2, help="local worker processes (2)")
    p.add_argument("--per-domain", type=int, default=16)
    p.add_argument("--repeat", type=int, default=3, help="first crawl + recrawl pairs (3)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per crawl")
    p.add_argument("--json", help="write all results here")
    args = p.parse_args(argv)

    site = Site(args.pages, args.links, args.size_kb)
    compile_code(REPO)  # as bench/run.py: no crawl measures compiling the package's source
    with tempfile.TemporaryDirectory(prefix="bench-recrawl-") as workdir:
        server = NginxServer(render_site(site), workdir)
        tiny = NginxServer(render_site(Site(0, 0, 1)), os.path.join(workdir, "tiny"), 1)
        try:
            pids = server.pids + tiny.pids
            rows = {"first": [], "recrawl": [], "startup": []}
            for n in range(args.repeat):
                jobdir = os.path.join(workdir, f"job{n}")
                rows["first"].append(crawl(f"http://127.0.0.1:{server.port}/", workdir,
                                           f"first{n}", jobdir, args, False, pids))
                rows["recrawl"].append(crawl(f"http://127.0.0.1:{server.port}/", workdir,
                                             f"recrawl{n}", jobdir, args, True, pids))
                rows["startup"].append(crawl(f"http://127.0.0.1:{tiny.port}/", workdir,
                                             f"startup{n}", os.path.join(workdir, f"t{n}"),
                                             args, False, pids))
        finally:
            server.close()
            tiny.close()
    report = summarize(rows, len(site.paths()), server.description)
    print(json.dumps(report["summary"], indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": report["summary"], "runs": rows}, f, indent=1, default=str)
    return 0 if report["summary"]["recrawl_over_first_cpu"] < 0.2 else 1


def summarize(rows: dict[str, list[dict]], pages: int, server: str) -> dict:
    cpu = {k: statistics.median(r["cpu_s"] for r in v) for k, v in rows.items()}
    wall = {k: statistics.median(r["wall_s"] for r in v) for k, v in rows.items()}
    net = {k: cpu[k] - cpu["startup"] for k in ("first", "recrawl")}
    last = rows["recrawl"][-1]
    return {"summary": {
        "pages": pages, "server": server, "load_before": os.getloadavg(),
        "cpu_s": cpu, "wall_s": wall,
        "cpu_ms_per_page": {k: round(1000 * net[k] / pages, 3) for k in net},
        "recrawl_over_first_cpu": round(cpu["recrawl"] / cpu["first"], 3),
        "recrawl_over_first_cpu_without_startup": round(net["recrawl"] / net["first"], 3),
        "recrawl_items": last["items"], "recrawl_verdicts": last["verdicts"],
        "first_items": rows["first"][-1]["items"]}}


if __name__ == "__main__":
    sys.exit(main())
