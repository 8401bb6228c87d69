#!/usr/bin/env python
"""Master memory with a big frontier: RSS of 1,000,000 discovered URLs queued.

    python bench/frontier_memory.py [--urls 1000000] [--hosts 1000] [--json out.json]

Builds a crawler.frontier.embedded.Frontier in this process and admits --urls tasks made by
crawler.http.request.Request(url).to_task(1), spread round-robin over --hosts host names, in
batches of 10,000 (as result batches would bring them). Reports RSS (VmRSS from
/proc/self/status) before and after, bytes per queued URL, the time to build the tasks
(to_task: normalize + fingerprint, done on workers in a real crawl) and the time to admit
them (the master's part), plus a per-object estimate of where the bytes go.
"""
from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from crawler.frontier import Frontier  # noqa: E402
from crawler.http.request import Request  # noqa: E402


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def make_frontier() -> Frontier:
    """A Frontier as the master makes one, with only the arguments this version takes."""
    wanted = {"per_host": 8, "delay": 0.0, "randomize_delay": False, "lease_timeout": 60.0,
              "retry_times": 2, "epoch": "bench"}
    accepted = inspect.signature(Frontier).parameters
    return Frontier(**{k: v for k, v in wanted.items() if k in accepted})


def _deep_size(obj, seen: set[int]) -> int:
    """Bytes of obj and what it holds (tuples, lists, dicts, str, bytes), each object once;
    objects CPython shares (None, bools, small ints) count nothing."""
    if id(obj) in seen or obj is None or isinstance(obj, bool) or \
            (type(obj) is int and -5 <= obj <= 256):   # None, bools, small ints: shared
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, (tuple, list)):
        size += sum(_deep_size(x, seen) for x in obj)
    elif isinstance(obj, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    return size


def estimate(frontier: Frontier, sample_task: dict, admitted: int) -> dict:
    """Bytes of one queued URL by part: the queue entry as this version of the frontier
    stores it (found through its private per-host queues when it has them), the seen dict's
    share, and one host queue's list slot."""
    parts: dict[str, float] = {}
    entry = None
    hosts = getattr(frontier, "_hosts", None)
    if isinstance(hosts, dict) and hosts:
        queue = getattr(next(iter(hosts.values())), "queue", None)
        if queue:
            entry = queue[-1]
    seen_ids: set[int] = set()
    if entry is None:
        parts["task dict and its values"] = _deep_size(sample_task, seen_ids)
    else:
        parts[f"queue entry {type(entry).__name__} of {len(entry) if hasattr(entry, '__len__') else '?'} (itself)"] = \
            sys.getsizeof(entry)
        for i, item in enumerate(entry if isinstance(entry, (tuple, list)) else ()):
            size = _deep_size(item, seen_ids)
            if size:
                parts[f"  [{i}] {type(item).__name__}"] = size
        parts["heap list slot"] = 8
    parts["seen dict share (table / entries)"] = round(sys.getsizeof(frontier.seen) /
                                                       max(admitted, 1), 1)
    return parts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--urls", type=int, default=1_000_000)
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    gc.collect()
    frontier = make_frontier()
    before = rss_kb()
    build_s = admit_s = 0.0
    admitted = 0
    n = 0
    sample = None
    while n < args.urls:
        count = min(args.batch, args.urls - n)
        t0 = time.perf_counter()
        tasks = [Request(f"http://host{i % args.hosts}.example.com/section/{i // args.hosts}"
                         f"/page-{i}.html").to_task(1) for i in range(n, n + count)]
        t1 = time.perf_counter()
        admitted += frontier.admit(tasks)
        t2 = time.perf_counter()
        build_s += t1 - t0
        admit_s += t2 - t1
        if sample is None:
            sample = tasks[0]
        n += count
        del tasks
    identify = getattr(__import__("crawler.urls").urls, "identify", None)
    if hasattr(identify, "cache_clear"):
        identify.cache_clear()   # the workers' URL cache is not the frontier's memory
    gc.collect()
    after = rss_kb()
    per_url = (after - before) * 1024 / max(admitted, 1)
    parts = estimate(frontier, sample, admitted)
    sys.path.insert(0, HERE)
    import run
    result = {
        "code": run.code_state(),
        "urls": args.urls, "hosts": args.hosts, "admitted": admitted,
        "queued": getattr(frontier, "queued", None),
        "rss_before_mb": round(before / 1024, 1), "rss_after_mb": round(after / 1024, 1),
        "bytes_per_url": round(per_url, 1),
        "build_s": round(build_s, 2), "build_us_per_url": round(1e6 * build_s / args.urls, 2),
        "admit_s": round(admit_s, 2), "admit_us_per_url": round(1e6 * admit_s / args.urls, 2),
        "sample_task": {k: (v.hex() if isinstance(v, bytes) else v) for k, v in sample.items()},
        "estimate_bytes": parts, "estimate_total": round(sum(parts.values()), 1),
    }
    print(f"{admitted} URLs queued over {args.hosts} hosts")
    print(f"RSS {result['rss_before_mb']} MB -> {result['rss_after_mb']} MB: "
          f"{result['bytes_per_url']} bytes per queued URL")
    print(f"build (to_task) {result['build_s']} s = {result['build_us_per_url']} us/URL; "
          f"admit {result['admit_s']} s = {result['admit_us_per_url']} us/URL")
    print("where the bytes of one queued URL go (estimate):")
    for name, size in parts.items():
        print(f"  {size:>7}  {name}")
    print(f"  {result['estimate_total']:>7}  total estimated (the rest: allocator overhead "
          f"and slack in the heap lists)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
