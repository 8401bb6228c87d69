#!/usr/bin/env python
"""Master memory with a big frontier: RSS after N discovered URLs, with the master's bounds.

    python bench/frontier_memory.py [--urls 10000000] [--hosts 1000] [--memory-queue N]
                                    [--seen-dict N] [--spill-dir DIR] [--drain 100000]
                                    [--json out.json]

Builds a crawler.frontier.Frontier in this process, with FRONTIER_MEMORY_QUEUE and
FRONTIER_SEEN_DICT as the master takes them (their defaults unless given), and admits --urls
new tasks spread round-robin over --hosts host names, in batches of 10,000 (as result
batches bring them). The tasks are made as workers make them, but with a cheaper URL
(blake2b of the URL as its fingerprint, no normalization): the figure is the master's
memory, not the workers' hashing. Reports RSS (VmRSS, of it RssAnon and RssFile) before and
after, peak RSS (VmHWM), bytes per URL, the spill file's size on disk, admission CPU time per
URL, and then the CPU time to lease and complete --drain tasks (the spilled ones come back from
disk as hosts run dry). Every URL is queued: nothing is fetched.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from hashlib import blake2b

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from crawler import default_settings  # noqa: E402
from crawler.frontier import DONE, Frontier  # noqa: E402


def status_kb(*names: str) -> dict[str, int]:
    """Fields of /proc/self/status, in kB."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in names:
                out[key] = int(line.split()[1])
    return out


def spill_bytes() -> int:
    """Size of this process's open (unlinked) spill files."""
    total = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if "crawler-spill-" in os.readlink(f"/proc/self/fd/{fd}"):
                total += os.stat(f"/proc/self/fd/{fd}").st_size
        except OSError:
            pass
    return total


def tasks(start: int, count: int, hosts: int) -> list[dict]:
    out = []
    for i in range(start, start + count):
        host = f"host{i % hosts}.example.com"
        url = f"http://{host}/section/{i // hosts}/page-{i}.html"
        out.append({"url": url, "fp": blake2b(url.encode(), digest_size=16).digest(),
                    "host": host, "depth": 1})
    return out


def drain(frontier: Frontier, n: int) -> tuple[int, float]:
    """Lease and complete up to n tasks, 64 at a time; (how many, seconds)."""
    done, t0 = 0, time.process_time()
    while done < n:
        leased, _ = frontier.lease("bench", min(64, n - done))
        if not leased:
            break
        for lease_id, _task in leased:
            frontier.complete(lease_id, DONE)
        done += len(leased)
    return done, time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--urls", type=int, default=10_000_000)
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--memory-queue", type=int, default=default_settings.FRONTIER_MEMORY_QUEUE)
    p.add_argument("--seen-dict", type=int, default=default_settings.FRONTIER_SEEN_DICT)
    p.add_argument("--spill-dir", default=None, help="default: the temporary folder")
    p.add_argument("--drain", type=int, default=100_000, help="tasks leased at the end")
    p.add_argument("--progress", type=int, default=1_000_000, help="a line every N URLs")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    gc.collect()
    gc.freeze()  # as the master does: no full collections over millions of objects
    frontier = Frontier(per_host=1000, epoch="bench", seen_dict_max=args.seen_dict,
                        memory_queue=args.memory_queue, spill_dir=args.spill_dir)
    before = status_kb("VmRSS")["VmRSS"]
    admit_s, admitted, started = 0.0, 0, time.perf_counter()
    for start in range(0, args.urls, args.batch):
        batch = tasks(start, min(args.batch, args.urls - start), args.hosts)
        t0 = time.process_time()  # CPU time: a shared machine's load barely moves it
        admitted += frontier.admit(batch)
        admit_s += time.process_time() - t0
        if args.progress and (start + args.batch) % args.progress == 0:
            rss = status_kb("VmRSS")["VmRSS"] / 1024
            print(f"  {start + args.batch:>11,} URLs: RSS {rss:.0f} MB, admit "
                  f"{1e6 * admit_s / admitted:.2f} us/URL, spilled {frontier.spilled:,}, "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
    del batch
    gc.collect()
    after = status_kb("VmRSS", "RssAnon", "RssFile", "VmHWM")
    on_disk = spill_bytes()
    drained, drain_s = drain(frontier, args.drain)
    result = {
        "urls": args.urls, "hosts": args.hosts, "admitted": admitted,
        "queued": frontier.queued, "spilled": frontier.spilled,
        "in_seen_dict": len(frontier.seen.front),
        "memory_queue": args.memory_queue, "seen_dict": args.seen_dict,
        "rss_before_mb": round(before / 1024, 1),
        "rss_after_mb": round(after["VmRSS"] / 1024, 1),
        "rss_anon_mb": round(after["RssAnon"] / 1024, 1),
        "rss_file_mb": round(after["RssFile"] / 1024, 1),
        "peak_rss_mb": round(after["VmHWM"] / 1024, 1),
        "bytes_per_url": round((after["VmRSS"] - before) * 1024 / max(admitted, 1), 1),
        "spill_file_mb": round(on_disk / 2**20, 1),
        "admit_s": round(admit_s, 1),
        "admit_us_per_url": round(1e6 * admit_s / max(admitted, 1), 2),
        "drained": drained, "drain_us_per_task": round(1e6 * drain_s / max(drained, 1), 2),
        "load": os.getloadavg(),
    }
    frontier.close()
    print(f"{admitted:,} URLs queued over {args.hosts} hosts ({result['spilled']:,} spilled "
          f"before the drain; {result['in_seen_dict']:,} fingerprints in the dict)")
    print(f"RSS {result['rss_before_mb']} MB -> {result['rss_after_mb']} MB "
          f"(anon {result['rss_anon_mb']}, file {result['rss_file_mb']}; peak "
          f"{result['peak_rss_mb']}): {result['bytes_per_url']} bytes per URL; spill file "
          f"{result['spill_file_mb']} MB on disk")
    print(f"admit {result['admit_s']} s = {result['admit_us_per_url']} us/URL; lease+complete "
          f"{drained:,} = {result['drain_us_per_task']} us/task; load {result['load']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
