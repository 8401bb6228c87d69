#!/usr/bin/env python
"""What the status snapshot costs: the part under the frontier's lock, and the rendering.

    python bench/status_snapshot.py [--hosts 1000 10000 100000] [--per-host 10] [--json out.json]

For each host count, a Frontier in this process with that many hosts, `--per-host` URLs
queued on each, a few leased, done and failed; then the median (and max) time of 21
`Frontier.snapshot(20)` calls, the part the master takes under its lock once a second, and of
encoding a full snapshot as /stats.json and /metrics, which the status server does once per
snapshot, outside the lock. Then the status server itself: a StatusServer in this process
serving that snapshot on 127.0.0.1, and a child process that GETs /stats.json and / `--gets`
times each over one kept-alive connection; reported is this process's CPU time per request
(what a polling page costs the master, beyond the snapshot). Only loopback is used.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from crawler.frontier import DONE, FAILED, Frontier  # noqa: E402
from crawler.scheduler import Scheduler  # noqa: E402
from crawler.status import metrics, snapshot  # noqa: E402
from crawler.status.server import StatusServer  # noqa: E402

_CLIENT = """
import http.client, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[2])):
    for path in ("/stats.json", "/"):
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
"""


def build(hosts: int, per_host: int) -> Scheduler:
    frontier = Frontier(robots_agent=None, per_host=2)
    sched = Scheduler(frontier, {}, lambda items: None, batch_size=10**9)
    for w in range(8):
        sched.hello({"worker": f"w{w}", "threads": 16, "pid": w, "version": "v"})
    frontier.admit({"url": f"http://h{h}.test/{i}", "fp": f"{h}/{i}".encode(),
                    "host": f"h{h}.test", "depth": 0}
                   for h in range(hosts) for i in range(per_host))
    leased, _ = frontier.lease("w0", hosts)  # one each from the first hosts
    for n, (lease_id, _) in enumerate(leased[: len(leased) // 2]):
        frontier.complete(lease_id, DONE if n % 10 else FAILED, None if n % 10 else "timeout")
    return sched


def timed(fn, runs: int = 21) -> dict:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_ms": round(1000 * statistics.median(times), 3),
            "max_ms": round(1000 * max(times), 3)}


def server_cost(snap: dict, gets: int) -> float:
    """This process's CPU ms per request while a child GETs /stats.json and / `gets` times
    each; the snapshot is replaced every 50 ms (encoded again on its first request)."""
    current = [snap]
    server = StatusServer(("127.0.0.1", 0), lambda: current[0]).start()
    try:
        child = subprocess.Popen([sys.executable, "-c", _CLIENT, str(server.server_address[1]),
                                  str(gets)])
        cpu0 = time.process_time()
        while child.poll() is None:
            current[0] = dict(snap)
            time.sleep(0.05)
        cpu = time.process_time() - cpu0
        if child.returncode:
            raise RuntimeError("the client failed")
    finally:
        server.close()
    return round(1000 * cpu / (2 * gets), 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--per-host", type=int, default=10)
    p.add_argument("--gets", type=int, default=500,
                   help="requests of each page for the server's cost (500)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    results = []
    for hosts in args.hosts:
        sched = build(hosts, args.per_host)
        snap = snapshot.compose(sched.snapshot(20), crawl={"spider": "s", "output": "o",
                                                           "jobdir": None},
                                seconds=10.0, done_before=0, items=0, items_dropped=0,
                                last_items=[{"url": "http://h0.test/0"}] * 10,
                                connected_within=30.0)
        row = {"hosts": hosts, "queued": sched.frontier.queued,
               "frontier_snapshot": timed(lambda: sched.frontier.snapshot(20)),
               "scheduler_snapshot": timed(lambda: sched.snapshot(20)),
               "encode_json": timed(lambda: json.dumps(snap)),
               "encode_metrics": timed(lambda: metrics.render(snap)),
               "server_cpu_ms_per_request": server_cost(snap, args.gets)}
        results.append(row)
        print(f"{hosts:>7} hosts ({row['queued']:,} queued): snapshot under the lock "
              f"{row['scheduler_snapshot']['median_ms']} ms (max "
              f"{row['scheduler_snapshot']['max_ms']}); stats.json "
              f"{row['encode_json']['median_ms']} ms, metrics "
              f"{row['encode_metrics']['median_ms']} ms; server "
              f"{row['server_cpu_ms_per_request']} ms CPU a request", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
